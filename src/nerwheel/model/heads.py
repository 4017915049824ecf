"""Which model class a card's ``head`` names: one place for the backbones, the runtimes and the export.

``crf`` and ``softmax`` are token classifiers (:mod:`nerwheel.model.classifier`);
``span`` is the span classifier (:mod:`nerwheel.model.span`). Both take
``(input_ids, attention_mask)`` and return ``emissions`` (``card.num_outputs``
columns), so everything between the forward pass and the decoder is shared.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerwheel.labels import is_extension_label
from nerwheel.model.card import ModelCard
from nerwheel.records import Record

__all__ = ["load_model", "span_labels"]


def load_model(directory: str | Path, card: ModelCard) -> Any:
    """The PyTorch model of a trained model directory, by ``card.head``."""
    if card.head == "span":
        from nerwheel.model.span import SpanClassifier

        return SpanClassifier.load(directory)
    if card.lexicon:
        from nerwheel.model.lexicon_model import LexiconTokenClassifier

        return LexiconTokenClassifier.load(directory, head=card.head)
    from nerwheel.model.classifier import TokenClassifier

    return TokenClassifier.load(directory, head=card.head)


def span_labels(records: Iterable[Record], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """A span head's outputs: target labels (sorted), then extension labels (sorted); ``extra`` always included."""
    seen = set(extra)
    for r in records:
        seen.update(e.label for e in r.entities)
    return tuple(sorted(seen, key=lambda lab: (is_extension_label(lab), lab)))
