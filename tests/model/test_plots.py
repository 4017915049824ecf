"""The charts a user reads: 0 is not 'not evaluated', the confusion matrix has a scale, curves tick whole epochs."""

from __future__ import annotations

import pytest

from nerwheel.model.plots import (NOT_EVALUATED, confusion_matrix_figure, confusion_matrix_png, f1_bars_figure,
                                  training_curve_figure)


def _scores(f1: float, support: int) -> dict:
    return {"precision": f1, "recall": f1, "f1": f1, "support": support}


def test_f1_bars_tell_a_zero_from_a_type_without_gold() -> None:
    metrics = {"overall": {"strict": _scores(0.5, 5)}, "per_type": {
        "city": {"strict": _scores(0.8, 3), "type": _scores(0.9, 3)},
        "road": {"strict": _scores(0.0, 2), "type": _scores(0.0, 2)},  # evaluated, and wrong every time
        "poi": {"strict": _scores(0.0, 0), "type": _scores(0.0, 0)},  # only predicted: no F1 to speak of
    }}
    fig = f1_bars_figure(metrics)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count(NOT_EVALUATED) == 2  # strict and type slots of poi
    assert texts.count("0.00") == 2 and "0.80" in texts and "0.90" in texts  # road's real zeros are written
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["city\n(3)", "road\n(2)", "poi\n(0)"]


def test_confusion_matrix_has_a_colour_bar_and_every_count_readable(tmp_path) -> None:
    labels, matrix = ["city", "road", "O"], [[30, 2, 0], [0, 5, 7], [1, 0, 90]]
    fig = confusion_matrix_figure(labels, matrix)
    main, bar = fig.axes  # the matrix and its colour bar
    assert "share of the gold type" in bar.get_ylabel()
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in main.texts}
    assert {k: int(t.get_text()) for k, t in cells.items()} == {(0, 0): 30, (0, 1): 2, (1, 1): 5, (1, 2): 7,
                                                                 (2, 0): 1, (2, 2): 90}
    assert cells[(0, 0)].get_color() == "white" and cells[(0, 1)].get_color() == "black"  # dark cell, light cell
    assert confusion_matrix_png(labels, matrix, tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("epochs", [3, 12])
def test_training_curve_ticks_whole_epochs_and_names_every_line(epochs: int) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "best": e == 2,
                "dev": {"strict_f1": 0.1 * e / epochs, "partial_f1": 0.2 * e / epochs}} for e in range(1, epochs + 1)]
    fig = training_curve_figure(history)
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    (legend,) = [a.get_legend() for a in fig.axes if a.get_legend()]
    assert [t.get_text() for t in legend.get_texts()] == [
        "train loss", "dev strict F1", "dev partial F1", "best epoch (2)"]
