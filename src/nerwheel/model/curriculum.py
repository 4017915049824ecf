"""Gold and teacher-labelled windows in one training run: per-window loss weights and a per-epoch plan.

Teacher labels (the knowledge base's, a model's confident ones) are plentiful
and noisier than gold. Two ways to let them help without drowning gold:

- ``mixed``: every epoch trains on gold and teacher windows, a teacher
  window's loss multiplied by ``weight`` (0.5: worth half a gold window);
- ``anneal``: the teacher weight falls linearly from ``weight`` in the first
  epoch to 0 in the last, so the run starts broad and ends on gold alone
  (teacher windows with weight 0 are left out of that epoch).

:func:`weighted_loss` applies per-window weights for any head whose loss is a
mean over windows (the CRF's per-sequence NLL, the span head's), by scoring
each group of equal weight on its own: the sum of ``weight x share x loss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from nerwheel.model.data import Feature

__all__ = ["Curriculum", "weighted_loss"]


def weighted_loss(model: Any, emissions: torch.Tensor, labels: torch.Tensor,
                  weight: torch.Tensor | None) -> torch.Tensor:
    """``model.loss`` with each window weighted; without weights (or all 1) exactly ``model.loss``."""
    if weight is None or bool((weight == 1).all()):
        return model.loss(emissions, labels)
    n = len(weight)
    total = emissions.sum() * 0.0
    for w in torch.unique(weight).tolist():
        if w == 0:
            continue
        rows = (weight == w).nonzero().squeeze(1)
        total = total + w * (len(rows) / n) * model.loss(emissions[rows], labels[rows])
    return total


@dataclass
class Curriculum:
    """Which windows each epoch trains on, and with what weight: ``plan(epoch)`` (1-based)."""

    gold: Sequence[Feature]
    teacher: Sequence[Feature]
    weight: float
    kind: Literal["mixed", "anneal"]
    epochs: int

    def teacher_weight(self, epoch: int) -> float:
        if self.kind == "mixed" or self.epochs <= 1:
            return self.weight
        return round(self.weight * (self.epochs - epoch) / (self.epochs - 1), 6)

    def plan(self, epoch: int) -> list[Feature]:
        w = self.teacher_weight(epoch)
        if w <= 0 or not self.teacher:
            return list(self.gold)
        return [*self.gold, *(replace(f, weight=w) for f in self.teacher)]

    def describe(self) -> dict[str, Any]:
        return {"gold_windows": len(self.gold), "teacher_windows": len(self.teacher), "kind": self.kind,
                "teacher_weight_by_epoch": [self.teacher_weight(e) for e in range(1, self.epochs + 1)]}
