"""PNG charts: training curve, per-type F1 bars, token-level confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["confusion_matrix_png", "f1_bars_png", "training_curve_png"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def training_curve_png(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Train loss (left axis) and dev strict / partial F1 (right axis) per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    dev = [(h["epoch"], h["dev"]) for h in history if h.get("dev")]
    if dev:
        ax2 = ax.twinx()
        ax2.plot([e for e, _ in dev], [d["strict_f1"] for _, d in dev], "s-", color="tab:red", label="dev strict F1")
        ax2.plot([e for e, _ in dev], [d["partial_f1"] for _, d in dev], "^--", color="tab:orange",
                 label="dev partial F1")
        ax2.set_ylabel("dev F1", color="tab:red")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="lower right")
    ax.set_title("training curve")
    return _save(plt, fig, path)


def f1_bars_png(metrics: dict[str, Any], path: str | Path) -> Path:
    """Strict and type F1 per entity type, with support in the tick labels."""
    plt = _pyplot()
    per_type = metrics["per_type"]
    labels = sorted(per_type, key=lambda k: -per_type[k]["strict"]["support"])
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 2), 4))
    ax.bar([i - 0.2 for i in x], [per_type[k]["strict"]["f1"] for k in labels], width=0.4, label="strict")
    ax.bar([i + 0.2 for i in x], [per_type[k]["type"]["f1"] for k in labels], width=0.4, label="type (overlap)")
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{k}\n({per_type[k]['strict']['support']})" for k in labels], rotation=45, ha="right",
                       fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title(f"F1 by type (overall strict {metrics['overall']['strict']['f1']:.3f})")
    ax.legend()
    return _save(plt, fig, path)


def confusion_matrix_png(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: str | Path) -> Path:
    """Row-normalised character confusion (gold type rows, predicted type columns), counts annotated."""
    import numpy as np

    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title("character confusion by type")
    return _save(plt, fig, path)
