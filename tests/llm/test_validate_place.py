"""Placing LLM answers at offsets: exact substrings, left-to-right repeats, label normalisation, overlap policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerwheel.llm.definitions import POS_PREFIX, address_label_map, load_label_map, pos_label_map
from nerwheel.llm.parse import parse_entities_v1
from nerwheel.llm.validate import place

TEXT = "杭州市西湖区文三路000号文三路小区"


def _place(text: str, items: str, **kw: object) -> tuple[list[tuple[int, int, str]], list[tuple[str, str | None]]]:
    placed = place(text, parse_entities_v1(items), kw.pop("label_map", address_label_map()), source="llm:t", **kw)  # type: ignore[arg-type]
    assert placed.returned == len(parse_entities_v1(items).candidates) + len(parse_entities_v1(items).rejects)
    return [(e.start, e.end, e.label) for e in placed.entities], [(r.code, r.text) for r in placed.rejects]


def test_repeats_resolved_left_to_right_and_extra_repeat_rejected() -> None:
    items = '[["文三路", "road"], ["文三路", "道路"], ["文三路", "road"]]'
    ents, rej = _place(TEXT, items)
    assert ents == [(6, 9, "road"), (13, 16, "road")]
    assert rej == [("too_many", "文三路")]


@pytest.mark.parametrize(
    ("items", "entities", "rejects"),
    [
        ('[["杭州市", "省份"]]', [(0, 3, "prov")], []),  # synonym (wrong but known label) is normalised
        ('[["杭州市", "CITY"]]', [(0, 3, "city")], []),  # case-folded
        ('[["杭州市", "metropolis"]]', [], [("unknown_label", "杭州市")]),
        ('[["上海市", "city"]]', [], [("not_in_text", "上海市")]),
        ('[[" 西湖区 ", "district"]]', [(3, 6, "district")], []),
    ],
)
def test_labels_and_hallucinations(items: str, entities: list[tuple[int, int, str]], rejects: list[tuple[str, str]]) -> None:
    assert _place(TEXT, items) == (entities, rejects)


def test_unknown_label_reason_lists_allowed_labels() -> None:
    placed = place(TEXT, parse_entities_v1('[["杭州市", "metropolis"]]'), address_label_map(), source="s")
    assert "unknown label 'metropolis'" in placed.rejects[0].reason and "prov" in placed.rejects[0].reason


@pytest.mark.parametrize(
    ("policy", "entities", "rejected"),
    [
        ("longest", [(0, 6, "poi")], [(0, 3, "city")]),
        ("first", [(0, 3, "city")], [(0, 6, "poi")]),
        ("allow", [(0, 3, "city"), (0, 6, "poi")], []),
        ("reject", [], [(0, 3, "city"), (0, 6, "poi")]),
    ],
)
def test_overlap_policy(policy: str, entities: list[tuple[int, int, str]], rejected: list[tuple[int, int, str]]) -> None:
    placed = place(TEXT, parse_entities_v1('[["杭州市", "city"], ["杭州市西湖区", "poi"]]'), address_label_map(),
                   source="s", overlap=policy)  # type: ignore[arg-type]
    assert [(e.start, e.end, e.label) for e in placed.entities] == entities
    assert [(r.start, r.end, r.label) for r in placed.rejects] == rejected
    assert all(r.code == "overlap" for r in placed.rejects)


def test_pos_mode_places_tokens_in_order_under_prefix() -> None:
    text = "文三路文三路"
    items = '{"tokens": [{"text": "文三", "pos": "ns"}, {"text": "路", "pos": "n"}, {"text": "文三", "pos": "ns"}, ' \
            '{"text": "路", "pos": "n"}, {"text": "路", "pos": "n"}, {"text": "路", "pos": "zz"}]}'
    placed = place(text, parse_entities_v1(items), pos_label_map(), source="s", mode="pos", overlap="allow")
    assert [(e.start, e.end, e.label) for e in placed.entities] == [
        (0, 2, "pos:ns"), (2, 3, "pos:n"), (3, 5, "pos:ns"), (5, 6, "pos:n")]
    assert [r.code for r in placed.rejects] == ["not_in_text", "unknown_label"]
    assert all(e.label.startswith(POS_PREFIX) for e in placed.entities)


def test_user_label_map_is_merged_over_the_built_in_synonyms(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("街道名: road\n省份: city\n", encoding="utf-8")  # adds one name, redirects a built-in one
    lm = load_label_map(path)
    assert (lm.normalize("街道名"), lm.normalize("省份"), lm.normalize("道路")) == ("road", "city", "road")
    assert lm.normalize("街道门牌") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"街道名": "street"}', "'街道名' -> 'street'"), ('{"街道名": ', "cannot read the label map"),
     ('["road"]', "synonym -> canonical")],
)
def test_bad_label_map_files_name_the_file_and_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_label_map(path)
    assert str(path) in str(info.value)
