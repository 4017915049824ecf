"""Pieces of the local runner that need no pipeline run: the progress filter.

The live-version lookup is one function for the local run and a cluster run: tests/components/test_production.py.
"""

from __future__ import annotations

import io
import logging

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


def test_progress_streams_each_tasks_own_progress_lines_under_its_name() -> None:
    """The epoch lines of train (nerwheel's log records) and, when forced, its bars reach the terminal, named by
    task; the executor's chatter does not."""
    log, echo = io.StringIO(), io.StringIO()
    p = _Progress(log, echo)
    p.write("23:26:09.305 - INFO - Executing task \x1b[96m'train'\x1b[0m\n23:26:09.305 - INFO - Streamed logs:\n")
    p.write("    [KFP Executor 2026-12-01 23:26:09,350 INFO]: Looking for component `train`\n")
    p.write("    2026-12-01 23:26:12,001 INFO nerwheel.stages.train: training tiny (crf head, 39 tags) on 560 "
            "windows\n    2026-12-01 23:26:20,5")  # a line arrives in pieces
    p.write("00 INFO nerwheel.model.loop: epoch 1: loss 1.2345 dev strict F1 0.41 (best)\n")
    p.write("    epoch 2/12:  50%|█████     | 9/18 [00:01<00:01,  6.1batch/s, loss=0.8]\r")
    p.write("    epoch 2/12: 100%|██████████| 18/18 [00:03<00:00,  6.0batch/s, loss=0.7]\n")
    p.write("    2026-12-01 23:26:30,000 WARNING nerwheel.stages.train: 3 of 900 training entities have a boundary\n")
    p.write("    2026-12-01 23:26:31,000 INFO httpx: HTTP Request: POST http://x\n")  # not nerwheel's: log only
    p.write("23:27:09.305 - INFO - Task \x1b[96m'train'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n")
    assert echo.getvalue().splitlines() == [
        "Executing task 'train'",
        "  train: training tiny (crf head, 39 tags) on 560 windows",
        "  train: epoch 1: loss 1.2345 dev strict F1 0.41 (best)",
        "  train: epoch 2/12:  50%|█████     | 9/18 [00:01<00:01,  6.1batch/s, loss=0.8]",
        "  train: epoch 2/12: 100%|██████████| 18/18 [00:03<00:00,  6.0batch/s, loss=0.7]",
        "  train: WARNING: 3 of 900 training entities have a boundary",
        "Task 'train' finished with status SUCCESS",
    ]
    assert "Looking for component" in log.getvalue() and "httpx" in log.getvalue()


def test_a_tasks_log_records_reach_the_echo_through_task_logging() -> None:
    """In a task the KFP executor owns the root logger (its '[KFP Executor ...]' format hides the logger name):
    task_logging gives nerwheel's records the format the echo recognises, and only once."""
    import subprocess
    import sys

    code = ("import logging, sys\n"
            "logging.basicConfig(stream=sys.stderr, format='[KFP Executor %(asctime)s %(levelname)s]: %(message)s')\n"
            "from nerwheel.components.steps import task_logging\n"
            "task_logging(); task_logging()\n"
            "logging.getLogger('nerwheel.model.loop').info('epoch 1: loss 2.5 dev strict F1 0.1 (best)')\n"
            "logging.getLogger('kfp').warning('executor chatter')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    log, echo = io.StringIO(), io.StringIO()
    p = _Progress(log, echo)
    p.write("00:00:00.000 - INFO - Executing task 'train'\n")
    p.write("".join(f"    {line}\n" for line in proc.stderr.splitlines()))
    assert echo.getvalue().splitlines() == ["Executing task 'train'",
                                            "  train: epoch 1: loss 2.5 dev strict F1 0.1 (best)"]
    assert proc.stderr.count("epoch 1") == 1  # not twice through the root's handler too


def test_a_shards_finish_line_survives_the_other_shard_leaving_kfps_logger_context() -> None:
    """kfp.local swaps the root logger's handlers and level per task, process-wide: the shard that finishes first
    restores what was there before, and the other shard's 'finished' line must still be written (it was dropped
    while the run held the root at WARNING with no handler of its own)."""
    from kfp.local.logging_utils import local_logger_context

    from nerwheel.pipelines.local import kfp_task_lines

    log, echo = io.StringIO(), io.StringIO()
    progress = _Progress(log, echo)
    with kfp_task_lines(progress):
        first, second = local_logger_context(), local_logger_context()
        first.__enter__()
        second.__enter__()  # both shards' threads are inside their task
        first.__exit__(None, None, None)  # shard 0 is done: the root gets back what the run set up
        logging.info("Task \x1b[96m'annotate'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m")  # shard 1
        second.__exit__(None, None, None)
        logging.info("Cleaned up workspace: /tmp/x")  # kfp.local's clean-up notice stays out
    assert echo.getvalue() == "Task 'annotate' finished with status SUCCESS\n"
    assert "Cleaned up" not in log.getvalue()


def test_a_failed_tasks_excerpt_is_its_own_traceback_not_the_logs_tail(tmp_path) -> None:
    from nerwheel.pipelines.local import _excerpt

    red, cyan, off = "\x1b[91m", "\x1b[96m", "\x1b[0m"
    log = tmp_path / "run.log"
    log.write_text("\n".join([
        f"12:00:00.000 - INFO - Executing task {cyan}'shard'{off}",
        "    Traceback (most recent call last):",
        "    nerwheel.storage.StorageNotFound: cannot read missing.txt: no such file",
        f"12:00:00.100 - ERROR - Task {cyan}'shard'{off} finished with status {red}FAILURE{off}",
        f"12:00:00.101 - INFO - Executing task {cyan}'production'{off}",  # an independent task runs on after it
        *[f"    its line {i}" for i in range(60)],
        "12:00:00.300 - INFO - Skipping task train: upstream task(s) ['shard'] failed.",
    ]), encoding="utf-8")
    # kfp.local's own message, colour codes and all (pipeline_orchestrator: the task chain is coloured)
    error = f"Pipeline \x1b[95m'p'\x1b[0m finished with status {red}FAILURE{off}. Inner task failed: {cyan}'shard'{off}."
    excerpt = _excerpt(log, error)
    assert "missing.txt: no such file" in excerpt and "its line" not in excerpt
    assert excerpt.splitlines()[-1].endswith("Task 'shard' finished with status FAILURE")
    # no task named: the log's last lines
    assert _excerpt(log, "something else", lines=2).splitlines()[-1].endswith("upstream task(s) ['shard'] failed.")
