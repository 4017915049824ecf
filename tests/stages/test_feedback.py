import json

import pydantic
import pytest

from nerwheel.llm.validate import TeacherOutput
from nerwheel.records import Entity, Record
from nerwheel.stages.feedback import FeedbackConfig, diff_entities, feedback, sample_replay

TEXT = "浙江省杭州市西湖区文三路100号"  # 浙江省[0:3] 杭州市[3:6] 西湖区[6:9] 文三路[9:12] 100号[12:16]


def e(start, end, label, source=None):
    return Entity.at(TEXT, start, end, label, source=source)


def kinds(diffs):
    return [(d.kind, d.model.key if d.model else None, d.teacher.key if d.teacher else None) for d in diffs]


DIFF_CASES = [
    ("agree", [e(0, 3, "prov")], [e(0, 3, "prov")], []),
    ("missing", [], [e(0, 3, "prov")], [("missing", None, (0, 3, "prov"))]),
    ("spurious", [e(12, 16, "houseno")], [], [("spurious", (12, 16, "houseno"), None)]),
    ("boundary", [e(9, 13, "road")], [e(9, 12, "road")], [("boundary", (9, 13, "road"), (9, 12, "road"))]),
    ("type same span", [e(3, 6, "district")], [e(3, 6, "city")], [("type", (3, 6, "district"), (3, 6, "city"))]),
    ("type overlapping", [e(3, 9, "district")], [e(3, 6, "city")], [("type", (3, 9, "district"), (3, 6, "city"))]),
    (
        "model splits one teacher span: boundary + spurious",
        [e(0, 2, "prov"), e(2, 3, "prov")],
        [e(0, 3, "prov")],
        [("boundary", (0, 2, "prov"), (0, 3, "prov")), ("spurious", (2, 3, "prov"), None)],
    ),
    (
        "same-span type pairing beats an overlap",
        [e(3, 6, "district"), e(4, 9, "city")],
        [e(3, 6, "city")],
        [("type", (3, 6, "district"), (3, 6, "city")), ("spurious", (4, 9, "city"), None)],
    ),
    (
        "all four at once",
        [e(0, 3, "city"), e(3, 7, "city"), e(12, 16, "houseno")],
        [e(0, 3, "prov"), e(3, 6, "city"), e(9, 12, "road")],
        [
            ("type", (0, 3, "city"), (0, 3, "prov")),
            ("boundary", (3, 7, "city"), (3, 6, "city")),
            ("missing", None, (9, 12, "road")),
            ("spurious", (12, 16, "houseno"), None),
        ],
    ),
    ("extension labels are ignored", [e(0, 2, "pos:ns")], [e(0, 3, "prov")], [("missing", None, (0, 3, "prov"))]),
]


@pytest.mark.parametrize("name, model, teacher, expected", DIFF_CASES, ids=[c[0] for c in DIFF_CASES])
def test_every_disagreement_kind(name, model, teacher, expected):
    assert kinds(diff_entities(model, teacher)) == expected


def test_partial_teacher_scope():
    model = [e(0, 3, "prov"), e(12, 16, "houseno"), e(9, 12, "poi")]
    teacher = [e(0, 3, "prov"), e(9, 12, "road")]
    # houseno is outside what the teacher can say: not spurious; poi overlaps a teacher span: a type disagreement
    diffs = diff_entities(model, teacher, teacher_labels=["prov", "city", "road"])
    assert kinds(diffs) == [("type", (9, 12, "poi"), (9, 12, "road"))]
    assert kinds(diff_entities(model, teacher)) == [
        ("type", (9, 12, "poi"), (9, 12, "road")), ("spurious", (12, 16, "houseno"), None)]


class DictModel:
    """A predictor over a fixed text -> entities table (the diffing, not the model, is under test)."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def predict(self, texts):
        self.calls.append(list(texts))
        return [list(self.table.get(t, [])) for t in texts]


class TableTeacher:
    """A teacher (annotate's protocol) over a fixed text -> spans table; texts not in it fail."""

    def __init__(self, table, name="kb"):
        self.table = table
        self.name = name

    def label(self, records):
        return [
            TeacherOutput(entities=[Entity(a, b, lab, r.text[a:b], source=self.name) for a, b, lab in self.table[r.text]])
            if r.text in self.table else TeacherOutput(error="no answer")
            for r in records
        ]


def kb_teacher(table):
    return TableTeacher(table)


def test_feedback_keeps_disagreements_with_teacher_labels_and_replay():
    texts = [Record("t1", "北京市朝阳区", ()), Record("t2", "上海市", ()), Record("t3", TEXT, (e(0, 3, "prov"),))]
    model = DictModel({
        "北京市朝阳区": [Entity(0, 3, "city", "北京市")],
        "上海市": [Entity(0, 3, "city", "上海市")],
        TEXT: [e(0, 3, "prov"), e(3, 6, "district"), e(12, 16, "houseno", "model:v2")],
    })
    teacher = kb_teacher({
        "北京市朝阳区": [(0, 3, "city"), (3, 6, "district")],
        "上海市": [(0, 3, "city")],
        TEXT: [(0, 3, "prov"), (3, 6, "city")],
    })
    replay = [Record(f"old{i}", f"旧地址{i}号", ()) for i in range(10)] + [Record("dup", "上海市", ())]
    holdout = [Record("e1", "广州市天河区", ())]
    texts += [Record("t4", "广州市天河区", ()), Record("t5", "无人知道", ())]
    cfg = FeedbackConfig(teacher_labels=("prov", "city", "district", "road"), replay_ratio=1.5, seed=7)
    result = feedback(model, teacher, texts, replay=replay, holdout=holdout, config=cfg)

    # input entities are not passed on; the eval text never reaches model or teacher
    assert model.calls == [["北京市朝阳区", "上海市", TEXT, "无人知道"]]
    rep = result.report
    assert (rep.texts, rep.holdout_dropped, rep.teacher_failed, rep.agreed, rep.disagreed, rep.replay) == (
        4, 1, 1, 1, 2, 3)
    assert rep.teachers["failed"] == 1
    assert rep.to_dict()["by_kind"] == {"missing": 1, "spurious": 0, "boundary": 0, "type": 1}
    assert rep.to_dict()["by_label"] == {
        "city": {"missing": 0, "spurious": 0, "boundary": 0, "type": 1},
        "district": {"missing": 1, "spurious": 0, "boundary": 0, "type": 0},
    }
    t1, t3 = result.records[:2]
    assert [(x.key, x.source) for x in t1.entities] == [((0, 3, "city"), "kb"), ((3, 6, "district"), "kb")]
    # out-of-scope model span (houseno) is kept with its source; the teacher wins in scope
    assert [(x.key, x.source) for x in t3.entities] == [
        ((0, 3, "prov"), "kb"), ((3, 6, "city"), "kb"), ((12, 16, "houseno"), "model:v2")]
    assert t3.meta["feedback"]["disagreements"][0]["kind"] == "type"
    replayed = result.records[2:]
    assert all(r.meta["feedback"]["role"] == "replay" for r in replayed)
    assert "dup" not in {r.id for r in replayed}  # same text as the feedback set would duplicate it
    again = feedback(model, teacher, texts, replay=replay, config=cfg)
    assert [r.id for r in again.records] == [r.id for r in result.records]  # seeded
    assert [r.labels for r in result.model_records] == [["city"], ["prov", "district", "houseno"]]
    assert result.model_records[0].entities[0].source == "model"


def test_sample_replay_caps_at_pool_size_and_names_sources():
    pool = [Record(str(i), f"路{i}", (Entity(0, 1, "road", "路"),)) for i in range(3)]
    pool.append(Record("k", "上海市", (Entity(0, 3, "city", "上海市", source="kb"),)))
    picked = sample_replay(pool, 10, exclude_texts=["路0 "])  # excluded after normalisation
    assert sorted(r.id for r in picked) == ["1", "2", "k"]
    assert {r.id: r.entities[0].source for r in picked} == {"1": "gold", "2": "gold", "k": "kb"}
    assert sample_replay(pool, 0) == []


def test_leakage_check_catches_an_exact_duplicate():
    from nerwheel.stages.split import find_leaks

    evaluation = [Record("e1", "北京市朝阳区", ())]
    traffic = [Record("t1", "北京市朝阳区", ()), Record("t2", "北京市朝阳区 ", ()), Record("t3", "上海市", ())]
    assert [r.id for r in find_leaks(traffic, evaluation)] == ["t1", "t2"]  # exact and whitespace-only variants
    result = feedback(DictModel({}), kb_teacher({"上海市": [(0, 3, "city")]}), traffic, holdout=evaluation)
    assert result.report.holdout_dropped == 2
    assert [r.id for r in result.records] == ["t3"]
    assert not find_leaks(result.records, evaluation)


def test_config_refuses_unknown_keys():
    with pytest.raises(pydantic.ValidationError, match="replay_ration"):
        FeedbackConfig(replay_ration=0.5)


def test_label_studio_export_edit_import_round_trip(tmp_path):
    from nerwheel.formats import read_records, write_records
    from nerwheel.stages.feedback import REVIEW_SOURCE, review_records, reviewed_as_gold
    from nerwheel.stages.merge import SourceInput, merge

    texts = [Record("t1", "北京市朝阳区", ()), Record("t2", "上海市", ())]
    model = DictModel({"北京市朝阳区": [Entity(0, 6, "city", "北京市朝阳区")], "上海市": [Entity(0, 3, "city", "上海市")]})
    teacher = kb_teacher({"北京市朝阳区": [(0, 3, "city"), (3, 6, "district")], "上海市": [(0, 3, "city")]})
    result = feedback(model, teacher, texts)
    review = review_records(result)
    assert [r.id for r in review] == ["t1"]

    path = tmp_path / "review.json"
    write_records(review, path, "labelstudio")

    tasks = json.loads(path.read_text(encoding="utf-8"))
    (task,) = tasks
    assert sorted(p["model_version"] for p in task["predictions"]) == ["kb", "model"]
    # the reviewer takes the teacher's proposal and fixes it: 朝阳 only (a human edit, not either side)
    kb_pred = next(p for p in task["predictions"] if p["model_version"] == "kb")
    edited = [dict(r, value=dict(r["value"])) for r in kb_pred["result"]]
    edited[1]["value"].update(start=3, end=5, text="朝阳")
    task["annotations"] = [{"id": 11, "completed_by": 3, "result": edited}]
    tasks.append({"data": {"id": "t9", "text": "未审"}, "predictions": []})  # nobody reviewed this one
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")

    back = read_records(path, "labelstudio")
    assert len(back.rejects) == 1 and "not been reviewed" in back.rejects[0].reason
    (gold,) = reviewed_as_gold(back.records)
    assert [(e.start, e.end, e.label, e.source) for e in gold.entities] == [
        (0, 3, "city", REVIEW_SOURCE), (3, 5, "district", REVIEW_SOURCE)]
    assert gold.meta["review"]["annotator"] == 3
    # reviewed labels rank as gold in a merge
    kb_again = SourceInput("kb", [Record("t1", "北京市朝阳区", (Entity(3, 6, "district", "朝阳区", source="kb"),))])
    merged = merge(None, [kb_again, SourceInput("review", [gold])])
    assert [(e.label, e.text, e.source) for e in merged.records[0].entities] == [
        ("city", "北京市", REVIEW_SOURCE), ("district", "朝阳", REVIEW_SOURCE)]
    assert gold.meta["feedback"]["disagreements"][0]["kind"] == "boundary"  # the record's meta travelled
