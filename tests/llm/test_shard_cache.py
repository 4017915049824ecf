"""The LLM answer cache the shards share: keyed by the question only, so a re-run with another number of shards
asks nothing that any shard of an earlier run had answered; one object per answer on a folder or on S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import Reply, ScriptedServer, address_of, chat

from nerwheel.components.data import RECORDS_FILE
from nerwheel.components.steps import annotate, gather, shard
from nerwheel.llm.cache import ObjectCache, ResponseCache, open_cache

TEXTS = [f"浙江省杭州市西湖区文{i}路{i + 1}号" for i in range(7)]


def answer(n: int, body: dict[str, Any]) -> Reply:
    text = address_of(body)
    return chat(json.dumps({"entities": [{"text": text[:3], "label": "prov"}, {"text": text[3:6], "label": "city"}]},
                           ensure_ascii=False))


def sharded_run(traffic: Path, n: int, url: str, cache: str, tmp: Path) -> Path:
    """The no-production branch with ``n`` shards and the LLM teacher: plan, annotate each shard, gather."""
    plan_path = tmp / f"plan-{n}"
    items = shard.run(texts_uri=str(traffic), shards=n, plan_path=str(plan_path))
    parts = []
    for i, item in enumerate(items):
        out = tmp / f"ann-{n}-{i}"
        annotate.run(texts_uri=str(traffic), shard=item, seed_uri="", teacher="llm", llm_endpoint=url,
                     llm_model="scripted", llm_max_tokens=128, llm_cache_uri=cache, out_path=str(out),
                     report_path=str(out) + ".html")
        parts.append(str(out))
    out = tmp / f"gathered-{n}"
    gather.run(part_paths=parts, plan_path=str(plan_path), out_path=str(out), report_path=str(out) + ".html")
    return out


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_a_rerun_with_other_shards_asks_nothing_answered_before(scripted: ScriptedServer, tmp_path: Path,
                                                                where: str, request: pytest.FixtureRequest) -> None:
    traffic = tmp_path / "traffic.txt"
    traffic.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    cache = str(tmp_path / "llm-cache") if where == "folder" else f"{request.getfixturevalue('s3_bucket')}/llm-cache"
    scripted.reset(answer)
    first = sharded_run(traffic, 2, scripted.url, cache, tmp_path)
    assert sorted(address_of(b) for b in scripted.bodies) == sorted(TEXTS)  # each text asked once
    assert len(ObjectCache(cache)) == len(TEXTS)

    scripted.reset(answer)
    second = sharded_run(traffic, 3, scripted.url, cache, tmp_path)
    assert scripted.calls == 0, [address_of(b) for b in scripted.bodies]  # every text was on some shard before
    def labels(folder: Path) -> list[tuple[str, str, list]]:
        rows = [json.loads(line) for line in (folder / RECORDS_FILE).read_text(encoding="utf-8").splitlines()]
        return [(r["id"], r["text"], r["entities"]) for r in rows]

    assert labels(second) == labels(first)  # the same labels, now from the cache
    assert [t for _, t, _ in labels(second)] == TEXTS and all(e for _, _, e in labels(second))

    # a new text in the traffic is the only question of the next run
    traffic.write_text("\n".join([*TEXTS, "江苏省南京市鼓楼区中山路1号"]) + "\n", encoding="utf-8")
    scripted.reset(answer)
    sharded_run(traffic, 4, scripted.url, cache, tmp_path / "third")
    assert [address_of(b) for b in scripted.bodies] == ["江苏省南京市鼓楼区中山路1号"]


def test_object_cache_round_trip_and_open_cache_picks_the_backend(tmp_path: Path) -> None:
    cache = ObjectCache(str(tmp_path / "c"))
    assert cache.get("ab" * 32) is None and len(cache) == 0
    cache.put("ab" * 32, "m", {"messages": []}, {"choices": [{"message": {"content": "x"}}]})
    assert cache.get("ab" * 32) == {"choices": [{"message": {"content": "x"}}]}
    assert (tmp_path / "c" / "ab" / f"{'ab' * 32}.json").is_file() and len(cache) == 1
    assert isinstance(open_cache(tmp_path / "cache.sqlite"), ResponseCache)
    assert isinstance(open_cache(tmp_path / "folder"), ObjectCache)
    assert isinstance(open_cache("s3://bucket/llm-cache"), ObjectCache)
