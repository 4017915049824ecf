"""Span JSONL: ``{"id"?, "text", "entities": [{"start", "end", "label", "text"?}], "meta"?}``.

This is nerwheel's native format (it is :meth:`Record.to_dict` per line), and
the form of ``../shared/datasets``. ``entities`` may be absent for unlabelled
texts; an entity without ``text`` takes it from the offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.formats.base import Reject
from nerwheel.formats.lines import Line, iter_lines
from nerwheel.records import Entity, Record, RecordError

NAME = "spans"


def parse_line(obj: Any, *, default_id: str) -> Record:
    """Turn one decoded JSON object into a record; raises ``ValueError`` with the reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError("field 'text' is missing or not a string")
    ents = obj.get("entities", [])
    if not isinstance(ents, list):
        raise ValueError("field 'entities' must be a list of {start, end, label}")
    out = []
    for i, e in enumerate(ents):
        if not isinstance(e, dict):
            raise ValueError(f"entities[{i}] is not an object")
        missing = [k for k in ("start", "end", "label") if k not in e]
        if missing:
            raise ValueError(f"entities[{i}] lacks field(s) {', '.join(missing)}")
        start, end = e["start"], e["end"]
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            raise ValueError(f"entities[{i}]: start/end must be integers, got {start!r}/{end!r}")
        if start < 0 or end > len(text) or start >= end:
            raise ValueError(f"entities[{i}]: offsets [{start}, {end}) out of range for text of length {len(text)}")
        span_text = e.get("text", text[start:end])
        if span_text != text[start:end]:
            raise ValueError(
                f"entities[{i}]: span text {span_text!r} does not match the text at [{start}, {end}): {text[start:end]!r}"
            )
        out.append(Entity(start, end, str(e["label"]), span_text, source=e.get("source"), score=e.get("score")))
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("field 'meta' must be an object")
    rid = obj.get("id", default_id)
    try:
        return Record(id=str(rid), text=text, entities=tuple(out), meta=meta)
    except RecordError as exc:
        raise ValueError(str(exc)) from None


def read(path: Path, **_: Any) -> Iterator[Record | Reject]:
    stem = Path(path).stem
    for item in iter_lines(path):
        if isinstance(item, Reject):
            yield item
            continue
        yield from _parse(item, str(path), stem)


def _parse(line: Line, name: str, stem: str) -> Iterator[Record | Reject]:
    try:
        obj = json.loads(line.text)
    except json.JSONDecodeError as exc:
        yield Reject(name, line.number, f"invalid JSON: {exc.msg} at column {exc.colno}", line.text)
        return
    try:
        yield parse_line(obj, default_id=f"{stem}:{line.number}")
    except ValueError as exc:
        yield Reject(name, line.number, str(exc), line.text)


def write(records: Iterable[Record], path: Path, **_: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
