"""A small synthetic address set: provinces, cities, districts, roads, numbers and places in random combinations.

Made by the tests themselves (no external corpora). Every entity's offsets come
from how the text is assembled, so the gold labels are exact.
"""

from __future__ import annotations

import random

from nerwheel.labels import ADDRESS_LABELS
from nerwheel.records import Entity, Record

PROVS = ["浙江省", "江苏省", "广东省", "四川省", "湖北省", "山东省"]
CITIES = ["杭州市", "南京市", "广州市", "成都市", "武汉市", "青岛市", "宁波市", "苏州市"]
DISTRICTS = ["西湖区", "鼓楼区", "天河区", "武侯区", "江汉区", "市南区", "鄞州区", "姑苏区", "余杭区"]
ROADS = ["文三路", "中山路", "人民路", "解放大道", "建设路", "学院路", "滨江大道", "长江路"]
POIS = ["阳光小区", "国贸大厦", "东方花园", "科技园", "万达广场", "第一中学"]


def _number(rng: random.Random) -> str:
    return f"{rng.randint(1, 999)}号"


def make_record(rng: random.Random, i: int) -> Record:
    parts: list[tuple[str, str | None]] = []
    if rng.random() < 0.7:
        parts.append((rng.choice(PROVS), "prov"))
    parts.append((rng.choice(CITIES), "city"))
    if rng.random() < 0.8:
        parts.append((rng.choice(DISTRICTS), "district"))
    parts.append((rng.choice(ROADS), "road"))
    if rng.random() < 0.8:
        parts.append((_number(rng), "roadno"))
    if rng.random() < 0.6:
        if rng.random() < 0.3:
            parts.append(("附近的", None))
        parts.append((rng.choice(POIS), "poi"))
    text, ents = "", []
    for piece, label in parts:
        if label:
            ents.append(Entity(len(text), len(text) + len(piece), label, piece))
        text += piece
    return Record(id=f"syn-{i}", text=text, entities=tuple(ents))


def make_records(n: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    return [make_record(rng, i) for i in range(n)]


def long_record(n_parts: int, seed: int = 1) -> Record:
    """One long text: many addresses joined by '；', for sliding-window tests."""
    rng = random.Random(seed)
    text, ents = "", []
    for i in range(n_parts):
        r = make_record(rng, i)
        ents.extend(Entity(e.start + len(text), e.end + len(text), e.label, e.text) for e in r.entities)
        text += r.text + "；"
    return Record(id="long", text=text, entities=tuple(ents))


def make_mixed(n: int, seed: int = 0, joined_share: float = 0.25) -> list[Record]:
    """Mostly single addresses, some two or three joined by '；' (so a model learns several per text)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        parts = [make_record(rng, i)] if rng.random() >= joined_share else [
            make_record(rng, i) for _ in range(rng.randint(2, 3))]
        text, ents = "", []
        for k, r in enumerate(parts):
            if k:
                text += "；"
            ents.extend(Entity(e.start + len(text), e.end + len(text), e.label, e.text) for e in r.entities)
            text += r.text
        out.append(Record(id=f"mix-{i}", text=text, entities=tuple(ents)))
    return out


ADMIN = ("prov", "city", "district")
#: The fusion data's target labels: the address task's and ``admin`` (train rejects other labels unless named).
FUSED_LABELS = (*ADDRESS_LABELS, "admin")


def fused(record: Record) -> Record:
    """``record`` as fusion data: a nested target span and overlapping extension labels added.

    - ``admin`` (target) covers each run of adjacent province/city/district
      spans (two or more): the spans inside it stay, so it nests;
    - ``kb:road`` (extension) marks every road again: the same span, another label;
    - ``pos:ns`` (extension) marks each city name without its suffix (``杭州``
      inside ``杭州市``): nested inside a target span.
    """
    ents = list(record.entities)
    runs: list[list[Entity]] = []
    for e in ents:
        if e.label in ADMIN and runs and runs[-1] and runs[-1][-1].end == e.start:
            runs[-1].append(e)
        else:
            runs.append([e] if e.label in ADMIN else [])
    extra = [Entity.at(record.text, run[0].start, run[-1].end, "admin") for run in runs if len(run) >= 2]
    extra += [Entity(e.start, e.end, "kb:road", e.text) for e in ents if e.label == "road"]
    extra += [Entity.at(record.text, e.start, e.end - 1, "pos:ns") for e in ents if e.label == "city"]
    return record.with_entities([*ents, *extra])


def make_fused(n: int, seed: int = 0) -> list[Record]:
    """Addresses (some joined by '；', :func:`make_mixed`) as fusion data (:func:`fused`)."""
    return [fused(r) for r in make_mixed(n, seed)]
