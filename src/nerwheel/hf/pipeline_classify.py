"""The text-classification pipeline a nerwheel classifier folder gives ``transformers`` (``custom_pipelines``).

``pipeline("text-classification", model=folder, trust_remote_code=True)``
returns :class:`NerwheelTextClassificationPipeline`. It runs nerwheel's own
classifier (:class:`nerwheel.tasks.classify.classifier.TorchModelClassifier`:
the same sentence-pair encoding, context first and message second, truncated
longest-first to the model's ``max_length``, length-sorted batches, softmax)
around the folder's stock ``...ForSequenceClassification`` model, so its
answers are ``nerwheel classify predict``'s.

Inputs: a message (``str``), a ``{"message": ..., "context": ...}`` dict (the
fields of nerwheel's message files; ``context`` optional), transformers' own
pair form ``{"text": context, "text_pair": message}``, or a list of these.
Each gives ``{"label", "score", "probabilities"}``: the class name, its
probability, and the probability of every class (nerwheel's output row).

Copied into every classifier folder with the modules it imports; nerwheel
itself need not be installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer
from nerwheel.hf.whole_batch import WholeBatchPipeline
from nerwheel.tasks.classify.classifier import TorchModelClassifier
from nerwheel.tasks.classify.encoding import PairEncoder

__all__ = ["NerwheelTextClassificationPipeline"]


@dataclass
class _Card:
    """The part of a classifier card the classifier reads, from ``config.json`` (``id2label`` + ``nerwheel``)."""

    labels: list[str]
    name: str


@dataclass(frozen=True)
class _Pair:
    """One input as nerwheel reads it: the message and its optional context (the previous turn)."""

    message: str
    context: str = ""


def _pair(item: Any) -> _Pair:
    if isinstance(item, str):
        return _Pair(item)
    if isinstance(item, dict):
        if "message" in item:
            return _Pair(str(item["message"]), str(item.get("context") or ""))
        if "text_pair" in item:  # transformers' pair form: the first text is the context
            return _Pair(str(item["text_pair"]), str(item.get("text") or ""))
        if "text" in item:
            return _Pair(str(item["text"]))
    raise ValueError(f"cannot classify {item!r}: give a message string, {{'message': ..., 'context': ...}} or "
                     "{'text': context, 'text_pair': message}")


class NerwheelTextClassificationPipeline(WholeBatchPipeline):
    """Messages in, nerwheel's class and probabilities out (see the module docstring); a list runs as one batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = getattr(self.model.config, "nerwheel", None) or {}
        config = self.model.config
        card = _Card(labels=[config.id2label[i] for i in range(config.num_labels)], name=settings.get("name", ""))
        backend = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        encoder = PairEncoder(backend, max_length=int(settings["max_length"]), pad_id=int(settings.get("pad_id", 0)))
        self.classifier = TorchModelClassifier(self.model, card, encoder, batch_size=int(settings.get("batch_size", 32)),
                                               device=self.device)
        self.model.eval()

    def _sanitize_parameters(self, **_: Any) -> tuple[dict, dict, dict]:
        return {}, {}, {}

    def _item(self, input_: Any) -> _Pair:
        return _pair(input_)

    def _run(self, pairs: list[_Pair]) -> list[dict[str, Any]]:
        return [{"label": p.label, "score": p.confidence, "probabilities": p.probabilities}
                for p in self.classifier.predict(pairs)]
