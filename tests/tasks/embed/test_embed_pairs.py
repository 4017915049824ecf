"""embed pairs and the data formats: inverse cloze, the BEIR layout, graded pairs, question checks, rejects."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nerwheel.tasks.embed.beir import RetrievalData, read_beir, read_graded_pairs, read_pairs, write_beir
from nerwheel.errors import DataError
from nerwheel.tasks.embed.ict import ict_queries
from nerwheel.tasks.embed.pairs import PairsConfig, make_pairs
from nerwheel.tasks.embed.questions import QuestionCheck, check_question, parse_questions


def test_ict_takes_sentences_as_queries_and_removes_them_from_the_positive():
    text = "链条需要定期上油。骑行五百公里检查一次。生锈会让变速不顺畅。"
    r = ict_queries("doc-1", text, k=2, min_chars=4, seed=0)
    assert len(r.queries) == 2 and r.reason is None
    for q in r.queries:
        assert q in text and q not in r.positive
    assert len(r.positive) + sum(map(len, r.queries)) == len(text)
    assert ict_queries("doc-1", text, k=2, min_chars=4, seed=0) == r  # deterministic
    assert ict_queries("doc-1", text, k=5, min_chars=4).queries.__len__() == 2  # at least one sentence stays
    single = ict_queries("doc-2", "只有一句话。", k=2)
    assert single.queries == [] and "at least 2" in single.reason


def test_ict_pairs_layout_splits_and_counts(ict_pairs):
    data = read_beir(ict_pairs)
    assert not data.rejects and set(data.qrels) == {"train", "val"}
    report = json.loads((ict_pairs / "pairs.json").read_text(encoding="utf-8"))
    assert report["questions"]["accepted"] == len(data.queries) == sum(report["queries"].values())
    assert report["passages"]["read"] == len(data.corpus)
    for split, judged in data.qrels.items():
        for qid, grades in judged.items():
            (cid,) = grades
            meta = data.query_meta[qid]
            assert meta["passage_id"] == cid and meta["split"] == split == data.corpus_meta[cid]["split"]
            assert data.queries[qid] not in data.corpus[cid]  # the query sentence left its passage
    header = (ict_pairs / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "query-id\tcorpus-id\tscore"


def test_beir_round_trip_and_rejects(tmp_path):
    data = RetrievalData(corpus={"d1": "甲", "d2": "乙"}, queries={"q1": "问甲", "q2": "问乙"},
                         qrels={"test": {"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}}},
                         corpus_meta={"d1": {"split": "train"}})
    write_beir(tmp_path, data)
    back = read_beir(tmp_path)
    assert back.corpus == data.corpus and back.queries == data.queries and back.qrels == data.qrels
    assert back.corpus_meta["d1"]["split"] == "train"
    qrels = tmp_path / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text(encoding="utf-8") + "q1\td9\t1\nq9\td1\t1\nq1\td1\tx\nq2\td2\t1\n",
                     encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text((tmp_path / "queries.jsonl").read_text(encoding="utf-8")
                                            + '{"_id": "q3"}\nnot json\n', encoding="utf-8")
    bad = read_beir(tmp_path)
    kinds = sorted(r.kind for r in bad.rejects)
    assert kinds == ["duplicate", "json", "missing-passage", "missing-query", "qrels", "query"]
    missing = next(r for r in bad.rejects if r.kind == "missing-passage")
    assert missing.file.endswith("test.tsv") and missing.line == 5 and "d9" in missing.reason
    for f in bad.files:
        assert f.read == f.accepted + f.rejected
    with pytest.raises(DataError, match="no judgements for split 'val'"):
        bad.split("val")
    with pytest.raises(DataError, match="not a BEIR folder, corpus.jsonl is missing"):
        read_beir(tmp_path / "qrels")


def test_graded_pairs_carve_validation_by_query_and_keep_grades(tmp_path):
    lines = []
    for q in range(40):
        for p, label in ((0, 2), (1, 1), (2, 0)):
            lines.append(json.dumps({"query": f"问题{q}", "passage": f"标题{q}-{p}", "label": label},
                                    ensure_ascii=False))
    lines += ['{"query": "问", "passage": "", "label": 1}', '{"query": "问", "label": 1}',
              '{"query": "问", "passage": "答", "label": -1}', '{"query": "问题0", "passage": "标题0-0", "label": 3}']
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = read_graded_pairs(path, val_ratio=0.25, seed=0)
    train, val = data.qrels["train"], data.qrels["val"]
    assert not set(train) & set(val) and 5 <= len(val) <= 15 and len(train) + len(val) == 40
    assert sorted(next(iter(train.values())).values()) == [0, 1, 2]  # grades kept, 0 included
    assert sorted(r.kind for r in data.rejects) == ["duplicate", "missing-passage", "missing-passage", "pair"]
    assert data.files[0].read == data.files[0].accepted + data.files[0].rejected == 124
    assert read_pairs(path, val_ratio=0.25).qrels == data.qrels  # same carve through the dispatcher


@pytest.mark.parametrize(("question", "kind"), [
    ("自行车链条多久上一次油？", None),
    ("链条需要定期清洁和上油", "copy"),  # copied from the passage
    ("链条需要定期清洁和上油吗", "copy"),
    ("？？", "empty"),
    ("链条", "too-short"),
    ("多久检查一次链条？", "duplicate"),
    ("x" * 300, "too-long"),
])
def test_question_checks(question, kind):
    passage = "自行车的链条需要定期清洁和上油。骑行五百公里左右应该检查一次链条。"
    seen = {"多久检查一次链条"}
    problem = check_question(question, passage, seen, QuestionCheck(min_chars=4, max_chars=200))
    assert (problem[0] if problem else None) == kind


@pytest.mark.parametrize(("answer", "questions", "bad", "error", "cut"), [
    ('{"questions": ["a?", "b?"]}', ["a?", "b?"], 0, False, 0),
    ('```json\n["a?", 3]\n```', ["a?"], 1, False, 0),
    ('Here you go: {"qs": ["x?"]}', ["x?"], 0, False, 0),
    ('{"questions": ["a?", "b', ["a?"], 0, False, 1),  # cut off: the complete question is kept
    ("no json at all", [], 0, True, 0),
    ('{"answer": "yes"}', [], 0, True, 0),
])
def test_parse_questions(answer, questions, bad, error, cut):
    got, malformed, err, fragments = parse_questions(answer)
    assert got == questions and len(malformed) == bad and (err is not None) == error and len(fragments) == cut


def test_pairs_without_a_teacher_or_usable_passages_are_clear_errors(tmp_path):
    corpus = RetrievalData(corpus={"d1": "只有一句。"}, corpus_meta={"d1": {"split": "train"}}, source=str(tmp_path))
    with pytest.raises(DataError, match="no pairs"):
        make_pairs(corpus, PairsConfig(teacher="ict"))
    with pytest.raises(DataError, match="needs an LLM endpoint"):
        make_pairs(corpus, PairsConfig(teacher="llm"))


def test_cli_pairs_ict(tmp_path, corpus_file):
    from nerwheel.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["embed", "split", str(corpus_file), "--out", str(tmp_path / "s")]).exit_code == 0
    res = runner.invoke(cli, ["embed", "pairs", str(tmp_path / "s"), "--out", str(tmp_path / "p"),
                              "--teacher", "ict", "--queries-per-passage", "1"])
    assert res.exit_code == 0, res.output
    assert "accepted" in res.output and (tmp_path / "p" / "qrels" / "val.tsv").is_file()
    llm = runner.invoke(cli, ["embed", "pairs", str(tmp_path / "s"), "--out", str(tmp_path / "q"), "--teacher", "llm"])
    assert llm.exit_code == 2 and "--llm-url" in llm.output
