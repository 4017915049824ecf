"""What each MGeo address label means (Chinese + English), the synonyms models answer with, and the POS tag set.

One home for these, so the prompt, the label normalisation and the synthesiser
describe the same labels in the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from nerwheel.errors import ConfigError
from nerwheel.labels import ADDRESS_LABELS, LabelMap

__all__ = ["LABEL_DEFINITIONS", "LABEL_SYNONYMS", "POS_PREFIX", "POS_TAGS", "address_label_map", "load_label_map",
           "pos_label_map"]

# label -> (Chinese definition, English definition)
LABEL_DEFINITIONS: dict[str, tuple[str, str]] = {
    "prov": ("省级行政区，如浙江省、浙江、上海市、新疆维吾尔自治区", "province-level division: province, municipality, autonomous region"),
    "city": ("地级行政区，如杭州市、杭州、阿克苏地区、湘西土家族苗族自治州", "prefecture-level city, prefecture or autonomous prefecture"),
    "district": ("县级行政区，如西湖区、余杭、平阳县、义乌市（县级市）", "county-level division: urban district, county, county-level city"),
    "devzone": ("开发区、工业园区、高新区、经济技术开发区等功能区", "development zone, industrial park, high-tech zone"),
    "town": ("乡级行政区：镇、乡、街道，如九堡镇、转塘街道", "township-level division: town, township, sub-district (街道)"),
    "community": ("社区、行政村、自然村，如三村村、翠苑社区", "community (社区) or village (村)"),
    "village_group": ("村民小组，如0组、三组、五社", "villager group inside a village (组, 队, 社)"),
    "road": ("道路、街、巷、弄的名称，如文三路、河滨街、解放东路", "road, street, lane or alley name"),
    "roadno": ("路号（门牌号），紧跟道路之后，如0000号、00-00号、000弄", "road number right after a road: 0000号, 00-00号, 000弄"),
    "intersection": ("路口、交叉口、交汇处，如交叉口、路口", "intersection words: 交叉口, 路口, 交汇处"),
    "poi": ("兴趣点：小区、大厦、学校、医院、商场、公司等具体地点", "point of interest: estate, building, school, hospital, mall, company"),
    "subpoi": ("兴趣点内部的子地点，如A区、二期、北门、东区", "part of a POI: area, phase, gate (A区, 二期, 北门)"),
    "houseno": ("楼栋号，如00幢、0号楼、A座、00栋", "building number: 00幢, 0号楼, A座, 00栋"),
    "cellno": ("单元号，如0单元、三单元", "entrance/unit number: 0单元"),
    "floorno": ("楼层，如00楼、0层、八楼", "floor: 00楼, 0层"),
    "roomno": ("房间号，如000室、0000房", "room number: 000室, 0000房"),
    "detail": ("其他门牌细节，如0号、A0", "other door-plate details not covered above"),
    "assist": ("方位或辅助词，如附近、旁边、对面、东侧、内", "direction or helper words: 附近, 旁边, 对面, 东侧"),
    "distance": ("距离，如000米、0公里", "distance: 000米, 0公里"),
}
assert set(LABEL_DEFINITIONS) == set(ADDRESS_LABELS), "every address label needs a definition"

# answers models give instead of the canonical name -> canonical label
LABEL_SYNONYMS: dict[str, str] = {
    "省": "prov", "省份": "prov", "省级": "prov", "province": "prov",
    "市": "city", "城市": "city", "地级市": "city",
    "区": "district", "县": "district", "区县": "district", "县区": "district", "county": "district",
    "开发区": "devzone", "园区": "devzone", "development_zone": "devzone", "devzone": "devzone",
    "镇": "town", "乡": "town", "乡镇": "town", "街道": "town", "township": "town",
    "社区": "community", "村": "community", "村庄": "community", "village": "community",
    "村民小组": "village_group", "组": "village_group", "小组": "village_group",
    "道路": "road", "路": "road", "街": "road", "路名": "road",
    "路号": "roadno", "门牌号": "roadno", "road_number": "roadno", "road_no": "roadno",
    "交叉口": "intersection", "路口": "intersection",
    "兴趣点": "poi", "地点": "poi", "小区": "poi", "建筑": "poi", "point_of_interest": "poi",
    "子兴趣点": "subpoi", "子地点": "subpoi", "sub_poi": "subpoi",
    "楼栋": "houseno", "楼号": "houseno", "楼栋号": "houseno", "house_number": "houseno", "building": "houseno",
    "单元": "cellno", "单元号": "cellno", "unit": "cellno",
    "楼层": "floorno", "层": "floorno", "floor": "floorno",
    "房间": "roomno", "房间号": "roomno", "房号": "roomno", "room": "roomno",
    "详细": "detail", "其他": "detail",
    "辅助": "assist", "方位": "assist", "方位词": "assist",
    "距离": "distance",
}

POS_PREFIX = "pos:"

# a compact PKU/ICTCLAS-style tag set: tag -> (Chinese, English)
POS_TAGS: dict[str, tuple[str, str]] = {
    "n": ("普通名词", "common noun"), "ns": ("地名", "place name"), "nt": ("机构名", "organisation name"),
    "nz": ("其他专名", "other proper noun"), "nr": ("人名", "person name"), "v": ("动词", "verb"),
    "a": ("形容词", "adjective"), "m": ("数词", "numeral"), "q": ("量词", "measure word"),
    "f": ("方位词", "direction word"), "s": ("处所词", "locative word"), "p": ("介词", "preposition"),
    "c": ("连词", "conjunction"), "u": ("助词", "particle"), "d": ("副词", "adverb"), "r": ("代词", "pronoun"),
    "t": ("时间词", "time word"), "x": ("字母或其他", "letters and other strings"), "w": ("标点", "punctuation"),
}


def address_label_map(labels: Iterable[str] = ADDRESS_LABELS, extra: Mapping[str, str] | None = None) -> LabelMap:
    """Synonyms -> target labels (only ``labels`` allowed); anything else is unknown.

    ``extra`` (a user's synonyms) is merged over the built-in ones, so a user can
    both add names (``街道名`` -> ``road``) and redirect a built-in one.
    """
    allowed = frozenset(labels)
    mapping = {k: v for k, v in LABEL_SYNONYMS.items() if v in allowed}
    mapping.update(extra or {})
    return LabelMap(mapping=mapping, allowed=allowed)


def load_label_map(path: str | Path, labels: Iterable[str] = ADDRESS_LABELS) -> LabelMap:
    """A JSON/YAML file of synonym -> canonical label, merged over the built-in synonyms.

    Every target must be one of ``labels``: a map that points somewhere the run
    cannot label is an error naming the entry, not a silent source of rejects.
    """
    allowed = tuple(labels)
    try:
        user = LabelMap.load(path)
    except Exception as exc:  # bad JSON, bad YAML (yaml.YAMLError), unreadable file: one message naming the file
        msg = str(exc) if str(exc).startswith(str(path)) else f"{path}: cannot read the label map: {exc}"
        raise ConfigError(msg) from None
    bad = {k: v for k, v in user.mapping.items() if v not in allowed}
    if bad:
        shown = ", ".join(f"{k!r} -> {v!r}" for k, v in list(bad.items())[:5])
        raise ConfigError(f"{path}: label map entries point outside the target labels ({shown}); "
                          f"targets must be one of: {', '.join(allowed)} (or add the target to the target labels)",
                          field="labels")
    return address_label_map(allowed, user.mapping)


def pos_label_map(prefix: str = POS_PREFIX) -> LabelMap:
    """POS tags under ``prefix`` (``pos:ns``), so they never collide with target labels."""
    return LabelMap(mapping={}, allowed=frozenset(POS_TAGS), prefix=prefix)
