"""Feedback and merge for the classifier: where the live model and the teachers disagree, and one training set
from gold, teacher and model labels with provenance.

:func:`feedback`: the live model and the teachers (:func:`~.teachers.vote`)
label the same live messages; every message where the teachers settled on a
label the model did not predict becomes a training message labelled by the
teachers (kind ``disagree``; also ``low_confidence`` when the model was right
but unsure, below ``confidence``), with both answers in ``meta.feedback``.
Eval messages (``holdout``) are dropped first, so the eval set never leaks
into training.

:func:`merge`: sources are matched by (context, message); one label per
message by ``precedence`` (best first, e.g. ``gold, llm, model``): gold is
kept as it is; otherwise the best-ranked kind that labelled the message wins
and disagreeing sources are reported as conflicts. Every output message keeps
``meta.source`` (the winning source), ``meta.merge`` (every source's label)
and ``score`` (the share of sources that agree with the winner).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.tasks.classify.records import Message

__all__ = ["FeedbackResult", "MergeResult", "feedback", "merge"]


def _key(m: Message) -> tuple[str, str]:
    return (m.context.strip(), m.message.strip())


@dataclass
class FeedbackResult:
    records: list[Message]
    report: dict[str, Any]


def feedback(model: Any, teachers: Sequence[Any], messages: Sequence[Message], *,
             holdout: Sequence[Message] = (), confidence: float = 0.0, min_votes: int | None = None) -> FeedbackResult:
    """Diff the live ``model`` against ``teachers`` on ``messages`` (see the module docstring)."""
    from nerwheel.tasks.classify.teachers import vote

    banned = {_key(m) for m in holdout}
    live = [m for m in messages if _key(m) not in banned]
    preds = {m.id: p for m, p in zip(live, model.predict(live), strict=True)}
    voted = vote(live, teachers, min_votes=min_votes)
    out: list[Message] = []
    kinds: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    for m in voted.labelled:
        p = preds[m.id]
        kind = "disagree" if p.label != m.label else ("low_confidence" if p.confidence < confidence else None)
        if kind is None:
            kinds["agree"] += 1
            continue
        kinds[kind] += 1
        pairs[f"{p.label} -> {m.label}"] += 1
        out.append(m.with_meta(feedback={"kind": kind, "model": p.label, "model_confidence": p.confidence,
                                         "teachers": m.meta.get("votes")}))
    report = {"read": len(messages), "holdout_dropped": len(messages) - len(live), "teacher": voted.report,
              "kinds": dict(kinds), "model_to_teacher": dict(pairs.most_common()), "written": len(out)}
    return FeedbackResult(out, report)


@dataclass
class MergeResult:
    records: list[Message]
    report: dict[str, Any]


def merge(sources: Sequence[tuple[str, Sequence[Message]]], precedence: Sequence[str]) -> MergeResult:
    """Fuse ``(kind, messages)`` sources into one labelled set by ``precedence`` (see the module docstring)."""
    rank = {k: i for i, k in enumerate(precedence)}
    unknown = sorted({k for k, _ in sources} - set(rank))
    if unknown:
        raise ConfigError(f"source kind(s) {unknown} are not in the precedence {list(precedence)}; add them")
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    for kind, messages in sources:
        for m in messages:
            if m.label is None:
                continue
            k = _key(m)
            if k not in seen:
                seen[k] = {"first": m, "labels": {}}
                order.append(k)
            seen[k]["labels"].setdefault(kind, m.label)
    out, conflicts = [], Counter()
    examples: list[dict[str, Any]] = []
    for k in order:
        entry = seen[k]
        labels: dict[str, str] = entry["labels"]
        best = min(labels, key=lambda kind: rank[kind])
        winner = labels[best]
        agree = sum(1 for v in labels.values() if v == winner)
        if agree < len(labels):
            conflicts["gold_kept" if best == "gold" else "outranked"] += 1
            if len(examples) < 20:
                examples.append({"message": k[1], "context": k[0], "labels": labels, "kept": best})
        out.append(entry["first"].with_label(winner, source=best, score=round(agree / len(labels), 4),
                                             merge=dict(labels)))
    report = {"sources": {kind: len(ms) for kind, ms in sources}, "written": len(out),
              "by_source": dict(Counter(m.meta["source"] for m in out)), "conflicts": dict(conflicts),
              "conflict_examples": examples, "labels": dict(Counter(m.label for m in out).most_common())}
    return MergeResult(out, report)
