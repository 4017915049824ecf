"""Hierarchy checks over the administrative mentions of one address (province ⊃ city ⊃ district).

Why a check after the fact: the scanner prefers readings consistent with what it
has found so far, but when no consistent reading exists (``浙江省广州市西湖区``)
it still finds *some* place, and a teacher that emitted all of them would teach
a student that ``广州市`` sits in ``浙江省``. So the mentions of one address are
checked together:

- each mention has its *readings*: the gazetteer places its text can name at
  its labelled level (``西湖区`` -> 杭州's and 南昌's);
- a consistent set of mentions is one whose readings can be chosen on a single
  root-to-leaf path (a deepest place and its ancestors), plus siblings of the
  deepest place (two counties of one city contain nothing wrongly);
- the largest consistent set wins; on a tie, the set holding the higher levels
  (an address is read top-down: when a district is not under the city found,
  the district is the one flagged), then the earlier mentions. Every mention
  outside the winning set is a conflict.
  ``浙江省广州市西湖区``: {浙江省, 西湖区 (of 杭州)} beats {广州市}, so 广州市 goes;
  ``杭州市鄞州区``: {杭州市} and {鄞州区 (of 宁波)} tie, the city stays and the
  district goes.

What real addresses do that is *not* a conflict (seen in the CCKS 2021 data):
- two addresses in one text (``山东省临沂市临沭县中国浙江省杭州市余杭区``, a
  sender and a receiver): a province or city mention after a mention of its own
  level or deeper starts a new chain, and chains are checked separately;
- placeholders from administrative code tables (``市辖区``, ``市辖县``) name no
  place and are not checked;
- county-level cities (``余姚市`` under ``宁波市``) are districts in the
  gazetteer, so they fit their prefecture; a county-level city run by the
  province itself (``阿拉尔市``) fits the prefectures of its province
  (``阿克苏地区阿拉尔市``);
- two counties of one city (``义乌市金东区``, a renamed county beside its new
  name: ``遵义县播州区``) are siblings, not a conflict.

Only provinces, cities and districts are checked: town and village names are
too ambiguous, and the scanner already accepts a gazetteer town only under the
district found. A mention without readings (a renamed district, a name the
gazetteer does not know) is never a conflict: absence proves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nerwheel.kb.gazetteer import COUNTY_AND_ABOVE, Gazetteer, Place
from nerwheel.kb.rules import ADMIN_SUFFIX_VARIANTS
from nerwheel.records import Entity

__all__ = ["CHECKED", "PLACEHOLDERS", "Conflict", "Mention", "conflicts", "mention"]

CHECKED = COUNTY_AND_ABOVE  # the levels checked against each other
RANK = {lab: i for i, lab in enumerate(CHECKED)}
PLACEHOLDERS = frozenset({"市辖区", "市辖县", "县", "区", "省直辖县级行政区划", "自治区直辖县级行政区划"})


@dataclass(frozen=True, slots=True)
class Conflict:
    """Entity ``index`` cannot stand with the other mentions of its address, and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Mention:
    """An administrative entity with the places it can name; ``full``: written by a full name (``上城区``)."""

    entity: Entity
    places: tuple[Place, ...]
    full: bool


def mention(gaz: Gazetteer, entity: Entity, chosen: Place | None = None) -> Mention:
    """The places ``entity`` can name at its labelled level (``chosen``, the scanner's pick, first).

    A name written with a generic suffix its official name lacks (``富阳市`` for 富阳区)
    is looked up by its short form.
    """
    if entity.label not in CHECKED or entity.text in PLACEHOLDERS:
        return Mention(entity, (), False)
    hits = [(p, short) for p, short in gaz.lookup(entity.text) if p.level == entity.label]
    if not hits:
        for suf in ADMIN_SUFFIX_VARIANTS.get(entity.label, ()):
            if entity.text.endswith(suf) and len(entity.text) - len(suf) >= 2:
                hits += [(p, True) for p, _ in gaz.lookup(entity.text[: -len(suf)]) if p.level == entity.label]
    places = [chosen] if chosen is not None and chosen.level in CHECKED else []
    places += [p for p, _ in hits if not any(p is q for q in places)]
    return Mention(entity, tuple(places), any(not short for _, short in hits))


def _chains(mentions: Sequence[Mention]) -> list[list[int]]:
    """Indices of the checked mentions, cut where a province or city follows its own level or a deeper one."""
    order = sorted((i for i, m in enumerate(mentions) if m.places), key=lambda i: mentions[i].entity.start)
    chains: list[list[int]] = []
    prev = None
    for i in order:
        rank = RANK[mentions[i].entity.label]
        if not chains or (rank <= RANK["city"] and prev is not None and rank <= prev):
            chains.append([])
        chains[-1].append(i)
        prev = rank
    return chains


def _fits(p: Place, anchor: Place, path: set[int]) -> bool:
    """``p`` can stand beside ``anchor`` (the deepest place of a set): on its path, a sibling, or a
    province-administered county-level city's prefecture (阿克苏地区 beside 阿拉尔市)."""
    if id(p) in path:
        return True
    parent = anchor.parent
    if parent is None:
        return False
    if p.level == anchor.level and p.parent is parent:
        return True  # 义乌市金东区, 遵义县播州区: two counties of one city break no containment
    return anchor.level == "district" and parent.level == "prov" and p.level == "city" and p.parent is parent


def conflicts(mentions: Sequence[Mention]) -> list[Conflict]:
    """The mentions (by index) outside the best consistent set of their chain; see the module docstring."""
    out: list[Conflict] = []
    for chain in _chains(mentions):
        if len(chain) < 2:
            continue
        sets = set()
        for i in chain:
            for anchor in mentions[i].places:
                path = {id(anchor), *(id(a) for a in anchor.ancestors())}
                sets.add(frozenset(j for j in chain if any(_fits(p, anchor, path) for p in mentions[j].places)))

        def rank(covered: frozenset[int]) -> tuple[int, list[tuple[int, int]]]:
            # more mentions first; then the set holding the higher levels (read top-down), then the earlier ones
            return -len(covered), sorted((RANK[mentions[j].entity.label], mentions[j].entity.start) for j in covered)

        keep = min(sets, key=rank)
        out += [Conflict(i, _reason(mentions, chain, keep, i)) for i in chain if i not in keep]
    return sorted(out, key=lambda c: c.index)


def _reason(mentions: Sequence[Mention], chain: Sequence[int], keep: frozenset[int], i: int) -> str:
    m = mentions[i]
    what = f"hierarchy: {m.entity.label} {m.entity.text!r} ({_paths(m.places)})"
    other = next((mentions[j] for j in chain if j in keep and not any(p.related(q) for p in m.places
                                                                     for q in mentions[j].places)), None)
    if other is None:  # fits each other mention alone, but not all of them at once
        names = ", ".join(f"{mentions[j].entity.label} {mentions[j].entity.text!r}" for j in chain if j in keep)
        return f"{what} does not fit {names or 'the other mentions'} as one place"
    them = f"{other.entity.label} {other.entity.text!r} ({_paths(other.places)})"
    mine, theirs = RANK[m.entity.label], RANK[other.entity.label]
    if theirs < mine:
        return f"{what} is not under {them}"
    if theirs > mine:
        return f"{what} does not contain {them}, which the rest of the address supports"
    return f"{what} and {them} do not lie in one {CHECKED[mine - 1] if mine else 'country'}"


def _paths(places: Sequence[Place]) -> str:
    shown = " or ".join(p.path() for p in places[:3])
    return shown + (f" or {len(places) - 3} more" if len(places) > 3 else "")
