"""Entity metrics: hand-computed tables for each mode, and strict mode against seqeval itself."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from nerwheel import metrics as M
from nerwheel.records import Entity, Record

# gold: A=loc[0,3) B=per[5,8) C=org[10,12)     pred: loc[0,3) exact; per[5,7) boundary; per[10,12) wrong type;
# plus a spurious loc[14,15)
GOLD = [(0, 3, "loc"), (5, 8, "per"), (10, 12, "org")]
PRED = [(0, 3, "loc"), (5, 7, "per"), (10, 12, "per"), (14, 15, "loc")]


@pytest.mark.parametrize("mode,credit", [
    ("strict", 1.0),  # only loc[0,3)
    ("exact", 2.0),  # loc[0,3) and the [10,12) span (type ignored)
    ("partial", 2.5),  # exact ones 1 each, the overlapping per 0.5
    ("type", 2.0),  # loc and the overlapping per
])
def test_modes_hand_table(mode, credit):
    overall, _ = M.span_scores([GOLD], [PRED])
    p, r = credit / 4, credit / 3
    assert overall[mode]["precision"] == pytest.approx(p, abs=1e-6)
    assert overall[mode]["recall"] == pytest.approx(r, abs=1e-6)
    assert overall[mode]["f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-6)


def test_per_type_counts_and_support():
    _, per_type = M.span_scores([GOLD], [PRED])
    assert per_type["loc"]["strict"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3, abs=1e-6),
                                         "support": 1}
    assert per_type["per"]["strict"]["precision"] == 0.0 and per_type["per"]["strict"]["support"] == 1
    assert per_type["per"]["type"]["recall"] == 1.0  # per[5,8) overlapped by per[5,7)
    assert per_type["org"]["exact"]["recall"] == 1.0  # its boundaries were found (with the wrong type)
    assert per_type["org"]["exact"]["precision"] == 0.0  # no prediction of type org
    assert per_type["org"]["type"]["recall"] == 0.0


def test_matching_is_one_to_one():
    gold = [(0, 4, "a")]
    pred = [(0, 2, "a"), (2, 4, "a")]
    overall, _ = M.span_scores([gold], [pred])
    assert overall["type"]["recall"] == 1.0 and overall["type"]["precision"] == 0.5


def test_empty_inputs_give_zeros_not_errors():
    overall, per_type = M.span_scores([[], []], [[], []])
    assert overall["strict"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0} and per_type == {}


def test_strict_equals_seqeval_on_random_spans():
    rng = random.Random(0)
    texts, gold, pred = [], [], []
    for _ in range(200):
        n = rng.randint(1, 30)
        texts.append("x" * n)
        for bucket in (gold, pred):
            spans, pos = [], 0
            while pos < n:
                pos += rng.randint(0, 4)
                length = rng.randint(1, 4)
                if pos + length <= n:
                    spans.append((pos, pos + length, rng.choice("ab")))
                pos += length
            bucket.append(spans)
    overall, _ = M.span_scores(gold, pred)
    y_true = [M.char_tags(t, g) for t, g in zip(texts, gold)]
    y_pred = [M.char_tags(t, p) for t, p in zip(texts, pred)]
    kw = {"mode": "strict", "scheme": IOB2}
    assert overall["strict"]["precision"] == pytest.approx(precision_score(y_true, y_pred, **kw), abs=1e-6)
    assert overall["strict"]["recall"] == pytest.approx(recall_score(y_true, y_pred, **kw), abs=1e-6)
    assert overall["strict"]["f1"] == pytest.approx(f1_score(y_true, y_pred, **kw), abs=1e-6)


def test_token_accuracy_and_confusion():
    texts = ["abcdef"]
    gold = [[(0, 3, "x")]]
    pred = [[(0, 2, "x"), (4, 6, "y")]]
    # tags gold B I I O O O / pred B I O O B I: right at positions 0, 1, 3 -> 3/6
    assert M.token_accuracy(texts, gold, pred) == 0.5
    labels, matrix = M.confusion(texts, gold, pred)
    assert labels == ["x", "y", "O"]
    assert matrix == [[2, 0, 1], [0, 0, 0], [0, 2, 1]]


def test_error_rows_classify_and_show_context():
    rec = Record("r1", "浙江省杭州市西湖区", (Entity(0, 3, "prov", "浙江省"), Entity(3, 6, "city", "杭州市"),
                                          Entity(6, 9, "district", "西湖区")))
    pred = [Entity(0, 2, "prov", "浙江"), Entity(3, 6, "district", "杭州市")]
    rows = M.error_rows([rec], [pred], context=2)
    kinds = {(r["error"], r["label"], r["kind"]) for r in rows}
    assert kinds == {("false_negative", "prov", "boundary"), ("false_negative", "city", "type"),
                     ("false_negative", "district", "missed"), ("false_positive", "prov", "boundary"),
                     ("false_positive", "district", "type")}
    city = next(r for r in rows if r["label"] == "city")
    assert city["context"] == "江省[杭州市]西湖" and city["other"][0]["label"] == "district"


def test_evaluate_has_the_metrics_json_shape():
    rec = Record("r", "abcdef", (Entity(0, 3, "x", "abc"),))
    m = M.evaluate([rec], [[Entity(0, 3, "x", "abc")]])
    assert set(m) == {"overall", "per_type", "seqeval_report", "n_records", "gold_spans_not_in_tag_metrics",
                      "overlapping_spans"}
    assert set(m["overall"]) >= {"strict", "partial", "type", "token_accuracy"}
    assert set(m["per_type"]["x"]["strict"]) == {"precision", "recall", "f1", "support"}
    assert "x" in m["seqeval_report"] and m["overall"]["strict"]["f1"] == 1.0


def test_overlapping_gold_spans_are_counted_not_hidden():
    """Span scores count every gold span; the character-tag figures cannot hold overlaps and say how many they skip."""
    text = "浙江省杭州市西湖区"
    rec = Record("r", text, (Entity(0, 3, "prov", "浙江省"), Entity(0, 6, "city", "浙江省杭州市"),
                             Entity(3, 6, "city", "杭州市"), Entity(6, 9, "district", "西湖区")))
    metrics = M.evaluate([rec], [[Entity(6, 9, "district", "西湖区")]])
    assert metrics["overall"]["support"] == 4 and metrics["gold_spans_not_in_tag_metrics"] == 1  # 浙江省杭州市
    assert M.untaggable([[(0, 3, "a"), (3, 6, "b")], [(0, 5, "a"), (1, 2, "b"), (4, 8, "c")]]) == 2
    assert M.evaluate([rec.with_entities([])], [[]])["gold_spans_not_in_tag_metrics"] == 0
