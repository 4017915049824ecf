"""Validation policy: configuration errors, each policy's effect, and the reconciliation invariant."""

from __future__ import annotations

import pytest

from nerwheel.formats import ReadResult
from nerwheel.labels import LabelMap
from nerwheel.records import Entity, Record
from nerwheel.validate import ValidationError, ValidationPolicy, check_record, validate, validate_records

T = "浙江省杭州市九堡镇"


def rec(*spans: tuple[int, int, str], text: str = T, rid: str = "r") -> Record:
    return Record(rid, text, tuple(Entity.at(text, s, e, lab) for s, e, lab in spans))


@pytest.mark.parametrize("kwargs,message", [
    ({"max_length": 0}, "max_length must be a positive integer"),
    ({"max_length": True}, "max_length must be a positive integer"),
    ({"overlaps": "merge"}, "overlaps must be one of reject, keep-longest"),
    ({"unknown_labels": "drop"}, "unknown_labels must be one of reject, map"),
    ({"unknown_labels": "map"}, "needs a label_map"),
    ({"label_map": LabelMap({"a": "b"})}, "only used with unknown_labels='map'"),
    ({"allowed_labels": "prov"}, "collection of label names"),
])
def test_bad_policy_fails_with_a_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValidationPolicy(**kwargs)


def test_policy_from_dict_names_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown validation setting\(s\) max_len; known settings are: .*max_length"):
        ValidationPolicy.from_dict({"max_len": 5})
    p = ValidationPolicy.from_dict({"max_length": 5, "allowed_labels": ["prov"]})
    assert p.max_length == 5 and p.allowed_labels == frozenset({"prov"})


def test_keep_longest_keeps_the_longest_of_each_group_and_counts_drops() -> None:
    r = rec((0, 3, "prov"), (2, 4, "x"), (3, 9, "addr"), (6, 9, "town"))
    from collections import Counter

    notes: Counter[str] = Counter()
    out = check_record(r, ValidationPolicy(overlaps="keep-longest"), notes)
    assert [e.key for e in out.entities] == [(0, 3, "prov"), (3, 9, "addr")]
    assert notes["overlapping entities dropped (keep-longest)"] == 2


def test_keep_longest_tie_breaks_on_start_then_label() -> None:
    r = rec((0, 2, "b"), (1, 3, "a"), (0, 2, "a"))
    out = check_record(r, ValidationPolicy(overlaps="keep-longest"))
    assert [e.key for e in out.entities] == [(0, 2, "a")]


def test_label_map_maps_synonyms_prefixes_and_collapses_duplicates() -> None:
    r = rec((0, 3, "省份"), (0, 3, "省"), (3, 6, "City"))
    policy = ValidationPolicy(unknown_labels="map", label_map=LabelMap({"省份": "prov", "省": "prov"}),
                              allowed_labels=frozenset({"prov", "city"}))
    res = validate_records([r], policy)
    assert [e.key for e in res.records[0].entities] == [(0, 3, "prov"), (3, 6, "city")]
    assert res.notes["duplicate entities collapsed"] == 1 and res.notes["entity labels mapped"] == 3
    pre = validate_records([rec((0, 3, "prov"))], ValidationPolicy(unknown_labels="map", label_map=LabelMap(prefix="pos:")))
    assert pre.records[0].labels == ["pos:prov"]


def test_records_without_problems_are_returned_unchanged() -> None:
    r = rec((0, 3, "prov"))
    assert check_record(r, ValidationPolicy(allowed_labels=frozenset({"prov"}))) is r


def test_validate_keeps_lines_and_reconciles() -> None:
    rr = ReadResult("f.jsonl", "spans")
    rr.add(rec((0, 3, "prov"), rid="a"), 3)
    rr.add(Record("b", ""), 7)
    rr.add(rec((0, 3, "prov"), (1, 4, "x"), rid="c"), 9)
    rr.add(rec(rid="a"), 11)
    out = validate(rr, ValidationPolicy())
    assert out.read == rr.read == 4
    assert [(r.line, r.kind) for r in out.rejects] == [(7, "empty"), (9, "overlap")]
    assert out.lines == [3, 11] and out.notes["duplicate record ids"] == 1
    assert "read 4 = accepted 2 + rejected 2" in out.summary()
    assert rr.read == 4 and len(rr.records) == 4  # the input result is not modified


def test_strict_validation_raises_on_the_first_problem_only() -> None:
    good = validate_records([rec((0, 3, "prov"))], ValidationPolicy(strict=True))
    assert len(good.records) == 1
    with pytest.raises(ValidationError, match=r"^<records>:2: text has 12 characters, over the limit of 10"):
        validate_records([rec(), Record("x", "x" * 12), Record("y", "")], ValidationPolicy(max_length=10, strict=True))


def test_no_length_limit_and_allow_empty() -> None:
    res = validate_records([Record("a", "x" * 100_000), Record("b", " ")],
                           ValidationPolicy(max_length=None, allow_empty=True))
    assert len(res.records) == 2 and not res.rejects


def test_limit_length_rejects_long_texts_with_their_line_and_keeps_the_rest() -> None:
    from nerwheel.validate import DEFAULT_MAX_LENGTH, limit_length

    rr = ReadResult(source="in.jsonl", format="spans")
    rr.add(Record("a", "杭州市"), 1)
    rr.add(Record("b", "x" * 11), 3)
    rr.add(Record("c", "宁波市"), 4)
    out = limit_length(rr, 10)
    assert [r.id for r in out.records] == ["a", "c"] and [out.line_of(i) for i in range(2)] == [1, 4]
    (rej,) = out.rejects
    assert (rej.file, rej.line, rej.kind) == ("in.jsonl", 3, "too-long")
    assert "11 characters, over the limit of 10" in rej.reason and '"b"' in rej.raw
    assert out.read == rr.read == 3
    assert limit_length(rr, None).records == rr.records  # no limit
    assert DEFAULT_MAX_LENGTH == 2048
