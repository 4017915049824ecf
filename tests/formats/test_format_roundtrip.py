"""Round-trip properties: spans -> each format -> spans is the identity wherever the format can express the record."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nerwheel.formats import FormatError, detect_format, read_records, write_records
from nerwheel.records import Entity, Record

# CJK (incl. an astral Extension-B character), Latin, digits, punctuation, spaces and a tab, an emoji.
ALPHABET = list("浙江省杭州市九堡镇区路号商贸中心朝阳北京") + ["\U00020000", "😀", "\u3000", " ", "\t"] + list(
    "abcXYZ019-,，.。()《》#")
LABELS = ["prov", "city", "road", "poi", "PER.NOM"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def records(draw: st.DrawFn, *, overlaps: bool = False, labelled: bool = True, sources: bool = False) -> Record:
    text = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=24))
    n = len(text)
    ents: list[Entity] = []
    if labelled:
        if overlaps:
            pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=4))
            spans = [(min(a, b), max(a, b)) for a, b in pairs if a != b]
        else:
            cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=8))))
            spans = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
        for s, e in spans:
            src = draw(st.sampled_from([None, "kb", "llm:qwen"])) if sources else None
            score = draw(st.sampled_from([None, 0.5, 1.0])) if sources else None
            ents.append(Entity.at(text, s, e, draw(st.sampled_from(LABELS)), source=src, score=score))
    rid = draw(st.text(alphabet="abc123:-", min_size=1, max_size=6))
    return Record(rid, text, tuple(ents))


def record_lists(**kw: bool) -> st.SearchStrategy[list[Record]]:
    return st.lists(records(**kw), min_size=1, max_size=4, unique_by=lambda r: r.id)


def _key(r: Record) -> tuple[str, str, list[tuple[int, int, str]]]:
    return r.id, r.text, [e.key for e in r.entities]


def _roundtrip(recs: list[Record], fmt: str, write_opts: dict | None = None, read_opts: dict | None = None,
               name: str = "data.txt") -> tuple[list[Record], list[Record]]:
    """Write then read back in a fresh folder; returns (records written, records read)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        w = write_records(recs, path, fmt, on_unexpressible="reject", **(write_opts or {}))
        rejected = {r.line for r in w.rejects}
        written = [r for i, r in enumerate(recs, start=1) if i not in rejected]
        rr = read_records(path, fmt, **(read_opts or {}))
        assert not rr.rejects, rr.rejects
        assert rr.read == w.written == len(written)
        return written, rr.records


@SETTINGS
@given(record_lists(overlaps=True, sources=True))
def test_spans_roundtrip_keeps_everything(recs: list[Record]) -> None:
    written, back = _roundtrip(recs, "spans")
    assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]


@SETTINGS
@given(record_lists(overlaps=True, sources=True))
def test_labelstudio_predictions_roundtrip_keeps_sources_and_scores(recs: list[Record]) -> None:
    written, back = _roundtrip(recs, "labelstudio", read_opts={"source": "predictions"}, name="tasks.json")
    assert [_key(r) for r in back] == [_key(r) for r in recs]
    for a, b in zip(recs, back, strict=True):
        assert sorted(repr((e.key, e.source, e.score)) for e in a.entities) == sorted(
            repr((e.key, e.source, e.score)) for e in b.entities)


@SETTINGS
@given(record_lists(overlaps=True), st.sampled_from(["inclusive", "exclusive"]))
def test_sft_roundtrip(recs: list[Record], end: str) -> None:
    written, back = _roundtrip(recs, "sft", write_opts={"end": end}, read_opts={"end": "auto"})
    assert [_key(r) for r in back] == [_key(r) for r in recs]


@SETTINGS
@given(record_lists(), st.sampled_from(["BIO", "BIOES", "BMES"]))
def test_conll_roundtrip_every_scheme(recs: list[Record], scheme: str) -> None:
    written, back = _roundtrip(recs, "conll", write_opts={"scheme": scheme, "write_ids": True}, name="x.conll")
    assert written == recs  # non-overlapping, non-empty, single-line texts are all expressible
    assert [_key(r) for r in back] == [_key(r) for r in recs]


@SETTINGS
@given(record_lists())
def test_conll_without_ids_uses_stem_and_line(recs: list[Record]) -> None:
    written, back = _roundtrip(recs, "conll", name="x.conll")
    assert [(r.text, [e.key for e in r.entities]) for r in back] == [
        (r.text, [e.key for e in r.entities]) for r in recs]
    assert all(r.id.startswith("x:") for r in back)


@SETTINGS
@given(record_lists())
def test_mgeo_roundtrip_when_expressible(recs: list[Record]) -> None:
    written, back = _roundtrip(recs, "mgeo", name="x.jsonl")
    assert [_key(r) for r in back] == [_key(r) for r in written]


@SETTINGS
@given(record_lists(labelled=False))
def test_text_roundtrip_for_unlabelled_lines(recs: list[Record]) -> None:
    assume(all(r.text.strip() for r in recs))
    written, back = _roundtrip(recs, "text", name="x.txt")
    assert written == recs
    assert [r.text for r in back] == [r.text for r in recs]


def test_mgeo_writes_every_record_whose_values_occur_once() -> None:
    t = "浙江省杭州市江干区九堡镇三村村一区"
    recs = [Record("a", t, (Entity.at(t, 0, 3, "prov"), Entity.at(t, 3, 6, "city"), Entity.at(t, 9, 12, "town"),
                            Entity.at(t, 15, 17, "poi")))]
    written, back = _roundtrip(recs, "mgeo", name="x.jsonl")
    assert written == recs and [_key(r) for r in back] == [_key(r) for r in recs]


def test_mgeo_refuses_what_it_would_read_back_elsewhere(tmp_path: Path) -> None:
    t = "九堡九堡"
    second = Record("b", t, (Entity.at(t, 2, 4, "poi"),))  # the first 九堡 is unlabelled: placement would move it
    w = write_records([second], tmp_path / "m.jsonl", "mgeo", on_unexpressible="reject")
    assert w.written == 0 and len(w.rejects) == 1
    assert "would be read back elsewhere" in w.rejects[0].reason and w.rejects[0].kind == "unexpressible"
    with pytest.raises(FormatError, match="cannot be written as mgeo"):
        write_records([second], tmp_path / "m2.jsonl", "mgeo")
    assert not (tmp_path / "m2.jsonl").exists()  # nothing half-written


def test_conll_refuses_overlaps_and_line_breaks(tmp_path: Path) -> None:
    t = "浙江省杭州"
    recs = [Record("o", t, (Entity.at(t, 0, 3, "prov"), Entity.at(t, 2, 5, "city"))), Record("n", "a\nb"),
            Record("ok", t, (Entity.at(t, 0, 3, "prov"),))]
    w = write_records(recs, tmp_path / "x.conll", "conll", on_unexpressible="reject")
    assert w.written == 1
    assert [(r.line, r.kind) for r in w.rejects] == [(1, "unexpressible"), (2, "unexpressible")]
    assert "overlaps" in w.rejects[0].reason and "line break" in w.rejects[1].reason


@pytest.mark.parametrize("fmt,name", [("spans", "a.jsonl"), ("mgeo", "a.jsonl"), ("sft", "a.jsonl"),
                                      ("conll", "a.conll"), ("text", "a.txt"), ("labelstudio", "a.json")])
def test_detect_format_recognises_each_writer(tmp_path: Path, fmt: str, name: str) -> None:
    t = "浙江省杭州市"
    rec = Record("r", t, (Entity.at(t, 0, 3, "prov"), Entity.at(t, 3, 6, "city")) if fmt != "text" else ())
    write_records([rec, rec.with_meta(x=1)], tmp_path / name, fmt)
    assert detect_format(tmp_path / name) == fmt


def test_every_file_nerwheel_writes_gets_the_same_mode(tmp_path: Path) -> None:
    """Temp-then-rename writes came out 0600 (mkstemp) while plain writes were 0644 (the umask): a model
    folder or dataset copied to another user or a container was half unreadable."""
    import os

    from nerwheel import storage
    from nerwheel.formats import Reject, write_records, write_rejects
    from nerwheel.records import Record

    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives under this umask
    expected = plain.stat().st_mode & 0o777
    write_records([Record("a", "杭州市")], tmp_path / "r.jsonl")
    write_records([Record("a", "杭州市")], tmp_path / "r.json", "labelstudio")
    write_rejects([Reject("f", 1, "why")], tmp_path / "rej.jsonl")
    storage.get_storage().write_text(str(tmp_path / "s.txt"), "y")
    for p in ("r.jsonl", "r.json", "rej.jsonl", "s.txt"):
        assert (tmp_path / p).stat().st_mode & 0o777 == expected, p
    old = os.umask(0o027)  # the process's umask decides, as for every other file
    try:
        write_records([Record("a", "杭州市")], tmp_path / "u.jsonl")
    finally:
        os.umask(old)
    assert (tmp_path / "u.jsonl").stat().st_mode & 0o777 == 0o640
