"""The learning rate and epoch budget a backbone gets when the config sets none: the values measured best for it.

One table, with the measurement behind each row, so the defaults can be
checked and re-measured rather than guessed. ``nerwheel train`` logs which
values it chose and why, and records them in ``nerwheel.json``
(``training.resolved``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PRETRAINED", "TABLE", "BackboneDefaults", "defaults_for"]


@dataclass(frozen=True)
class BackboneDefaults:
    """A backbone's default ``learning_rate`` and ``epochs`` (an upper bound: early stopping ends runs sooner)."""

    learning_rate: float
    epochs: int
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TABLE: dict[str, BackboneDefaults] = {
    "tiny": BackboneDefaults(
        1e-3, 12,
        "measured: CCKS 2021 address 10% carve (seed 42), lr 1e-3, strict F1 0.897-0.899 at best epoch 6-7 of 8-9 "
        "(early stop); bundled sample set, 12 epochs F1 0.83 vs 8 epochs 0.81 (pipelines/local.py)",
    ),
    "e5-small": BackboneDefaults(
        2e-4, 6,
        "measured: CCKS 2021 address 10% carve (seed 42), lr 2e-4, 6 epochs, strict F1 0.918 "
        "(per epoch 0.872, 0.893, 0.908, 0.913, 0.917, 0.918); the former default 5e-5 is a BERT-base value",
    ),
}
#: A pretrained encoder without a measured row (a Hugging Face directory or hub id, or the hybrid built on one).
PRETRAINED = BackboneDefaults(5e-5, 3, "not measured here: the common BERT fine-tuning values (lr 5e-5, 3 epochs)")


def defaults_for(backbone: str, *, pretrained: bool) -> BackboneDefaults:
    """The measured row for ``backbone``; a from-scratch encoder (the hybrid on ``tiny``) gets tiny's row."""
    if backbone in TABLE:
        return TABLE[backbone]
    return PRETRAINED if pretrained else TABLE["tiny"]
