"""Teacher-labelled traffic (train --unlabeled): every traffic line is used or rejected with a reason, eval and gold
texts never enter, and the knowledge base, a model's confident predictions or their agreement label the rest."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nerwheel.leakage import EvalTexts
from nerwheel.records import Entity
from nerwheel.stages.unlabeled import eval_guard, teach

ADDRESSES = ["浙江省杭州市西湖区文三路100号", "江苏省南京市鼓楼区中山路8号", "广东省广州市天河区体育西路", "四川省成都市武侯区人民南路"]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _traffic(tmp_path):
    rows = [json.dumps({"id": f"u{i}", "text": t}, ensure_ascii=False) for i, t in enumerate(ADDRESSES)]
    rows += [
        json.dumps({"id": "dup", "text": ADDRESSES[0]}, ensure_ascii=False),  # line 5: a repeat of line 1
        json.dumps({"id": "eval", "text": "湖北省武汉市江汉区解放大道"}, ensure_ascii=False),  # line 6: a dev text
        json.dumps({"id": "gold", "text": "山东省青岛市市南区香港中路"}, ensure_ascii=False),  # line 7: in gold
        json.dumps({"id": "none", "text": "，。"}, ensure_ascii=False),  # line 8: nothing the KB labels
        "{not json",  # line 9: the reader refuses it
    ]
    return _write(tmp_path / "traffic.jsonl", rows)


def test_kb_teacher_accounts_for_every_line(tmp_path):
    path = _traffic(tmp_path)
    guard = eval_guard([], [])
    guard.add("湖北省武汉市江汉区解放大道")
    taught = teach(path, teacher="kb", guard=guard, gold_texts=["山东省青岛市市南区香港中路"])
    acc = taught.account()
    assert acc["read"] == 9 and acc["read"] == acc["used"] + acc["rejected"]
    assert acc["used"] == len(ADDRESSES) == len(taught.records)
    kinds = {r.line: r.kind for r in taught.rejects}
    assert kinds[5] == "duplicate" and kinds[6] == "eval-text" and kinds[7] == "in-gold" and kinds[8] == "no-entity"
    assert 9 in kinds and len(kinds) == 5
    assert [r.line for r in taught.rejects] == sorted(r.line for r in taught.rejects)
    first = taught.records[0]
    assert first.text == ADDRESSES[0] and first.meta == {"teacher": "kb", "line": 1}
    assert ("prov", "浙江省") in [(e.label, e.text) for e in first.entities]
    assert len(acc["sha256"]) == 64 and acc["entities"] == sum(len(r.entities) for r in taught.records)
    assert "read 9 = used 4 + rejected 5" in taught.summary()


def test_eval_files_named_in_exclude_are_kept_out(tmp_path):
    path = _traffic(tmp_path)
    dev = _write(tmp_path / "held.jsonl", [json.dumps({"text": ADDRESSES[1], "entities": []}, ensure_ascii=False)])
    taught = teach(path, teacher="kb", guard=eval_guard([], [str(dev)]), gold_texts=[])
    assert {r.line: r.kind for r in taught.rejects}[2] == "eval-text"
    assert ADDRESSES[1] not in [r.text for r in taught.records]


def test_max_records_is_a_seeded_sample_and_the_rest_is_rejected(tmp_path):
    path = _traffic(tmp_path)
    a = teach(path, teacher="kb", guard=EvalTexts(), gold_texts=[], max_records=2, seed=1)
    b = teach(path, teacher="kb", guard=EvalTexts(), gold_texts=[], max_records=2, seed=1)
    assert [r.text for r in a.records] == [r.text for r in b.records]
    assert Counter(r.kind for r in a.rejects)["over-limit"] == 5  # 7 distinct readable texts, 2 kept
    assert a.read == a.used + len(a.rejects)


class Scored:
    """A model's scored predictions per text (the predictor protocol: ``predict(texts)``)."""

    def __init__(self, table):
        self.table = table

    def predict(self, texts):
        return [[Entity(s, e, lab, t[s:e], score=p) for s, e, lab, p in self.table.get(t, [])] for t in texts]


def test_model_teacher_keeps_only_texts_it_is_sure_of_and_both_needs_agreement(tmp_path):
    from nerwheel.kb.annotator import AddressKB

    kb = AddressKB()
    sure = [(e.start, e.end, e.label, 0.99) for e in kb.annotate_text(ADDRESSES[0])]
    unsure = [(e.start, e.end, e.label, 0.5) for e in kb.annotate_text(ADDRESSES[1])]
    other = [(0, 3, "city", 0.99)]  # confident, but not what the knowledge base says
    model = Scored({ADDRESSES[0]: sure, ADDRESSES[1]: unsure, ADDRESSES[2]: other})
    path = _write(tmp_path / "t.jsonl", [json.dumps({"text": t}, ensure_ascii=False) for t in ADDRESSES])

    m = teach(path, teacher="model", guard=EvalTexts(), gold_texts=[], predictor=model, threshold=0.9)
    assert [r.text for r in m.records] == [ADDRESSES[0], ADDRESSES[2]]
    assert {r.line: r.kind for r in m.rejects} == {2: "unsure", 4: "no-entity"}

    both = teach(path, teacher="both", guard=EvalTexts(), gold_texts=[], predictor=model, kb=kb)
    assert [r.text for r in both.records] == [ADDRESSES[0], ADDRESSES[1]]  # agreement, whatever the scores
    assert {r.line: r.kind for r in both.rejects} == {3: "disagree", 4: "no-entity"}
    with pytest.raises(ValueError, match="needs a model"):
        teach(path, teacher="model", guard=EvalTexts(), gold_texts=[])
