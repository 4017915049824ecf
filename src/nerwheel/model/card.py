"""``nerwheel.json``: what a model directory or an export directory is, beside the Hugging Face files.

The Hugging Face files say how to run the encoder; this card says how to read
its output: the tag inventory and scheme, the head (CRF or softmax), the window
geometry, and where the model came from (backbone, data fingerprints, metrics).
Every runtime (PyTorch, ONNX Runtime, Triton) builds its decoder from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.labels import TagSet

__all__ = ["CARD_FILE", "ModelCard", "file_sha256"]

CARD_FILE = "nerwheel.json"


class ModelCard(BaseModel):
    """The contents of ``nerwheel.json`` (see docs/architecture.md, "Model directory")."""

    model_config = ConfigDict(extra="allow")  # newer writers may add keys; old readers keep working

    labels: list[str]
    scheme: str = "BIO"
    tags: list[str]
    head: Literal["crf", "softmax"] = "crf"
    backbone: str
    sequence_length: int
    stride: int
    pad_id: int = 0
    name: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    export: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(cls, tagset: TagSet, **kw: Any) -> ModelCard:
        return cls(labels=list(tagset.labels), scheme=tagset.scheme, tags=tagset.tags, **kw)

    @property
    def tagset(self) -> TagSet:
        return TagSet(tuple(self.labels), self.scheme)

    @classmethod
    def read(cls, directory: str | Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: not a nerwheel model (no {CARD_FILE}); pass a directory written by `nerwheel train` "
                "or `nerwheel export`"
            )
        card = cls.model_validate_json(path.read_text(encoding="utf-8"))
        if card.tags != card.tagset.tags:
            raise ValueError(f"{path}: 'tags' does not match 'labels' under scheme {card.scheme}; the card is corrupt")
        return card

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(self.model_dump(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
