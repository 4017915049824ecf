"""What the Triton python backend runs, as plain unit-testable code.

The ``model.py`` that ``deploy`` copies into each version folder is a thin
shell (:mod:`nerwheel.serving.model_shell`): it imports this module and asks
:func:`model_class` for its ``TritonPythonModel``. Everything it does lives
here, in two layers:

* :class:`Handler` knows nothing about Triton: it validates each request's
  texts (:func:`decode_texts`: UTF-8, empty, too long, batch size), runs the
  tagger once over all valid texts of a dynamic batch, and returns, per
  request, either the output arrays or a :class:`RequestError`. One bad
  request never fails its neighbours, and never takes the model down.
* :func:`model_class` adapts a handler to Triton's ``initialize``/``execute``
  protocol using the ``triton_python_backend_utils`` module it is given (it
  only exists inside the stub process).

The tagger is :class:`nerwheel.model.runtime.OnnxTagger` over the export
artifacts bundled in the version folder, so served and offline predictions
come from the very same code.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nerwheel.errors import ConfigError, NerwheelError
from nerwheel.records import Entity

log = logging.getLogger(__name__)

__all__ = [
    "Handler",
    "Limits",
    "RequestError",
    "Tagger",
    "build_handler",
    "decode_texts",
    "entities_json",
    "internal_error",
    "model_class",
    "n_best_json",
    "parameters_of",
    "runtime_threads",
    "served_source",
]

DEFAULT_TAGGER = "nerwheel.model.runtime:OnnxTagger"
TAG_PAD = -1


class RequestError(NerwheelError, ValueError):
    """One request is unusable; the message is what the client sees.

    ``code`` is the name of the ``pb_utils.TritonError`` code the client gets: ``INVALID_ARG`` (the
    default: the request itself is wrong, so retrying it cannot help; gRPC ``INVALID_ARGUMENT``, HTTP
    400) or ``INTERNAL`` (the server failed a valid request: a model error).
    """

    def __init__(self, message: str, code: str = "INVALID_ARG") -> None:
        super().__init__(message)
        self.code = code


def internal_error(message: str) -> RequestError:
    """The server's own failure on a request (reported as ``INTERNAL``, not as the client's mistake)."""
    return RequestError(message, code="INTERNAL")


def parameters_of(config: dict[str, Any]) -> dict[str, str]:
    """A model config's ``parameters`` (as Triton hands the config to ``initialize``) as plain strings."""
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def runtime_threads(config: dict[str, Any]) -> int:
    """ONNX Runtime threads per instance (``ServingOptions.intra_op_threads``); instances x threads should not
    exceed the cores, or instances fight over them (measured: ``benchmarks/serving.py --sweep``)."""
    return int(parameters_of(config).get("intra_op_threads") or 1)


class Tagger(Protocol):
    def predict(self, texts: Sequence[str]) -> list[list[Entity]]: ...


@dataclass(frozen=True)
class Limits:
    max_text_length: int = 512
    max_batch_size: int = 32
    #: readings per text in the ``NBEST`` output
    n_best: int = 5

    @classmethod
    def from_model_config(cls, config: dict[str, Any]) -> Limits:
        params = parameters_of(config)
        return cls(
            max_text_length=int(params.get("max_text_length") or cls.max_text_length),
            max_batch_size=int(config.get("max_batch_size") or cls.max_batch_size),
            n_best=int(params.get("n_best") or cls.n_best),
        )


def decode_texts(raw: np.ndarray, limits: Limits) -> list[str]:
    """A request's ``TEXT`` tensor (bytes, shape ``[n]`` or ``[n, 1]``) -> texts, or :class:`RequestError`."""
    items = np.asarray(raw, dtype=object).reshape(-1)
    if items.size == 0:
        raise RequestError("TEXT is empty: send at least one text")
    if items.size > limits.max_batch_size:
        raise RequestError(
            f"TEXT holds {items.size} texts; the limit is {limits.max_batch_size} per request "
            "(max_batch_size): send smaller batches"
        )
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            text = item
        else:
            try:
                text = bytes(item).decode("utf-8")
            except UnicodeDecodeError as e:
                raise RequestError(
                    f"TEXT[{i}] is not valid UTF-8 (byte {bytes(item)[e.start:e.start + 1]!r} at offset {e.start}): "
                    "encode texts as UTF-8"
                ) from None
        if not text.strip():
            raise RequestError(f"TEXT[{i}] is empty or only whitespace: send non-empty texts")
        if len(text) > limits.max_text_length:
            raise RequestError(
                f"TEXT[{i}] has {len(text)} characters; the limit is {limits.max_text_length} "
                "(max_text_length in config.pbtxt): split longer texts"
            )
        texts.append(text)
    return texts


def entities_json(entities: Sequence[Entity]) -> bytes:
    """The ``ENTITIES`` element for one text: a JSON list of ``{start, end, label, text[, score]}``."""
    return json.dumps([e.to_dict() for e in entities], ensure_ascii=False).encode("utf-8")


def n_best_json(readings: Sequence[tuple[float, Sequence[Entity]]] | None, most: int) -> bytes:
    """The ``NBEST`` element for one text: ``{"max": N, "readings": [{"score": P(path | text), "entities": [...]}]}``.

    ``max`` is how many readings the server lists at most, so a client asking
    for more knows why it got fewer. ``readings`` is empty when the request did
    not ask for ``NBEST``.
    """
    listed = [{"score": p, "entities": [e.to_dict() for e in ents]} for p, ents in (readings or [])]
    return json.dumps({"max": most, "readings": listed}, ensure_ascii=False).encode("utf-8")


def pad_tag_ids(rows: Sequence[Sequence[int]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), TAG_PAD, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@dataclass(frozen=True)
class Outputs:
    entities: np.ndarray  # object [n, 1] of JSON bytes
    tag_ids: np.ndarray  # int32 [n, width], padded with -1
    n_best: np.ndarray | None = None  # object [n, 1] of JSON bytes (n_best_json)

    def named(self) -> dict[str, np.ndarray]:
        """Every output tensor by its Triton name (``NBEST`` without readings when none were asked for)."""
        nbest = self.n_best if self.n_best is not None else \
            np.array([[n_best_json(None, 0)] for _ in range(len(self.entities))], dtype=object)
        return {"ENTITIES": self.entities, "TAG_IDS": self.tag_ids, "NBEST": nbest}


def load_tagger(spec: str, path: str | Path, **options: Any) -> Tagger:
    """Instantiate ``module:attribute`` (a class or factory) on an export folder."""
    module, _, attr = spec.partition(":")
    factory: Callable[..., Tagger] = getattr(importlib.import_module(module), attr)
    return factory(str(path), **options)


class Handler:
    """Validate, predict and encode for a list of requests (one dynamic batch)."""

    def __init__(self, tagger: Tagger, limits: Limits) -> None:
        self.tagger = tagger
        self.limits = limits

    def _predict(self, texts: list[str], want_tags: bool, want_n_best: bool) -> tuple[
            list[list[Entity]], list[list[int]], list[Any] | None]:
        t = self.tagger
        if want_n_best and all(hasattr(t, a) for a in ("emissions", "decode_paths", "decode_n_best")):
            # the readings and the one best path come from the same stitched emissions, so they agree
            encs, emissions = t.emissions(texts)  # type: ignore[attr-defined]
            entities, tags = t.decode_paths(texts, encs, emissions)  # type: ignore[attr-defined]
            readings = t.decode_n_best(texts, encs, emissions, self.limits.n_best)  # type: ignore[attr-defined]
            return entities, tags, readings
        if not want_tags or not hasattr(t, "predict_paths"):
            return t.predict(texts), [[] for _ in texts], None
        entities, tags = t.predict_paths(texts)  # type: ignore[attr-defined]
        return entities, tags, None

    def run(
        self, requests: Sequence[np.ndarray], want_tags: Sequence[bool] | None = None,
        want_n_best: Sequence[bool] | None = None,
    ) -> list[Outputs | RequestError]:
        """One result per request, in order: :class:`Outputs`, or the :class:`RequestError` to send back.

        Tag paths are computed when any request wants them (default: yes), the
        n best readings only when one asks for ``NBEST`` (default: no).
        """
        want = any(want_tags) if want_tags is not None else True
        want_nb = any(want_n_best) if want_n_best is not None else False
        results: list[Outputs | RequestError | None] = [None] * len(requests)
        valid: list[tuple[int, list[str]]] = []
        for i, raw in enumerate(requests):
            try:
                valid.append((i, decode_texts(raw, self.limits)))
            except RequestError as e:
                results[i] = e
        if valid:
            flat = [t for _, texts in valid for t in texts]
            try:
                entities, tags, readings = self._predict(flat, want, want_nb)
            except Exception as e:  # noqa: BLE001 - a model failure answers these requests, the server stays up
                log.exception("prediction failed")
                err = internal_error(f"prediction failed: {type(e).__name__}: {e}")
                for i, _ in valid:
                    results[i] = err
                return results  # type: ignore[return-value]
            at = 0
            for i, texts in valid:
                span = slice(at, at + len(texts))
                at += len(texts)
                results[i] = Outputs(
                    entities=np.array([[entities_json(e)] for e in entities[span]], dtype=object),
                    tag_ids=pad_tag_ids(tags[span]),
                    n_best=None if readings is None else np.array(
                        [[n_best_json(r, self.limits.n_best)] for r in readings[span]], dtype=object),
                )
        return results  # type: ignore[return-value]

    def serve(self, requests: Sequence[dict[str, np.ndarray]], wanted: Sequence[set[str]]) -> list[Any]:
        """The Triton adapter's view: ``{"TEXT": ...}`` in, ``{"ENTITIES", "TAG_IDS", "NBEST"}`` or an error out."""
        results = self.run([r["TEXT"] for r in requests], ["TAG_IDS" in w for w in wanted],
                           ["NBEST" in w for w in wanted])
        return [r if isinstance(r, RequestError) else r.named() for r in results]


class ServedHandler(Protocol):
    """What the Triton adapter drives: named input arrays per request -> named outputs or an error."""

    def serve(self, requests: Sequence[dict[str, np.ndarray]], wanted: Sequence[set[str]]) -> list[Any]: ...


def served_source(name: str, version: str | int) -> str:
    """The ``source`` of served entities: the model clients call and the version that answered."""
    return f"model:{name}/{version}"


def build_handler(role: str, folder: Path, config: dict[str, Any], *, source: str | None = None) -> ServedHandler:
    """The handler for a served model's ``nerwheel_role`` parameter: ``tagger`` (CPU), ``classifier`` (the message
    classifier, :mod:`nerwheel.tasks.classify.serving`), ``encoder`` (the embedding model,
    :mod:`nerwheel.tasks.embed.serving`), ``tokenize``/``decode`` (GPU).

    ``source`` (:func:`served_source`) replaces the export's own ``model:<folder name>`` on every
    entity, so a client (and Label Studio's ``model_version``) sees which served model and version
    answered, not ``model:model``.
    """
    params = parameters_of(config)
    limits = Limits.from_model_config(config)
    if role == "tagger":
        options = {"threads": runtime_threads(config), **_tagger_options(params)}
        tagger = load_tagger(params.get("tagger") or DEFAULT_TAGGER, folder, **options)
        if source:
            tagger.source = source  # type: ignore[attr-defined]
        return Handler(tagger, limits)  # type: ignore[return-value]
    if role == "classifier":
        from nerwheel.tasks.classify.serving import ClassifyHandler

        return ClassifyHandler.from_folder(folder, config)
    if role == "encoder":
        from nerwheel.tasks.embed.serving import EmbedHandler

        return EmbedHandler.from_folder(folder, config)
    if role in ("tokenize", "decode"):
        from nerwheel.serving.ensemble import DecodeHandler, TokenizeHandler

        if role == "tokenize":
            return TokenizeHandler.from_folder(folder, limits)
        decoder = DecodeHandler.from_folder(folder, limits)
        if source:
            decoder.tagger.source = source
        return decoder
    raise ConfigError(f"unknown nerwheel_role {role!r}; expected tagger, classifier, encoder, tokenize or decode")


def model_class(pb_utils: Any) -> type:
    """A ``TritonPythonModel`` class over the role's handler, bound to the stub's ``pb_utils`` module."""

    class TritonPythonModel:
        def initialize(self, args: dict[str, str]) -> None:
            config = json.loads(args["model_config"])
            params = parameters_of(config)
            folder = Path(args["model_repository"]) / args["model_version"]
            self.inputs = [i["name"] for i in config["input"]]
            self.outputs = [o["name"] for o in config["output"]]
            # config.SERVED_NAME: a GPU ensemble's decode step answers for the ensemble
            source = served_source(params.get("served_name") or args["model_name"], args["model_version"])
            self.handler = build_handler(params.get("nerwheel_role") or "tagger", folder, config, source=source)
            log.info("nerwheel model %s version %s ready from %s", args["model_name"], args["model_version"], folder)

        def execute(self, requests: list[Any]) -> list[Any]:
            # an optional input (CONTEXT) a request did not send is simply absent from its arrays
            arrays = [{n: t.as_numpy() for n in self.inputs
                       if (t := pb_utils.get_input_tensor_by_name(r, n)) is not None} for r in requests]
            # NBEST only when named (it costs a search of its own). Triton itself fills in every output for a
            # request naming none (seen: NBEST too); the fallback serves callers that hand over an empty list.
            wanted = [set(r.requested_output_names()) or set(self.outputs) - {"NBEST"} for r in requests]
            responses = []
            for result, want in zip(self.handler.serve(arrays, wanted), wanted, strict=True):
                if isinstance(result, RequestError):
                    error = pb_utils.TritonError(str(result), getattr(pb_utils.TritonError, result.code))
                    responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                else:
                    # only what the request named crosses to the server (Triton drops the rest anyway; sending
                    # TAG_IDS and NBEST that nobody asked for cost ~0.3 ms of a ~8 ms request)
                    tensors = [pb_utils.Tensor(n, result[n]) for n in self.outputs if n in result and n in want]
                    responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            return responses

        def finalize(self) -> None:
            self.handler = None

    return TritonPythonModel


def _tagger_options(params: dict[str, str]) -> dict[str, Any]:
    """Parameters named ``tagger.<option>`` are passed to the tagger (JSON values)."""
    return {k[len("tagger."):]: json.loads(v) for k, v in params.items() if k.startswith("tagger.")}
