"""The documented rules of individual formats: MGeo placement, sft end convention, CoNLL schema, Label Studio import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nerwheel.formats import FormatError, detect_format, read_records, write_records
from nerwheel.formats.base import BadRecord
from nerwheel.formats.mgeo import place
from nerwheel.records import Entity, Record


# -- MGeo placement --------------------------------------------------------------------------------
@pytest.mark.parametrize("text,wanted,expected", [
    # values of one label in reading order take successive occurrences
    ("九堡九堡", [("poi", "九堡"), ("poi", "九堡")], [(0, 2, "poi"), (2, 4, "poi")]),
    # a value listed out of order still finds its only free occurrence
    ("杭州路西湖路", [("road", "西湖路"), ("road", "杭州路")], [(3, 6, "road"), (0, 3, "road")]),
    # backtracking: the greedy first choice for poi would leave town nowhere to go
    ("九堡镇九堡", [("poi", "九堡"), ("town", "九堡镇")], [(3, 5, "poi"), (0, 3, "town")]),
    # different labels never stack on one place
    ("朝阳朝阳区", [("district", "朝阳区"), ("poi", "朝阳")], [(2, 5, "district"), (0, 2, "poi")]),
])
def test_mgeo_placement_rule(text: str, wanted: list, expected: list) -> None:
    assert place(text, wanted) == expected


def test_mgeo_separators_lists_and_text_key(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    rows = [{"text": "杭州九堡商贸中心", "entities": {"city": "杭州", "poi": "九堡 ， 商贸中心"}},
            {"address": "杭州九堡", "entities": {"poi": ["九堡"], "city": "杭州,"}, "id": 7}]
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    a, b = read_records(p).records
    assert [e.key for e in a.entities] == [(0, 2, "city"), (2, 4, "poi"), (4, 8, "poi")]
    assert b.id == "7" and [e.key for e in b.entities] == [(0, 2, "city"), (2, 4, "poi")]


def test_mgeo_unplaceable_names_label_and_value() -> None:
    with pytest.raises(BadRecord, match="cannot place road value '西湖路': it does not occur"):
        place("杭州路", [("road", "西湖路")])


# -- sft end convention ----------------------------------------------------------------------------
def test_sft_auto_decides_per_entity_and_forced_modes_check(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    row = {"text": "浙江省杭州市", "data_source": "CMeEE", "entities": [
        {"start_idx": 0, "end_idx": 2, "entity_label": "prov", "entity_text": "浙江省"},   # inclusive
        {"start_idx": 3, "end_idx": 6, "entity_label": "city", "entity_text": "杭州市"},   # exclusive
        {"start_idx": 0, "end_idx": 1, "entity_label": "x"}]}                             # no text: inclusive
    p.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (r,) = read_records(p).records
    assert [e.key for e in r.entities] == [(0, 2, "x"), (0, 3, "prov"), (3, 6, "city")]
    assert r.meta["data_source"] == "CMeEE"
    assert read_records(p, "sft", end="inclusive").rejects[0].kind == "offsets"  # 杭州市 would end at 7
    assert read_records(p, "sft", end="exclusive").rejects[0].kind == "span-text"  # 浙江 != 浙江省
    with pytest.raises(FormatError, match="end must be one of auto, inclusive, exclusive"):
        read_records(p, "sft", end="open")
    out = tmp_path / "w.jsonl"
    write_records([r], out, "sft")
    assert json.loads(out.read_text(encoding="utf-8"))["entities"][1] == {
        "start_idx": 0, "end_idx": 2, "entity_text": "浙江省", "entity_label": "prov", "entity_names": ["prov"]}


# -- CoNLL schema ----------------------------------------------------------------------------------
def test_conll_schema_maps_labels_and_infers_scheme(tmp_path: Path) -> None:
    p = tmp_path / "d.conll"
    p.write_text("浙\tB-PROV\n江\tE-PROV\n杭\tS-CITY\n\n# id = s2\n \tO\n市\tS-CITY\n", encoding="utf-8")
    (tmp_path / "schema.json").write_text(json.dumps({"labels": {"PROV": "prov", "CITY": "city"}}), encoding="utf-8")
    assert detect_format(p) == "conll"
    a, b = read_records(p).records  # BIOES inferred from the E-/S- prefixes
    assert (a.id, a.text, [e.key for e in a.entities]) == ("d:1", "浙江杭", [(0, 2, "prov"), (2, 3, "city")])
    assert (b.id, b.text, [e.key for e in b.entities]) == ("s2", " 市", [(1, 2, "city")])
    with pytest.raises(FormatError, match="contradicts"):
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"scheme": "BMES"}))
        read_records(p, "conll", schema=other, scheme="BIO")
    (tmp_path / "schema.json").write_text(json.dumps({"scheme": "BIOES", "tags": []}))
    with pytest.raises(FormatError, match="unknown key\\(s\\) tags; allowed keys are: scheme, labels"):
        read_records(p)


def test_conll_writer_merges_the_folder_schema_and_refuses_a_scheme_clash(tmp_path: Path) -> None:
    t = "浙江杭州"
    write_records([Record("a", t, (Entity.at(t, 0, 2, "prov"),))], tmp_path / "train.conll", "conll", scheme="BMES")
    write_records([Record("b", t, (Entity.at(t, 2, 4, "city"),))], tmp_path / "dev.conll", "conll", scheme="BMES")
    schema = json.loads((tmp_path / "schema.json").read_text())
    assert schema == {"scheme": "BMES", "labels": {"city": "city", "prov": "prov"}}
    assert (tmp_path / "train.conll").read_text().splitlines()[:2] == ["浙\tB-prov", "江\tE-prov"]
    with pytest.raises(FormatError, match="says scheme BMES"):
        write_records([], tmp_path / "test.conll", "conll", scheme="BIO")


# -- Label Studio import ---------------------------------------------------------------------------
def test_labelstudio_takes_the_latest_completed_annotation(tmp_path: Path) -> None:
    def reg(s: int, e: int, text: str, label: str, name: str = "label", kind: str = "labels") -> dict:
        return {"from_name": name, "to_name": "text", "type": kind,
                "value": {"start": s, "end": e, "text": text, "labels": [label]}}

    task = {"id": 5, "data": {"text": "浙江省杭州市"}, "annotations": [
        {"id": 1, "updated_at": "2024-01-02T00:00:00Z", "result": [reg(0, 3, "浙江省", "prov")]},
        {"id": 2, "updated_at": "2024-01-03T00:00:00Z", "completed_by": 9,
         "result": [reg(3, 6, "杭州市", "city"), reg(0, 3, "浙江省", "x", name="other"),
                    {"type": "choices", "value": {"choices": ["ok"]}}]},
        {"id": 3, "updated_at": "2024-01-04T00:00:00Z", "was_cancelled": True, "result": []}]}
    p = tmp_path / "t.json"
    p.write_text(json.dumps([task], ensure_ascii=False), encoding="utf-8")
    res = read_records(p, "labelstudio", from_name="label")
    (r,) = res.records
    assert r.id == "5" and [(e.key, e.source) for e in r.entities] == [((3, 6, "city"), "human")]
    assert r.meta["review"] == {"task_id": 5, "annotation_id": 2, "annotator": 9, "updated_at": "2024-01-03T00:00:00Z"}
    assert res.notes["non-span Label Studio results ignored"] == 2
    cfg = tmp_path / "x.label_config.xml"
    write_records([r], tmp_path / "x.json", "labelstudio")
    assert '<Label value="city"/>' in cfg.read_text() and '<Labels name="label" toName="text">' in cfg.read_text()
