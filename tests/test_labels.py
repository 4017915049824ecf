import json

import pytest

from nerwheel.labels import LabelMap, TagSet, UnknownLabelError, spans_to_tags, tags_to_spans
from nerwheel.records import Entity, Record

SPANS = [(0, 2, "prov"), (2, 3, "city"), (5, 8, "road")]


@pytest.mark.parametrize(
    "scheme, tags",
    [
        ("BIO", ["B-prov", "I-prov", "B-city", "O", "O", "B-road", "I-road", "I-road", "O"]),
        ("BIOES", ["B-prov", "E-prov", "S-city", "O", "O", "B-road", "I-road", "E-road", "O"]),
        ("BMES", ["B-prov", "E-prov", "S-city", "O", "O", "B-road", "M-road", "E-road", "O"]),
    ],
)
def test_spans_tags_round_trip(scheme, tags):
    assert spans_to_tags(9, SPANS, scheme) == tags
    assert tags_to_spans(tags, scheme) == SPANS
    assert tags_to_spans(tags, scheme, strict=True) == SPANS


def test_overlapping_spans_cannot_be_tagged():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags(5, [(0, 3, "a"), (2, 4, "b")])


@pytest.mark.parametrize(
    "tags, scheme, message",
    [
        (["I-road", "I-road"], "BIO", "continues no open"),
        (["B-road", "I-poi"], "BIO", "continues no open"),
        (["B-road", "O"], "BIOES", "not closed"),
        (["X-road"], "BIO", "Allowed prefixes are: B, I"),
        (["road"], "BIO", "Invalid tag is found"),
    ],
)
def test_strict_decoding_names_the_problem(tags, scheme, message):
    with pytest.raises(ValueError, match=message):
        tags_to_spans(tags, scheme, strict=True)


def test_lenient_decoding_repairs_like_a_decoder():
    assert tags_to_spans(["I-road", "I-road", "B-poi", "I-road"], "BIO") == [(0, 2, "road"), (2, 3, "poi"), (3, 4, "road")]


def test_unknown_scheme_lists_allowed():
    with pytest.raises(ValueError, match="Allowed schemes are: BIO, BIOES, BMES"):
        spans_to_tags(1, [], "IOE")


def test_tagset_from_records():
    r = Record("1", "浙江杭州", (Entity(0, 2, "prov", "浙江"), Entity(2, 4, "city", "杭州")))
    ts = TagSet.from_records([r])
    assert ts.tags == ["O", "B-city", "I-city", "B-prov", "I-prov"]
    assert ts.label2id["B-prov"] == 3 and ts.id2label[0] == "O"


def test_label_map_normalises_synonyms_and_prefixes(tmp_path):
    p = tmp_path / "map.json"
    p.write_text(json.dumps({"省份": "prov", "Road": "road"}, ensure_ascii=False), encoding="utf-8")
    m = LabelMap.load(p, allowed=["prov", "road"])
    assert m.normalize("省份") == "prov"
    assert m.normalize("ROAD") == "road"
    assert m.normalize("街道") is None
    with pytest.raises(UnknownLabelError, match="allowed labels are: prov, road"):
        m.require("街道")
    assert LabelMap(prefix="pos:").normalize("n") == "pos:n"


def test_label_map_rejects_bad_file(tmp_path):
    p = tmp_path / "map.json"
    p.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="synonym -> canonical"):
        LabelMap.load(p)
