"""Integration: the annotator against a real llama.cpp server (xllamacpp) with a tiny model (SmolLM2-135M).

The model labels Chinese addresses badly and its JSON gets cut off at
``max_tokens``; that is the point. The annotator must never crash, never lose a
record, reject what is wrong with reasons, and its counts must reconcile. A
cut-off answer fails its record ("truncated at max_tokens ..."): it is never a
labelled record with entities missing. Nothing here checks label quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nerwheel.labels import ADDRESS_LABELS
from nerwheel.llm.cache import ResponseCache
from nerwheel.llm.config import LLMConfig
from nerwheel.llm.teacher import LLMTeacher
from nerwheel.records import Entity, Record
from nerwheel.stages.annotate import annotate

pytestmark = pytest.mark.server

TEXTS = ["浙江省杭州市西湖区文三路000号", "余杭区良渚镇杜甫村00组", "文三路与学院路交叉口附近"]
# few labels and one short example keep the prompt short (about 450 tokens): CPU prompt evaluation
# dominates the test's time
LABELS = ("prov", "city", "district", "road", "roadno")
SEED = [Record("s1", "温州市平阳县", (Entity(0, 3, "city", "温州市"), Entity(3, 6, "district", "平阳县")))]


def _check(result: object, records: list[Record], name: str) -> None:
    s = result.stats  # type: ignore[attr-defined]
    assert s["records_in"] == len(records) == s["labelled"] + s["failed"]
    t = s["teachers"][name]
    assert t["returned"] == t["accepted"] + t["rejected"]
    ids = {r.id for r in result.records} | {f.record.id for f in result.failed}  # type: ignore[attr-defined]
    assert ids == {r.id for r in records}  # nothing lost
    for r in result.records:  # type: ignore[attr-defined]
        for e in r.entities:
            assert r.text[e.start:e.end] == e.text and e.label in ADDRESS_LABELS
        facts = r.meta["annotate"]["teachers"][name]
        assert facts["parse"] != "salvaged"  # a labelled record never rests on a cut-off answer
    for f in result.failed:  # type: ignore[attr-defined]
        reason = f.reasons[name]
        assert reason
        if f.details.get(name, {}).get("finish_reason") == "length":
            assert reason.startswith("truncated at max_tokens (40): ")
    for rej in result.entity_rejects:  # type: ignore[attr-defined]
        assert rej["code"] and rej["reason"]


@pytest.mark.parametrize("structured", ["json_schema", "off"])
def test_tiny_real_llm_never_crashes_and_loses_nothing(llama_url: str, tmp_path: Path, structured: str) -> None:
    cfg = LLMConfig(base_url=llama_url, model="smollm2", max_tokens=40, max_in_flight=2, read_timeout=600,
                    max_retries=1, structured=structured)
    records = [Record(str(i), t) for i, t in enumerate(TEXTS)]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        teacher = LLMTeacher(cfg, examples=SEED, per_type=1, cache=cache, labels=LABELS)
        result = annotate(records, [teacher])
        _check(result, records, "llm:smollm2")
        usage = result.stats["teachers"]["llm:smollm2"]["usage"]
        assert usage["requests"] == len(records) and usage["completion_tokens"] > 0
        assert usage["truncated"] >= 1  # 40 tokens cannot hold a labelled address: the tiny model gets cut off
        # ...and a cut-off answer fails its record, with the reason, instead of passing as a complete labelling
        cut = [f for f in result.failed if f.reasons["llm:smollm2"].startswith("truncated at max_tokens (40)")]
        assert len(cut) == usage["truncated"]
        salvaged = [r for r in result.entity_rejects if r["code"] == "salvaged"]
        assert len(salvaged) == sum(len(f.to_dict().get("salvaged", {}).get("llm:smollm2", [])) for f in cut)
        # a rerun replays the usable answers from the cache, with the same outcome, and asks the failed
        # records again (an unusable answer is never cached)
        again = annotate(records, [LLMTeacher(cfg, examples=SEED, per_type=1, cache=cache, labels=LABELS)])
        usage_again = again.stats["teachers"]["llm:smollm2"]["usage"]
        assert usage_again["cache_hits"] == len(result.records)
        assert usage_again["http_calls"] >= len(result.failed)
        labelled = {r.id: r.entities for r in result.records}
        assert {r.id: r.entities for r in again.records if r.id in labelled} == labelled
        assert all(r.meta["annotate"]["teachers"]["llm:smollm2"]["cached"] for r in again.records if r.id in labelled)
        assert not any(f.details["llm:smollm2"]["cached"] for f in again.failed if "llm:smollm2" in f.details)
