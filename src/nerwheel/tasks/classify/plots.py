"""The classifier's charts: the shared confusion matrix (counts + colour bar) by class, and the reliability diagram."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nerwheel.model.plots import _pyplot, _save, confusion_matrix_png

__all__ = ["calibration_png", "confusion_png"]


def confusion_png(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: str | Path) -> Path:
    """Gold rows, predicted columns; colour is the row share (recall), every cell shows its count, zeros too."""
    total = int(np.asarray(matrix).sum())
    return confusion_matrix_png(labels, matrix, path, title=f"confusion matrix ({total} messages)",
                                bar_label="share of the gold class (row)", zeros=True)


def calibration_png(confidence: np.ndarray, correct: np.ndarray, path: str | Path, bins: int = 15) -> Path:
    """Accuracy per confidence bin against the diagonal; bar width is the bin, the count is printed above."""
    plt = _pyplot()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for b in range(bins):
        sel = which == b
        if sel.any():
            acc = float(np.mean(correct[sel]))
            ax.bar(edges[b], acc, width=1 / bins, align="edge", color="tab:blue", edgecolor="white", alpha=0.8)
            ax.text(edges[b] + 0.5 / bins, acc + 0.01, str(int(sel.sum())), ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram")
    ax.legend(loc="upper left")
    return _save(plt, fig, path)
