"""One error handler for every command: expected failures are one line naming the fix, bugs keep their traceback.

Stages speak in config fields; the CLI adds the flag and the KFP step the pipeline parameter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.errors import ConfigError, NerwheelError


def _spans(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_an_expected_failure_is_one_line_and_exit_1(tmp_path: Path) -> None:
    data = _spans(tmp_path / "d.jsonl", [{"text": "杭州市", "entities": []}])
    res = CliRunner().invoke(cli, ["data", "split", str(data), "--out", str(tmp_path / "s"), "--ratio", "8:x"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "Error: invalid ratio '8:x'; write it like 8:2 or 80:10:10" in res.output
    assert "Traceback" not in res.output


def test_a_bare_value_error_from_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: a slip inside nerwheel (a bare ValueError) must not pass for a message about the data."""
    import nerwheel.stages.stats

    def broken(records):  # noqa: ANN001, ANN202
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(nerwheel.stages.stats, "describe", broken)
    data = _spans(tmp_path / "d.jsonl", [{"text": "杭州市", "entities": []}])
    res = CliRunner().invoke(cli, ["data", "stats", str(data)])
    assert res.exit_code == 1
    assert type(res.exception) is ValueError and str(res.exception) == "a bug, not bad input"
    assert "Error: a bug" not in res.output


def test_a_bug_prints_a_traceback_from_the_real_command(tmp_path: Path) -> None:
    code = ("import nerwheel.stages.stats as s\n"
            "def broken(records): raise ValueError('a bug, not bad input')\n"
            "s.describe = broken\n"
            "from nerwheel.cli import main\nmain()\n")
    data = _spans(tmp_path / "d.jsonl", [{"text": "杭州市", "entities": []}])
    proc = subprocess.run([sys.executable, "-c", code, "data", "stats", str(data)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ValueError: a bug, not bad input" in proc.stderr


def test_every_purposeful_error_is_a_nerwheel_error() -> None:
    from nerwheel.formats import FormatError
    from nerwheel.model.config import ConfigError as TrainConfigError
    from nerwheel.pipelines.params import ParamError
    from nerwheel.serving.client import ServingError
    from nerwheel.serving.deploy import DeployError
    from nerwheel.serving.repository import RepositoryError
    from nerwheel.stages.gate import GateError
    from nerwheel.stages.merge import MergeError
    from nerwheel.stages.train import TrainDataError
    from nerwheel.storage import StorageError

    assert TrainConfigError is ConfigError
    for cls in (FormatError, ParamError, ServingError, DeployError, RepositoryError, GateError, MergeError,
                TrainDataError, StorageError):
        assert issubclass(cls, NerwheelError), cls
    assert issubclass(MergeError, ValueError) and issubclass(StorageError, RuntimeError)  # callers' old bases kept


def test_the_cli_adds_the_flag_that_sets_the_config_field_a_stage_names(tmp_path: Path) -> None:
    kb = _spans(tmp_path / "kb.jsonl", [{"text": "上海市", "entities": [{"start": 0, "end": 3, "label": "city"}]}])
    res = CliRunner().invoke(cli, ["merge", "--extra", f"rules={kb}", "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1
    assert "kind 'rules' is not in the precedence (gold,kb,llm,synthetic,model); add it to precedence " \
           "(CLI: --precedence)" in res.output
    res = CliRunner().invoke(cli, ["merge", "--extra", str(kb), "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1
    assert "has no source; give the input a kind (SourceInput.kind: kb, llm, model, ...) (CLI: --extra KIND=FILE)" \
        in res.output


def test_the_pipeline_step_adds_the_parameter_that_sets_the_config_field(tmp_path: Path) -> None:
    from nerwheel.components.steps import merge

    for name in ("a", "s"):
        folder = tmp_path / name
        folder.mkdir()
        _spans(folder / "records.jsonl", [{"text": "上海市", "entities": [{"start": 0, "end": 3, "label": "city"}]}])
    with pytest.raises(NerwheelError, match=r"input kind 'kb' is not in the precedence \(gold,synthetic\); "
                                            r"add it to precedence \(pipeline: precedence\)"):
        merge.run(seed_uri="", annotated_path=str(tmp_path / "a"), synthetic_path=str(tmp_path / "s"), teacher="kb",
                  precedence="gold,synthetic", eval_uri="", out_path=str(tmp_path / "m"),
                  report_path=str(tmp_path / "m.html"))
