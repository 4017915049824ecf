"""The promotion gate: a candidate model ships only when it is measurably better.

Why this shape: a flywheel that retrains on its own traffic can quietly trade
one entity type for another (more ``road`` recall, ``houseno`` forgotten) while
the overall F1 barely moves. So the gate asks two questions on the *same fixed*
eval set: did overall F1 rise by at least ``min_delta``, and did any entity
type fall by more than it is allowed to?

Every type is checked, with one rule that scales with its support (its number
of gold spans): a type's F1 may fall by ``max(max_type_drop, noise_spans /
support)``. ``noise_spans / support`` is about how far F1 moves when
``noise_spans`` gold spans flip, i.e. the eval set's own noise on that type:

* 150 spans: the floor is 0.013, so ``max_type_drop`` (0.02) decides and a 0.05
  fall is refused;
* 51 spans: two spans flipping move F1 by ~0.04, noise rather than a
  regression (seen in the flywheel benchmark), so a one-span flip passes;
* 19 spans: the floor is 0.105, so a collapse from 0.90 to 0.00 is refused;
  5 spans: a 0.4 fall is within noise, a collapse to 0 is not;
* 1 or 2 spans (with ``noise_spans`` 2): the floor is 1.0 or more, so such a
  type can never block. On one or two gold spans, every span flipping *is*
  ``noise_spans`` flips: the eval set holds no evidence either way about that
  type, and a gate that refused on it would refuse at random. Such types are
  still listed in the decision record with their deltas. Types with no gold
  span at all have an F1 of 0 in both models and are not checked.

``min_support`` remains as an explicit opt-out (types with fewer gold spans are
reported, not enforced); its default 0 means no type is exempt.

The policy is the same for every task; what a task's metrics.json holds is read
by its :class:`Scores` view (``scores=``): NER compares ``policy.metric`` F1
overall and per entity type (support: gold spans), the classifier compares
macro-F1 overall and F1 per class (support: gold messages), with the same
tolerance per class.

:func:`gate` is pure (metrics dicts in, :class:`GateDecision` out), so the CLI,
the KFP component and tests all share it. The metrics dicts have the shape
``evaluate`` writes to ``metrics.json`` (see docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.errors import NerwheelError

__all__ = ["EXIT_PROMOTE", "EXIT_REFUSE", "GateDecision", "GateError", "GatePolicy", "Scores", "gate", "ner_scores"]

#: Process exit codes of ``nerwheel gate`` so scripts can branch (1 and 2 stay errors / usage errors).
EXIT_PROMOTE = 0
EXIT_REFUSE = 3


class GateError(NerwheelError, ValueError):
    """Metrics the gate cannot read (a missing field), named by path."""


class GatePolicy(BaseModel):
    """When a candidate may replace production. Unknown keys are refused by name.

    A type's F1 may fall by at most ``allowed_drop(support) = max(max_type_drop, noise_spans / support)``
    (see the module docstring for why); ``min_support`` exempts small types only when set above 0.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_delta: float = Field(default=0.005, ge=-1.0, le=1.0, description="Required rise of overall F1 (absolute).")
    max_type_drop: float = Field(
        default=0.02, ge=0.0, le=1.0,
        description="Largest allowed fall of a well-supported type's F1 (small types get the noise floor instead).")
    noise_spans: float = Field(
        default=2.0, ge=0.0,
        description="A type's F1 may fall by max(max_type_drop, noise_spans / support): this many gold spans "
                    "flipping is eval-set noise. With 2, types of 1-2 spans can never block.")
    min_support: int = Field(
        default=0, ge=0,
        description="Opt-out: types with fewer gold spans are reported, not enforced (0 = every type is checked).")
    metric: Literal["strict", "partial", "type"] = "strict"

    def allowed_drop(self, support: int) -> float | None:
        """How far a type with ``support`` gold spans may fall; ``None`` when it has no gold span (F1 is 0)."""
        if support <= 0:
            return None
        return max(self.max_type_drop, self.noise_spans / support)


@dataclass
class GateDecision:
    """The decision record: verdict, reasons, the policy, deltas and both metric sets.

    ``per_type[label]`` holds ``candidate``, ``production``, ``delta``, ``support``, ``allowed_drop``
    (``None`` for a type with no gold span), ``checked`` and ``regressed`` (fell by more than allowed).
    """

    verdict: Literal["promote", "refuse"]
    reasons: list[str]
    policy: dict[str, Any]
    overall: dict[str, float | None]
    per_type: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidate: Mapping[str, Any] = field(default_factory=dict)
    production: Mapping[str, Any] | None = None

    @property
    def promote(self) -> bool:
        return self.verdict == "promote"

    @property
    def exit_code(self) -> int:
        return EXIT_PROMOTE if self.promote else EXIT_REFUSE

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "policy": dict(self.policy),
            "overall": dict(self.overall),
            "per_type": {k: dict(v) for k, v in self.per_type.items()},
            "candidate": dict(self.candidate),
            "production": dict(self.production) if self.production is not None else None,
        }


def _get(metrics: Mapping[str, Any], path: tuple[str, ...], who: str) -> Any:
    cur: Any = metrics
    for i, key in enumerate(path):
        if not isinstance(cur, Mapping) or key not in cur:
            raise GateError(
                f"{who} metrics: missing field {'.'.join(path[: i + 1])} (expected the metrics.json that "
                "`nerwheel evaluate` writes)"
            )
        cur = cur[key]
    return cur


def _f1(metrics: Mapping[str, Any], path: tuple[str, ...], who: str) -> float:
    value = _get(metrics, path, who)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise GateError(f"{who} metrics: {'.'.join(path)} must be a number, got {value!r}")
    return float(value)


def _types(metrics: Mapping[str, Any], metric: str, who: str) -> dict[str, tuple[float, int]]:
    per_type = _get(metrics, ("per_type",), who)
    out: dict[str, tuple[float, int]] = {}
    for label in per_type:
        f1 = _f1(metrics, ("per_type", label, metric, "f1"), who)
        support = per_type[label].get(metric, {}).get("support", per_type[label].get("support", 0))
        out[label] = (f1, int(support or 0))
    return out


@dataclass(frozen=True)
class Scores:
    """What the gate compares, read from one task's metrics.json.

    ``name`` names the overall score in the reasons (``strict F1``,
    ``macro-F1``, ``nDCG@10``); ``unit`` what the per-label scores are about
    (``type``, ``class``, ``metric``); ``per_label[label] = (score, support)``.
    ``label_score`` names a per-label score in the reasons (default: the
    policy's F1 for types, ``F1`` for classes) and ``support_unit`` what its
    support counts (default: ``spans`` for types, ``examples`` otherwise).
    """

    name: str
    unit: str
    overall: float
    per_label: dict[str, tuple[float, int]]
    n_records: int | None
    label_score: str | None = None
    support_unit: str | None = None


def ner_scores(metrics: Mapping[str, Any], metric: str, who: str) -> Scores:
    """NER metrics.json: ``overall.<metric>.f1`` and ``per_type.<type>.<metric>.{f1,support}``."""
    return Scores(f"{metric} F1", "type", _f1(metrics, ("overall", metric, "f1"), who), _types(metrics, metric, who),
                  metrics.get("n_records"))


ScoresView = Callable[[Mapping[str, Any], str, str], Scores]


def gate(
    candidate_metrics: Mapping[str, Any],
    production_metrics: Mapping[str, Any] | None,
    policy: GatePolicy | None = None,
    *,
    production_source: str | None = None,
    scores: ScoresView | None = None,
) -> GateDecision:
    """Decide whether ``candidate_metrics`` beats ``production_metrics`` under ``policy``.

    ``production_metrics=None`` means nothing is in production yet: the
    candidate is promoted with that reason. ``production_source`` says where the
    production model came from (or why there is none, e.g. "the repository has
    no live version"); it is the first reason when given. Metrics from different
    eval sets (other record count or other per-label support) are refused as not
    comparable rather than compared. ``scores`` reads a task's metrics
    (default: :func:`ner_scores`; a task's ``gate_scores``).
    """
    pol = policy or GatePolicy()
    view = scores or ner_scores
    cand = view(candidate_metrics, pol.metric, "candidate")
    name, unit = cand.name, cand.unit
    cand_f1, cand_types = cand.overall, cand.per_label
    policy_dict = pol.model_dump()

    if production_metrics is None:
        per_type = {
            label: {"candidate": f1, "production": None, "delta": None, "support": sup, "checked": False,
                    "allowed_drop": pol.allowed_drop(sup), "regressed": False}
            for label, (f1, sup) in sorted(cand_types.items())
        }
        why = f" ({production_source})" if production_source else ""
        return GateDecision(
            "promote",
            [f"no production model{why}: the first candidate is promoted ({name} {cand_f1:.4f})"],
            policy_dict,
            {"candidate": cand_f1, "production": None, "delta": None},
            per_type,
            candidate_metrics,
            None,
        )

    prod = view(production_metrics, pol.metric, "production")
    prod_f1, prod_types = prod.overall, prod.per_label
    delta = cand_f1 - prod_f1
    reasons: list[str] = [f"production: {production_source}"] if production_source else []
    refuse = False

    n_c, n_p = cand.n_records, prod.n_records
    diff_support = sorted(
        label for label in set(cand_types) & set(prod_types) if cand_types[label][1] != prod_types[label][1]
    )
    if (n_c is not None and n_p is not None and n_c != n_p) or diff_support:
        refuse = True
        what = f"n_records {n_c} vs {n_p}" if n_c != n_p else f"support of {', '.join(diff_support)} differs"
        reasons.append(f"not comparable: the two metric sets come from different eval sets ({what})")

    if delta >= pol.min_delta - 1e-12:
        reasons.append(f"overall {name} {prod_f1:.4f} -> {cand_f1:.4f} ({delta:+.4f}) meets min_delta {pol.min_delta}")
    else:
        refuse = True
        reasons.append(
            f"overall {name} {prod_f1:.4f} -> {cand_f1:.4f} ({delta:+.4f}) is below min_delta {pol.min_delta}"
        )

    per_type: dict[str, dict[str, Any]] = {}
    dropped: list[str] = []
    label_f1 = cand.label_score if cand.label_score is not None else "F1" if unit == "class" else f"{pol.metric} F1"
    what = cand.support_unit or ("spans" if unit == "type" else "examples")
    for label in sorted(set(cand_types) | set(prod_types)):
        c_f1, c_sup = cand_types.get(label, (0.0, 0))
        p_f1, p_sup = prod_types.get(label, (None, 0))
        support = max(c_sup, p_sup)
        d = None if p_f1 is None else c_f1 - p_f1
        allowed = pol.allowed_drop(support)
        checked = p_f1 is not None and allowed is not None and support >= pol.min_support
        regressed = checked and d is not None and allowed is not None and -d > allowed + 1e-12
        per_type[label] = {"candidate": c_f1, "production": p_f1, "delta": d, "support": support, "checked": checked,
                           "allowed_drop": allowed, "regressed": regressed}
        if regressed:
            dropped.append(label)
            why = (f"max_type_drop {pol.max_type_drop}" if allowed == pol.max_type_drop
                   else f"the noise floor of {pol.noise_spans:g} {what} ({allowed:.4f})")
            reasons.append(
                f"{unit} {label!r} {label_f1}{' ' if label_f1 else ''}fell {p_f1:.4f} -> {c_f1:.4f} ({d:+.4f}), more than {why} "
                f"(support {support})"
            )
    if dropped:
        refuse = True
    else:
        n_checked = sum(1 for v in per_type.values() if v["checked"])
        exempt = f"; {unit}s under min_support {pol.min_support} not enforced" if pol.min_support > 0 else ""
        reasons.append(
            f"no {'entity type' if unit == 'type' else unit} fell by more than max({pol.max_type_drop}, "
            f"{pol.noise_spans:g} / support) ({n_checked} of {len(per_type)} {unit}s checked{exempt})"
        )
    return GateDecision(
        "refuse" if refuse else "promote",
        reasons,
        policy_dict,
        {"candidate": cand_f1, "production": prod_f1, "delta": delta},
        per_type,
        candidate_metrics,
        production_metrics,
    )
