"""Pattern rules for the address elements a gazetteer cannot list: numbers, roads, zones, helper words.

Each rule is a declaration (a label and a regex, or a suffix list); the scanner
in :mod:`nerwheel.kb.annotator` decides where they may fire. Real data masks
digits as ``0`` (``0000号``), so digit classes accept ``0`` like any digit, and
Chinese numerals (``三单元``) and letters (``A座``) count as numbers.
"""

from __future__ import annotations

import re

__all__ = [
    "ANCHORED",
    "ASSIST_MULTI",
    "ASSIST_SINGLE",
    "DIRECTION_BEFORE_DISTANCE",
    "INTERSECTION",
    "NOISE",
    "PUNCT",
    "CONNECTORS",
    "SUBPOI_ENDINGS",
    "ADMIN_SUFFIX_VARIANTS",
    "POI_SUFFIXES",
    "SEPARATORS",
    "SUFFIX_RULES",
    "anchored_match",
]

NUM = r"[0-9０-９A-Za-zＡ-Ｚａ-ｚ一二三四五六七八九十百千零〇两]"
# Number runs are bounded (12 characters, 4 parts): the rules are tried at every position, and an
# unbounded run makes each try scan to the end of a long letter/digit run (quadratic in the run).
NUMSEQ = rf"{NUM}{{1,12}}(?:[-－—~～#]{NUM}{{1,12}}){{0,3}}"
CNUM = r"[0-9０-９一二三四五六七八九十百千零〇两]"
CNUMS = rf"{CNUM}{{1,12}}"

# (label, pattern) tried at a position, in order; "号" is resolved to roadno/houseno by context.
ANCHORED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("distance", re.compile(rf"{CNUMS}(?:\.{CNUMS})?(?:米|公里|千米)")),
    ("subpoi", re.compile(rf"{NUMSEQ}号门")),
    ("houseno", re.compile(rf"{NUMSEQ}(?:号楼|号院|幢|栋|座|号馆)")),
    ("cellno", re.compile(rf"{NUMSEQ}(?:单元|梯)")),
    ("roomno", re.compile(rf"{NUMSEQ}(?:室|房间|房)")),
    ("floorno", re.compile(rf"(?:{NUMSEQ}|地下{CNUMS}|负{CNUMS})(?:楼层|楼|层|[Ff](?![a-zA-Z]))")),
    ("number", re.compile(rf"{NUMSEQ}(?:号|弄)(?!路|街|巷|大街|大道)")),  # roadno after a road, else houseno
    ("village_group", re.compile(rf"{CNUMS}(?:组|队|社)(?![区会])")),
    ("subpoi", re.compile(r"(?:[A-Za-z0-9一二三四五六七八九十东南西北]{1,3})(?:区|期|门)(?![a-zA-Z\u4e00-\u9fff]{0,30}?[路街镇乡村市县])")),
)

# a direction right before a distance is a helper word: 往东000米, 北00米, 西北侧000米
DIRECTION_BEFORE_DISTANCE = re.compile(
    rf"(?:往|向|以|朝)?(?:东北|东南|西北|西南|东|南|西|北)(?:侧|面|边|方向)?(?={CNUMS}(?:\.{CNUMS})?(?:米|公里|千米))")

INTERSECTION = ("十字路口", "交叉路口", "交叉口", "交汇处", "交界处", "交岔口", "岔路口", "路口", "交口")
ASSIST_MULTI = ("斜对面", "对面", "旁边", "附近", "隔壁", "后面", "楼下", "对过", "西侧", "东侧", "南侧", "北侧",
                "西面", "东面", "南面", "北面", "里面", "后门")
ASSIST_SINGLE = ("旁", "内", "后", "边", "里", "外")

# (label, suffixes, min name length, max name length); the name is the text gap before the suffix.
SUFFIX_RULES: tuple[tuple[str, tuple[str, ...], int, int], ...] = (
    ("devzone", ("经济技术开发区", "高新技术产业开发区", "高新技术开发区", "经济开发区", "开发区", "工业园区",
                 "工业园", "工业区", "工业城", "科技园区", "科技园", "产业园区", "产业园", "高新区", "创业园", "保税区",
                 "物流园区", "物流园", "园区", "新区"), 1, 10),
    ("town", ("街道", "镇", "乡"), 1, 4),
    ("community", ("社区", "村"), 1, 4),
    ("road", ("大道", "大街", "公路", "路", "街", "巷", "弄", "胡同"), 1, 10),
)

# words that end a point of interest: a gap is split after them (宋埠公园|南路, 浙大紫金港校区|农生环)
POI_SUFFIXES = (
    "小区", "花园", "公寓", "大厦", "大楼", "广场", "中心", "市场", "商城", "医院", "学校", "小学", "中学", "大学",
    "学院", "校区", "幼儿园", "酒店", "宾馆", "饭店", "公司", "银行", "超市", "商场", "新村", "家园", "山庄", "庄园",
    "公园", "车站", "服务区", "加油站", "派出所", "政府", "写字楼", "大院", "苑", "府", "城", "园", "厂", "馆",
)

# words that belong to no address element (delivery notes); stripped from the ends of a POI gap
NOISE = ("电话联系", "联系电话", "送货上门", "电联", "代收", "收件", "快递柜", "快递点")

# a POI gap is split into poi + subpoi only when the rest looks like a part of a place
SUBPOI_ENDINGS = tuple("区期门部室厅口处店柜台库楼层座")

# "generic" suffixes a short admin name can be written with although the official name has another
ADMIN_SUFFIX_VARIANTS = {"prov": ("省", "市"), "city": ("市", "地区", "州", "盟"), "district": ("区", "县", "市", "旗")}

PUNCT = frozenset(" \t,，.。、;；:：_-—()（）[]【】<>《》/\\|'\"“”‘’!！?？")
CONNECTORS = frozenset("与和及的在")
SEPARATORS = PUNCT | CONNECTORS

def anchored_match(text: str, i: int) -> tuple[str, int] | None:
    """The first :data:`ANCHORED` rule that matches at ``i``: ``(label, end)``."""
    for label, pattern in ANCHORED:
        m = pattern.match(text, i)
        if m:
            return label, m.end()
    return None
