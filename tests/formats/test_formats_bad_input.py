"""Bad input, every case: no crash, a reason with the right line, counts that reconcile, a faithful rejects file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nerwheel.formats import FormatError, read_records, read_rejects, write_rejects
from nerwheel.labels import LabelMap
from nerwheel.validate import ValidationError, ValidationPolicy, validate


def jl(*objs: Any) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o, ensure_ascii=False).encode()) + b"\n" for o in objs)


def ok(text: str = "浙江省", **kw: Any) -> dict[str, Any]:
    return {"text": text, "entities": [{"start": 0, "end": 3, "label": "prov", "text": text[:3]}], **kw}


def conll(*sentences: str) -> bytes:
    return ("\n\n".join(sentences) + "\n").encode()


def task(text: str, *, annotations: list | None = None, predictions: list | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"data": {"text": text}}
    if annotations is not None:
        t["annotations"] = annotations
    if predictions is not None:
        t["predictions"] = predictions
    return t


def region(start: int, end: int, text: str, label: str = "prov") -> dict[str, Any]:
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text, "labels": [label]}}


@dataclass
class Case:
    id: str
    fmt: str
    content: bytes
    accepted: int
    rejects: list[tuple[int, str, str]]  # (line, kind, substring of the reason)
    read_opts: dict[str, Any] = field(default_factory=dict)
    policy: ValidationPolicy | None = None
    notes: list[str] = field(default_factory=list)
    name: str = "data.jsonl"


CASES = [
    # --- reader level, span JSONL --------------------------------------------------------------
    Case("invalid-utf8", "spans", jl(ok(), b'{"text": "\xff\xfeabc"}', ok()), 2, [(2, "utf8", "invalid UTF-8")]),
    Case("bom-and-crlf-tolerated", "spans", b"\xef\xbb\xbf" + jl(ok()).replace(b"\n", b"\r\n") * 2, 2, [],
         notes=["UTF-8 BOM stripped", "CRLF line endings stripped"]),
    Case("invalid-json", "spans", jl(ok(), b'{"text": "abc"', ok()), 2, [(2, "json", "invalid JSON")]),
    Case("not-an-object", "spans", jl(ok(), [1, 2]), 1, [(2, "schema", "expected a JSON object")]),
    Case("missing-text", "spans", jl({"entities": []}), 0, [(1, "schema", "'text' is missing")]),
    Case("text-not-string", "spans", jl({"text": 5}), 0, [(1, "schema", "'text' must be a string")]),
    Case("entities-not-list", "spans", jl({"text": "abc", "entities": {"a": 1}}), 0,
         [(1, "schema", "'entities' must be a list")]),
    Case("entity-lacks-label", "spans", jl({"text": "abc", "entities": [{"start": 0, "end": 1}]}), 0,
         [(1, "schema", "entities[0] lacks field(s) label")]),
    Case("offsets-past-end", "spans", jl(ok(), {"text": "abc", "entities": [{"start": 1, "end": 10, "label": "x"}]}),
         1, [(2, "offsets", "out of range for a text of length 3")]),
    Case("offsets-reversed", "spans", jl({"text": "abc", "entities": [{"start": 2, "end": 1, "label": "x"}]}), 0,
         [(1, "offsets", "out of range")]),
    Case("offsets-not-int", "spans", jl({"text": "abc", "entities": [{"start": "0", "end": 1, "label": "x"}]}), 0,
         [(1, "schema", "must be integers")]),
    Case("span-text-mismatch", "spans",
         jl({"text": "浙江省杭州", "entities": [{"start": 0, "end": 2, "label": "prov", "text": "浙江省"}]}), 0,
         [(1, "span-text", "does not match the text at [0, 2)")]),
    Case("lone-surrogate", "spans", jl(ok(), b'{"text": "\\u6d59\\ud800\\u6c5f", "entities": []}', ok()), 2,
         [(2, "json", "field 'text' holds a lone UTF-16 surrogate '\\ud800' at character 1")]),
    Case("lone-surrogate-in-meta", "spans", jl(b'{"text": "abc", "meta": {"note": ["ok", "\\udfff"]}}', ok()), 1,
         [(1, "json", "field 'meta.note[1]' holds a lone UTF-16 surrogate")]),
    Case("surrogate-pair-is-one-character", "spans", jl(b'{"text": "\\ud83d\\ude00\\u6d59", "entities": []}'), 1, []),
    Case("nested-100000-deep", "spans", jl(ok(), b'{"text": "abc", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                           b"[" * 100_000, ok()), 2,
         [(2, "json", "nested deeper than 64 levels"), (3, "json", "nested deeper than 64 levels")]),
    Case("nested-65-deep", "spans", jl(b'{"text": "abc", "meta": {"a": ' + b"[" * 63 + b"]" * 63 + b"}}",
                                       b'{"text": "abc", "meta": {"a": ' + b"[" * 62 + b"]" * 62 + b"}}"), 1,
         [(1, "json", "nested deeper than 64 levels")]),
    # --- policy level ----------------------------------------------------------------------------
    Case("empty-text", "spans", jl(ok(), {"text": "  "}), 1, [(2, "empty", "empty or blank")],
         policy=ValidationPolicy()),
    Case("too-long", "spans", jl(ok(), {"text": "x" * 11}), 1, [(2, "too-long", "11 characters, over the limit of 10")],
         policy=ValidationPolicy(max_length=10)),
    Case("overlap-reject", "spans",
         jl({"text": "浙江省杭州", "entities": [{"start": 0, "end": 3, "label": "prov"},
                                              {"start": 2, "end": 5, "label": "city"}]}), 0,
         [(1, "overlap", "prov[0:3] '浙江省' and city[2:5] '省杭州' overlap")], policy=ValidationPolicy()),
    Case("overlap-keep-longest", "spans",
         jl({"text": "浙江省杭州", "entities": [{"start": 0, "end": 3, "label": "prov"},
                                              {"start": 2, "end": 5, "label": "city"}]}), 1, [],
         policy=ValidationPolicy(overlaps="keep-longest"), notes=["overlapping entities dropped (keep-longest)"]),
    Case("unknown-label-reject", "spans", jl(ok(), {"text": "abc", "entities": [{"start": 0, "end": 1, "label": "x"}]}),
         1, [(2, "unknown-label", "unknown label 'x'")], policy=ValidationPolicy(allowed_labels=frozenset({"prov"}))),
    Case("unknown-label-map", "spans",
         jl({"text": "浙江省", "entities": [{"start": 0, "end": 3, "label": "省份"}]},
            {"text": "abc", "entities": [{"start": 0, "end": 1, "label": "xyz"}]}), 1,
         [(2, "unknown-label", "add a synonym")],
         policy=ValidationPolicy(unknown_labels="map", label_map=LabelMap({"省份": "prov"}),
                                 allowed_labels=frozenset({"prov"})), notes=["entity labels mapped"]),
    # --- mgeo --------------------------------------------------------------------------------------
    Case("mgeo-value-not-found", "mgeo",
         jl({"address": "杭州市九堡商贸中心", "entities": {"city": "杭州市", "poi": "九堡, 商贸大厦"}}), 0,
         [(1, "mgeo-place", "cannot place poi value '商贸大厦': it does not occur")]),
    Case("mgeo-no-free-occurrence", "mgeo", jl({"address": "九堡", "entities": {"town": "九堡", "poi": "九堡"}}), 0,
         [(1, "mgeo-place", "cannot place poi value '九堡': every occurrence overlaps")]),
    Case("mgeo-entities-not-object", "mgeo", jl({"address": "九堡", "entities": ["九堡"]}), 0,
         [(1, "schema", "must be an object")]),
    Case("mgeo-bad-value-type", "mgeo", jl({"address": "九堡", "entities": {"poi": 3}}), 0,
         [(1, "schema", "entities['poi'] must be a string")]),
    Case("mgeo-lone-surrogate", "mgeo", jl(b'{"address": "\\udc00\\u4e5d\\u5821", "entities": {}}'), 0,
         [(1, "json", "field 'address' holds a lone UTF-16 surrogate")]),
    # --- sft ---------------------------------------------------------------------------------------
    Case("sft-lone-surrogate", "sft",
         jl(b'{"text": "abc", "entities": [{"start_idx": 0, "end_idx": 0, "entity_label": "\\ud801"}]}'), 0,
         [(1, "json", "field 'entities[0].entity_label' holds a lone UTF-16 surrogate")]),
    Case("sft-forced-convention-mismatch", "sft",
         jl({"text": "浙江省", "entities": [{"start_idx": 0, "end_idx": 2, "entity_label": "prov",
                                              "entity_text": "浙江省"}]}), 0,
         [(1, "span-text", "'浙江省' does not match the text at [0, 2)")], read_opts={"end": "exclusive"}),
    Case("sft-end-out-of-range", "sft",
         jl({"text": "浙江", "entities": [{"start_idx": 0, "end_idx": 5, "entity_label": "prov"}]}), 0,
         [(1, "offsets", "out of range")]),
    # --- conll -------------------------------------------------------------------------------------
    Case("conll-I-after-O", "conll", conll("浙\tB-prov\n江\tI-prov", "杭\tO\n州\tI-city"), 1,
         [(5, "tags", "continues no open 'city' span")], read_opts={"scheme": "BIO"}, name="d.conll"),
    Case("conll-BIOES-unclosed", "conll", conll("浙\tB-prov\n江\tE-prov", "杭\tB-city\n州\tO\n市\tO"), 1,
         [(4, "tags", "not closed")], read_opts={"scheme": "BIOES"}, name="d.conll"),
    Case("conll-bad-prefix", "conll", conll("浙\tB-prov", "杭\tO\n州\tX-city"), 1,
         [(4, "tags", "invalid tag 'X-city'")], read_opts={"scheme": "BIO"}, name="d.conll"),
    Case("conll-missing-tag", "conll", conll("浙\tB-prov", "杭\n州\tO"), 1, [(3, "conll", "line has no tag")],
         name="d.conll"),
    Case("conll-multichar-token", "conll", conll("浙江\tB-prov", "杭\tO"), 1, [(1, "conll", "has 2 characters")],
         name="d.conll"),
    Case("conll-invalid-utf8", "conll", b"\xe6\xb5\x99\tB-prov\n\n\xff\tO\nx\tO\n", 1, [(3, "utf8", "invalid UTF-8")],
         name="d.conll"),
    # --- plain text --------------------------------------------------------------------------------
    Case("text-invalid-utf8", "text", b"line one\n\xc3\x28 bad\n\nline four\n", 2, [(2, "utf8", "invalid UTF-8")],
         name="d.txt"),
    # --- label studio ------------------------------------------------------------------------------
    Case("ls-not-reviewed", "labelstudio",
         json.dumps([task("浙江省", annotations=[{"result": [region(0, 3, "浙江省")]}]),
                     task("杭州市", predictions=[{"result": [region(0, 3, "杭州市", "city")]}])],
                    ensure_ascii=False, indent=1).encode(), 1,
         [(26, "not-reviewed", "has not been reviewed")], name="t.json"),
    Case("ls-cancelled-only", "labelstudio",
         jl(task("浙江省", annotations=[{"was_cancelled": True, "result": []}])), 0,
         [(1, "not-reviewed", "no completed")], name="t.json"),
    Case("ls-region-text-mismatch", "labelstudio",
         jl(task("浙江省", annotations=[{"result": [region(0, 2, "浙江省")]}])), 0,
         [(1, "span-text", "does not match")], name="t.json"),
    Case("ls-broken-array", "labelstudio",
         b'[\n{"data": {"text": "a"}, "annotations": [{"result": []}]},\n{"data": {"text": "b"}, oops}\n]\n', 1,
         [(3, "json", "the rest of the file from line 3 could not be read")], name="t.json"),
    Case("ls-lone-surrogate-jsonl", "labelstudio",
         jl(task("浙江省", annotations=[{"result": [region(0, 3, "浙江省")]}]),
            b'{"data": {"text": "\\ud800"}, "annotations": [{"result": []}]}'), 1,
         [(2, "json", "field 'data.text' holds a lone UTF-16 surrogate")], name="t.json"),
    Case("ls-lone-surrogate-array", "labelstudio",
         b'[\n{"data": {"text": "\\ud800"}, "annotations": [{"result": []}]},\n'
         + json.dumps(task("浙江省", annotations=[{"result": [region(0, 3, "浙江省")]}]), ensure_ascii=False).encode()
         + b"\n]\n", 1, [(2, "json", "field 'data.text' holds a lone UTF-16 surrogate")], name="t.json"),
    Case("ls-nested-deep-array", "labelstudio",
         b'[\n{"data": {"text": "a"}, "annotations": [{"result": []}]},\n{"data": {"text": "b", "x": '
         + b"[" * 100_000 + b"]" * 100_000 + b'}, "annotations": [{"result": []}]}\n]\n', 1,
         [(3, "json", "nested deeper than 64 levels")], name="t.json"),
    Case("ls-result-without-type", "labelstudio",
         jl(task("浙江省杭州市", annotations=[{"result": [{"value": {"start": 9}}]}]),
            task("浙江省", annotations=[{"result": [region(0, 3, "浙江省")]}])), 1,
         [(1, "schema", "annotations[-1].result[0] has no 'type'")], name="t.json"),
    Case("ls-result-empty-labels", "labelstudio",
         jl(task("浙江省杭州市", annotations=[{"result": [{"from_name": "label", "to_name": "text", "type": "labels",
                                                         "value": {"start": 0, "end": 3, "text": "浙江省",
                                                                   "labels": []}}]}])), 0,
         [(1, "schema", "value.labels must be a non-empty list")], name="t.json"),
    Case("ls-result-value-lacks-offsets", "labelstudio",
         jl(task("浙江省杭州市", annotations=[{"result": [{"type": "labels", "value": {"start": 9, "labels": ["prov"]}}]}])),
         0, [(1, "schema", "value lacks field(s) end")], name="t.json"),
    Case("ls-result-other-span-type", "labelstudio",
         jl(task("浙江省杭州市", annotations=[{"result": [{"type": "hypertextlabels",
                                                         "value": {"start": 0, "end": 3, "hypertextlabels": ["prov"]}}]}])),
         0, [(1, "schema", "'hypertextlabels' regions cannot be read")], name="t.json"),
    Case("ls-non-span-results-ignored", "labelstudio",
         jl(task("浙江省", annotations=[{"result": [region(0, 3, "浙江省"),
                                                   {"type": "choices", "value": {"choices": ["ok"]}}]}])), 1, [],
         notes=["non-span Label Studio results ignored"], name="t.json"),
    Case("ls-utf16-offsets-converted", "labelstudio",
         jl(task("😀浙江省", annotations=[{"result": [region(2, 5, "浙江省")]}])), 1, [],
         notes=["Label Studio UTF-16 offsets converted to code points"], name="t.json"),
]


def _load(tmp_path: Path, case: Case):
    path = tmp_path / case.name
    path.write_bytes(case.content)
    result = read_records(path, case.fmt, **case.read_opts)
    if case.policy is not None:
        result = validate(result, case.policy)
    return path, result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_rejected_with_line_and_reason(tmp_path: Path, case: Case) -> None:
    path, result = _load(tmp_path, case)
    assert len(result.records) == case.accepted
    got = [(r.line, r.kind) for r in result.rejects]
    assert got == [(line, kind) for line, kind, _ in case.rejects], [str(r) for r in result.rejects]
    for rej, (_, _, text) in zip(result.rejects, case.rejects, strict=True):
        assert text in rej.reason, rej.reason
        assert rej.file == str(path)
        assert str(rej).startswith(f"{path}:{rej.line}: ")
        assert rej.raw  # the original content is kept
    for note in case.notes:
        assert result.notes[note] > 0, result.notes


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_counts_reconcile_and_rejects_file_is_faithful(tmp_path: Path, case: Case) -> None:
    path, result = _load(tmp_path, case)
    assert result.read == len(result.records) + len(result.rejects)
    # every input record is either accepted or rejected: compare with an independent count of the input's records
    if case.fmt in ("spans", "mgeo", "sft", "text") or (case.fmt == "labelstudio" and not case.content.startswith(b"[")):
        assert result.read == sum(1 for ln in case.content.split(b"\n") if ln.strip())
    out = tmp_path / "rejects.jsonl"
    assert write_rejects(result.rejects, out) == len(result.rejects)
    assert read_rejects(out) == result.rejects
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert all(set(r) == {"file", "line", "kind", "reason", "raw"} for r in rows)


@pytest.mark.parametrize("case", [c for c in CASES if c.rejects], ids=[c.id for c in CASES if c.rejects])
def test_strict_mode_stops_at_the_first_error(tmp_path: Path, case: Case) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    line = case.rejects[0][0]
    if case.policy is None:
        with pytest.raises(FormatError, match=f"^{path}:{line}: .*strict mode"):
            read_records(path, case.fmt, strict=True, **case.read_opts)
    else:
        result = read_records(path, case.fmt, **case.read_opts)
        strict = ValidationPolicy(**{**case.policy.__dict__, "strict": True})
        with pytest.raises(ValidationError, match=f"^{path}:{line}: .*strict mode"):
            validate(result, strict)


def test_reader_level_rejects_pass_through_validation_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(jl(ok(), {"text": "  "}, b"{bad", ok()))
    result = validate(read_records(path), ValidationPolicy())
    assert [(r.line, r.kind) for r in result.rejects] == [(2, "empty"), (3, "json")]
    assert result.read == 4 and [result.line_of(i) for i in range(2)] == [1, 4]


def test_unknown_format_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "a.jsonl").write_text("{}\n")
    with pytest.raises(FormatError, match="unknown format 'xml'; allowed formats are: conll, labelstudio"):
        read_records(tmp_path / "a.jsonl", "xml")
    with pytest.raises(FormatError, match="format 'spans' has no read option 'scheme'"):
        read_records(tmp_path / "a.jsonl", "spans", scheme="BIO")
