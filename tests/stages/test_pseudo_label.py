import pytest

from nerwheel.records import Entity, Record
from nerwheel.stages.pseudo_label import PseudoLabelConfig, PseudoLabelError, pseudo_label


class ScoredModel:
    def __init__(self, table):
        self.table = table

    def predict(self, texts):
        return [[Entity(s, e, lab, t[s:e], score=p) for s, e, lab, p in self.table.get(t, [])] for t in texts]


TABLE = {
    "北京市朝阳区": [(0, 3, "city", 0.99), (3, 6, "district", 0.95)],
    "上海市某路": [(0, 3, "city", 0.97), (3, 5, "road", 0.40)],
    "不确定": [(0, 3, "poi", 0.30)],
    "无实体": [],
}
TEXTS = [Record(str(i), t, ()) for i, t in enumerate(TABLE)]


@pytest.mark.parametrize(
    "mode, keep_empty, expected",
    [
        ("entity", False, {"0": ["city", "district"], "1": ["city"]}),
        ("record", False, {"0": ["city", "district"]}),
        ("entity", True, {"0": ["city", "district"], "1": ["city"], "3": []}),
        ("record", True, {"0": ["city", "district"], "3": []}),
    ],
)
def test_threshold_modes(mode, keep_empty, expected):
    result = pseudo_label(ScoredModel(TABLE), TEXTS, PseudoLabelConfig(threshold=0.9, mode=mode, keep_empty=keep_empty))
    assert {r.id: r.labels for r in result.records} == expected
    rep = result.report
    assert rep.entities_kept + rep.entities_dropped == 5  # every predicted span is accounted for
    assert rep.records_kept == len(expected)
    assert all(e.source == "model" and e.score >= 0.9 for r in result.records for e in r.entities)


def test_report_and_meta():
    result = pseudo_label(ScoredModel(TABLE), TEXTS, PseudoLabelConfig(threshold=0.5))
    assert result.report.to_dict()["dropped_by_label"] == {"poi": 1, "road": 1}
    assert result.records[1].meta["pseudo_label"] == {"threshold": 0.5, "mode": "entity", "dropped": 1, "min_score": 0.4}


def test_unscored_predictions_are_refused():
    class NoScores:
        def predict(self, texts):
            return [[Entity(0, 1, "city", t[0])] for t in texts]

    with pytest.raises(PseudoLabelError, match="without a score"):
        pseudo_label(NoScores(), TEXTS)
