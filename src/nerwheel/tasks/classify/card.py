"""``nerwheel.json`` of a classifier: what the Hugging Face files do not say.

The Hugging Face files (``config.json`` with ``id2label``, the weights, the
tokenizer) say how to run the encoder and head; this card says which task the
folder holds (``task: "classify"``, so every loader picks the right runtime),
the classes in head order, the pair geometry (``max_length``) and where the
model came from (backbone, data fingerprints, metrics, export checks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from nerwheel.errors import ConfigError
from nerwheel.model.card import CARD_FILE, Card
from nerwheel.tasks.classify.records import LabelSet

__all__ = ["ClassifierCard"]


class ClassifierCard(Card):
    """The contents of a classifier's ``nerwheel.json`` (docs/architecture.md, "Tasks")."""

    task: Literal["classify"] = "classify"
    max_length: int

    @property
    def labelset(self) -> LabelSet:
        return LabelSet(tuple(self.labels))

    @classmethod
    def read(cls, directory: str | Path) -> ClassifierCard:
        path = Path(directory) / CARD_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: not a nerwheel model (no {CARD_FILE}); pass a directory written by "
                                    "`nerwheel train --task classify` or `nerwheel export`")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("task") != "classify":
            raise ConfigError(f"{path}: holds a {data.get('task', 'ner')!r} model, not a classifier; use --task "
                             f"{data.get('task', 'ner')}")
        return cls.model_validate(data)
