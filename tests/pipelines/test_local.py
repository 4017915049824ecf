"""Pieces of the local runner that need no pipeline run: the live-version lookup and the progress filter."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("kfp")

from nerwheel.pipelines.local import _Progress  # noqa: E402


def test_a_later_local_run_is_gated_against_the_live_version(tmp_path: Path) -> None:
    pytest.importorskip("tritonclient")
    from nerwheel.pipelines.local import live_version_uri
    from nerwheel.serving.config import cpu_model_config, with_versions
    from nerwheel.serving.repository import ModelRepository

    repo = tmp_path / "triton-repository"
    assert live_version_uri(str(repo), "nerwheel") is None  # first run: nothing to compare against
    for v in (1, 2, 3):
        (repo / "nerwheel" / str(v)).mkdir(parents=True)
    ModelRepository(str(repo)).write_config("nerwheel", with_versions(cpu_model_config("nerwheel", 2), [2]))
    assert live_version_uri(str(repo), "nerwheel") == str(repo / "nerwheel" / "2")  # live, not newest


def test_progress_keeps_everything_in_the_log_and_echoes_task_lines() -> None:
    log, echo = io.StringIO(), io.StringIO()
    p = _Progress(log, echo)
    p.write("18:24:29.469 - INFO - Executing task \x1b[96m'annotate'\x1b[0m\n    {\"executor\": ")
    p.write("\"input\"}\n18:24:40.034 - INFO - Task \x1b[96m'annotate'\x1b[0m finished with status "
            "\x1b[92mSUCCESS\x1b[0m\n")
    assert echo.getvalue() == "Executing task 'annotate'\nTask 'annotate' finished with status SUCCESS\n"
    assert log.getvalue().count("\n") == 3 and '"executor"' in log.getvalue()
