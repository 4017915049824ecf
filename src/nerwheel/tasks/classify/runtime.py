"""Run a classifier over messages: ONNX Runtime (:class:`OnnxClassifier`) or PyTorch (:class:`TorchClassifier`).

Both share everything but the forward pass (:class:`Classifier`): the pair
encoding (:mod:`nerwheel.tasks.classify.encoding`), length-sorted batches and
the softmax. So a parity check between them compares exactly one thing, the
forward pass, and the Triton model (a thin shell over :class:`OnnxClassifier`)
answers what offline prediction answers.

This module imports neither torch nor transformers at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.tasks.classify.card import ClassifierCard
from nerwheel.tasks.classify.encoding import PairEncoder
from nerwheel.tasks.classify.records import Message

__all__ = ["Classifier", "OnnxClassifier", "Prediction", "TorchClassifier", "softmax"]

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Prediction:
    """One message's answer: the class name and the probability of every class."""

    label: str
    probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


class Classifier:
    """Messages in, :class:`Prediction` out; subclasses supply :meth:`run` (the forward pass -> probabilities)."""

    def __init__(self, card: ClassifierCard, encoder: PairEncoder, *, batch_size: int = 32) -> None:
        self.card = card
        self.labels = list(card.labels)
        self.encoder = encoder
        self.batch_size = batch_size
        self.source = f"model:{card.name}" if card.name else "model"

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities ``[B, C]`` float32 for int64 ``[B, S]`` inputs."""
        raise NotImplementedError

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """``[n, C]`` probabilities for (context, message) pairs, in input order."""
        rows = self.encoder.encode(pairs)
        out = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            out[idx] = self.run(self.encoder.pad([rows[i] for i in idx]).feeds())
        return out

    def predict(self, messages: Sequence[Message]) -> list[Prediction]:
        """One :class:`Prediction` per message, in input order."""
        probs = self.probabilities([(m.context, m.message) for m in messages])
        return self.decode(probs)

    def decode(self, probs: np.ndarray) -> list[Prediction]:
        return [Prediction(self.labels[int(p.argmax())], {lab: round(float(x), 6) for lab, x in zip(
            self.labels, p, strict=True)}) for p in probs]


def _encoder_for(directory: Path, card: ClassifierCard, max_length: int | None = None) -> PairEncoder:
    return PairEncoder.from_file(directory / TOKENIZER_FILE, max_length=max_length or card.max_length,
                                 pad_id=card.pad_id)


class OnnxClassifier(Classifier):
    """An export directory (``model.onnx`` + ``tokenizer.json`` + ``nerwheel.json``) on ONNX Runtime.

    ``int8=True`` runs ``model.int8.onnx``; ``threads`` sets intra-op threads.
    """

    def __init__(self, path: str | Path, *, int8: bool = False, batch_size: int = 32, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        directory = Path(path)
        card = ClassifierCard.read(directory)
        model_file = directory / (ONNX_INT8_FILE if int8 else ONNX_FILE)
        if not model_file.exists():
            hint = " (export with --quantize int8)" if int8 else ""
            raise FileNotFoundError(f"{model_file}: missing; not a classifier export directory{hint}")
        super().__init__(card, _encoder_for(directory, card), batch_size=batch_size)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_file), opts, providers=list(providers or ["CPUExecutionProvider"]))
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.model_file = model_file

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["probabilities"], {k: v for k, v in feeds.items() if k in self.inputs})[0]


class TorchClassifier(Classifier):
    """A Hugging Face sequence classifier in PyTorch (a model directory, or a model in memory)."""

    def __init__(self, model: Any, card: ClassifierCard, encoder: PairEncoder, *, batch_size: int = 32,
                 device: Any = None) -> None:
        import torch

        super().__init__(card, encoder, batch_size=batch_size)
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.uses_types = getattr(model.config, "type_vocab_size", 1) > 1

    @classmethod
    def from_dir(cls, path: str | Path, *, device: Any = None, batch_size: int = 32) -> TorchClassifier:
        from transformers import AutoModelForSequenceClassification

        directory = Path(path)
        card = ClassifierCard.read(directory)
        model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
        if device is not None:
            model.to(device)
        return cls(model, card, _encoder_for(directory, card), batch_size=batch_size, device=device)

    def logits(self, feeds: dict[str, np.ndarray]) -> Any:
        import torch

        kwargs = {k: torch.from_numpy(v).to(self.device) for k, v in feeds.items()
                  if k != "token_type_ids" or self.uses_types}
        return self.model(**kwargs).logits.float()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                return torch.softmax(self.logits(feeds), dim=-1).cpu().numpy()
        finally:
            self.model.train(was_training)
