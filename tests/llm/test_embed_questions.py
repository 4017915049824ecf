"""The embedding task's LLM question writer: versioned prompt, JSON answers, checks, cache and resume.

Misbehaving answers come from the scripted server (fault injection); one test
runs the real llama.cpp server with the tiny SmolLM2 model end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from llm_helpers import Reply, ScriptedServer, chat

from nerwheel.llm.cache import ResponseCache
from nerwheel.llm.config import LLMConfig
from nerwheel.tasks.embed.beir import RetrievalData, read_beir
from nerwheel.tasks.embed.pairs import PairsConfig, make_pairs
from nerwheel.tasks.embed.questions import QuestionWriter

PASSAGES = {
    "d1": "自行车的链条需要定期清洁和上油。骑行五百公里左右应该检查一次链条。",
    "d2": "头盔在摔车时能保护头部。头盔受过一次严重撞击后就应该更换。",
    "d3": "夜间骑行必须打开前灯和尾灯。反光背心能让司机更早看到骑行者。",
    "d4": "电池不要在零度以下的环境里充电。长期不用时电池要保持一半左右的电量。",
}


def _cfg(url: str, **kw: Any) -> LLMConfig:
    return LLMConfig(**{"base_url": url, "model": "scripted", "backoff_base": 0.01, "backoff_max": 0.02,
                        "max_retries": 1, "read_timeout": 5.0, **kw})


def _corpus() -> RetrievalData:
    return RetrievalData(corpus=dict(PASSAGES), corpus_meta={c: {"split": "train" if c != "d4" else "val",
                                                                  "_line": i + 1} for i, c in enumerate(PASSAGES)},
                         source="corpus.jsonl")


def _passage_of(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"].rsplit("Passage:\n", 1)[1].strip()


ANSWERS = {
    PASSAGES["d1"]: '{"questions": ["自行车链条多久需要上一次油？", "自行车的链条需要定期清洁和上油", 7]}',  # copy, not str
    PASSAGES["d2"]: '```json\n{"questions": ["头盔被撞过还能用吗？", "自行车链条多久需要上一次油？"]}\n```',  # duplicate
    PASSAGES["d3"]: 'Sorry, I cannot help with that.',  # no JSON: the passage fails
    PASSAGES["d4"]: '{"questions": ["冬天可以给电动车电池充电吗？", "长期不骑电池怎么保存',  # cut off mid-question
}


def test_bad_answers_are_counted_and_rejected_with_reasons(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.reset(lambda n, body: chat(ANSWERS[_passage_of(body)],
                                        finish="length" if "电池" in _passage_of(body) else "stop"))
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        writer = QuestionWriter(_cfg(scripted.url), k=3, cache=cache)
        result = make_pairs(_corpus(), PairsConfig(teacher="llm", queries_per_passage=3), writer=writer)
    r = result.report
    assert r.questions == {"returned": 7, "accepted": 3,
                           "rejected": {"copy": 1, "malformed": 1, "duplicate": 1, "truncated": 1}}
    assert r.passages == {"read": 4, "with_queries": 3, "without": {"llm-failed": 1}}
    assert set(result.data.queries.values()) == {"自行车链条多久需要上一次油？", "头盔被撞过还能用吗？",
                                                  "冬天可以给电动车电池充电吗？"}
    assert r.queries == {"train": 2, "val": 1}  # a query's split is its passage's
    kinds = sorted(x.kind for x in result.rejects)
    assert kinds == ["copy", "duplicate", "llm-failed", "malformed", "truncated"]
    failed = next(x for x in result.rejects if x.kind == "llm-failed")
    assert failed.line == 3 and "passage d3" in failed.reason and "unusable answer" in failed.reason
    assert r.llm["requests"] == 4 and r.llm["truncated"] == 1
    # every request carried the versioned prompt, the passage and the schema
    body = scripted.bodies[0]
    assert "Write 3 different questions" in body["messages"][0]["content"]
    assert body["response_format"]["json_schema"]["schema"]["properties"]["questions"]["maxItems"] == 3


def test_rerun_is_answered_from_the_cache_and_retries_transient_errors(scripted: ScriptedServer,
                                                                        tmp_path: Path) -> None:
    def script(n: int, body: dict[str, Any]) -> Reply:
        if n == 1:
            return Reply(503, {"error": "busy"})  # retried
        return chat(json.dumps({"questions": [f"{_passage_of(body)[:6]}是什么意思？"]}, ensure_ascii=False))

    scripted.reset(script)
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        first = make_pairs(_corpus(), PairsConfig(teacher="llm", queries_per_passage=1),
                           writer=QuestionWriter(_cfg(scripted.url), k=1, cache=cache))
        calls = scripted.calls
        assert calls == 5 and first.report.llm["retries"] == 1
        again = make_pairs(_corpus(), PairsConfig(teacher="llm", queries_per_passage=1),
                           writer=QuestionWriter(_cfg(scripted.url), k=1, cache=cache))
    assert scripted.calls == calls  # a resumed or repeated run pays nothing twice
    assert again.report.llm["cache_hits"] == 4 and again.data.queries == first.data.queries


def test_cli_pairs_with_the_llm_teacher(scripted: ScriptedServer, tmp_path: Path) -> None:
    from nerwheel.cli import cli

    scripted.reset(lambda n, body: chat(json.dumps({"questions": [f"关于{_passage_of(body)[:5]}的问题？"]},
                                                   ensure_ascii=False)))
    split = tmp_path / "split"
    split.mkdir()
    rows = [{"_id": c, "text": t, "split": "train" if c != "d4" else "val"} for c, t in PASSAGES.items()]
    (split / "corpus.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                                        encoding="utf-8")
    res = CliRunner().invoke(cli, ["embed", "pairs", str(split), "--out", str(tmp_path / "p"), "--teacher", "llm",
                                   "--llm-url", scripted.url, "--llm-model", "scripted", "--queries-per-passage", "1"])
    assert res.exit_code == 0, res.output
    data = read_beir(tmp_path / "p")
    assert len(data.queries) == 4 and (tmp_path / "p" / "llm-cache.sqlite").is_file()
    assert all(m["teacher"] == "llm:scripted" for m in data.query_meta.values())


def test_tiny_real_llm_writes_questions_end_to_end(llama_url: str, tmp_path: Path) -> None:
    """SmolLM2-135M is a tiny English model: what it writes is no measure of quality, but every answer must be
    accepted or rejected with a reason, and a rerun must come from the cache."""
    corpus = RetrievalData(
        corpus={"e1": "The shop opens at nine in the morning. Repairs are usually ready the next day.",
                "e2": "Clean the bicycle frame with mild soap and water. Dry the chain after washing it."},
        corpus_meta={"e1": {"split": "train"}, "e2": {"split": "val"}}, source="corpus.jsonl")
    cfg = LLMConfig(base_url=llama_url, model="smollm2", max_tokens=96, max_in_flight=2, read_timeout=600,
                    max_retries=1)
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        writer = QuestionWriter(cfg, k=2, cache=cache)
        try:
            result = make_pairs(corpus, PairsConfig(teacher="llm", queries_per_passage=2), writer=writer)
        except ValueError as e:  # every question rejected: still a clear, counted outcome
            assert "no pairs" in str(e)
            return
        r = result.report
        r.check()
        assert r.llm["requests"] == 2 and r.llm["completion_tokens"] > 0
        assert r.questions["returned"] == r.questions["accepted"] + sum(r.questions["rejected"].values())
        again = make_pairs(corpus, PairsConfig(teacher="llm", queries_per_passage=2),
                           writer=QuestionWriter(cfg, k=2, cache=cache))
        assert again.report.llm["cache_hits"] == 2 and again.data.queries == result.data.queries
