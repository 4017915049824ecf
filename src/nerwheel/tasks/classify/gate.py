"""The gate's view of a classifier's metrics.json: macro-F1 overall, F1 and support per class.

The policy (:class:`~nerwheel.stages.gate.GatePolicy`) is NER's, unchanged:
macro-F1 must rise by ``min_delta`` and no class's F1 may fall by more than
``max(max_type_drop, noise_spans / support)`` (support: gold messages of the
class, so ``noise_spans`` reads as "messages whose flip is noise").
``policy.metric`` (strict/partial/type) has no meaning for a classifier and is
ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nerwheel.stages.gate import GateError, Scores

__all__ = ["classify_scores"]


def _number(value: Any, path: str, who: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise GateError(f"{who} metrics: {path} must be a number, got {value!r}")
    return float(value)


def classify_scores(metrics: Mapping[str, Any], metric: str, who: str) -> Scores:
    """``overall.macro.f1`` and ``per_class.<class>.{f1,support}`` of a classifier's metrics.json."""
    try:
        overall = metrics["overall"]["macro"]["f1"]
        per_class = metrics["per_class"]
    except (KeyError, TypeError):
        raise GateError(f"{who} metrics: missing overall.macro.f1 or per_class (expected the metrics.json that "
                        "`nerwheel evaluate --task classify` writes)") from None
    per = {label: (_number(v.get("f1"), f"per_class.{label}.f1", who), int(v.get("support") or 0))
           for label, v in per_class.items()}
    return Scores("macro-F1", "class", _number(overall, "overall.macro.f1", who), per, metrics.get("n_records"))
