"""PNG charts: training curve, per-type F1 bars, token-level confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["NOT_EVALUATED", "confusion_matrix_figure", "confusion_matrix_png", "f1_bars_figure", "f1_bars_png",
           "training_curve_figure", "training_curve_png"]


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


def training_curve_figure(history: Sequence[dict[str, Any]],
                          scores: Sequence[str] = ("strict_f1", "partial_f1")) -> Any:
    """Train loss (left axis) and the dev ``scores`` (right axis; NER: strict / partial F1, classifier: macro-F1 /
    accuracy) per epoch; one legend names every line."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only: there is no epoch 1.5
    ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    dev = [(h["epoch"], h["dev"]) for h in history if h.get("dev")]
    if dev:
        ax2 = ax.twinx()
        for name, style, colour in zip(scores, ("s-", "^--", "v:"), ("tab:red", "tab:orange", "tab:green"),
                                       strict=False):
            label = f"dev {name.replace('_f1', ' F1').replace('_', ' ')}"
            lines += ax2.plot([e for e, _ in dev], [d[name] for _, d in dev], style, color=colour, label=label)
        best = [h["epoch"] for h in history if h.get("best")]
        if best:
            ax.axvline(best[-1], color="grey", linestyle=":", linewidth=1)
            lines.append(plt.Line2D([], [], color="grey", linestyle=":", label=f"best epoch ({best[-1]})"))
        ax2.set_ylabel("dev score", color="tab:red")
        ax2.set_ylim(0, 1)
    top = fig.axes[-1]  # the legend on the axes drawn last, so no line crosses it
    top.legend(handles=lines, loc="center right", fontsize=8)
    ax.set_title("training curve")
    return fig


def training_curve_png(history: Sequence[dict[str, Any]], path: str | Path,
                       scores: Sequence[str] = ("strict_f1", "partial_f1")) -> Path:
    return _save(_pyplot(), training_curve_figure(history, scores), path)


#: What a type without gold spans shows instead of an F1 (its 0 would be indistinguishable from a real 0).
NOT_EVALUATED = "n/a: no gold"


def f1_bars_figure(metrics: dict[str, Any]) -> Any:
    """Strict and type F1 per entity type, support in the tick labels, every bar's value written on it.

    A type with no gold spans (only predicted) has no recall, so no F1: it gets a
    hatched placeholder marked :data:`NOT_EVALUATED`; a real F1 of 0 is a
    written ``0.00`` on an empty slot.
    """
    plt = _pyplot()
    per_type = metrics["per_type"]
    labels = sorted(per_type, key=lambda k: (-per_type[k]["strict"]["support"], k))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 2), 4))
    for offset, mode, colour, name in ((-0.2, "strict", "tab:blue", "strict"),
                                       (0.2, "type", "tab:orange", "type (overlap)")):
        xs = [i + offset for i in range(len(labels))]
        values = [per_type[k][mode]["f1"] for k in labels]
        evaluated = [per_type[k]["strict"]["support"] > 0 for k in labels]
        bars = ax.bar(xs, [v if ok else 0 for v, ok in zip(values, evaluated)], width=0.4, color=colour, label=name)
        for x, v, ok, bar in zip(xs, values, evaluated, bars):
            if ok:
                ax.text(x, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
            else:
                bar.set_visible(False)
                ax.bar(x, 1.0, width=0.4, fill=False, hatch="//", edgecolor="lightgrey")
                ax.text(x, 0.5, NOT_EVALUATED, ha="center", va="center", rotation=90, fontsize=7, color="dimgrey")
    ax.set_xticks(list(range(len(labels))))
    ax.set_xticklabels([f"{k}\n({per_type[k]['strict']['support']})" for k in labels], rotation=45, ha="right",
                       fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1")
    ax.set_xlabel("type (gold spans)")
    ax.set_title(f"F1 by type (overall strict {metrics['overall']['strict']['f1']:.3f})")
    ax.legend(fontsize=8)
    return fig


def f1_bars_png(metrics: dict[str, Any], path: str | Path) -> Path:
    return _save(_pyplot(), f1_bars_figure(metrics), path)


def confusion_matrix_figure(labels: Sequence[str], matrix: Sequence[Sequence[int]], *,
                            title: str = "character confusion by type (counts)",
                            bar_label: str = "share of the gold type's characters", zeros: bool = False) -> Any:
    """Row-normalised confusion (gold rows, predicted columns), a colour bar, every count written.

    Counts are written in white on dark cells and black on light ones, so every
    number stays readable; the colour is the share of the gold row. NER draws
    characters by type (the defaults); the classifier messages by class, with
    ``zeros`` written too (a small matrix whose empty cells are findings).
    """
    import numpy as np

    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(5.5, 0.5 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(bar_label)
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    fontsize = 8 if len(labels) <= 12 else 6
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j] or zeros:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=fontsize,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    return fig


def confusion_matrix_png(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: str | Path,
                         **options: Any) -> Path:
    """:func:`confusion_matrix_figure` (``options``: title, bar_label, zeros) as a PNG."""
    return _save(_pyplot(), confusion_matrix_figure(labels, matrix, **options), path)
