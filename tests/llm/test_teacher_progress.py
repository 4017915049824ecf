"""The LLM teacher's progress bar: seconds per text, so it moves as each answer comes back, in any order."""

from __future__ import annotations

import asyncio

import pytest

from nerwheel import progress
from nerwheel.llm.teacher import _gather_with_progress


@pytest.fixture
def forced():
    progress.set_mode(True)
    yield
    progress.set_mode(None)


def test_bar_counts_answers_as_they_arrive_and_results_keep_input_order(forced, capsys) -> None:
    async def answer(i: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return i

    got = asyncio.run(_gather_with_progress([answer(0, 0.03), answer(1, 0.0), answer(2, 0.01)], desc="llm:qwen"))
    assert got == [0, 1, 2]
    err = capsys.readouterr().err
    assert "llm:qwen: 100%" in err and "3/3" in err and "text/s" in err


def test_a_failed_answer_still_moves_the_bar(forced, capsys) -> None:
    async def boom() -> int:
        raise RuntimeError("request failed")

    with pytest.raises(RuntimeError):
        asyncio.run(_gather_with_progress([boom()], desc="llm:x"))
    assert "1/1" in capsys.readouterr().err
