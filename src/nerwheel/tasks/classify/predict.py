"""One loader for every kind of classifier, and messages in -> classified rows out, in input order.

:func:`load_classifier` takes an export directory (``model.onnx``: ONNX
Runtime), a trained model directory (its ``onnx/`` export when there is one,
else PyTorch) or a Triton URL (``host:port``: the serving client). Each
returns an object with ``labels`` and ``predict(messages) -> list[Prediction]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from nerwheel.tasks.classify.records import Message
from nerwheel.tasks.classify.runtime import Prediction

__all__ = ["RemoteClassifier", "load_classifier", "predict_rows"]


class RemoteClassifier:
    """A Triton endpoint serving a classifier, behind the predictor interface."""

    def __init__(self, url: str, **options: Any) -> None:
        from nerwheel.tasks.classify.serving import ClassifyClient

        self.client = ClassifyClient(url, **options)

    @property
    def labels(self) -> list[str]:
        return self.client.labels()

    def predict(self, messages: Sequence[Message]) -> list[Prediction]:
        return self.client.classify(messages)


def load_classifier(path_or_url: str | Path, *, runtime: Literal["auto", "onnx", "torch"] = "auto",
                    int8: bool = False, batch_size: int = 32, **remote_options: Any) -> Any:
    """The fastest local runtime for ``path_or_url`` (``runtime`` forces one), or a Triton client for a URL."""
    from nerwheel.stages.predict import resolve_target
    from nerwheel.tasks.classify.runtime import OnnxClassifier, TorchClassifier

    kind, target = resolve_target(path_or_url, runtime)
    if kind == "url":
        return RemoteClassifier(str(target), **remote_options)
    if kind == "onnx":
        return OnnxClassifier(target, int8=int8, batch_size=batch_size)
    return TorchClassifier.from_dir(target, batch_size=batch_size)


def predict_rows(predictor: Any, messages: Sequence[Message]) -> list[dict[str, Any]]:
    """``messages`` in input order with ``label`` (the class name) and ``probabilities`` (name -> p)."""
    from nerwheel.tasks.classify.evaluate import prediction_row

    preds = predictor.predict(list(messages))
    if len(preds) != len(messages):
        raise RuntimeError(f"the predictor returned {len(preds)} results for {len(messages)} messages")
    return [prediction_row(m, p.label, p.probabilities) for m, p in zip(messages, preds, strict=True)]
