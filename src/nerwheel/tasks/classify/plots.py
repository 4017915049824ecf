"""The classifier's charts: confusion matrix (counts + colour bar) and reliability diagram (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nerwheel.model.plots import _pyplot, _save

__all__ = ["calibration_png", "confusion_png"]


def confusion_png(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: str | Path) -> Path:
    """Gold rows, predicted columns; colour is the row share (recall), every cell shows its count."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.8 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the gold class (row)")
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=10,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"confusion matrix ({int(m.sum())} messages)")
    return _save(plt, fig, path)


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
