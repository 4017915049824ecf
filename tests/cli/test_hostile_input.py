"""Hostile lines in an otherwise good file: every command rejects those lines and finishes the others.

A JSON value nested 100,000 levels deep used to raise RecursionError (a traceback in
validate/convert/stats/train, an aborted annotate); a lone UTF-16 surrogate escape used to
pass the reader and then make every writer abort the whole output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.formats import read_records

GOOD = {"text": "浙江省杭州市", "entities": [{"start": 0, "end": 3, "label": "prov"}, {"start": 3, "end": 6, "label": "city"}]}
DEEP = b'{"text": "abc", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
SURROGATE = b'{"text": "\\u6d59\\ud800\\u6c5f", "entities": []}'


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    good = json.dumps(GOOD, ensure_ascii=False).encode()
    p = tmp_path / "hostile.jsonl"
    p.write_bytes(b"\n".join([good, DEEP, SURROGATE, b"[" * 100_000, good]) + b"\n")
    return p


def test_data_commands_reject_the_hostile_lines_and_write_the_rest(hostile: Path, tmp_path: Path) -> None:
    out = run("data", "validate", str(hostile), "--output", str(tmp_path / "ok.jsonl"),
              "--rejects", str(tmp_path / "rej.jsonl"))
    assert "read 5 = accepted 2 + rejected 3" in out and "rejected by kind: json 3" in out
    assert len(read_records(tmp_path / "ok.jsonl").records) == 2
    out = run("data", "convert", str(hostile), str(tmp_path / "out.conll"), "--to", "conll")
    assert "read 5 = written 2 + rejected 3" in out
    out = run("data", "stats", str(hostile))
    assert "read 5 = accepted 2 + rejected 3" in out


def test_annotate_and_the_eval_guard_survive_hostile_lines(hostile: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["annotate", str(hostile), "--teacher", "kb", "--out", str(tmp_path / "a.jsonl")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(read_records(tmp_path / "a.jsonl").records) == 2
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [2, 3, 4]
    # synthesize reads --eval rejects again to guard their texts: that second look must not recurse either
    res = CliRunner().invoke(cli, ["synthesize", "--out", str(tmp_path / "s.jsonl"), "--n-short", "2", "--n-long", "2",
                                   "--eval", str(hostile)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "3 rejected --eval line(s) have no recoverable text" in res.output


def test_train_inputs_reject_the_hostile_lines(hostile: Path) -> None:
    from nerwheel.model.config import TrainConfig
    from nerwheel.stages.train import resolve_inputs

    inputs = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": str(hostile)}}))
    assert inputs.fingerprints["train_file"]["rejected"] == 3
    assert [r.line for r in inputs.rejects] == [2, 3, 4]
