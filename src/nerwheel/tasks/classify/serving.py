"""The classifier in Triton: ``MESSAGE`` and optional ``CONTEXT`` (BYTES) -> ``LABEL`` (BYTES) and ``PROBABILITIES``.

Three pieces, each the classifier's side of a shared home:

- :func:`model_config`: the python-backend ``config.pbtxt`` (built from
  Triton's protobuf schema like the tagger's, :mod:`nerwheel.serving.config`),
  with the class names in the ``labels`` parameter so a client knows what
  each ``PROBABILITIES`` column is;
- :class:`ClassifyHandler`: what the python backend runs (role
  ``classifier`` in :func:`nerwheel.serving.backend.build_handler`): it
  validates each request (UTF-8, empty message, too long, batch size,
  ``CONTEXT`` rows matching ``MESSAGE`` rows), runs
  :class:`~nerwheel.tasks.classify.runtime.OnnxClassifier` once over the
  dynamic batch, and answers bad requests with an error without failing
  their neighbours;
- :class:`ClassifyClient`: gRPC client (retries from the tagger's
  :class:`~nerwheel.serving.client.Client`), and :data:`SERVING`, the adapter
  deploy uses to probe a new version (served == offline) and roll back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.tasks.classify.records import Message
from nerwheel.tasks.classify.runtime import Prediction

__all__ = ["DEFAULT_PROBES", "SERVING", "ClassifyClient", "ClassifyHandler", "ClassifyServing", "model_config"]

log = logging.getLogger(__name__)

INPUT_MESSAGE, INPUT_CONTEXT = "MESSAGE", "CONTEXT"
OUTPUT_LABEL, OUTPUT_PROBABILITIES = "LABEL", "PROBABILITIES"
ROLE = "classifier"

#: Varied chat turns (context, message): the probe checks served == offline, not accuracy.
DEFAULT_PROBES: tuple[tuple[str, str], ...] = (
    ("", "好的"),
    ("你好，有什么可以帮你？", "帮我查一下昨天的订单到哪了"),
    ("请稍等，正在为您查询。", "等一下，先别查了，我有急事"),
    ("", "请问明天下午三点的会议改到几点了"),
    ("我们已经为您安排了退款。", "谢谢"),
)


def model_config(name: str, version: int | None, options: Any, labels: Sequence[str]) -> Any:
    """MESSAGE [1] + optional CONTEXT [1] (BYTES) -> LABEL [1] (BYTES), PROBABILITIES [classes] (FP32)."""
    from tritonclient.grpc import model_config_pb2 as mc

    from nerwheel.serving.config import python_model_config

    cfg = python_model_config(name, version, options, ROLE, {"labels": json.dumps(list(labels), ensure_ascii=False)})
    cfg.input.extend([mc.ModelInput(name=INPUT_MESSAGE, data_type=mc.TYPE_STRING, dims=[1]),
                      mc.ModelInput(name=INPUT_CONTEXT, data_type=mc.TYPE_STRING, dims=[1], optional=True)])
    cfg.output.extend([mc.ModelOutput(name=OUTPUT_LABEL, data_type=mc.TYPE_STRING, dims=[1]),
                       mc.ModelOutput(name=OUTPUT_PROBABILITIES, data_type=mc.TYPE_FP32, dims=[-1])])
    return cfg


def _texts(raw: np.ndarray, name: str, limits: Any, *, allow_empty: bool) -> list[str]:
    from nerwheel.serving.backend import RequestError

    out = []
    for i, item in enumerate(np.asarray(raw, dtype=object).reshape(-1)):
        try:
            text = item if isinstance(item, str) else bytes(item).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RequestError(f"{name}[{i}] is not valid UTF-8 (offset {e.start}): encode texts as UTF-8") from None
        if not allow_empty and not text.strip():
            raise RequestError(f"{name}[{i}] is empty or only whitespace: send a non-empty message")
        if len(text) > limits.max_text_length:
            raise RequestError(f"{name}[{i}] has {len(text)} characters; the limit is {limits.max_text_length} "
                               "(max_text_length in config.pbtxt)")
        out.append(text)
    return out


class ClassifyHandler:
    """Validate, classify and encode one dynamic batch of requests (see the module docstring)."""

    def __init__(self, classifier: Any, limits: Any) -> None:
        self.classifier = classifier
        self.limits = limits

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any]) -> ClassifyHandler:
        from nerwheel.serving.backend import Limits, runtime_threads
        from nerwheel.tasks.classify.runtime import OnnxClassifier

        return cls(OnnxClassifier(folder, threads=runtime_threads(config)),
                   Limits.from_model_config(config))

    def decode(self, arrays: dict[str, np.ndarray]) -> list[tuple[str, str]]:
        from nerwheel.serving.backend import RequestError

        if INPUT_MESSAGE not in arrays:
            raise RequestError("MESSAGE is missing: send a BYTES tensor of messages, shape [n, 1]")
        messages = _texts(arrays[INPUT_MESSAGE], INPUT_MESSAGE, self.limits, allow_empty=False)
        if not messages:
            raise RequestError("MESSAGE is empty: send at least one message")
        if len(messages) > self.limits.max_batch_size:
            raise RequestError(f"MESSAGE holds {len(messages)} messages; the limit is {self.limits.max_batch_size} "
                               "per request (max_batch_size)")
        contexts = [""] * len(messages)
        if arrays.get(INPUT_CONTEXT) is not None:
            contexts = _texts(arrays[INPUT_CONTEXT], INPUT_CONTEXT, self.limits, allow_empty=True)
            if len(contexts) != len(messages):
                raise RequestError(f"CONTEXT has {len(contexts)} rows but MESSAGE has {len(messages)}: send one "
                                   "context per message (an empty string for none)")
        return list(zip(contexts, messages, strict=True))

    def serve(self, requests: Sequence[dict[str, np.ndarray]], wanted: Sequence[set[str]]) -> list[Any]:
        from nerwheel.serving.backend import RequestError, internal_error

        results: list[Any] = [None] * len(requests)
        valid: list[tuple[int, list[tuple[str, str]]]] = []
        for i, arrays in enumerate(requests):
            try:
                valid.append((i, self.decode(arrays)))
            except RequestError as e:
                results[i] = e
        if not valid:
            return results
        try:
            probs = self.classifier.probabilities([p for _, pairs in valid for p in pairs])
        except Exception as e:  # noqa: BLE001 - a model failure answers these requests, the server stays up
            log.exception("classification failed")
            for i, _ in valid:
                results[i] = internal_error(f"classification failed: {type(e).__name__}: {e}")  # not the client's
            return results
        labels = self.classifier.labels
        at = 0
        for i, pairs in valid:
            p = probs[at : at + len(pairs)].astype(np.float32)
            at += len(pairs)
            names = np.array([[labels[int(k)].encode("utf-8")] for k in p.argmax(axis=1)], dtype=object)
            results[i] = {OUTPUT_LABEL: names, OUTPUT_PROBABILITIES: p}
        return results


class ClassifyClient:
    """Classify messages through Triton over gRPC (retries and errors as :class:`~nerwheel.serving.client.Client`)."""

    def __init__(self, url: str, *, model: str = "classifier", **options: Any) -> None:
        from nerwheel.serving.client import Client

        self.base = Client(url, model=model, **options)
        self._labels: list[str] | None = None

    def labels(self) -> list[str]:
        """The class names of the served model, in ``PROBABILITIES`` column order (its config's ``labels``)."""
        if self._labels is None:
            from nerwheel.serving.client import ServingError

            try:
                cfg = self.base._client.get_model_config(self.base.model, self.base.version).config
            except Exception as e:  # noqa: BLE001 - unreachable, unknown model: one clear error
                raise ServingError(f"{self.base.url} model {self.base.model!r}: cannot read its config ({e}); is "
                                   "the server up (`nerwheel serve`) and the model deployed?") from None
            if "labels" not in cfg.parameters:
                raise ServingError(f"{self.base.url} model {self.base.model!r} is not a nerwheel classifier (no "
                                   "labels parameter in its config)")
            self._labels = list(json.loads(cfg.parameters["labels"].string_value))
        return self._labels

    def classify(self, messages: Sequence[Message]) -> list[Prediction]:
        labels = self.labels()
        out: list[Prediction] = []
        b = self.base
        for i in range(0, len(messages), b.batch_size):
            chunk = messages[i : i + b.batch_size]
            inputs = {INPUT_MESSAGE: [m.message for m in chunk], INPUT_CONTEXT: [m.context for m in chunk]}
            result, _ = b.infer_arrays(inputs, [OUTPUT_LABEL, OUTPUT_PROBABILITIES])
            names = [bytes(x).decode("utf-8") for x in result.as_numpy(OUTPUT_LABEL).reshape(-1)]
            probs = result.as_numpy(OUTPUT_PROBABILITIES)
            for name, p in zip(names, probs, strict=True):
                out.append(Prediction(name, {lab: round(float(x), 6) for lab, x in zip(labels, p, strict=True)}))
        return out

    def close(self) -> None:
        self.base.close()

    def __enter__(self) -> ClassifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClassifyServing:
    """The classifier's deploy adapter (the interface in :mod:`nerwheel.serving.tasks`)."""

    task = "classify"
    default_name = "classifier"
    variants = ("cpu",)

    def probes(self, texts: Sequence[str] | None) -> list[Message]:
        pairs = [("", t) for t in texts if t.strip()] if texts is not None else list(DEFAULT_PROBES)
        return [Message(f"probe:{i}", m, c) for i, (c, m) in enumerate(pairs, start=1)]

    def model_config(self, name: str, version: int, options: Any, export_dir: Path) -> Any:
        from nerwheel.tasks.classify.card import ClassifierCard

        return model_config(name, version, options, ClassifierCard.read(export_dir).labels)

    def offline(self, export_dir: Path, options: Any) -> Callable[[Sequence[Message]], list[Prediction]]:
        from nerwheel.tasks.classify.runtime import OnnxClassifier

        return OnnxClassifier(export_dir).predict

    def served(self, url: str, name: str, version: int, batch_size: int, timeout_s: float) -> Any:
        client = ClassifyClient(url, model=name, version=version, timeout=timeout_s, retries=2, batch_size=batch_size)
        return client, client.classify

    def compare(self, probes: Sequence[Message], expected: Sequence[Prediction],
                got: Sequence[Prediction], atol: float = 1e-4) -> list[dict[str, Any]]:
        out = []
        for m, e, g in zip(probes, expected, got, strict=True):
            same = e.label == g.label and e.probabilities.keys() == g.probabilities.keys() and all(
                abs(e.probabilities[k] - g.probabilities[k]) <= atol for k in e.probabilities)
            if not same:
                out.append({"message": m.message, "context": m.context, "offline": e.__dict__, "served": g.__dict__})
        return out


SERVING = ClassifyServing()
