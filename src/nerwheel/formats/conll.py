"""Character-per-line CoNLL: ``char<TAB>tag`` lines, a blank line between sentences.

Tag schemes BIO, BIOES and BMES (:data:`nerwheel.labels.SCHEMES`). The line is
split at its *last* tab (or, with no tab, its last space), so the character
itself may be a space. ``-DOCSTART-`` lines are skipped; a line ``# id = X``
(no tab) before a sentence sets that record's id (the writer emits these only
with ``write_ids=True``, since many tools do not skip comments). Without it the
id is ``<stem>:<first line of the sentence>``.

``schema.json`` describes the tag labels; it lives beside the data file (one per
folder, shared by ``train.conll`` and ``dev.conll``) or is given by path::

    {"scheme": "BIOES", "labels": {"PROV": "prov", "CITY": "city"}}

``labels`` maps the label in the tags to nerwheel's label (a list means the
names are the same). When ``labels`` is present it is the complete inventory: a
tag label outside it rejects the sentence. The scheme comes from ``scheme=``,
else from ``schema.json``, else it is inferred from the prefixes in the file (any
``M-`` means BMES, any ``E-``/``S-`` means BIOES, else BIO).

A sentence is rejected, with the line of the offending token, when a line has no
tag, a token is not one character, a tag is malformed, or the tag sequence is
ill-formed in the scheme (``I-x`` after ``O``, a ``B-x`` never closed by ``E-x``
in BIOES, ...).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.formats.base import FormatError, Parsed, Reject, Unexpressible, WriteResult, write_encoded
from nerwheel.formats.lines import Line, iter_lines
from nerwheel.labels import SCHEMES, Scheme, get_scheme, spans_to_tags, tags_to_spans
from nerwheel.records import Entity, Record
from nerwheel.storage import write_json

NAME = "conll"
CAN_EXPRESS = "non-overlapping spans in non-empty texts without line breaks; ids only with write_ids=True"
SCHEMA_FILE = "schema.json"
_ID_LINE = re.compile(r"^#\s*id\s*=\s*(.*?)\s*$")
_POSITION = re.compile(r"at position (\d+)")


@dataclass(frozen=True)
class ConllSchema:
    """Scheme plus tag-label -> record-label map; ``labels=None`` means labels are used as written."""

    scheme: str | None = None
    labels: Mapping[str, str] | None = field(default=None)

    @classmethod
    def load(cls, path: str | Path) -> ConllSchema:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{p}: cannot read the CoNLL schema: {exc}") from None
        return cls.from_dict(data, where=str(p))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "schema") -> ConllSchema:
        if not isinstance(data, dict):
            raise FormatError(f'{where}: a CoNLL schema is an object like {{"scheme": "BIO", "labels": {{...}}}}')
        unknown = sorted(set(data) - {"scheme", "labels"})
        if unknown:
            raise FormatError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys are: scheme, labels")
        scheme = data.get("scheme")
        if scheme is not None:
            try:
                scheme = get_scheme(scheme).name
            except ValueError as exc:
                raise FormatError(f"{where}: {exc}") from None
        labels = data.get("labels")
        if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
            labels = {x: x for x in labels}
        elif labels is not None and not (
            isinstance(labels, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        ):
            raise FormatError(f"{where}: 'labels' must map tag labels to label names (or list the names)")
        return cls(scheme, labels)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.scheme:
            d["scheme"] = self.scheme
        if self.labels is not None:
            d["labels"] = dict(sorted(self.labels.items()))
        return d


def find_schema(path: Path, schema: str | Path | None) -> ConllSchema:
    if schema is not None:
        return ConllSchema.load(schema)
    beside = Path(path).parent / SCHEMA_FILE
    return ConllSchema.load(beside) if beside.exists() else ConllSchema()


@dataclass
class _Sentence:
    start: int = 0  # first line number
    id: str | None = None
    chars: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    error: Reject | None = None


def _sentences(path: Path, notes: Counter[str] | None) -> Iterator[_Sentence]:
    """Group lines into sentences; per-line problems are kept as the sentence's first error."""
    name = str(path)
    cur = _Sentence()

    def flush() -> Iterator[_Sentence]:
        nonlocal cur
        if cur.lines or cur.error is not None:
            yield cur
        cur = _Sentence()

    for item in iter_lines(path, skip_blank=False, notes=notes):
        if isinstance(item, Reject):
            if not cur.lines and cur.error is None:
                cur.start = item.line
            cur.error = cur.error or item
            cur.raw.append(item.raw)
            cur.lines.append(item.line)
            continue
        line: Line = item
        text = line.text
        if not text.strip():
            yield from flush()
            continue
        if "\t" not in text and (m := _ID_LINE.match(text)):
            yield from flush()
            cur.id = m.group(1)
            continue
        if text.split()[0] == "-DOCSTART-":
            yield from flush()
            continue
        if not cur.lines and cur.error is None:
            cur.start = line.number
        cur.raw.append(text)
        cur.lines.append(line.number)
        sep = "\t" if "\t" in text else " "
        char, _, tag = text.rpartition(sep)
        if sep not in text or not tag.strip():
            cur.error = cur.error or Reject(name, line.number, f"line has no tag: {text!r}; expected 'char<TAB>tag'",
                                            kind="conll")
            continue
        if len(char) != 1:
            cur.error = cur.error or Reject(
                name, line.number,
                f"token {char!r} has {len(char)} characters; this reader takes one character per line", kind="conll")
            continue
        cur.chars.append(char)
        cur.tags.append(tag.strip())
    yield from flush()


def infer_scheme(path: Path) -> str:
    prefixes = set()
    for item in iter_lines(path):
        if isinstance(item, Reject) or "\t" not in item.text and " " not in item.text:
            continue
        tag = item.text.rpartition("\t" if "\t" in item.text else " ")[2].strip()
        if len(tag) > 2 and tag[1] in "-_":
            prefixes.add(tag[0])
    if "M" in prefixes:
        return "BMES"
    if prefixes & {"E", "S"}:
        return "BIOES"
    return "BIO"


def _decode(sent: _Sentence, scheme: Scheme, labels: Mapping[str, str] | None, name: str) -> list[Entity] | Reject:
    text = "".join(sent.chars)
    raw = "\n".join(sent.raw)
    for tag, ln in zip(sent.tags, sent.lines, strict=True):
        if tag == scheme.outside:
            continue
        if len(tag) < 3 or tag[1] not in "-_" or tag[0] not in scheme.prefixes:
            return Reject(name, ln, f"invalid tag {tag!r} for scheme {scheme.name}; allowed prefixes are "
                                    f"{', '.join(scheme.prefixes)} (as PREFIX-label) or {scheme.outside!r}",
                          raw, kind="tags")
        if labels is not None and tag[2:] not in labels:
            return Reject(name, ln, f"tag label {tag[2:]!r} is not in the schema labels "
                                    f"({', '.join(sorted(labels))}); add it to schema.json", raw, kind="unknown-label")
    try:
        spans = tags_to_spans(sent.tags, scheme, strict=True)
    except ValueError as exc:
        m = _POSITION.search(str(exc))
        ln = sent.lines[int(m.group(1))] if m else sent.start
        return Reject(name, ln, f"ill-formed {scheme.name} tag sequence: {exc}", raw, kind="tags")
    out = []
    for s, e, lab in spans:
        out.append(Entity.at(text, s, e, labels[lab] if labels is not None else lab))
    return out


def read(
    path: Path, *, scheme: str | None = None, schema: str | Path | None = None, notes: Counter[str] | None = None,
) -> Iterator[Parsed | Reject]:
    name, stem = str(path), Path(path).stem
    sch = find_schema(path, schema)
    if scheme and sch.scheme and get_scheme(scheme).name != sch.scheme:
        raise FormatError(f"{name}: scheme={scheme!r} contradicts the schema's {sch.scheme!r}")
    chosen = get_scheme(scheme or sch.scheme or infer_scheme(path))
    for sent in _sentences(path, notes):
        raw = "\n".join(sent.raw)
        if sent.error is not None:
            yield Reject(name, sent.error.line, sent.error.reason + f" (sentence starting at line {sent.start})",
                         raw, kind=sent.error.kind)
            continue
        decoded = _decode(sent, chosen, sch.labels, name)
        if isinstance(decoded, Reject):
            yield decoded
            continue
        rid = sent.id if sent.id else f"{stem}:{sent.start}"
        yield Parsed(sent.start, Record(rid, "".join(sent.chars), tuple(decoded)))


def encode(record: Record, scheme: Scheme, to_tag: Mapping[str, str], write_ids: bool) -> str:
    text = record.text
    if not text:
        raise Unexpressible("the text is empty (a sentence needs at least one character)")
    bad = next((c for c in text if c in "\n\r"), None)
    if bad is not None:
        raise Unexpressible("the text contains a line break")
    if text[0] == "\ufeff":
        raise Unexpressible("the text starts with U+FEFF, which readers take for a byte-order mark")
    if write_ids and "\n" in record.id:
        raise Unexpressible("the id contains a line break")
    for e in record.entities:
        tag = to_tag.get(e.label, e.label)
        if tag != tag.strip() or any(c in tag for c in "\t\n\r"):
            raise Unexpressible(f"label {e.label!r} has surrounding spaces or a tab/line break")
    try:
        tags = spans_to_tags(len(text), [(e.start, e.end, to_tag.get(e.label, e.label)) for e in record.entities],
                             scheme)
    except ValueError as exc:
        raise Unexpressible(str(exc)) from None
    head = f"# id = {record.id}\n" if write_ids else ""
    return head + "".join(f"{c}\t{t}\n" for c, t in zip(text, tags, strict=True)) + "\n"


def write(
    records: Iterable[Record], path: Path, *, scheme: str = "BIO", schema: str | Path | None = None,
    write_ids: bool = False, **options: Any,
) -> WriteResult:
    """Write sentences and the folder's ``schema.json`` (merged with an existing one of the same scheme)."""
    chosen = get_scheme(scheme)
    records = list(records)
    schema_path = Path(schema) if schema is not None else Path(path).parent / SCHEMA_FILE
    existing = ConllSchema.load(schema_path) if schema_path.exists() else ConllSchema()
    if existing.scheme and existing.scheme != chosen.name:
        raise FormatError(f"{schema_path} says scheme {existing.scheme}, but this file is written in {chosen.name}; "
                          "write to another folder or pass schema=PATH")
    tag_of = {v: k for k, v in (existing.labels or {}).items()}
    for r in records:
        for e in r.entities:
            if e.label not in tag_of:
                tag_of[e.label] = e.label
    used: set[str] = set(existing.labels.values()) if existing.labels else set()

    def encode_and_note(r: Record) -> str:
        line = encode(r, chosen, tag_of, write_ids)
        used.update(r.labels)
        return line

    result = write_encoded(records, path, NAME, encode_and_note, **options)
    merged = ConllSchema(chosen.name, {tag: lab for lab, tag in tag_of.items() if lab in used})
    schema_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(schema_path, merged.to_dict())
    return result


__all__ = ["SCHEMES", "ConllSchema", "encode", "find_schema", "infer_scheme", "read", "write"]
