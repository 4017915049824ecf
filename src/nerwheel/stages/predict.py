"""The predict stage: one loader for every kind of model, and records in -> records with predicted entities out.

:func:`load_predictor` takes

- an export directory (``model.onnx``): ONNX Runtime (:class:`~nerwheel.model.runtime.OnnxTagger`);
- a trained model directory: ONNX Runtime when an export sits in its ``onnx/``
  folder (``nerwheel export`` puts it there by default), else PyTorch
  (:class:`~nerwheel.model.runtime.TorchTagger`);
- a Triton URL (``grpc://host:port`` or ``host:port``): the serving client.

Each returns an object with ``predict(texts) -> list[list[Entity]]``; the local
ones also give ``n_best(texts, n)`` (the n best readings with their
probabilities) and take ``decoding`` to override the card's search (Viterbi or
beam).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from nerwheel.decode import Decoding
from nerwheel.errors import ConfigError
from nerwheel.model.layout import EXPORT_SUBDIR, ONNX_FILE, find_export, is_model_dir
from nerwheel.records import Entity, Record

__all__ = ["CHUNK", "EXPORT_SUBDIR", "Predictor", "RemotePredictor", "load_predictor", "predict_records",
           "predict_rows", "predict_texts", "resolve_target"]

_URL = re.compile(r"^(grpc://)?[\w.\-]+:\d+$")


class Predictor(Protocol):
    def predict(self, texts: Sequence[str]) -> list[list[Entity]]: ...


class RemotePredictor:
    """A Triton endpoint behind the predictor interface."""

    #: A served tagger does not publish its label set (its Triton config names none), so nothing is checked
    #: against it; the evaluation summary says so.
    labels = None

    def __init__(self, url: str, **options: Any) -> None:
        from nerwheel.serving.client import Client

        self.client = Client(url, **options)

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        return self.client.extract(list(texts))

    def n_best(self, texts: Sequence[str], n: int) -> list[list[tuple[float, list[Entity]]]]:
        return self.client.n_best(list(texts), n)


def is_url(target: str) -> bool:
    return bool(_URL.match(target)) and not Path(target).exists()


def load_predictor(
    path_or_url: str | Path,
    *,
    runtime: Literal["auto", "onnx", "torch"] = "auto",
    int8: bool = False,
    batch_size: int = 32,
    nested: bool | None = None,
    extensions: bool | None = None,
    decoding: Decoding | None = None,
    **remote_options: Any,
) -> Predictor:
    """The fastest local runtime for ``path_or_url`` (``runtime`` forces one), or a Triton client for a URL.

    ``nested``/``extensions`` ask a span-head model for nested target spans and
    for its extension labels (default: the card's ``span.nested``, no extensions).
    ``decoding`` overrides the model card's tag-path search (CRF and softmax
    heads) for local runtimes. A Triton server decodes as the card it was
    deployed with says.
    """
    from nerwheel.model.runtime import OnnxTagger, TorchTagger

    decode = {"nested": nested, "extensions": extensions}
    kind, target = resolve_target(path_or_url, runtime)
    if kind == "url":
        if nested is not None or extensions:
            raise ConfigError(f"{target}: nested/extensions apply to a local span-head model; a served model decodes "
                              "as its card says (model.span.nested when it was trained)", field="nested")
        if decoding is not None:
            raise ConfigError(f"{target}: a Triton server decodes as its model's card says; choose the decoding "
                              "(model.decode, model.beam_size) before export and deploy, or predict with a local model",
                              field="decode")
        return RemotePredictor(str(target), **remote_options)
    if kind == "onnx":
        return OnnxTagger(target, int8=int8, batch_size=batch_size, decoding=decoding, **decode)
    return TorchTagger.from_dir(target, batch_size=batch_size, decoding=decoding, **decode)


def resolve_target(path_or_url: str | Path, runtime: str = "auto") -> tuple[str, str | Path]:
    """Which runtime serves ``path_or_url``, for every task: ``("url", url)``, ``("onnx", export dir)`` (the folder
    itself or its ``onnx/``; preferred unless ``runtime="torch"``) or ``("torch", model dir)``."""
    target = str(path_or_url)
    if is_url(target):
        return "url", target
    path = Path(target)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model directory (and not a host:port URL)")
    export = find_export(path)
    if runtime in ("auto", "onnx") and export is not None:
        return "onnx", export
    if runtime == "onnx":
        raise FileNotFoundError(f"{path}: no {ONNX_FILE} here or in {EXPORT_SUBDIR}/; run `nerwheel export` first")
    if not is_model_dir(path):
        raise FileNotFoundError(f"{path}: neither an export ({ONNX_FILE}) nor a trained model directory "
                                "(config.json, nerwheel.json)")
    return "torch", path


#: Texts handed to a predictor at once: large enough for its own batching, small enough for a live progress bar.
CHUNK = 256


def _chunked(run: Callable[[list[str]], list[Any]], texts: Sequence[str], desc: str) -> list[Any]:
    """``run`` over ``texts`` in chunks of :data:`CHUNK`, with a progress bar (:mod:`nerwheel.progress`)."""
    from nerwheel.progress import progress

    out: list[Any] = []
    with progress(total=len(texts), desc=desc, unit="text") as bar:
        for i in range(0, len(texts), CHUNK):
            part = run(list(texts[i:i + CHUNK]))
            out += part
            bar.update(len(part))
    if len(out) != len(texts):
        raise RuntimeError(f"the predictor returned {len(out)} results for {len(texts)} texts")
    return out


def predict_texts(predictor: Predictor, texts: Sequence[str], *, desc: str = "predict") -> list[list[Entity]]:
    """``predictor.predict`` over ``texts`` in chunks, with a progress bar."""
    return _chunked(predictor.predict, texts, desc)


def predict_records(predictor: Predictor, records: Sequence[Record], *, desc: str = "predict",
                    n_best: int | None = None) -> list[Record]:
    """``records`` in the same order, their entities replaced by the predictor's.

    With ``n_best`` each record's entities are its best reading and
    ``meta["n_best"]`` lists up to ``n_best`` readings, best first:
    ``{"score": P(path | text), "entities": [...]}``.
    """
    texts = [r.text for r in records]
    if n_best is None:
        predicted = predict_texts(predictor, texts, desc=desc)
        return [r.with_entities(ents) for r, ents in zip(records, predicted, strict=True)]
    readings = _chunked(lambda part: predictor.n_best(part, n_best), texts, desc)  # type: ignore[attr-defined]
    out = []
    for r, alts in zip(records, readings, strict=True):
        listed = [{"score": p, "entities": [e.to_dict() for e in ents]} for p, ents in alts]
        out.append(r.with_entities(alts[0][1] if alts else []).with_meta(n_best=listed))
    return out


def predict_rows(predictor: Predictor, records: Sequence[Record], *, n_best: int | None = None) -> list[dict[str, Any]]:
    """:func:`predict_records` as output rows (span JSONL objects), in input order."""
    return [r.to_dict() for r in predict_records(predictor, records, n_best=n_best)]
