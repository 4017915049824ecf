"""Messages in, class probabilities out, around any forward pass: the one classifying pipeline.

:class:`Classifier` owns everything but the forward pass: the pair encoding
(:mod:`nerwheel.tasks.classify.encoding`), length-sorted batches and the
answer (:class:`Prediction`). ONNX Runtime and PyTorch
(:mod:`nerwheel.tasks.classify.runtime`), the Triton model and the
``text-classification`` pipeline written into every classifier folder
(:mod:`nerwheel.hf.pipeline_classify`) subclass or wrap it, so they cannot
disagree on anything but the forward pass.

Imports only numpy, ``tokenizers`` and the numpy-only encoding: the Hugging
Face pipeline ships a copy of this file inside the model folder, where
nerwheel itself may not be installed (torch is imported where a forward pass
runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nerwheel.tasks.classify.encoding import PairEncoder

__all__ = ["Classifier", "ClassifierCardView", "Prediction", "TorchModelClassifier", "softmax"]


class ClassifierCardView(Protocol):
    """What a classifier reads from its card (``nerwheel.json`` or the Hugging Face config)."""

    labels: list[str]
    name: str


class _Pair(Protocol):
    """A message to classify: its text and the optional context (the previous turn)."""

    message: str
    context: str


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

    def __init__(self, card: ClassifierCardView, encoder: PairEncoder, *, batch_size: int = 32) -> None:
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

    def predict(self, messages: Sequence[_Pair]) -> list[Prediction]:
        """One :class:`Prediction` per message, in input order."""
        probs = self.probabilities([(m.context, m.message) for m in messages])
        return self.decode(probs)

    def decode(self, probs: np.ndarray) -> list[Prediction]:
        return [Prediction(self.labels[int(p.argmax())], {lab: round(float(x), 6) for lab, x in zip(
            self.labels, p, strict=True)}) for p in probs]


class TorchModelClassifier(Classifier):
    """A Hugging Face sequence classifier in memory, in PyTorch (``TorchClassifier.from_dir`` reads a model directory)."""

    def __init__(self, model: Any, card: ClassifierCardView, encoder: PairEncoder, *, batch_size: int = 32,
                 device: Any = None) -> None:
        import torch

        super().__init__(card, encoder, batch_size=batch_size)
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.uses_types = getattr(model.config, "type_vocab_size", 1) > 1

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
