"""The synthesize stage: labelled address texts made from entity pools, with a coverage report.

Three kinds of text:
(a) *short* definition texts, several per entity type, each built to show one
    type (``清远路0000-00号`` shows road and roadno; ``0单元`` shows cellno);
(b) *long* composite texts: a realistic address order (province, city,
    district, zone, town, community, road, number, POI, building, unit, floor,
    room, helper words) with elements dropped, short forms (``浙江`` for
    ``浙江省``), POI-before-road swaps and separators varied;
(c) with an LLM teacher, new sentences the model writes around given entities
    (with explanations of each type), which are then annotated like any text.
Pools come from the knowledge base (administrative chains that respect the
hierarchy, village names of the town) and from labelled examples (their entity
texts per type), plus small hand-written stems. Texts are deduplicated, and no
eval text (:mod:`nerwheel.leakage`: equal after normalisation) is ever emitted. Everything is driven
by one seeded ``random.Random``: the same config gives the same output.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.kb.gazetteer import ADMIN_LEVELS, COUNTY_AND_ABOVE
from nerwheel.labels import ADDRESS_LABELS
from nerwheel.leakage import EvalTexts
from nerwheel.records import Entity, Record

__all__ = ["SynthesisConfig", "SynthesisResult", "coverage_table", "synthesize"]

ROAD_STEMS = ("文三", "解放", "人民", "中山", "建设", "学院", "滨江", "凤起", "庆春", "莫干山", "天目山", "古墩", "丰潭",
              "延安", "湖墅", "东新", "秋涛", "江南", "长江", "黄河", "钱江", "体育场", "环城", "新华", "光明", "胜利",
              "和平", "青年", "工农", "健康", "兴业", "金城", "迎宾", "振兴", "清远", "望江", "育才", "百合", "紫荆")
ROAD_SUFFIXES = ("路", "路", "路", "街", "大道", "东路", "西路", "南路", "北路", "中路", "巷", "大街")
POI_STEMS = ("阳光", "金色", "绿城", "万科", "碧桂", "翠苑", "嘉禾", "和美", "锦绣", "华府", "新天地", "东方", "国贸",
             "世纪", "银泰", "星光", "幸福", "城市", "紫金", "香樟", "海棠", "明珠", "春晓", "怡和", "丽景", "博雅")
POI_SUFFIXES = ("小区", "花园", "家园", "公寓", "大厦", "广场", "中心", "商城", "新村", "苑", "府", "大楼", "医院",
                "中学", "小学", "幼儿园", "酒店", "市场")
SUBPOI = ("A区", "B区", "一区", "二区", "东区", "西区", "南区", "北区", "一期", "二期", "三期", "北门", "南门", "东门",
          "西门", "0号门", "前台", "地下室", "办公室")
DEVZONE_STEMS = ("临江", "滨海", "城东", "江东", "望春", "钱塘", "西湖", "经济", "未来", "高新", "东部", "南湖")
DEVZONE_SUFFIXES = ("经济开发区", "工业园区", "工业区", "开发区", "高新区", "科技园", "产业园", "经济技术开发区")
ASSIST = ("对面", "旁边", "附近", "隔壁", "东侧", "西侧", "南侧", "北侧", "斜对面", "后面", "楼下", "旁")
# a direction right before a distance is a helper word (assist), as in MGeo labels and the KB's rules:
# 和美苑|往北|000米 -> poi, assist, distance
DIRECTIONS = ("东", "西", "南", "北", "往东", "往西", "往南", "往北", "向东", "向北", "东北", "西南", "东侧", "北侧")
CONNECTORS = ("与", "和")
INTERSECTION = ("交叉口", "路口", "交汇处", "交口")
CN_NUM = "一二三四五六七八九十"
SEPARATORS = ("", "", "", "", "", " ", ",", "，")


class SynthesisConfig(BaseModel):
    """How much to make and how; unknown keys are an error naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_short: int = Field(200, ge=0, description="Short definition texts in total, spread over the types")
    n_long: int = Field(200, ge=0, description="Long composite texts")
    n_llm: int = Field(0, ge=0, description="LLM-written sentences (needs an LLM teacher)")
    seed: int = 0
    mask_digits: float = Field(0.8, ge=0, le=1, description="Share of numbers written as 0s, like the MGeo data")
    provinces: tuple[str, ...] = Field((), description="Sample administrative chains only from these provinces")
    example_share: float = Field(0.5, ge=0, le=1, description="Chance to take an entity from the examples when it has one")
    labels: tuple[str, ...] = ADDRESS_LABELS


@dataclass
class SynthesisResult:
    records: list[Record] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)


class _Builder:
    """Accumulates (text piece, label) pairs into one record."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str | None]] = []

    def add(self, text: str, label: str | None = None) -> _Builder:
        if text:
            self.parts.append((text, label))
        return self

    def record(self, rid: str, kind: str) -> Record:
        text, ents, pos = "", [], 0
        for piece, label in self.parts:
            if label:
                ents.append(Entity(pos, pos + len(piece), label, piece, source="synthetic"))
            text += piece
            pos += len(piece)
        return Record(rid, text, tuple(ents), {"synthetic": kind})


class _Pools:
    def __init__(self, cfg: SynthesisConfig, rng: random.Random, examples: Sequence[Record], gazetteer: Any) -> None:
        self.cfg, self.rng = cfg, rng
        ex: dict[str, set[str]] = defaultdict(set)
        for r in examples:
            for e in r.entities:
                ex[e.label].add(e.text)
        self.examples = {k: sorted(v) for k, v in ex.items()}
        self.gaz = gazetteer
        self._districts: list[Any] = []
        self._towns: dict[int, list[Any]] = defaultdict(list)
        if gazetteer is not None:
            for p in gazetteer.places:
                if p.level == "district" and p.parent is not None:
                    top = [*p.ancestors()][-1]
                    if not cfg.provinces or top.name in cfg.provinces:
                        self._districts.append(p)
                elif p.level == "town" and p.parent is not None:
                    self._towns[id(p.parent)].append(p)

    # numbers ------------------------------------------------------------------------------
    def digits(self, lo: int = 1, hi: int = 4) -> str:
        n = self.rng.randint(lo, hi)
        if self.rng.random() < self.cfg.mask_digits:
            return "0" * n
        return str(self.rng.randint(1, 9)) + "".join(str(self.rng.randint(0, 9)) for _ in range(n - 1))

    def small(self) -> str:
        return self.rng.choice(CN_NUM) if self.rng.random() < 0.3 else self.digits(1, 2)

    def pick(self, label: str, make: Any) -> str:
        pool = self.examples.get(label)
        if pool and self.rng.random() < self.cfg.example_share:
            return self.rng.choice(pool)
        return make()

    # one generator per type --------------------------------------------------------------------
    def admin_chain(self) -> dict[str, str]:
        """prov/city/district/town/community texts of one consistent place (short forms sometimes)."""
        from nerwheel.kb.gazetteer import MUNICIPALITIES, short_name

        out: dict[str, str] = {}
        if not self._districts:
            for lab in ADMIN_LEVELS:
                if self.examples.get(lab):
                    out[lab] = self.rng.choice(self.examples[lab])
            return out
        d = self.rng.choice(self._districts)
        chain = [d, *d.ancestors()]
        towns = self._towns.get(id(d))
        if towns:
            town = self.rng.choice(towns)
            chain.insert(0, town)
            names = sorted(self.gaz.community_names(town))
            if names:
                base = self.rng.choice(names)
                out["community"] = base if base.endswith(("村", "社区")) else base + self.rng.choice(("村", "社区"))
        top = chain[-1]
        municipality = top.code is not None and top.code[:2] in MUNICIPALITIES
        for p in chain:
            name = p.name
            short = short_name(name, p.level)
            if municipality and p.level in ("prov", "city"):
                # MGeo (and the KB) read 上海 as the province and 上海市 as the city, in every text
                name = (short or name) if p.level == "prov" else name
            elif short and p.level in COUNTY_AND_ABOVE and self._one_level(short, p.level) \
                    and self.rng.random() < 0.25:
                name = short
            out.setdefault(p.level, name)
        return out

    def _one_level(self, short: str, level: str) -> bool:
        """The short form names places of one level only (``吉林`` is a province and a city: written in full)."""
        levels = {p.level for p, _ in self.gaz.lookup(short) if p.level in COUNTY_AND_ABOVE}
        return levels == {level}

    def road(self) -> str:
        return self.pick("road", lambda: self.rng.choice(ROAD_STEMS) + self.rng.choice(ROAD_SUFFIXES))

    def roadno(self) -> str:
        r = self.rng.random()
        if r < 0.15:
            return f"{self.digits(2, 4)}-{self.digits(1, 2)}号"
        if r < 0.22:
            return f"{self.digits(1, 4)}弄"
        return f"{self.digits(1, 4)}号"

    def poi(self) -> str:
        return self.pick("poi", lambda: self.rng.choice(POI_STEMS) + self.rng.choice(POI_SUFFIXES))

    def subpoi(self) -> str:
        return self.pick("subpoi", lambda: self.rng.choice(SUBPOI))

    def devzone(self) -> str:
        return self.pick("devzone", lambda: self.rng.choice(DEVZONE_STEMS) + self.rng.choice(DEVZONE_SUFFIXES))

    def houseno(self) -> str:
        r = self.rng.random()
        if r < 0.2:
            return self.rng.choice("ABCDE") + "座"
        return self.small() + self.rng.choice(("幢", "栋", "号楼", "号楼", "幢"))

    def cellno(self) -> str:
        return self.small() + "单元"

    def floorno(self) -> str:
        return (self.small() if self.rng.random() < 0.7 else self.digits(1, 2)) + self.rng.choice(("楼", "楼", "层"))

    def roomno(self) -> str:
        return self.digits(3, 4) + self.rng.choice(("室", "室", "房"))

    def detail(self) -> str:
        """A door-plate detail after the building chain: ``A00``, ``附0号``, ``0-0``.

        Never a bare ``0号``: that surface is a roadno everywhere else, and one
        surface must not carry two labels.
        """
        r = self.rng.random()
        if r < 0.45:
            return self.rng.choice("ABCDEF") + self.digits(1, 3)
        if r < 0.75:
            return "附" + self.digits(1, 2) + "号"
        return self.digits(1, 2) + "-" + self.digits(1, 2)

    def village_group(self) -> str:
        return self.small() + self.rng.choice(("组", "组", "队"))

    def assist(self) -> str:
        return self.pick("assist", lambda: self.rng.choice(ASSIST))

    def distance(self) -> str:
        return self.digits(2, 3) + self.rng.choice(("米", "米", "公里"))

    def direction(self) -> str:
        return self.rng.choice(DIRECTIONS)

    def intersection(self) -> str:
        return self.rng.choice(INTERSECTION)


def _short(p: _Pools, label: str) -> _Builder:
    """A short text defining ``label`` (plus the one neighbour it needs to make sense)."""
    b, rng = _Builder(), p.rng
    admin = p.admin_chain() if label in (*ADMIN_LEVELS, "village_group") else {}
    if label in ADMIN_LEVELS and label in admin:
        if label == "town" and "district" in admin and rng.random() < 0.5:
            b.add(admin["district"], "district")
        return b.add(admin[label], label)
    if label == "village_group":
        return b.add(admin.get("community") or "新民村", "community").add(p.village_group(), label)
    if label in ("road", "roadno"):
        b.add(p.road(), "road")
        return b.add(p.roadno(), "roadno") if label == "roadno" or rng.random() < 0.5 else b
    if label == "intersection":
        return b.add(p.road(), "road").add(rng.choice(CONNECTORS)).add(p.road(), "road").add(p.intersection(), label)
    if label == "poi":
        return b.add(p.poi(), "poi")
    if label == "subpoi":
        return b.add(p.poi(), "poi").add(p.subpoi(), "subpoi")
    if label == "devzone":
        return b.add(p.devzone(), "devzone")
    if label in ("houseno", "cellno", "floorno", "roomno"):
        chain = ["houseno", "cellno", "floorno", "roomno"]
        if rng.random() < 0.5:
            b.add(p.poi(), "poi")
        for lab in chain[: chain.index(label) + 1]:
            if lab == label or rng.random() < 0.4:
                b.add(getattr(p, lab)(), lab)
        return b
    if label == "assist":
        return b.add(p.poi(), "poi").add(p.assist(), "assist")
    if label == "distance":
        return b.add(p.poi(), "poi").add(p.direction(), "assist").add(p.distance(), label)
    if label == "detail":  # after the building, or after the room: 阳光小区0幢附0号, 0单元000室A00
        b.add(p.poi(), "poi")
        if rng.random() < 0.6:
            b.add(p.houseno(), "houseno")
        else:
            b.add(p.cellno(), "cellno").add(p.roomno(), "roomno")
        return b.add(p.detail(), label)
    return b  # a label without a generator (a custom --labels set)


def _long(p: _Pools) -> _Builder:
    """A composite address in a realistic order, with parts dropped and varied."""
    rng, b = p.rng, _Builder()
    admin = p.admin_chain()
    sep = rng.choice(SEPARATORS)
    start = rng.choice((0, 0, 0, 1, 2))  # sometimes the province (or city too) is left out
    for i, lab in enumerate(COUNTY_AND_ABOVE):
        if i >= start and lab in admin and rng.random() < 0.9:
            b.add(admin[lab], lab)
    if rng.random() < 0.15:
        b.add(p.devzone(), "devzone")
    if "town" in admin and rng.random() < 0.6:
        b.add(admin["town"], "town")
        if "community" in admin and rng.random() < 0.3:
            b.add(admin["community"], "community")
            if rng.random() < 0.3:
                b.add(p.village_group(), "village_group")
    b.add(sep)
    road_part = _Builder()
    if rng.random() < 0.8:
        road_part.add(p.road(), "road")
        if rng.random() < 0.8:
            road_part.add(p.roadno(), "roadno")
        elif rng.random() < 0.3:
            road_part.add(rng.choice(CONNECTORS)).add(p.road(), "road").add(p.intersection(), "intersection")
    poi_part = _Builder()
    if rng.random() < 0.85:
        poi_part.add(p.poi(), "poi")
        if rng.random() < 0.3:
            poi_part.add(p.subpoi(), "subpoi")
    first, second = (poi_part, road_part) if rng.random() < 0.15 else (road_part, poi_part)
    b.parts += first.parts + second.parts
    if rng.random() < 0.6:
        b.add(p.houseno(), "houseno")
        if rng.random() < 0.5:
            b.add(p.cellno(), "cellno")
        if rng.random() < 0.5:
            b.add(p.floorno(), "floorno")
        if rng.random() < 0.3:
            b.add(p.roomno(), "roomno")
    if rng.random() < 0.12:
        if rng.random() < 0.3:  # a distance is preceded by a direction, both labelled as in the short texts
            b.add(p.direction(), "assist").add(p.distance(), "distance")
        else:
            b.add(p.assist(), "assist")
    return b


def coverage_table(coverage: dict[str, Any]) -> str:
    """The coverage report as a fixed-width table (what the CLI prints)."""
    rows = [f"{'type':<14}{'short':>7}{'long':>7}{'llm':>7}{'total':>7}"]
    for lab in coverage["labels"]:
        s, lo, ll = (coverage[k].get(lab, 0) for k in ("short", "long", "llm"))
        rows.append(f"{lab:<14}{s:>7}{lo:>7}{ll:>7}{s + lo + ll:>7}")
    t = coverage["texts"]
    rows.append(f"{'texts':<14}{t['short']:>7}{t['long']:>7}{t['llm']:>7}{sum(t.values()):>7}")
    sk = coverage["skipped"]
    rows.append(f"skipped: {sk['duplicate']} duplicate, {sk['eval']} equal to an eval text, "
                f"{sk['failed']} LLM texts failed")
    return "\n".join(rows)


def synthesize(
    config: SynthesisConfig,
    *,
    examples: Sequence[Record] = (),
    eval_texts: Collection[str] | EvalTexts = (),
    gazetteer: Any = "default",
    llm: Any = None,
) -> SynthesisResult:
    """Make labelled texts per ``config`` (see the module docstring).

    ``gazetteer`` defaults to the shared KB gazetteer; pass ``None`` to use only
    ``examples`` and the built-in stems. ``llm`` is a teacher with
    ``generate(prompts) -> list[str | None]`` and ``label(records)`` (see
    :class:`nerwheel.llm.teacher.LLMTeacher`), used for ``n_llm`` texts.
    """
    if gazetteer == "default":
        from nerwheel.kb.gazetteer import load_gazetteer

        gazetteer = load_gazetteer()
    rng = random.Random(config.seed)
    pools = _Pools(config, rng, examples, gazetteer)
    forbidden = EvalTexts.of(eval_texts)
    seen: set[str] = set()
    skipped = Counter()
    out: list[Record] = []
    cov: dict[str, Counter[str]] = {"short": Counter(), "long": Counter(), "llm": Counter()}
    texts = Counter()

    def emit(rec: Record, kind: str) -> bool:
        if not rec.text.strip() or not rec.entities:
            return False
        if rec.text in forbidden:
            skipped["eval"] += 1
            return False
        if rec.text in seen:
            skipped["duplicate"] += 1
            return False
        seen.add(rec.text)
        out.append(rec)
        texts[kind] += 1
        cov[kind].update(e.label for e in rec.entities)
        return True

    types = list(config.labels)
    if types and config.n_short:
        per_type, extra = divmod(config.n_short, len(types))
        for k, lab in enumerate(types):
            want, made, tries = per_type + (1 if k < extra else 0), 0, 0
            while made < want and tries < want * 20:
                tries += 1
                rec = _short(pools, lab).record(f"syn-short-{config.seed}-{len(out)}", "short")
                made += emit(rec, "short")
    made, tries = 0, 0
    while made < config.n_long and tries < config.n_long * 20:
        tries += 1
        made += emit(_long(pools).record(f"syn-long-{config.seed}-{len(out)}", "long"), "long")
    if config.n_llm and llm is not None:
        _llm_texts(config, pools, llm, emit, skipped)
    coverage = {
        "labels": list(config.labels),
        "short": dict(cov["short"]), "long": dict(cov["long"]), "llm": dict(cov["llm"]),
        "texts": {"short": texts["short"], "long": texts["long"], "llm": texts["llm"]},
        "skipped": {"duplicate": skipped["duplicate"], "eval": skipped["eval"], "failed": skipped["failed"]},
        "seed": config.seed,
    }
    return SynthesisResult(out, coverage)


def _llm_texts(config: SynthesisConfig, pools: _Pools, llm: Any, emit: Any, skipped: Counter[str]) -> None:
    """(c): the LLM writes sentences around sampled entities; the same LLM then labels them."""
    from nerwheel.llm.definitions import LABEL_DEFINITIONS

    requests = []
    for _ in range(config.n_llm):
        seed_text = _long(pools).record("tmp", "llm")
        hints = [(e.text, e.label, LABEL_DEFINITIONS[e.label][0]) for e in seed_text.entities]
        requests.append(hints)
    written = llm.generate(requests)
    records = [Record(f"syn-llm-{config.seed}-{i}", t) for i, t in enumerate(written) if t]
    skipped["failed"] += sum(1 for t in written if not t)
    if not records:
        return
    for rec, out in zip(records, llm.label(records), strict=True):
        if out.error is not None:
            skipped["failed"] += 1
            continue
        emit(rec.with_entities(out.entities).with_meta(synthetic="llm"), "llm")
