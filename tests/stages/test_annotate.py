"""The annotate stage with the offline KB teacher, plus the CLI: counts reconcile, nothing is lost."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.formats import Reject, read_records
from nerwheel.llm.validate import EntityReject, TeacherOutput
from nerwheel.records import Entity, Record
from nerwheel.stages.annotate import KBTeacher, annotate


class ListTeacher:
    """A teacher that answers from a fixed table (for vote arithmetic)."""

    def __init__(self, name: str, spans: dict[str, list[tuple[int, int, str]]], fail: Sequence[str] = ()) -> None:
        self.name, self.spans, self.fail = name, spans, set(fail)

    def label(self, records: Sequence[Record]) -> list[TeacherOutput]:
        out = []
        for r in records:
            if r.id in self.fail:
                out.append(TeacherOutput(error="no answer", rejects=[EntityReject("malformed", "junk")]))
            else:
                out.append(TeacherOutput(entities=[Entity.at(r.text, a, b, lab, source=self.name)
                                                   for a, b, lab in self.spans.get(r.id, [])]))
        return out


def test_votes_sources_scores_and_agreement() -> None:
    rec = Record("r", "杭州市西湖区文三路")
    a = ListTeacher("a", {"r": [(0, 3, "city"), (3, 6, "district"), (6, 9, "road")]})
    b = ListTeacher("b", {"r": [(0, 3, "city"), (3, 6, "town")]})
    c = ListTeacher("c", {"r": [(0, 3, "city"), (3, 6, "district")]})
    res = annotate([rec], [a, b, c])
    got = [(e.text, e.label, e.source, e.score) for e in res.records[0].entities]
    assert got == [("杭州市", "city", "a+b+c", 1.0), ("西湖区", "district", "a+c", 0.6667)]
    meta = res.records[0].meta["annotate"]
    assert meta["agreement"] == 0.25  # 1 of 4 distinct spans has all three votes
    assert res.stats["dropped_by_vote"] == 2


def test_a_teacher_failing_a_record_leaves_the_others_and_all_failing_fails_it() -> None:
    recs = [Record("1", "杭州市"), Record("2", "宁波市")]
    a = ListTeacher("a", {"1": [(0, 3, "city")], "2": [(0, 3, "city")]}, fail=["2"])
    b = ListTeacher("b", {"1": [(0, 3, "city")]}, fail=["1", "2"])
    res = annotate(recs, [a, b])
    assert [r.id for r in res.records] == ["1"] and [f.record.id for f in res.failed] == ["2"]
    assert res.records[0].meta["annotate"]["errors"] == {"b": "no answer"}
    assert res.failed[0].reasons == {"a": "no answer", "b": "no answer"}
    t = res.stats["teachers"]
    assert t["a"] == {"returned": 2, "accepted": 1, "rejected": 1, "failed": 1, "reject_codes": {"malformed": 1}}
    assert (res.stats["records_in"], res.stats["labelled"], res.stats["failed"]) == (2, 1, 1)


def test_a_single_teacher_needs_no_list() -> None:
    res = annotate([Record("1", "杭州市")], ListTeacher("a", {"1": [(0, 3, "city")]}))
    assert [(e.label, e.source, e.score) for e in res.records[0].entities] == [("city", "a", 1.0)]


def test_teacher_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        annotate([], [KBTeacher(), KBTeacher()])


def test_cli_annotate_with_the_kb(tmp_path: Path) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("浙江省杭州市西湖区文三路000号\n余杭区良渚镇杜甫村00组\n\n荷花小区0幢0单元\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(out), "--stats", str(stats)])
    assert res.exit_code == 0, res.output
    records = read_records(out).records
    assert len(records) == 3
    assert [(e.text, e.label) for e in records[2].entities] == [("荷花小区", "poi"), ("0幢", "houseno"),
                                                                 ("0单元", "cellno")]
    s = json.loads(stats.read_text())
    assert (s["records_in"], s["labelled"], s["failed"]) == (3, 3, 0)
    assert (tmp_path / "out.jsonl.rejects.jsonl").read_text() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--teacher", "llm"], "needs an LLM endpoint and a model name (CLI: --llm-url and --llm-model"),
     (["--mode", "pos"], "knowledge base labels address entities only"),
     (["--llm-url", "http://127.0.0.1:9/v1"], "--llm-url needs --llm-model")],
)
def test_cli_annotate_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("杭州市\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(tmp_path / "o.jsonl"), *args],
                             env={"NERWHEEL_LLM_URL": "", "NERWHEEL_LLM_MODEL": ""})
    assert res.exit_code != 0 and message in res.output


def test_the_kb_teacher_drops_what_breaks_the_hierarchy_with_a_reason() -> None:
    res = annotate([Record("r", "浙江省广州市西湖区文三路")], KBTeacher())
    assert "广州市" not in [e.text for e in res.records[0].entities]
    (row,) = [r for r in res.rejects() if r["kind"] == "entity"]
    assert (row["code"], row["text"], row["label"], row["teacher"]) == ("hierarchy", "广州市", "city", "kb")
    assert "is not under prov '浙江省'" in row["reason"]
    t = res.stats["teachers"]["kb"]
    assert (t["returned"], t["rejected"], t["reject_codes"]) == (t["accepted"] + 1, 1, {"hierarchy": 1})


def test_input_rejects_are_counted_and_kept() -> None:
    bad = [Reject("in.jsonl", 2, "invalid JSON: Expecting value at column 9", '{"text": ', kind="json")]
    res = annotate([Record("1", "杭州市")], ListTeacher("a", {"1": [(0, 3, "city")]}), input_rejects=bad)
    s = res.stats
    assert (s["read"], s["labelled"], s["failed"], s["rejected_on_input"]) == (2, 1, 0, 1)
    assert res.summary().startswith("read 2 = labelled 1 + failed 0 + rejected on input 1")
    assert res.rejects()[0] == {"kind": "input", "file": "in.jsonl", "line": 2, "code": "json",
                                "reason": "invalid JSON: Expecting value at column 9", "raw": '{"text": '}


def test_cli_annotate_accounts_for_every_line_of_input_and_examples(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "杭州市西湖区"}\n{"text": \n{"text": "宁波市", "entities": [{"start": 0, "end": 9, '
                   '"label": "city"}]}\n{"text": "文三路000号"}\n', encoding="utf-8")
    seed = tmp_path / "seed.jsonl"
    seed.write_text('{"text": "杭州市", "entities": [{"start": 0, "end": 3, "label": "city"}]}\nnot json\n',
                    encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(out), "--examples", str(seed),
                                   "--labels", "city,district,road"])
    assert res.exit_code == 0, res.output
    assert "read 4 = labelled 2 + failed 0 + rejected on input 2" in res.output
    assert f"examples {seed}: read 2 = used 1 + rejected 1" in res.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["file"], r["line"]) for r in rows] == [("input", str(inp), 2), ("input", str(inp), 3),
                                                                 ("examples", str(seed), 2)]
    assert all(r["reason"] and r["code"] for r in rows)
    records = read_records(out).records
    # --labels restricts the teacher to the target labels: no roadno
    assert [[(e.text, e.label) for e in r.entities] for r in records] == [
        [("杭州市", "city"), ("西湖区", "district")], [("文三路", "road")]]


def test_cli_annotate_rejects_texts_over_the_length_limit(tmp_path: Path) -> None:
    """A 200,000-character line once kept annotate busy for over 10 minutes; it is now a counted reject."""
    inp = tmp_path / "in.txt"
    inp.write_text("杭州市西湖区\n" + "浙江省杭州市西湖区文三路000号" * 200 + "\n宁波市\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(out), "--stats", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "read 3 = labelled 2 + failed 0 + rejected on input 1" in res.output and "too-long 1" in res.output
    (row,) = [json.loads(x) for x in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert (row["kind"], row["line"], row["code"]) == ("input", 2, "too-long")
    assert "3200 characters, over the limit of 2048" in row["reason"]
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(out), "--max-length", "5"])
    assert "read 3 = labelled 1 + failed 0 + rejected on input 2" in res.output
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(out), "--max-length", "0"])  # 0: no limit
    assert "read 3 = labelled 3" in res.output
