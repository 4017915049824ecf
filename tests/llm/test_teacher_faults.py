"""The LLM teacher and the annotate stage against misbehaving answers: rejects with reasons, nothing lost.

Also: a run killed midway and resumed asks the server no question twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from llm_helpers import Reply, ScriptedServer, address_of, chat

from nerwheel.cli import cli
from nerwheel.formats import read_records
from nerwheel.llm.cache import ResponseCache
from nerwheel.llm.config import LLMConfig
from nerwheel.llm.teacher import LLMTeacher
from nerwheel.records import Record
from nerwheel.stages.annotate import KBTeacher, annotate

TEXTS = ["浙江省杭州市西湖区文三路000号", "余杭区良渚镇杜甫村00组", "城厢街道金城路商会大厦A座000楼",
         "文三路与学院路交叉口附近", "宁波市余姚市阳明街道"]


def _cfg(url: str, **kw: Any) -> LLMConfig:
    return LLMConfig(**{"base_url": url, "model": "scripted", "backoff_base": 0.01, "backoff_max": 0.02,
                        "max_retries": 1, "read_timeout": 5.0, **kw})


def _answer(text: str) -> str:
    """One answer per address, each broken in its own way."""
    answers = {
        TEXTS[0]: '{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭州市", "label": "城市"}, '
                  '{"text": "上海市", "label": "city"}, {"text": "西湖区", "label": "metropolis"}]}',
        TEXTS[1]: 'Sure! ```json\n{"entities": [{"text": "余杭区", "label": "district"}, {"text": "良渚镇", "lab',
        TEXTS[2]: "I am not able to do that.",
        TEXTS[3]: '[{"text": "文三路", "label": "road"}, {"text": "文三路", "label": "road"}, '
                  '{"text": "交叉口", "label": "intersection"}]',
        TEXTS[4]: '{"entities": [{"text": "宁波市", "label": "city"}, {"text": "余姚市", "label": "city"}]}',
    }
    return answers[text]


def test_bad_answers_are_rejected_with_reasons_and_counts_reconcile(scripted: ScriptedServer) -> None:
    scripted.reset(lambda n, body: chat(_answer(address_of(body)), finish="length" if "良渚" in address_of(body)
                                        else "stop"))
    records = [Record(str(i), t) for i, t in enumerate(TEXTS)]
    teacher = LLMTeacher(_cfg(scripted.url), corrector=KBTeacher().kb)
    result = annotate(records, [teacher])

    s = result.stats
    assert (s["records_in"], s["labelled"], s["failed"]) == (5, 3, 2)
    t = s["teachers"]["llm:scripted"]
    assert t["returned"] == t["accepted"] + t["rejected"]
    assert t["reject_codes"] == {"not_in_text": 1, "unknown_label": 1, "truncated": 1, "salvaged": 1, "too_many": 1}
    by_id = {r.id: r for r in result.records}
    assert [(e.text, e.label) for e in by_id["0"].entities] == [("浙江省", "prov"), ("杭州市", "city")]
    # the KB proves 余姚市 under 宁波市 is a county-level city (district), not a city
    assert [(e.text, e.label) for e in by_id["4"].entities] == [("宁波市", "city"), ("余姚市", "district")]
    fixes = by_id["4"].meta["annotate"]["teachers"]["llm:scripted"]["kb_corrections"]
    assert fixes[0]["old"] == "city" and fixes[0]["new"] == "district"
    failed = {f.record.id: f for f in result.failed}
    assert "unusable answer" in failed["2"].reasons["llm:scripted"]
    # cut off at max_tokens: a failed record, not a labelled one missing what the model never wrote
    assert failed["1"].reasons["llm:scripted"] == "truncated at max_tokens (1024): 1 complete entities salvaged"
    row = failed["1"].to_dict()
    assert row["salvaged"]["llm:scripted"] == [{"start": 0, "end": 3, "label": "district", "text": "余杭区",
                                                "source": "llm:scripted"}]
    assert row["teachers"]["llm:scripted"]["finish_reason"] == "length"
    reasons = {r["code"]: r["reason"] for r in result.entity_rejects}
    assert "'上海市' is not a substring" in reasons["not_in_text"]
    assert "unknown label 'metropolis'" in reasons["unknown_label"]
    assert "add it to the label map" in reasons["unknown_label"]
    assert "occurs 1 time(s)" in reasons["too_many"]
    assert "record failed for this teacher" in reasons["salvaged"]
    assert len(result.rejects()) == 2 + t["rejected"]


@pytest.mark.parametrize(
    ("content", "finish", "outcome"),
    [
        ('{"entities": [{"text": "浙江省", "label": "prov"}]}', "stop", "labelled"),
        # complete JSON, then prose cut at max_tokens: the entity list itself is whole
        ('{"entities": [{"text": "浙江省", "label": "prov"}]} Explanation: the first', "length", "labelled"),
        ('{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭', "length",
         "truncated at max_tokens (1024): 1 complete entities salvaged"),
        # the array never closes although the server says it stopped: an unparseable tail all the same
        ('{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭州市", "label": "city"}', "stop",
         "truncated (the JSON breaks off before its end): 2 complete entities salvaged"),
        ('{"entities": [{"te', "length", "truncated at max_tokens (1024): 0 complete entities salvaged"),
        ("I would label", "length", "truncated at max_tokens (1024): 0 complete entities salvaged; unusable answer"),
    ],
)
def test_cut_off_answers_fail_the_record(scripted: ScriptedServer, content: str, finish: str, outcome: str) -> None:
    scripted.reset(lambda n, body: chat(content, finish=finish))
    result = annotate([Record("r", TEXTS[0])], [LLMTeacher(_cfg(scripted.url))])
    t = result.stats["teachers"]["llm:scripted"]
    assert t["returned"] == t["accepted"] + t["rejected"]
    if outcome == "labelled":
        assert [(e.text, e.label) for e in result.records[0].entities] == [("浙江省", "prov")]
    else:
        assert not result.records and result.failed[0].reasons["llm:scripted"].startswith(outcome)
        assert t["accepted"] == 0


def test_with_two_teachers_a_cut_off_answer_does_not_vote(scripted: ScriptedServer) -> None:
    scripted.reset(lambda n, body: chat('{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭', finish="length"))
    rec = Record("r", TEXTS[0])
    result = annotate([rec], [KBTeacher(), LLMTeacher(_cfg(scripted.url))])
    assert result.stats["labelled"] == 1 and result.stats["teachers"]["llm:scripted"]["failed"] == 1
    labelled = result.records[0]
    assert all(e.source == "kb" and e.score == 1.0 for e in labelled.entities)  # the KB alone, a full vote
    assert "truncated at max_tokens" in labelled.meta["annotate"]["errors"]["llm:scripted"]


def test_failed_requests_fail_records_not_the_run(scripted: ScriptedServer) -> None:
    scripted.reset(lambda n, body: Reply(503, {"error": "overloaded"}) if "良渚" in address_of(body)
                   else chat('{"entities": []}'))
    records = [Record(str(i), t) for i, t in enumerate(TEXTS)]
    result = annotate(records, [LLMTeacher(_cfg(scripted.url))])
    assert (result.stats["labelled"], result.stats["failed"]) == (4, 1)
    assert "HTTP 503" in result.failed[0].reasons["llm:scripted"]


def test_two_teachers_vote(scripted: ScriptedServer) -> None:
    scripted.reset(lambda n, body: chat('{"entities": [{"text": "浙江省", "label": "prov"}, '
                                        '{"text": "文三路000号", "label": "road"}]}'))
    rec = Record("r", TEXTS[0])
    result = annotate([rec], [KBTeacher(), LLMTeacher(_cfg(scripted.url))], min_votes=1)
    ents = {(e.text, e.label): (e.source, e.score) for e in result.records[0].entities}
    assert ents[("浙江省", "prov")] == ("kb+llm:scripted", 1.0)
    assert ents[("杭州市", "city")] == ("kb", 0.5)
    # the LLM's 文三路000号 overlaps the KB's road + roadno: equal votes, the longer span wins
    assert ("文三路000号", "road") in ents and ("文三路", "road") not in ents
    meta = result.records[0].meta["annotate"]
    assert 0 < meta["agreement"] < 1 and any(v["teachers"] == ["kb", "llm:scripted"] for v in meta["votes"])
    majority = annotate([rec], [KBTeacher(), LLMTeacher(_cfg(scripted.url))])  # default: both must agree
    assert [(e.text, e.label) for e in majority.records[0].entities] == [("浙江省", "prov")]


def test_pos_mode_labels_sit_under_the_prefix_beside_existing_entities(scripted: ScriptedServer) -> None:
    scripted.reset(lambda n, body: chat('{"tokens": [{"text": "文三路", "pos": "ns"}, {"text": "000", "pos": "m"}, '
                                        '{"text": "号", "pos": "q"}, {"text": "号", "pos": "q"}]}'))
    gold = Record("g", "文三路000号").with_entities([])
    result = annotate([gold], [LLMTeacher(_cfg(scripted.url), mode="pos")], mode="pos")
    labels = [e.label for e in result.records[0].entities]
    assert labels == ["pos:ns", "pos:m", "pos:q"]
    assert result.stats["teachers"]["llm:scripted"]["reject_codes"] == {"not_in_text": 1}


def _run_cli(url: str, inp: Path, out: Path, cache: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from nerwheel.cli import main; main()", "annotate", str(inp), "--out", str(out), "--llm-url", url,
           "--llm-model", "scripted", "--cache", str(cache), "--concurrency", "1", "--no-kb-correct",
           "--retries", "0", "--timeout", "60"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_killed_run_resumes_without_asking_twice(scripted: ScriptedServer, tmp_path: Path) -> None:
    texts = [f"杭州市西湖区文{i}路00号" for i in range(8)]
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    hang_after = 3

    def script(n: int, body: dict[str, Any]) -> Reply:
        text = address_of(body)
        reply = chat(json.dumps({"entities": [{"text": text[:3], "label": "city"}]}, ensure_ascii=False))
        if n > hang_after:
            reply.delay = 30  # the 4th question hangs: the run is killed while waiting for it
        return reply

    scripted.reset(script)
    proc = _run_cli(scripted.url, inp, out, cache)
    deadline = time.monotonic() + 60
    while scripted.calls <= hang_after and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted.calls == hang_after + 1, proc.stderr.read().decode() if proc.poll() is not None else "timeout"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    with ResponseCache(cache) as c:
        assert len(c) == hang_after  # every answer that arrived was stored at once

    scripted.reset(lambda n, body: chat(json.dumps({"entities": [{"text": address_of(body)[:3], "label": "city"}]},
                                                   ensure_ascii=False)))
    proc = _run_cli(scripted.url, inp, out, cache)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    asked_again = [address_of(b) for b in scripted.bodies]
    assert len(asked_again) == len(texts) - hang_after  # only the questions never answered
    assert set(asked_again).isdisjoint(texts[:hang_after])
    assert len(read_records(out).records) == len(texts)


def test_llm_labels_that_break_the_hierarchy_are_dropped_with_a_reason(scripted: ScriptedServer) -> None:
    scripted.reset(lambda n, body: chat('{"entities": [{"text": "浙江省", "label": "prov"}, '
                                        '{"text": "广州市", "label": "city"}, {"text": "西湖区", "label": "district"}]}'))
    result = annotate([Record("r", "浙江省广州市西湖区")], [LLMTeacher(_cfg(scripted.url), corrector=KBTeacher().kb)])
    assert [(e.text, e.label) for e in result.records[0].entities] == [("浙江省", "prov"), ("西湖区", "district")]
    (row,) = result.entity_rejects
    assert (row["code"], row["text"], row["label"]) == ("hierarchy", "广州市", "city")
    assert "is not under prov '浙江省'" in row["reason"]
    t = result.stats["teachers"]["llm:scripted"]
    assert (t["returned"], t["accepted"], t["rejected"]) == (3, 2, 1)


def test_cli_label_map_labels_and_overlap_policy(scripted: ScriptedServer, tmp_path: Path) -> None:
    answer = {"entities": [{"text": "文三路", "label": "街道名"}, {"text": "000号", "label": "门牌"},
                           {"text": "华星", "label": "poi"}, {"text": "华星大厦", "label": "poi"}]}
    scripted.reset(lambda n, body: chat(json.dumps(answer, ensure_ascii=False)))
    inp = tmp_path / "in.txt"
    inp.write_text("文三路000号华星大厦\n", encoding="utf-8")
    lm = tmp_path / "map.json"
    lm.write_text('{"街道名": "road"}', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli, [
        "annotate", str(inp), "--out", str(out), "--llm-url", scripted.url, "--llm-model", "scripted",
        "--label-map", str(lm), "--labels", "road,roadno,poi", "--overlaps", "reject", "--no-kb-correct",
        "--cache", str(tmp_path / "c.sqlite"), "--retries", "0"])
    assert res.exit_code == 0, res.output
    assert '"label": {"type": "string", "enum": ["road", "roadno", "poi"]}' in json.dumps(scripted.bodies[0],
                                                                                        ensure_ascii=False)
    assert [(e.text, e.label) for e in read_records(out).records[0].entities] == [("文三路", "road")]
    rows = {r["text"]: r for r in map(json.loads, (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines())}
    assert rows["000号"]["code"] == "unknown_label"
    assert "add it to the label map (--label-map FILE holding {\"门牌\": \"<label>\"})" in rows["000号"]["reason"]
    assert rows["华星"]["code"] == rows["华星大厦"]["code"] == "overlap"  # policy reject: neither is trusted
    bad = tmp_path / "bad.json"
    bad.write_text('{"街道名": "street"}', encoding="utf-8")
    res = CliRunner().invoke(cli, ["annotate", str(inp), "--out", str(out), "--label-map", str(bad)])
    assert res.exit_code != 0 and "'街道名' -> 'street'" in res.output


def test_unusable_answers_are_not_cached_and_are_asked_again_on_the_next_run(
        scripted: ScriptedServer, tmp_path: Path) -> None:
    """Empty choices, prose and cut-off answers used to be replayed from the cache on every rerun, so those
    records failed until the user deleted the cache. Only answers that parsed are cached now."""
    texts = ["杭州市西湖区", "宁波市余姚市", "温州市鹿城区", "台州市路桥区"]
    bad = {
        texts[0]: Reply(body={"id": "x", "object": "chat.completion", "choices": []}),  # empty choices
        texts[1]: chat("I am not able to do that."),  # prose
        texts[2]: chat('{"entities": [{"text": "温州市", "label": "city"}, {"text": "鹿', finish="length"),  # cut off
    }

    def good(body: dict[str, Any]) -> Reply:
        return chat(json.dumps({"entities": [{"text": address_of(body)[:3], "label": "city"}]}, ensure_ascii=False))

    scripted.reset(lambda n, body: bad.get(address_of(body)) or good(body))
    records = [Record(str(i), t) for i, t in enumerate(texts)]
    cache_path = tmp_path / "cache.sqlite"
    with ResponseCache(cache_path) as cache:
        first = annotate(records, [LLMTeacher(_cfg(scripted.url, max_retries=0), cache=cache)])
        assert (first.stats["labelled"], first.stats["failed"]) == (1, 3)
        assert len(cache) == 1  # only the answer that parsed
    scripted.reset(lambda n, body: good(body))  # the server behaves now
    with ResponseCache(cache_path) as cache:
        teacher = LLMTeacher(_cfg(scripted.url, max_retries=0), cache=cache)
        second = annotate(records, [teacher])
        assert (second.stats["labelled"], second.stats["failed"]) == (4, 0)
        assert sorted(address_of(b) for b in scripted.bodies) == sorted(texts[:3])  # the failures, asked again
        assert teacher.stats.cache_hits == 1 and len(cache) == 4


def test_an_unusable_answer_cached_by_an_older_run_is_asked_again(scripted: ScriptedServer, tmp_path: Path) -> None:
    from nerwheel.llm.cache import cache_key
    from nerwheel.llm.client import ChatClient

    text = "杭州市西湖区"
    teacher = LLMTeacher(_cfg(scripted.url, max_retries=0))
    body = ChatClient(teacher.config).request_body(teacher.prompt.messages(text, teacher.examples, teacher.labels),
                                                   teacher.prompt.schema(teacher.labels))
    with ResponseCache(tmp_path / "old.sqlite") as cache:  # what the old client stored: prose
        cache.put(cache_key("scripted", body), "scripted", body, chat("I am not able to do that.").body)
    scripted.reset(lambda n, b: chat('{"entities": [{"text": "杭州市", "label": "city"}]}'))
    with ResponseCache(tmp_path / "old.sqlite") as cache:
        res = annotate([Record("1", text)], [LLMTeacher(_cfg(scripted.url, max_retries=0), cache=cache)])
    assert res.stats["labelled"] == 1 and scripted.calls == 1
