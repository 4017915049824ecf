"""Pieces of the local runner that need no pipeline run: the progress filter.

The live-version lookup is one function for the local run and a cluster run: tests/components/test_production.py.
"""

from __future__ import annotations

import io

import pytest

pytest.importorskip("kfp")

from nerwheel.pipelines.local import _Progress  # noqa: E402


def test_progress_keeps_everything_in_the_log_and_echoes_task_lines() -> None:
    log, echo = io.StringIO(), io.StringIO()
    p = _Progress(log, echo)
    p.write("18:24:29.469 - INFO - Executing task \x1b[96m'annotate'\x1b[0m\n    {\"executor\": ")
    p.write("\"input\"}\n18:24:40.034 - INFO - Task \x1b[96m'annotate'\x1b[0m finished with status "
            "\x1b[92mSUCCESS\x1b[0m\n")
    assert echo.getvalue() == "Executing task 'annotate'\nTask 'annotate' finished with status SUCCESS\n"
    assert log.getvalue().count("\n") == 3 and '"executor"' in log.getvalue()
