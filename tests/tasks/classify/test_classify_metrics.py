"""Classifier metrics against scikit-learn's on a fixture, and ECE against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from nerwheel.tasks.classify.metrics import classification_metrics, expected_calibration_error

LABELS = ["low_value", "normal", "interrupt", "never_seen"]
GOLD = ["normal"] * 9 + ["low_value"] * 6 + ["interrupt"] * 3 + ["normal", "low_value"]
PRED = (["normal"] * 7 + ["low_value", "interrupt"] + ["low_value"] * 4 + ["normal"] * 2 + ["interrupt", "normal",
        "normal"] + ["normal", "interrupt"])


def test_against_scikit_learn():
    from sklearn import metrics as skm

    m = classification_metrics(GOLD, PRED, LABELS)
    o = m["overall"]
    assert o["accuracy"] == pytest.approx(skm.accuracy_score(GOLD, PRED))
    for avg in ("macro", "weighted", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(GOLD, PRED, average=avg, zero_division=0)
        assert (o[avg]["precision"], o[avg]["recall"], o[avg]["f1"]) == pytest.approx((p, r, f))
    p, r, f, s = skm.precision_recall_fscore_support(GOLD, PRED, labels=LABELS, average=None, zero_division=0)
    for i, lab in enumerate(LABELS):
        c = m["per_class"][lab]
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert m["confusion"]["matrix"] == skm.confusion_matrix(GOLD, PRED, labels=LABELS).tolist()
    assert m["n_records"] == len(GOLD)


def test_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.55, 0.55, 0.55, 0.15])
    correct = np.array([1, 0, 1, 1, 0, 0], dtype=float)
    # 3 bins: [0, 1/3): conf .15 acc 0 -> 1 * .15; [1/3, 2/3): conf .55 acc 2/3 -> 3 * |.667-.55|; [2/3, 1]: conf .95
    # acc .5 -> 2 * .45
    want = (0.15 + 3 * abs(2 / 3 - 0.55) + 2 * 0.45) / 6
    assert expected_calibration_error(conf, correct, bins=3) == pytest.approx(want)
    probs = np.array([[0.9, 0.1, 0, 0]] * len(GOLD))
    m = classification_metrics(GOLD, PRED, LABELS, probs, bins=10)
    acc = m["overall"]["accuracy"]
    assert m["overall"]["ece"] == pytest.approx(abs(acc - 0.9))


def test_label_outside_the_set_is_an_error():
    with pytest.raises(ValueError, match="not in the label set"):
        classification_metrics(["x"], ["normal"], LABELS)
