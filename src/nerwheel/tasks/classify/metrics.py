"""Classification metrics as pure functions: accuracy, macro/micro/weighted P/R/F1, per class, confusion, ECE.

Definitions follow scikit-learn (checked against it in the tests):

- per class: precision = TP / predicted, recall = TP / gold, F1 their harmonic
  mean; 0 where a denominator is 0 (``zero_division=0``); ``support`` = gold count;
- macro = unweighted mean over the classes that occur in the gold labels or the
  predictions (scikit-learn's default label set); weighted = mean weighted by
  support; micro = accuracy for single-label data;
- confusion matrix: rows gold, columns predicted, in label-set order;
- expected calibration error (ECE): the confidence (top probability) of each
  prediction put in ``bins`` equal-width bins over [0, 1];
  ``sum_b |accuracy_b - confidence_b| * n_b / n``.

The ``overall.macro.f1`` figure is what the gate compares and what picks the
best checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nerwheel.errors import DataError
__all__ = ["classification_metrics", "confusion", "expected_calibration_error", "summary"]


def _prf(tp: float, pred: float, gold: float) -> tuple[float, float, float]:
    p = tp / pred if pred else 0.0
    r = tp / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred, strict=True):
        m[index[g], index[p]] += 1
    return m.tolist()


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width confidence bins (the last bin includes 1.0)."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += abs(float(correct[sel].mean()) - float(confidence[sel].mean())) * sel.sum() / len(confidence)
    return float(ece)


def classification_metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str],
                           probabilities: np.ndarray | None = None, *, bins: int = 15) -> dict[str, Any]:
    """metrics.json for a classifier (shape in docs/architecture.md, "Tasks")."""
    if len(gold) != len(pred):
        raise DataError(f"{len(gold)} gold labels but {len(pred)} predictions")
    unknown = sorted({x for x in [*gold, *pred] if x not in labels})
    if unknown:
        raise DataError(f"labels {unknown} are not in the label set {list(labels)}")
    matrix = np.asarray(confusion(gold, pred, labels), dtype=np.int64).reshape(len(labels), len(labels))
    tp, n_pred, n_gold = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    per_class: dict[str, dict[str, float]] = {}
    for i, lab in enumerate(labels):
        p, r, f = _prf(float(tp[i]), float(n_pred[i]), float(n_gold[i]))
        per_class[lab] = {"precision": p, "recall": r, "f1": f, "support": int(n_gold[i]), "predicted": int(n_pred[i])}
    present = [lab for i, lab in enumerate(labels) if n_gold[i] or n_pred[i]]
    n = len(gold)
    macro = {k: float(np.mean([per_class[lab][k] for lab in present])) if present else 0.0
             for k in ("precision", "recall", "f1")}
    weighted = {k: float(sum(per_class[lab][k] * per_class[lab]["support"] for lab in labels) / n) if n else 0.0
                for k in ("precision", "recall", "f1")}
    accuracy = float(tp.sum() / n) if n else 0.0
    overall: dict[str, Any] = {"accuracy": accuracy, "macro": macro, "weighted": weighted,
                               "micro": {"precision": accuracy, "recall": accuracy, "f1": accuracy}}
    if probabilities is not None and len(gold):
        probs = np.asarray(probabilities, dtype=np.float64)
        conf = probs.max(axis=1)
        correct = np.array([g == p for g, p in zip(gold, pred, strict=True)], dtype=np.float64)
        overall["ece"] = expected_calibration_error(conf, correct, bins)
        overall["ece_bins"] = bins
        overall["mean_confidence"] = float(conf.mean())
    return {"task": "classify", "overall": overall, "per_class": per_class,
            "confusion": {"labels": list(labels), "matrix": matrix.tolist()}, "n_records": n}


def summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The flat figures a training log or a KFP Metrics artifact shows."""
    o = metrics["overall"]
    out = {"accuracy": o["accuracy"], "macro_f1": o["macro"]["f1"], "macro_precision": o["macro"]["precision"],
           "macro_recall": o["macro"]["recall"], "weighted_f1": o["weighted"]["f1"]}
    if "ece" in o:
        out["ece"] = o["ece"]
    return out
