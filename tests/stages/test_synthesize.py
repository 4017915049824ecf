"""The synthesize stage: every type covered, dedup, the eval guard, determinism, the CLI report."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.formats.recover import recover_text
from nerwheel.formats import read_records
from nerwheel.kb.annotator import AddressKB
from nerwheel.labels import ADDRESS_LABELS
from nerwheel.records import Entity, Record
from nerwheel.stages.synthesize import SynthesisConfig, coverage_table, synthesize

GENERATED = list(ADDRESS_LABELS)  # detail included: it has its own short-text generator


def test_every_type_is_covered_in_short_texts_and_records_are_valid() -> None:
    res = synthesize(SynthesisConfig(n_short=3 * len(GENERATED), n_long=40, seed=1))
    short = [r for r in res.records if r.meta["synthetic"] == "short"]
    assert len(short) == 3 * len(GENERATED)
    for lab in GENERATED:
        assert res.coverage["short"].get(lab, 0) >= 3, lab
    long = [r for r in res.records if r.meta["synthetic"] == "long"]
    assert len(long) == 40 and sum(len(r.entities) for r in long) / 40 > 4
    assert len({r.text for r in res.records}) == len(res.records)  # dedup
    for r in res.records:
        assert all(r.text[e.start:e.end] == e.text and e.label in ADDRESS_LABELS for e in r.entities)


def test_detail_short_texts_put_the_detail_after_the_building_or_the_room() -> None:
    res = synthesize(SynthesisConfig(n_short=30, n_long=0, seed=3, labels=("detail",)))
    assert len(res.records) == 30 and res.coverage["short"]["detail"] == 30
    for r in res.records:
        *before, last = r.entities
        assert last.label == "detail" and last.end == len(r.text), r
        assert before[-1].label in ("houseno", "roomno") and before[-1].end == last.start, r
        assert re.fullmatch(r"[A-F]\d{1,3}|附\d{1,2}号|\d{1,2}-\d{1,2}", last.text), last


def test_same_seed_same_output_other_seed_other_output() -> None:
    cfg = SynthesisConfig(n_short=40, n_long=20, seed=7)
    a, b = synthesize(cfg), synthesize(cfg)
    assert [r.to_dict() for r in a.records] == [r.to_dict() for r in b.records]
    c = synthesize(cfg.model_copy(update={"seed": 8}))
    assert [r.text for r in c.records] != [r.text for r in a.records]


def test_eval_texts_are_never_emitted() -> None:
    first = synthesize(SynthesisConfig(n_short=40, n_long=20, seed=3))
    banned = {r.text for r in first.records[::2]}
    again = synthesize(SynthesisConfig(n_short=40, n_long=20, seed=3), eval_texts=banned)
    assert not banned & {r.text for r in again.records}
    assert again.coverage["skipped"]["eval"] >= 1  # the first banned text comes up again before the RNG diverges


def test_pools_come_from_examples_without_a_gazetteer() -> None:
    ex = [Record("e", "幸福里小区0幢", (Entity(0, 5, "poi", "幸福里小区"), Entity(5, 7, "houseno", "0幢")))]
    res = synthesize(SynthesisConfig(n_short=30, n_long=10, seed=0, example_share=1.0), examples=ex, gazetteer=None)
    assert any(e.text == "幸福里小区" for r in res.records for e in r.entities)
    assert "poi" in coverage_table(res.coverage)


def test_cli_writes_records_and_coverage_report(tmp_path: Path) -> None:
    ev = tmp_path / "eval.jsonl"
    ev.write_text(json.dumps({"text": "浙江省", "entities": []}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "syn.jsonl"
    res = CliRunner().invoke(cli, ["synthesize", "--out", str(out), "--n-short", "36", "--n-long", "10",
                                   "--eval", str(ev), "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert "type" in res.output and "roadno" in res.output
    records = read_records(out).records
    assert len(records) == 46 and "浙江省" not in {r.text for r in records}
    report = json.loads((tmp_path / "syn.jsonl.coverage.json").read_text())
    assert report["texts"] == {"short": 36, "long": 10, "llm": 0}


_DIGIT = re.compile(r"[0-9]")
_CN = re.compile(r"[一二三四五六七八九十]")


def _pattern(text: str) -> str:
    return _CN.sub("一", _DIGIT.sub("0", text))


def _conventions(records: list[Record]) -> tuple[dict[str, set[str]], set[str]]:
    """Surface pattern -> labels it is given, and the patterns left unlabelled between entities."""
    labelled: dict[str, set[str]] = defaultdict(set)
    unlabelled: set[str] = set()
    for r in records:
        pos = 0
        for e in r.entities:
            if e.start > pos:
                unlabelled.add(_pattern(r.text[pos:e.start]))
            labelled[_pattern(e.text)].add(e.label)
            pos = e.end
        if pos < len(r.text):
            unlabelled.add(_pattern(r.text[pos:]))
    return labelled, unlabelled


def test_short_and_long_texts_label_the_same_surface_the_same_way() -> None:
    res = synthesize(SynthesisConfig(n_short=400, n_long=600, seed=11))
    short = [r for r in res.records if r.meta["synthetic"] == "short"]
    long = [r for r in res.records if r.meta["synthetic"] == "long"]
    s_lab, s_unl = _conventions(short)
    l_lab, l_unl = _conventions(long)
    shared = set(s_lab) & set(l_lab)
    assert len(shared) > 50  # the comparison covers real ground, directions included
    assert any(p.startswith(("往", "向")) for p in shared)
    for p in shared:
        assert s_lab[p] == l_lab[p], (p, s_lab[p], l_lab[p])
    assert not set(s_lab) & l_unl, "labelled in short texts, left unlabelled in long ones"
    assert not s_unl & set(l_lab), "left unlabelled in short texts, labelled in long ones"
    assert s_unl <= l_unl | {""}, s_unl - l_unl


def test_a_direction_before_a_distance_is_assist_in_short_texts_as_in_the_kb() -> None:
    res = synthesize(SynthesisConfig(n_short=180, n_long=0, seed=4))
    for r in res.records:
        for e in r.entities:
            if e.label == "distance":
                before = [x for x in r.entities if x.end == e.start]
                assert before and before[0].label == "assist", r.text
    kb = [(e.text, e.label) for e in AddressKB().annotate_text("和美苑往北000米")]
    assert kb == [("和美苑", "poi"), ("往北", "assist"), ("000米", "distance")]


def test_cli_keeps_bad_eval_and_example_lines_and_still_guards_their_texts(tmp_path: Path) -> None:
    args = ["synthesize", "--n-short", "36", "--n-long", "10", "--seed", "5"]
    first = tmp_path / "first.jsonl"
    assert CliRunner().invoke(cli, [*args, "--out", str(first)]).exit_code == 0
    t1, t2 = (r.text for r in read_records(first).records[:2])
    ev = tmp_path / "eval.jsonl"
    ev.write_text("\n".join([
        json.dumps({"text": "浙江省", "entities": []}, ensure_ascii=False),
        json.dumps({"text": t1, "entities": [{"start": 0, "end": 999, "label": "poi"}]}, ensure_ascii=False),
        '{"text": ' + json.dumps(t2, ensure_ascii=False) + ', "entities": [',  # broken JSON, text still readable
        '{"addr": 3, "entities": [}',  # nothing to recover
    ]) + "\n", encoding="utf-8")
    ex = tmp_path / "ex.jsonl"
    ex.write_text('{"text": "荷花小区", "entities": [{"start": 0, "end": 4, "label": "poi"}]}\n{oops\n', encoding="utf-8")
    out = tmp_path / "syn.jsonl"
    res = CliRunner().invoke(cli, [*args, "--out", str(out), "--eval", str(ev), "--examples", str(ex)])
    assert res.exit_code == 0, res.output
    assert not {t1, t2} & {r.text for r in read_records(out).records}  # malformed eval lines still guard
    assert f"eval {ev}: read 4 = used 1 + rejected 3" in res.output
    assert f"examples {ex}: read 2 = used 1 + rejected 1" in res.output
    assert "WARNING: 1 rejected --eval line(s) have no recoverable text" in res.output and f"{ev}:4" in res.output
    rows = [json.loads(line) for line in (tmp_path / "syn.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["line"], r.get("guard", "")[:14]) for r in rows] == [
        ("examples", 2, ""), ("eval", 2, "text recovered"), ("eval", 3, "text recovered"),
        ("eval", 4, "text NOT recov")]
    assert all(r["file"] and r["reason"] for r in rows)


@pytest.mark.parametrize(
    ("raw", "fmt", "text"),
    [('{"text": "文三路", "entities": 5}', "spans", "文三路"), ('{"address": "文三路", "entities": 1}', "mgeo", "文三路"),
     ('{"data": {"text": "文三路"}, "x": [}', "labelstudio", "文三路"), ('{"text": "文\\"三路", "ent', "spans", '文"三路'),
     ("文\tB-road\n三\tI-road\n路\tX", "conll", "文三路"), ("文三\ufffd路", "text", None), ('{"id": 1}', "spans", None)],
)
def test_recover_text(raw: str, fmt: str, text: str | None) -> None:
    assert recover_text(raw, fmt) == text
