"""Prompt rendering (exact), deterministic few-shot selection, and the SQLite cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nerwheel.llm.cache import ResponseCache, cache_key
from nerwheel.llm.prompts import get_prompt, select_examples
from nerwheel.records import Entity, Record


def _rec(text: str, *spans: tuple[str, str]) -> Record:
    ents, pos = [], 0
    for piece, label in spans:
        i = text.index(piece, pos)
        ents.append(Entity(i, i + len(piece), label, piece))
        pos = i + len(piece)
    return Record(text, text, tuple(ents))


def test_ner_prompt_renders_exactly() -> None:
    ex = _rec("浙江省杭州市", ("浙江省", "prov"), ("杭州市", "city"))
    out = get_prompt("ner.v1").render("西湖区", [ex], labels=("prov", "city"))
    assert out == (
        "你是中文地址要素标注员。You label the elements of a Chinese address.\n\n"
        'Return only JSON: {"entities": [{"text": "<exact substring of the address>", "label": "<label>"}, ...]}\n'
        '- "text" must be copied exactly from the address, character for character; list entities in reading order.\n'
        "- Use only these labels:\n"
        "  - prov: 省级行政区，如浙江省、浙江、上海市、新疆维吾尔自治区 / province-level division: province, "
        "municipality, autonomous region\n"
        "  - city: 地级行政区，如杭州市、杭州、阿克苏地区、湘西土家族苗族自治州 / prefecture-level city, prefecture or "
        "autonomous prefecture\n"
        "- Digits may be masked as 0 (0000号); label them like real digits.\n"
        "- Characters that belong to no label are left out.\n\n"
        "Examples:\n"
        "地址: 浙江省杭州市\n"
        '{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭州市", "label": "city"}]}\n\n'
        "地址: 西湖区"
    )
    assert get_prompt("ner.v1").schema(("prov",))["properties"]["entities"]["items"]["properties"]["label"]["enum"] \
        == ["prov"]


def test_examples_show_every_type_per_type_times_and_are_deterministic() -> None:
    seed = [
        _rec("浙江省杭州市西湖区", ("浙江省", "prov"), ("杭州市", "city"), ("西湖区", "district")),
        _rec("江苏省南京市", ("江苏省", "prov"), ("南京市", "city")),
        _rec("文三路000号", ("文三路", "road"), ("000号", "roadno")),
        _rec("解放路00号", ("解放路", "road"), ("00号", "roadno")),
        _rec("0单元", ("0单元", "cellno")),
        _rec("广东省", ("广东省", "prov")),
        _rec("无标注文本"),
    ]
    chosen = select_examples(seed, per_type=2)
    shown = {lab: sum(1 for r in chosen for e in r.entities if e.label == lab) for lab in
             ("prov", "city", "district", "road", "roadno", "cellno")}
    assert shown == {"prov": 2, "city": 2, "district": 1, "road": 2, "roadno": 2, "cellno": 1}
    assert select_examples(list(reversed(seed)), per_type=2) == chosen
    assert all(r.entities for r in chosen)


def test_cache_roundtrip_wal_and_canonical_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    a = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    b = {"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m"}
    assert cache_key("m", a) == cache_key("m", b) != cache_key("other", a)
    with ResponseCache(path) as cache:
        assert cache.get(cache_key("m", a)) is None
        cache.put(cache_key("m", a), "m", a, {"choices": []})
    with ResponseCache(path) as cache:  # persisted, reopened
        assert cache.get(cache_key("m", b)) == {"choices": []} and len(cache) == 1
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
