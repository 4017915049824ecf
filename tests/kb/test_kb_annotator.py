"""The knowledge-base teacher on hand-written addresses: a table of address -> expected spans."""

from __future__ import annotations

import pytest

from nerwheel.kb.annotator import AddressKB
from nerwheel.kb.gazetteer import load_gazetteer, short_name
from nerwheel.records import Entity, Record


@pytest.fixture(scope="module")
def kb() -> AddressKB:
    return AddressKB()


CASES = [
    ("浙江省杭州市西湖区文三路478号华星大厦A座12楼",
     "浙江省/prov 杭州市/city 西湖区/district 文三路/road 478号/roadno 华星大厦/poi A座/houseno 12楼/floorno"),
    ("浙江杭州余杭区五常街道文一西路0000号",
     "浙江/prov 杭州/city 余杭区/district 五常街道/town 文一西路/road 0000号/roadno"),
    ("江干区九堡镇三村村一区", "江干区/district 九堡镇/town 三村村/community 一区/poi"),
    ("余杭区良渚镇杜甫村00组", "余杭区/district 良渚镇/town 杜甫村/community 00组/village_group"),
    ("路桥区新桥镇韩家村工业区", "路桥区/district 新桥镇/town 韩家村工业区/devzone"),
    ("荷花小区0幢0单元000室", "荷花小区/poi 0幢/houseno 0单元/cellno 000室/roomno"),
    ("紫金花园二期00号楼八楼", "紫金花园/poi 二期/subpoi 00号楼/houseno 八楼/floorno"),
    ("文二路与学院路交叉口附近", "文二路/road 学院路/road 交叉口/intersection 附近/assist"),
    ("古墩路000号城西银泰旁边", "古墩路/road 000号/roadno 城西银泰/poi 旁边/assist"),
    ("人民医院北000米", "人民医院/poi 北/assist 000米/distance"),
    ("田园路往东000米港隆大厦", "田园路/road 往东/assist 000米/distance 港隆大厦/poi"),
    ("临江工业园区纬七路0000号", "临江工业园区/devzone 纬七路/road 0000号/roadno"),
    ("余杭塘路0000号浙大紫金港校区农生环",
     "余杭塘路/road 0000号/roadno 浙大紫金港校区/poi 农生环/subpoi"),
    ("宁波市余姚市阳明街道舜水南路00号", "宁波市/city 余姚市/district 阳明街道/town 舜水南路/road 00号/roadno"),
    ("上海市浦东新区张江路00弄0号000室", "上海市/city 浦东新区/district 张江路/road 00弄/road 0号/roadno 000室/roomno"),
    ("上海上海市静安区南京西路0000号", "上海/prov 上海市/city 静安区/district 南京西路/road 0000号/roadno"),
    ("新疆阿克苏地区阿克苏市解放路", "新疆/prov 阿克苏地区/city 阿克苏市/district 解放路/road"),
]


def _spans(entities: list[Entity]) -> str:
    return " ".join(f"{e.text}/{e.label}" for e in entities)


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_annotates_hand_written_addresses(kb: AddressKB, text: str, expected: str) -> None:
    got = kb.annotate_text(text)
    assert _spans(got) == expected
    assert all(text[e.start:e.end] == e.text and e.source == "kb" for e in got)


def test_hierarchy_picks_the_town_of_the_district_found(kb: AddressKB) -> None:
    # 九堡 is a town in Hangzhou (九堡街道) and in Jiangxi (九堡镇): the district decides
    kb.annotate_text("杭州市江干区九堡镇")
    assert kb.annotate_text("瑞金市九堡镇坝溪村")[-1].label == "community"
    towns = [p for p, _ in load_gazetteer().lookup("九堡") if p.level == "town"]
    assert {p.parent.name for p in towns if p.parent} >= {"江干区", "瑞金市"}


def test_short_forms_only_where_they_cannot_be_part_of_a_name(kb: AddressKB) -> None:
    assert _spans(kb.annotate_text("杭州西湖区")) == "杭州/city 西湖区/district"  # an address follows: a city
    assert _spans(kb.annotate_text("杭州银泰")) == "杭州银泰/poi"  # a bare short name in front of a POI is its name
    assert "city" not in [e.label for e in kb.annotate_text("文三路000号杭州银泰")]  # not in the admin head


@pytest.mark.parametrize(
    ("name", "level", "short"),
    [("浙江省", "prov", "浙江"), ("新疆维吾尔自治区", "prov", "新疆"), ("杭州市", "city", "杭州"),
     ("湘西土家族苗族自治州", "city", "湘西"), ("余杭区", "district", "余杭"), ("长阳土家族自治县", "district", "长阳"),
     ("城区", "district", None), ("九堡街道", "town", "九堡")],
)
def test_short_names(name: str, level: str, short: str | None) -> None:
    assert short_name(name, level) == short


def _rec(text: str, spans: str) -> Record:
    ents, pos = [], 0
    for token in spans.split():
        piece, label = token.split("/")
        i = text.index(piece, pos)
        ents.append(Entity(i, i + len(piece), label, piece, source="llm:x"))
        pos = i + len(piece)
    return Record("r", text, tuple(ents))


@pytest.mark.parametrize(
    ("text", "llm", "fixed", "n_changed"),
    [
        ("浙江省杭州市", "浙江省/city 杭州市/city", "浙江省/prov 杭州市/city", 1),
        ("宁波市余姚市", "宁波市/city 余姚市/city", "宁波市/city 余姚市/district", 1),
        ("杭州市西湖区文三路", "杭州市/city 西湖区/district 文三路/road", "杭州市/city 西湖区/district 文三路/road", 0),
        ("上海市静安区", "上海市/prov 静安区/district", "上海市/prov 静安区/district", 0),  # both readings are fine
    ],
)
def test_correct_relabels_what_the_gazetteer_proves(kb: AddressKB, text: str, llm: str, fixed: str,
                                                    n_changed: int) -> None:
    out, fixes = kb.correct(_rec(text, llm))
    assert _spans(list(out.entities)) == fixed
    changed = [f for f in fixes if f.new is not None]
    assert len(changed) == n_changed
    for f in changed:
        assert f.reason.startswith("kb: ") and f.old != f.new
    assert all(e.source == "llm:x" for e in out.entities)


def test_correct_flags_a_district_outside_the_city(kb: AddressKB) -> None:
    _, fixes = kb.correct(_rec("杭州市鄞州区", "杭州市/city 鄞州区/district"))
    assert [(f.text, f.new, f.code) for f in fixes] == [("鄞州区", None, "hierarchy")]
    assert "is not under city '杭州市'" in fixes[0].reason


HIERARCHY = [
    # (text, kept admin spans, dropped (text, label, words in the reason))
    ("浙江省杭州市西湖区文三路000号", "浙江省/prov 杭州市/city 西湖区/district", []),  # consistent: all kept
    ("浙江省广州市西湖区文三路", "浙江省/prov 西湖区/district",
     [("广州市", "city", "is not under prov '浙江省'")]),  # city not in the province
    ("浙江省杭州市鄞州区文三路000号", "浙江省/prov 杭州市/city",
     [("鄞州区", "district", "is not under city '杭州市'")]),  # district not in the city
    ("杭州市鄞州区", "杭州市/city", [("鄞州区", "district", "浙江省/宁波市/鄞州区")]),
    # what real addresses do that is no conflict
    ("山东省临沂市临沭县中国浙江省杭州市余杭区龙潭路",  # two addresses in one text
     "山东省/prov 临沂市/city 临沭县/district 浙江省/prov 杭州市/city 余杭区/district", []),
    ("上海市市辖区黄浦区陆家浜路0000号", "上海市/city 市辖区/district 黄浦区/district", []),  # code-table placeholder
    ("新疆阿克苏地区阿拉尔市解放路", "新疆/prov 阿克苏地区/city 阿拉尔市/district", []),  # run by the province
    ("浙江省金华市义乌市金东区东升路", "浙江省/prov 金华市/city 义乌市/district 金东区/district", []),  # siblings
    ("上海市闸北区天目西路000号", "上海市/city 闸北区/district", []),  # merged away in 2015, still in the data
]


@pytest.mark.parametrize(("text", "kept", "dropped"), HIERARCHY)
def test_hierarchy_is_enforced_not_just_preferred(kb: AddressKB, text: str, kept: str,
                                                  dropped: list[tuple[str, str, str]]) -> None:
    entities, removed = kb.annotate_checked(text)
    admin = [e for e in entities if e.label in ("prov", "city", "district")]
    assert _spans(admin) == kept
    assert [(e.text, e.label) for e, _ in removed] == [(t, lab) for t, lab, _ in dropped]
    for (_, reason), (_, _, words) in zip(removed, dropped, strict=True):
        assert reason.startswith("hierarchy: ") and words in reason
    assert kb.annotate_text(text) == entities


def test_a_conflicting_short_name_is_read_again_as_part_of_a_name(kb: AddressKB) -> None:
    # 江南 (a district of 南宁) inside an estate's name in 杭州: no district, and the estate keeps its name
    entities, removed = kb.annotate_checked("浙江省杭州市萧山区江南明城0栋")
    assert [(e.text, e.label) for e, _ in removed] == [("江南", "district")]
    assert ("江南明城", "poi") in [(e.text, e.label) for e in entities]


@pytest.mark.parametrize(
    ("text", "llm", "flagged"),
    [
        ("浙江省杭州市西湖区", "浙江省/prov 杭州市/city 西湖区/district", []),
        ("浙江省广州市西湖区", "浙江省/prov 广州市/city 西湖区/district", ["广州市"]),  # city not in province
        ("杭州市鄞州区", "杭州市/city 鄞州区/district", ["鄞州区"]),  # district not in city
        ("浙江省杭州市富阳市", "浙江省/prov 杭州市/city 富阳市/district", []),  # old name of 富阳区, by its short form
    ],
)
def test_correct_flags_llm_labels_that_break_the_hierarchy(kb: AddressKB, text: str, llm: str,
                                                           flagged: list[str]) -> None:
    out, fixes = kb.correct(_rec(text, llm))
    hier = [f for f in fixes if f.code == "hierarchy"]
    assert [f.text for f in hier] == flagged
    assert all(f.new is None and f.reason.startswith("kb: hierarchy: ") for f in hier)
    assert _spans(list(out.entities)) == llm  # flagged, not changed: the caller decides (the LLM teacher drops)


def test_a_long_text_is_scanned_in_bounded_windows_cut_at_separators(kb: AddressKB,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """200,000 characters on one line once ran for over 10 minutes (the scan is super-linear in the
    length it sees); now no scan sees more than WINDOW characters, so time is linear in the length."""
    from nerwheel.kb import annotator

    address = "浙江省杭州市西湖区文三路478号华星大厦A座12楼"
    text = "；".join([address] * 2000)  # about 56,000 characters
    seen: list[int] = []
    real = AddressKB._scan

    def spy(self, t, banned=frozenset()):
        seen.append(len(t))
        return real(self, t, banned)

    monkeypatch.setattr(AddressKB, "_scan", spy)
    got = kb.annotate_text(text)
    assert seen and max(seen) <= annotator.WINDOW
    assert all(text[e.start:e.end] == e.text for e in got)
    # windows end at a separator, so no copy of the address is cut: each has its administrative and street
    # parts where it has them alone (a second POI in one window is a subpoi, as it always was)
    step, street = len(address) + 1, ("prov", "city", "district", "road", "roadno", "floorno")
    alone = {(e.start, e.end, e.label) for e in kb.annotate_text(address) if e.label in street}
    for k in range(2000):
        mine = {(e.start - k * step, e.end - k * step, e.label) for e in got
                if k * step <= e.start < (k + 1) * step and e.label in street}
        assert mine == alone, k
    # and a text with no separator at all is cut hard at WINDOW characters
    seen.clear()
    kb.annotate_text("abcdefghij" * 3000)
    assert max(seen) <= annotator.WINDOW and sum(seen) >= 30000


def test_number_patterns_do_not_run_away_on_long_letter_or_digit_runs() -> None:
    """A run of letters or digits is tried as a number at every position; unbounded, that is
    quadratic in the run. A number of more than 12 characters is no house number anyway."""
    from nerwheel.kb.rules import anchored_match

    assert anchored_match("A12号", 0) == ("number", 4)
    assert anchored_match("1" * 12 + "号", 0) == ("number", 13)
    assert anchored_match("A" * 200 + "号", 0) is None
    assert anchored_match("0" * 200 + "米", 0) is None
