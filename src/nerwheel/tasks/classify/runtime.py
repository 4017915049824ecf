"""Run a classifier over messages: ONNX Runtime (:class:`OnnxClassifier`) or PyTorch (:class:`TorchClassifier`).

Both share everything but the forward pass (:class:`~nerwheel.tasks.classify.classifier.Classifier`): the pair
encoding (:mod:`nerwheel.tasks.classify.encoding`), length-sorted batches and
the softmax. So a parity check between them compares exactly one thing, the
forward pass, and the Triton model (a thin shell over :class:`OnnxClassifier`)
answers what offline prediction answers.

This module imports neither torch nor transformers at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.model.ort_session import open_session
from nerwheel.tasks.classify.card import ClassifierCard
from nerwheel.tasks.classify.classifier import Classifier, Prediction, TorchModelClassifier, softmax
from nerwheel.tasks.classify.encoding import PairEncoder

__all__ = ["Classifier", "OnnxClassifier", "Prediction", "TorchClassifier", "TorchModelClassifier", "softmax"]

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"


def _encoder_for(directory: Path, card: ClassifierCard, max_length: int | None = None) -> PairEncoder:
    return PairEncoder.from_file(directory / TOKENIZER_FILE, max_length=max_length or card.max_length,
                                 pad_id=card.pad_id)


class OnnxClassifier(Classifier):
    """An export directory (``model.onnx`` + ``tokenizer.json`` + ``nerwheel.json``) on ONNX Runtime.

    ``int8=True`` runs ``model.int8.onnx``; ``threads`` sets intra-op threads.
    """

    def __init__(self, path: str | Path, *, int8: bool = False, batch_size: int = 32, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        directory = Path(path)
        card = ClassifierCard.read(directory)
        model_file = directory / (ONNX_INT8_FILE if int8 else ONNX_FILE)
        if not model_file.exists():
            hint = " (export with --quantize int8)" if int8 else ""
            raise FileNotFoundError(f"{model_file}: missing; not a classifier export directory{hint}")
        super().__init__(card, _encoder_for(directory, card), batch_size=batch_size)
        self.session = open_session(model_file, threads=threads, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.model_file = model_file

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["probabilities"], {k: v for k, v in feeds.items() if k in self.inputs})[0]


class TorchClassifier(TorchModelClassifier):
    """A Hugging Face sequence classifier in PyTorch (a model directory, or a model in memory)."""

    @classmethod
    def from_dir(cls, path: str | Path, *, device: Any = None, batch_size: int = 32) -> TorchClassifier:
        from transformers import AutoModelForSequenceClassification

        directory = Path(path)
        card = ClassifierCard.read(directory)
        model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
        if device is not None:
            model.to(device)
        return cls(model, card, _encoder_for(directory, card), batch_size=batch_size, device=device)
