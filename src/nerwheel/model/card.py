"""``nerwheel.json``: what a model directory or an export directory is, beside the Hugging Face files.

The Hugging Face files say how to run the encoder; this card says how to read
its output: the tag inventory and scheme, the head (CRF, softmax or span), the
window geometry, and where the model came from (backbone, data fingerprints,
metrics). Every runtime (PyTorch, ONNX Runtime, Triton) builds its decoder
from it.

A span head has no tags (``tags`` is empty): ``labels`` are its outputs,
targets first, then extension labels, and ``span`` says how to read its
scores (``max_width``, and the decoding defaults ``threshold`` and
``nested``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.errors import DataError
from nerwheel.labels import TagSet
from nerwheel.model.layout import CARD_FILE
from nerwheel.storage import sha256_file as file_sha256  # the one file digest, under its old name here
from nerwheel.storage import write_json

__all__ = ["CARD_FILE", "Card", "ModelCard", "file_sha256", "write_card"]


class Card(BaseModel):
    """What the tagger's and the classifier's ``nerwheel.json`` share: the labels, the backbone, the padding id,
    and where the model came from (name, data fingerprints, metrics, training config, export checks).

    Each task's card adds its own fields (:class:`ModelCard` for NER, ``ClassifierCard`` for classify), which
    the file lists after these; readers go by key. The embedding card is a plain dict of other keys.
    """

    model_config = ConfigDict(extra="allow")  # newer writers may add keys; old readers keep working

    labels: list[str]
    backbone: str
    pad_id: int = 0
    name: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    export: dict[str, Any] = Field(default_factory=dict)

    def write(self, directory: str | Path) -> Path:
        return write_card(self, directory)


class ModelCard(Card):
    """The contents of a tagger's ``nerwheel.json`` (see docs/architecture.md, "Model directory")."""

    scheme: str = "BIO"
    tags: list[str]
    head: Literal["crf", "softmax", "span"] = "crf"
    sequence_length: int
    stride: int
    span: dict[str, Any] = Field(default_factory=dict)  # span heads: max_width, threshold, nested
    lexicon: dict[str, Any] = Field(default_factory=dict)  # lexicon features' signature (nerwheel.kb.lexicon)
    #: How the tag path is found: ``{"method": "viterbi"|"beam", "beam_size": N}`` (:class:`nerwheel.decode.Decoding`).
    decode: dict[str, Any] = Field(default_factory=lambda: {"method": "viterbi", "beam_size": 4})
    #: Language of the training texts (``zh``, ``en``) for the model card, when it is clear.
    language: str | None = None
    #: The model a continued run started from: ``{"path", "name", "backbone", "dev_strict_f1"}``; absent otherwise.
    parent: dict[str, Any] | None = None

    @classmethod
    def new(cls, tagset: TagSet, **kw: Any) -> ModelCard:
        return cls(labels=list(tagset.labels), scheme=tagset.scheme, tags=tagset.tags, **kw)

    @property
    def tagset(self) -> TagSet:
        return TagSet(tuple(self.labels), self.scheme)

    @property
    def num_outputs(self) -> int:
        """Columns of the ``emissions`` output: one per tag, or ``max_width x labels`` for a span head."""
        return int(self.span["max_width"]) * len(self.labels) if self.head == "span" else len(self.tags)

    @classmethod
    def read(cls, directory: str | Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: not a nerwheel model (no {CARD_FILE}); pass a directory written by `nerwheel train` "
                "or `nerwheel export`"
            )
        card = cls.model_validate_json(path.read_text(encoding="utf-8"))
        if card.head == "span":
            if not isinstance(card.span.get("max_width"), int) or card.tags:
                raise DataError(f"{path}: a span-head card needs 'span.max_width' and no 'tags'; the card is corrupt")
        elif card.tags != card.tagset.tags:
            raise DataError(f"{path}: 'tags' does not match 'labels' under scheme {card.scheme}; the card is corrupt")
        return card


def write_card(card: BaseModel, directory: str | Path) -> Path:
    """``nerwheel.json`` in ``directory`` from any task's card (the one place the file is written)."""
    return write_json(Path(directory) / CARD_FILE, card.model_dump())
