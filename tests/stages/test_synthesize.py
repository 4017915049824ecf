"""The synthesize stage: every type covered, dedup, the eval guard, determinism, the CLI report."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.formats import read_records
from nerwheel.labels import ADDRESS_LABELS
from nerwheel.records import Entity, Record
from nerwheel.stages.synthesize import SynthesisConfig, coverage_table, synthesize

GENERATED = [lab for lab in ADDRESS_LABELS if lab != "detail"]


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
