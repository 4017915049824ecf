"""The knowledge-base teacher: labels Chinese addresses offline, and corrects LLM labels it can prove wrong.

It scans an address left to right. At each position it tries, in order:
1. the gazetteer (provinces, cities, districts, towns; communities of a town
   already found), longest match first, keeping only places consistent with
   the hierarchy found so far (a city must lie in the province found, a
   district in the city); short forms (``杭州`` for ``杭州市``) only in the
   administrative head of the address or when the hierarchy confirms them;
2. anchored number patterns (``0000号``, ``00幢``, ``0单元``, ``00楼``, ``000室``,
   ``0组``, ``000米``, ``A区``) and helper words (``交叉口``, ``对面``, ``附近``);
3. suffix rules, whose name is the unlabelled gap before the suffix
   (``文三`` + ``路``, ``九堡`` + ``镇``, ``临江`` + ``工业园``).
Unlabelled gaps left over become ``poi`` (the first) and ``subpoi`` (later
ones), split after a POI word (``小区``, ``大厦``, ``校区``...).

A text longer than :data:`WINDOW` characters (an address is under 100; a long
one is a whole document or a glued file) is annotated window by window, each
window ending after a separator where there is one (:func:`windows`), so the
time is linear in the length: the scan above looks back over unlabelled gaps
and is super-linear in the length it sees. Hierarchy checks then apply within
a window, which is where one address lives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nerwheel.kb.gazetteer import MUNICIPALITIES as MUNICIPALITY_CODES
from nerwheel.kb.gazetteer import ADMIN_LEVELS, Gazetteer, Place, load_gazetteer, short_name
from nerwheel.kb.hierarchy import conflicts, mention
from nerwheel.kb.rules import (ADMIN_SUFFIX_VARIANTS, ASSIST_MULTI, ASSIST_SINGLE, DIRECTION_BEFORE_DISTANCE,
                               INTERSECTION, NOISE, NUM, POI_SUFFIXES, PUNCT, SEPARATORS, CONNECTORS, SUBPOI_ENDINGS, SUFFIX_RULES,
                               anchored_match)
from nerwheel.records import Entity, Record

__all__ = ["WINDOW", "AddressKB", "Correction", "windows"]

#: The most characters one scan sees (see the module docstring).
WINDOW = 256

LEVEL_RANK = {lab: i for i, lab in enumerate(ADMIN_LEVELS)}
_NUM_START = re.compile(NUM)
_NUMBER_HAO = re.compile(rf"{NUM}{{1,12}}号")
_DEVZONE_SUFFIXES = tuple(w for lab, sufs, _, _ in SUFFIX_RULES if lab == "devzone" for w in sufs if len(w) > 2)
_TAIL_ASSIST = tuple(sorted((*ASSIST_MULTI, "旁", "内"), key=len, reverse=True))
_FOLLOWS = re.compile(r"[\u4e00-\u9fff0-9]{1,8}?(?:路|街|大道|巷|镇|乡|街道|开发区|工业园|工业区|园区|新区)")
NON_NAME = frozenset("0123456789０１２３４５６７８９")
NAME_CONTINUATIONS = tuple(sorted({s for _, sufs, _, _ in SUFFIX_RULES if _ != "road" for s in sufs}
                                  | {s for s in POI_SUFFIXES if len(s) > 1}, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class Correction:
    """A label the KB changed (or flagged) on another teacher's entity, and why."""

    start: int
    end: int
    text: str
    old: str
    new: str | None  # None: flagged, not changed
    reason: str
    code: str = "relabel"  # relabel | hierarchy (the mention does not fit the others: drop it)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "old": self.old, "new": self.new,
                "reason": self.reason, "code": self.code}


@dataclass
class _State:
    text: str
    entities: list[Entity] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    place_at: dict[int, Place] = field(default_factory=dict)  # entity start -> the gazetteer place it names
    banned: frozenset[int] = frozenset()  # offsets where no gazetteer place may start (hierarchy conflicts)
    gap: int = 0

    @property
    def last(self) -> str | None:
        return self.entities[-1].label if self.entities else None


def _strip(chunk: str) -> str:
    return chunk.strip("".join(SEPARATORS))


def windows(text: str, size: int = WINDOW) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` pieces of ``text``, each at most ``size`` long, that cover it.

    A piece ends just after the last separator (punctuation, space, connector) in its second half,
    so an address between separators stays whole; without one it is cut at ``size``.
    """
    out: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while n - start > size:
        end = start + size
        cut = next((j + 1 for j in range(end - 1, start + size // 2 - 1, -1) if text[j] in SEPARATORS), end)
        out.append((start, cut))
        start = cut
    out.append((start, n))
    return out


def _blank(chunk: str) -> bool:
    """Nothing but punctuation, connectors and the country name (中国浙江省...)."""
    return not chunk.replace("中国", "").strip("".join(SEPARATORS))


class AddressKB:
    """Gazetteer + rules address annotator; ``source`` names it in entity provenance."""

    name = "kb"

    def __init__(self, gazetteer: Gazetteer | None = None, *, source: str = "kb") -> None:
        self.gaz = gazetteer or load_gazetteer()
        self.source = source

    # -- teacher interface -------------------------------------------------------------------
    def annotate_text(self, text: str) -> list[Entity]:
        """The entities of ``text``; administrative mentions that break the hierarchy are left out."""
        return self.annotate_checked(text)[0]

    def annotate_checked(self, text: str) -> tuple[list[Entity], list[tuple[Entity, str]]]:
        """``(entities, dropped)``: ``dropped`` holds the province/city/district mentions that do not fit
        the others as one place (``浙江省广州市``), each with its reason (see :mod:`nerwheel.kb.hierarchy`).

        A conflicting *short* name (``江南`` in ``萧山区江南明城``) is most often part of a longer name, so the
        address is scanned again without a place there and the text joins its neighbours (``江南明城``/poi);
        a conflicting full name (``柯桥区`` in ``杭州市柯桥区``) is an address mistake and is left unlabelled.
        """
        if len(text) <= WINDOW:
            return self._annotate_window(text)
        kept: list[Entity] = []
        dropped: list[tuple[Entity, str]] = []
        for a, b in windows(text):
            k, d = self._annotate_window(text[a:b])
            kept += (replace(e, start=e.start + a, end=e.end + a) for e in k)
            dropped += ((replace(e, start=e.start + a, end=e.end + a), r) for e, r in d)
        return kept, dropped

    def _annotate_window(self, text: str) -> tuple[list[Entity], list[tuple[Entity, str]]]:
        banned: dict[int, tuple[Entity, str]] = {}
        for _ in range(4):
            st = self._scan(text, frozenset(banned))
            mentions = [mention(self.gaz, e, st.place_at.get(e.start)) for e in st.entities]
            found = conflicts(mentions)
            again = {st.entities[c.index].start: (st.entities[c.index], c.reason + "; read again as part of a name")
                     for c in found if not mentions[c.index].full and st.entities[c.index].start not in banned}
            if not again:
                break
            banned.update(again)
        bad = {c.index: c.reason for c in found}
        kept = [e for i, e in enumerate(st.entities) if i not in bad]
        dropped = [*banned.values(), *((st.entities[i], reason) for i, reason in bad.items())]
        return kept, sorted(dropped, key=lambda d: d[0].start)

    def _scan(self, text: str, banned: frozenset[int] = frozenset()) -> _State:
        st = _State(text, banned=banned)
        i, n = 0, len(text)
        while i < n:
            hit = self._at(st, i)
            if hit is None:
                i += 1
                continue
            start, end, label, place = hit
            self._flush(st, st.gap, start, label)
            if label == "village_group" and st.entities and st.entities[-1].label in ("poi", "subpoi") \
                    and st.entities[-1].end == start:
                prev = st.entities.pop()  # 狮城|一组: what stands before a villagers' group is its village
                st.entities.append(Entity(prev.start, prev.end, "community", prev.text, source=self.source))
            st.entities.append(Entity(start, end, label, text[start:end], source=self.source))
            if place is not None:
                st.places.append(place)
                st.place_at[start] = place
            i = st.gap = end
        self._flush(st, st.gap, n)
        return st

    def annotate(self, records: Iterable[Record]) -> list[Record]:
        return [r.with_entities(self.annotate_text(r.text)) for r in records]

    # -- scanning ------------------------------------------------------------------------------
    def _at(self, st: _State, i: int) -> tuple[int, int, str, Place | None] | None:
        text = st.text
        gap_empty = st.gap == i or _blank(text[st.gap:i])
        admin = self._admin_at(st, i, gap_empty)
        if admin is not None:
            return admin
        direction = DIRECTION_BEFORE_DISTANCE.match(text, i)
        if direction is not None:
            return i, direction.end(), "assist", None
        anchored = anchored_match(text, i)
        if anchored is not None and (i == st.gap or text[i - 1] not in NON_NAME):
            label, end = anchored
            label = self._resolve_anchored(st, label, i, end, gap_empty)
            if label is not None:
                return i, end, label, None
        for words, label in ((INTERSECTION, "intersection"), (ASSIST_MULTI, "assist")):
            for w in words:
                if text.startswith(w, i) and (label != "intersection" or st.last in ("road", "roadno") or gap_empty
                                              or w not in ("路口", "交口")):
                    return i, i + len(w), label, None
        if gap_empty and st.entities and text[i] in ASSIST_SINGLE and self._ends_here(text, i + 1):
            return i, i + 1, "assist", None
        if gap_empty and st.entities and text[i] in "东南西北" and _NUM_START.match(text, i + 1):
            return i, i + 1, "assist", None
        if not gap_empty:
            return self._suffix_at(st, i)
        return None

    @staticmethod
    def _ends_here(text: str, j: int) -> bool:
        return j >= len(text) or text[j] in SEPARATORS

    def _admin_at(self, st: _State, i: int, gap_empty: bool) -> tuple[int, int, str, Place | None] | None:
        text = st.text
        head = gap_empty and all(e.label in ADMIN_LEVELS for e in st.entities)
        for end, entries in self.gaz.matches_at(text, i) if i not in st.banned else ():
            extended = [(p, s, self._extend_admin(text, end, p, s)) for p, s in entries]
            best = self._choose(st, [(p, s and e == end) for p, s, e in extended], head, gap_empty, text, i,
                                max(e for _, _, e in extended))
            if best is not None:
                place, label = best
                ext = next((e for p, _, e in extended if p is place), end)
                return i, ext, label, place
        town = next((p for p in reversed(st.places) if p.level == "town"), None)
        if town is not None and gap_empty:
            names = self.gaz.community_names(town)
            for end in range(min(len(text), i + 6), i + 1, -1):
                if text[i:end] in names:
                    tail = next((s for s in ("村村", "社区", "村") if text.startswith(s, end)), "")
                    if (tail or end - i >= 3) and not self._continues_as_name(text, end + len(tail)):
                        return i, end + len(tail), "community", None
        return None

    @staticmethod
    def _extend_admin(text: str, end: int, place: Place, is_short: bool) -> int:
        """``广西`` + ``省``, ``富阳`` + ``市`` (now 富阳区), ``都安`` + ``县``: a short form with a generic suffix."""
        if is_short:
            for suf in ADMIN_SUFFIX_VARIANTS.get(place.level, ()):
                if text.startswith(suf, end):
                    return end + len(suf)
        return end

    def _address_follows(self, text: str, end: int) -> bool:
        """An administrative unit, town or road follows at ``end`` (so a short name before it is a place)."""
        if end >= len(text) or text[end] in PUNCT:
            return True
        if any(True for _ in self.gaz.matches_at(text, end)):
            return True
        return bool(_FOLLOWS.match(text, end))

    def _admin_follows(self, text: str, end: int) -> bool:
        """A full administrative name starts at ``end`` (台州|路桥区: 台州 is not part of a road name)."""
        return any(not s for _, entries in self.gaz.matches_at(text, end) for _, s in entries)

    def _choose(self, st: _State, entries: Sequence[tuple[Place, bool]], head: bool, gap_empty: bool,
                text: str, i: int, end: int) -> tuple[Place, str] | None:
        context = st.places
        last_rank = max((LEVEL_RANK[p.level] for p in context), default=-1)
        name = text[i:end]
        if any(p.level == "town" and not s for p, s in entries):
            # 九堡镇 in 杭州 is the town 九堡街道 there, not the 九堡镇 of another province
            base = short_name(name, "town")
            if base:
                entries = [*entries, *((p, False) for p, _ in self.gaz.lookup(base) if p.level == "town")]
        scored = []
        for place, is_short in entries:
            consistent = all(place.related(c) for c in context if c.level != place.level)
            if place.level == "town":
                if name[-1] in "路街巷道" and not name.endswith("街道"):
                    continue  # 南京西路(街道), 解放路: written like this it is the road
                if not consistent and any(c.level in ("city", "district") for c in context):
                    continue
                if not context and (is_short or not gap_empty or not name.endswith(("镇", "乡", "街道"))):
                    continue
            if is_short and not head:
                continue
            if not head and self._name_goes_on(text, end) and not self._admin_follows(text, end):
                continue  # 000号武义县图书馆: after the street part, a place name inside a POI name
            if is_short and not context and not self._address_follows(text, end):
                continue  # 义乌国际商贸城: a bare short name in front of a POI is part of its name
            if is_short and self._name_goes_on(text, end) and not self._admin_follows(text, end):
                continue
            if not gap_empty and (is_short or place.level in ("prov", "city") or len(name) < 3):
                continue
            if any(text.startswith(w, end) for w in _DEVZONE_SUFFIXES):
                continue  # 永康市经济开发区, 下沙经济开发区: the zone's name
            if len(name) <= 2 and not is_short and not (context and consistent):
                continue  # 东区, 城区, 兴县: too common inside other names to trust without the hierarchy
            score = (consistent, LEVEL_RANK[place.level] > last_rank, not is_short,
                     -abs(LEVEL_RANK[place.level] - last_rank - 1))
            scored.append((score, place, is_short))
        if not scored:
            return None
        scored.sort(key=lambda s: s[0], reverse=True)
        _, place, is_short = scored[0]
        label = place.level
        if place.code and place.code[:2] in MUNICIPALITY_CODES and place.level in ("prov", "city"):
            # MGeo labels 上海市 as city and 上海 as province; 上海市上海市 is province then city
            has_prov = any(c.level == "prov" for c in context)
            label = "prov" if not has_prov and (is_short or text.startswith(name, end)) else "city"
            place = next((p for p, _ in entries if p.level == label), place)
        return place, label

    @staticmethod
    def _name_goes_on(text: str, end: int) -> bool:
        """A short form followed by a road or zone word is part of a longer name (余杭塘路, 临江工业园)."""
        nxt = text[end:end + 8]
        if not nxt:
            return False
        if nxt[0] in "路街道巷弄桥湾村镇乡区县市省大" or (len(nxt) > 1 and nxt[1] in "路街巷弄"):
            return True
        return any(nxt.startswith(w) for w in NAME_CONTINUATIONS) or nxt[0] in "城园苑府"

    def _resolve_anchored(self, st: _State, label: str, i: int, end: int, gap_empty: bool) -> str | None:
        if label == "village_group" and not gap_empty and len(_strip(st.text[st.gap:i])) >= 2:
            return label
        if label == "number":
            if st.text[end - 1] == "弄" and _NUMBER_HAO.match(st.text, end):
                return "road"  # 梅西路00弄|000号: the lane is the road of the number after it
            after_road = st.last == "road" or (st.last == "assist" and len(st.entities) > 1
                                                and st.entities[-2].label == "road")
            if after_road and gap_empty:
                return "roadno"
            chunk = _strip(st.text[st.gap:i])
            if (not gap_empty and 2 <= len(chunk) <= 6 and not any(e.label == "poi" for e in st.entities)
                    and self._poi_cut(chunk + "|") is None and not chunk.endswith(POI_SUFFIXES)):
                return "roadno"  # 陡门头000号, 乔下线000号: a bare name before a door number is its road
            return "houseno"
        if label == "village_group" and st.last not in ("community", "town", "village_group"):
            return None
        if label == "subpoi":
            if not gap_empty and len(st.text[st.gap:i].strip()) < 2:
                return None
            if not gap_empty:
                return "subpoi"
            return "subpoi" if any(e.label == "poi" for e in st.entities) else "poi"
        return label

    def _suffix_at(self, st: _State, i: int) -> tuple[int, int, str, Place | None] | None:
        text = st.text
        for label, suffixes, lo, hi in SUFFIX_RULES:
            for suf in suffixes:
                if not text.startswith(suf, i):
                    continue
                end = i + len(suf)
                name_start = self._name_start(st, i, label)
                name = text[name_start:i]
                if not (lo <= len(name) <= hi) or any(c in PUNCT for c in name):
                    continue
                if label in ("town", "community") and self._continues_as_name(text, end):
                    continue
                if label == "community" and name.endswith("新"):
                    continue
                if label == "road" and text[end:end + 1] in ("道",):
                    continue
                return name_start, end, label, None
        return None

    def _name_start(self, st: _State, i: int, label: str) -> int:
        """Where the name before a suffix at ``i`` starts: the gap start, or just after a POI word in it."""
        start = st.gap
        while start < i and st.text[start] in PUNCT:
            start += 1
        if start < i - 1 and st.text[start] in CONNECTORS and st.last in ("road", "roadno"):
            start += 1  # 文三路与|学院路
        if label == "road":
            gap = st.text[start:i]
            cut = self._poi_cut(gap, multi_char=True)
            if cut is not None and len(gap) - cut >= 2:
                return start + cut
        return start

    @staticmethod
    def _continues_as_name(text: str, end: int) -> bool:
        nxt = text[end:end + 3]
        return bool(nxt) and (nxt[0] in "路街道巷弄桥口" or any(nxt.startswith(s) for s in
                                                      ("小区", "新村", "工业", "开发", "花园", "公寓", "大厦", "委")))

    @staticmethod
    def _poi_cut(chunk: str, *, subpoi_only: bool = False, multi_char: bool = False) -> int | None:
        """Offset just after the first POI word in ``chunk`` that ends a name, if any.

        A cut inside a longer POI word (东园|小区) or right before one is no cut.
        With ``subpoi_only`` the rest must look like part of a place (short, or
        ending in 区/期/门/部...), else the chunk is one long name.
        """
        hits = []
        for suf in POI_SUFFIXES:
            if multi_char and len(suf) < 2:
                continue
            j = chunk.find(suf)
            while j >= 0:
                hits.append((j, j + len(suf)))
                j = chunk.find(suf, j + 1)
        for _, cut in sorted(hits, key=lambda h: h[1]):
            rest = chunk[cut:]
            if cut < 2 or len(rest) < 1:
                continue
            if any(a < cut < b for a, b in hits) or any(rest.startswith(s) for s in POI_SUFFIXES):
                continue
            single = all(b - a == 1 for a, b in hits if b == cut)
            if subpoi_only and not (rest.endswith(SUBPOI_ENDINGS) or (len(rest) <= 4 and not single)):
                continue
            return cut
        return None

    def _flush(self, st: _State, start: int, end: int, following: str | None = None) -> None:
        """Label an unlabelled gap as poi (first) / subpoi (later), split after a POI word.

        Two exceptions learnt from how MGeo data is labelled: a bare two-character
        name between a town and a road or building is the village (九堡镇|三村|文三路),
        and a place after a helper word starts a new POI (城南中学对面|如家酒店).
        """
        lead = SEPARATORS if st.entities else PUNCT  # 和美苑: a connector joins nothing before the first element
        while start < end and (st.text[start] in lead or st.text.startswith("中国", start)):
            start += 2 if st.text.startswith("中国", start) else 1
        while end > start and st.text[end - 1] in SEPARATORS:
            end -= 1
        changed = True
        while changed:
            changed = False
            for w in NOISE:
                if st.text.endswith(w, start, end):
                    end -= len(w)
                    changed = True
            while end > start and st.text[end - 1] in SEPARATORS:
                end -= 1
        tail = next((w for w in _TAIL_ASSIST if st.text.endswith(w, start, end) and end - len(w) - start >= 2), None)
        if tail is not None:  # 人民医院旁, 银泰城内: the helper word is split off
            self._flush(st, start, end - len(tail), "assist")
            st.entities.append(Entity(end - len(tail), end, "assist", tail, source=self.source))
            return
        if end - start < 2:
            return
        chunk = st.text[start:end]
        if following == "roadno":
            st.entities.append(Entity(start, end, "road", chunk, source=self.source))
            return
        if (end - start == 2 and st.last == "town" and st.entities[-1].end == start
                and following in ("road", "village_group", "houseno")):
            st.entities.append(Entity(start, end, "community", chunk, source=self.source))
            return
        has_poi = any(e.label == "poi" for e in st.entities) and st.last not in ("assist", "distance")
        cut = self._poi_cut(chunk, subpoi_only=True)
        parts = [(start, start + cut), (start + cut, end)] if cut is not None and end - start - cut >= 2 else \
            [(start, end)]
        for a, b in parts:
            label = "subpoi" if has_poi else "poi"
            st.entities.append(Entity(a, b, label, st.text[a:b], source=self.source))
            has_poi = True

    # -- correcting another teacher --------------------------------------------------------------
    def correct(self, record: Record) -> tuple[Record, list[Correction]]:
        """Relabel administrative entities the gazetteer proves wrong; flag hierarchy breaks it cannot fix.

        A mention is relabelled only when every gazetteer reading consistent with
        the other administrative mentions of the record has one level (``浙江省``
        labelled ``city`` becomes ``prov``; ``余姚市`` under ``宁波市`` labelled
        ``city`` becomes ``district``). Unknown names are left alone: absence from
        the gazetteer proves nothing.

        Flags (``new=None``, ``code="hierarchy"``) name the province/city/district
        mentions that do not fit the others as one place (``广州市`` after
        ``浙江省``), by the rules of :mod:`nerwheel.kb.hierarchy`, the same the KB
        teacher applies to itself; the LLM teacher drops flagged entities.
        """
        fixes: list[Correction] = []
        readings: dict[int, list[Place]] = {}
        for k, e in enumerate(record.entities):
            places = [p for p, _ in self.gaz.lookup(e.text) if p.level in ADMIN_LEVELS]
            if places:
                readings[k] = places
        # anchors: mentions with a single reading fix the hierarchy for the rest
        anchors = [ps[0] for ps in readings.values() if len(ps) == 1]
        out = list(record.entities)
        for k, places in readings.items():
            e = record.entities[k]
            ctx = [a for a in anchors if a not in places]
            consistent = [p for p in places if all(p.related(a) for a in ctx if a.level != p.level)] or places
            levels = {p.level for p in consistent}
            if any(p.code and p.code[:2] in MUNICIPALITY_CODES for p in consistent) and levels <= {"prov", "city"}:
                continue  # 上海市 is both; MGeo usage decides, not the gazetteer
            if len(levels) == 1:
                level = levels.pop()
                if e.label != level and (e.label in ADMIN_LEVELS or e.label in ("poi", "devzone")):
                    reason = f"kb: {e.text!r} is a {level} ({consistent[0].path()}), not {e.label}"
                    fixes.append(Correction(e.start, e.end, e.text, e.label, level, reason))
                    out[k] = Entity(e.start, e.end, level, e.text, source=e.source, score=e.score)
            elif e.label in levels:
                continue
        # hierarchy: a city not under the province found, a district not under the city (kb.hierarchy)
        for c in conflicts([mention(self.gaz, e) for e in out]):
            e = out[c.index]
            fixes.append(Correction(e.start, e.end, e.text, e.label, None, f"kb: {c.reason}", code="hierarchy"))
        return record.with_entities(out), fixes
