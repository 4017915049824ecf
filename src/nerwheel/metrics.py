"""Entity-level and token-level scores for NER (pure functions over gold and predicted spans).

Four ways to count a predicted span as right, after SemEval-2013 task 9.1
(Segura-Bedmar et al.; the convention of MUC-style NER scorers):

========  ======================================  =================================
mode      a prediction matches a gold span when   credit
========  ======================================  =================================
strict    same boundaries and same type           1
exact     same boundaries (type ignored)          1
partial   the spans overlap (type ignored)        1 if boundaries equal, else 0.5
type      the spans overlap and have the same     1
          type
========  ======================================  =================================

Matching is one-to-one: each gold and each predicted span is used at most
once, best credit first. Then ``precision = credit / predicted``, ``recall =
credit / gold``, ``f1`` their harmonic mean. Per type, precision counts the
predictions *of* that type and recall the gold spans of that type (for
``exact``/``partial`` the partner may carry another type); ``support`` is the
number of gold spans of the type.

``strict`` equals seqeval's ``mode="strict"`` IOB2 score on character tags
(checked in the tests) when no spans overlap. Token accuracy is the share of
characters whose BIO tag is right, over all characters.

Overlapping and nested spans (a span head's output, fusion or nested gold)
count in every span score like any other span; character tags can hold one
span per character, so token accuracy, the seqeval report and the confusion
matrix leave the later of two overlapping spans out and say how many
(:func:`untaggable`). :func:`overlapping_scores` scores those spans on their
own: recall over the gold spans that overlap another gold span, precision over
the predicted spans that overlap another prediction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from nerwheel.labels import is_extension_label, spans_to_tags
from nerwheel.records import Entity, Record

__all__ = ["MODES", "char_tags", "confusion", "error_rows", "evaluate", "match", "overlapping_scores", "per_type_f1",
           "seqeval_report", "span_scores", "target_records", "token_accuracy", "untaggable"]

MODES = ("strict", "exact", "partial", "type")
Span = tuple[int, int, str]


def _spans(items: Iterable[Entity | Span]) -> list[Span]:
    return [(e.start, e.end, e.label) if isinstance(e, Entity) else (int(e[0]), int(e[1]), str(e[2])) for e in items]


def _credit(g: Span, p: Span, mode: str) -> float:
    same_bounds = g[0] == p[0] and g[1] == p[1]
    overlap = g[0] < p[1] and p[0] < g[1]
    if mode == "strict":
        return 1.0 if same_bounds and g[2] == p[2] else 0.0
    if mode == "exact":
        return 1.0 if same_bounds else 0.0
    if mode == "partial":
        return 1.0 if same_bounds else (0.5 if overlap else 0.0)
    if mode == "type":
        return 1.0 if overlap and g[2] == p[2] else 0.0
    raise ValueError(f"Invalid mode: {mode!r}. Allowed modes are: {', '.join(MODES)}")


def match(gold: Sequence[Span], pred: Sequence[Span], mode: str) -> tuple[list[float], list[float]]:
    """One-to-one matching; returns the credit of each gold span and of each predicted span."""
    pairs = []
    for gi, g in enumerate(gold):
        for pi, p in enumerate(pred):
            c = _credit(g, p, mode)
            if c > 0:
                ov = min(g[1], p[1]) - max(g[0], p[0])
                pairs.append((-c, -ov, gi, pi, c))
    pairs.sort()
    g_credit = [0.0] * len(gold)
    p_credit = [0.0] * len(pred)
    g_used: set[int] = set()
    p_used: set[int] = set()
    for _, _, gi, pi, c in pairs:
        if gi in g_used or pi in p_used:
            continue
        g_used.add(gi)
        p_used.add(pi)
        g_credit[gi] = c
        p_credit[pi] = c
    return g_credit, p_credit


def _prf(credit_p: float, n_pred: int, credit_g: float, n_gold: int) -> dict[str, float]:
    p = credit_p / n_pred if n_pred else 0.0
    r = credit_g / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 6), "recall": round(r, 6), "f1": round(f, 6)}


def span_scores(
    gold: Sequence[Iterable[Entity | Span]], pred: Sequence[Iterable[Entity | Span]]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """``(overall, per_type)``: P/R/F1 for every mode, overall and per type (with ``support``)."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} texts but predictions have {len(pred)}")
    sums: dict[str, Counter[str]] = {m: Counter() for m in MODES}  # keys: p, g (overall) and p:label, g:label
    n_pred: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    for g_items, p_items in zip(gold, pred, strict=True):
        g, p = _spans(g_items), _spans(p_items)
        n_gold.update(s[2] for s in g)
        n_pred.update(s[2] for s in p)
        for mode in MODES:
            gc, pc = match(g, p, mode)
            for s, c in zip(g, gc, strict=True):
                sums[mode]["g"] += c
                sums[mode][f"g:{s[2]}"] += c
            for s, c in zip(p, pc, strict=True):
                sums[mode]["p"] += c
                sums[mode][f"p:{s[2]}"] += c
    total_p, total_g = sum(n_pred.values()), sum(n_gold.values())
    overall: dict[str, Any] = {m: _prf(sums[m]["p"], total_p, sums[m]["g"], total_g) for m in MODES}
    per_type: dict[str, dict[str, dict[str, float]]] = {}
    for label in sorted(set(n_gold) | set(n_pred)):
        per_type[label] = {
            m: {**_prf(sums[m][f"p:{label}"], n_pred[label], sums[m][f"g:{label}"], n_gold[label]),
                "support": n_gold[label]}
            for m in MODES
        }
    overall["support"] = total_g
    overall["predicted"] = total_p
    return overall, per_type


def _overlapping(spans: Sequence[Span]) -> list[bool]:
    return [any(i != j and a[0] < b[1] and b[0] < a[1] for j, b in enumerate(spans)) for i, a in enumerate(spans)]


def overlapping_scores(gold: Sequence[Iterable[Entity | Span]],
                       pred: Sequence[Iterable[Entity | Span]]) -> dict[str, Any]:
    """P/R/F1 per mode restricted to overlapping spans (nested or crossing another span of the same text).

    Matching is :func:`match` over all spans of the text; recall then sums the
    credit of the gold spans that overlap another gold span, precision that of
    the predictions that overlap another prediction. ``gold``/``predicted``
    count those spans.
    """
    sums: dict[str, Counter[str]] = {m: Counter() for m in MODES}
    n_gold = n_pred = 0
    for g_items, p_items in zip(gold, pred, strict=True):
        g, p = _spans(g_items), _spans(p_items)
        g_ov, p_ov = _overlapping(g), _overlapping(p)
        n_gold += sum(g_ov)
        n_pred += sum(p_ov)
        if not (any(g_ov) or any(p_ov)):
            continue
        for mode in MODES:
            gc, pc = match(g, p, mode)
            sums[mode]["g"] += sum(c for c, ov in zip(gc, g_ov, strict=True) if ov)
            sums[mode]["p"] += sum(c for c, ov in zip(pc, p_ov, strict=True) if ov)
    out: dict[str, Any] = {m: _prf(sums[m]["p"], n_pred, sums[m]["g"], n_gold) for m in MODES}
    return {"gold": n_gold, "predicted": n_pred, **out}


def target_records(records: Sequence[Record]) -> tuple[list[Record], int]:
    """``records`` without their extension-label spans (``pos:n``, ``kb:city``), and how many were removed.

    Target-label scores (training's dev F1, ``evaluate``, the export's gold F1)
    are computed against these: extension labels are auxiliary outputs, never
    target entities.
    """
    out, removed = [], 0
    for r in records:
        kept = [e for e in r.entities if not is_extension_label(e.label)]
        removed += len(r.entities) - len(kept)
        out.append(r if len(kept) == len(r.entities) else r.with_entities(kept))
    return out, removed


def _taggable(entities: Iterable[Entity | Span]) -> list[Span]:
    """The spans character tags can hold: in order, each overlapping an earlier kept one skipped."""
    kept: list[Span] = []
    for span in sorted(_spans(entities)):
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def char_tags(text: str, entities: Iterable[Entity | Span]) -> list[str]:
    """IOB2 tag of every character; a span overlapping an earlier one is skipped (tags cannot hold both)."""
    return spans_to_tags(len(text), _taggable(entities), "BIO")


def untaggable(entities_per_record: Iterable[Iterable[Entity | Span]]) -> int:
    """How many spans :func:`char_tags` skips (overlaps): counted, so the tag-based figures say what they leave out."""
    return sum(len(_spans(ents)) - len(_taggable(ents)) for ents in entities_per_record)


def token_accuracy(texts: Sequence[str], gold: Sequence[Iterable[Entity | Span]],
                   pred: Sequence[Iterable[Entity | Span]]) -> float:
    right = total = 0
    for text, g, p in zip(texts, gold, pred, strict=True):
        for a, b in zip(char_tags(text, g), char_tags(text, p), strict=True):
            right += a == b
            total += 1
    return round(right / total, 6) if total else 0.0


def seqeval_report(texts: Sequence[str], gold: Sequence[Iterable[Entity | Span]],
                   pred: Sequence[Iterable[Entity | Span]], *, digits: int = 4) -> str:
    """seqeval's ``classification_report`` over character IOB2 tags, ``mode="strict"``."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    y_true = [char_tags(t, g) for t, g in zip(texts, gold, strict=True)]
    y_pred = [char_tags(t, p) for t, p in zip(texts, pred, strict=True)]
    if not any(any(t != "O" for t in row) for row in y_true + y_pred):
        return "no entities in gold or predictions\n"
    return classification_report(y_true, y_pred, mode="strict", scheme=IOB2, digits=digits, zero_division=0)


def confusion(texts: Sequence[str], gold: Sequence[Iterable[Entity | Span]],
              pred: Sequence[Iterable[Entity | Span]]) -> tuple[list[str], list[list[int]]]:
    """Character-level confusion by type: ``matrix[i][j]`` = characters of gold type i predicted as type j (``O`` last)."""
    counts: Counter[tuple[str, str]] = Counter()
    for text, g, p in zip(texts, gold, pred, strict=True):
        for a, b in zip(char_tags(text, g), char_tags(text, p), strict=True):
            counts[(a[2:] or "O", b[2:] or "O")] += 1
    labels = sorted({k for pair in counts for k in pair} - {"O"}) + ["O"]
    return labels, [[counts[(a, b)] for b in labels] for a in labels]


def error_rows(records: Sequence[Record], pred: Sequence[Iterable[Entity | Span]], *, context: int = 10) -> list[dict[str, Any]]:
    """False negatives and false positives under ``strict``, each with its text around it.

    ``kind``: ``missed`` / ``spurious`` (nothing overlaps), ``boundary`` (an
    overlapping span of the same type), ``type`` (an overlapping span of
    another type; ``other`` names it).
    """
    rows: list[dict[str, Any]] = []
    for rec, p_items in zip(records, pred, strict=True):
        g, p = _spans(rec.entities), _spans(p_items)
        gc, pc = match(g, p, "strict")
        for side, spans, credits, others in (("false_negative", g, gc, p), ("false_positive", p, pc, g)):
            for s, c in zip(spans, credits, strict=True):
                if c:
                    continue
                over = [o for o in others if o[0] < s[1] and s[0] < o[1]]
                if not over:
                    kind = "missed" if side == "false_negative" else "spurious"
                elif any(o[2] == s[2] for o in over):
                    kind = "boundary"
                else:
                    kind = "type"
                rows.append({
                    "id": rec.id, "error": side, "kind": kind, "label": s[2], "start": s[0], "end": s[1],
                    "span": rec.text[s[0]:s[1]],
                    "context": f"{rec.text[max(0, s[0] - context):s[0]]}[{rec.text[s[0]:s[1]]}]"
                               f"{rec.text[s[1]:s[1] + context]}",
                    "other": [{"label": o[2], "span": rec.text[o[0]:o[1]], "start": o[0], "end": o[1]} for o in over],
                })
    return rows


def evaluate(records: Sequence[Record], pred: Sequence[Iterable[Entity | Span]]) -> dict[str, Any]:
    """The ``metrics.json`` dictionary (docs/architecture.md) for gold ``records`` and predictions."""
    pred = [list(p) for p in pred]
    texts = [r.text for r in records]
    gold = [r.entities for r in records]
    overall, per_type = span_scores(gold, pred)
    overall["token_accuracy"] = token_accuracy(texts, gold, pred)
    return {
        "overall": overall,
        "per_type": per_type,
        "seqeval_report": seqeval_report(texts, gold, pred),
        "n_records": len(records),
        "gold_spans_not_in_tag_metrics": untaggable(gold),
        "overlapping_spans": overlapping_scores(gold, pred),
    }


def per_type_f1(metrics: dict[str, Any], mode: str = "strict") -> dict[str, float]:
    return {label: m[mode]["f1"] for label, m in metrics["per_type"].items()}

