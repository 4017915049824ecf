"""Span JSONL: ``{"id"?, "text", "entities": [{"start", "end", "label", "text"?, "source"?, "score"?}], "meta"?}``.

This is nerwheel's native format (it is :meth:`Record.to_dict` per line), and
the form of the corpora users usually bring. ``entities`` may be absent for
unlabelled texts; an entity without ``text`` takes it from the offsets. Offsets
are Python character offsets with ``end`` exclusive.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.formats.base import BadRecord, Parsed, Reject, WriteResult, check_entity, write_encoded
from nerwheel.formats.lines import parse_json_lines
from nerwheel.records import Record

NAME = "spans"
CAN_EXPRESS = "everything: overlapping spans, sources, scores, meta"


def record_id(obj: dict[str, Any], default_id: str) -> str:
    """An input id is kept (as a string); otherwise ``<stem>:<line>``."""
    rid = obj.get("id")
    if rid is None or rid == "":
        return default_id
    if isinstance(rid, (dict, list, bool)):
        raise BadRecord(f"field 'id' must be a string or number, got {rid!r}")
    return str(rid)


def require_text(obj: Any, key: str = "text") -> str:
    if not isinstance(obj, dict):
        raise BadRecord(f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get(key)
    if not isinstance(text, str):
        raise BadRecord(f"field {key!r} is missing or not a string" if text is None or key not in obj
                        else f"field {key!r} must be a string, got {type(text).__name__}")
    return text


def parse_object(obj: Any, *, default_id: str) -> Record:
    """Turn one decoded JSON object into a record; raises :class:`BadRecord` with the reason."""
    text = require_text(obj)
    ents = obj.get("entities", [])
    if ents is None:
        ents = []
    if not isinstance(ents, list):
        raise BadRecord("field 'entities' must be a list of {start, end, label, text}")
    out = []
    for i, e in enumerate(ents):
        if not isinstance(e, dict):
            raise BadRecord(f"entities[{i}] is not an object")
        missing = [k for k in ("start", "end", "label") if k not in e]
        if missing:
            raise BadRecord(f"entities[{i}] lacks field(s) {', '.join(missing)}")
        out.append(check_entity(text, e["start"], e["end"], e["label"], e.get("text"), where=f"entities[{i}]",
                                source=e.get("source"), score=e.get("score")))
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise BadRecord("field 'meta' must be an object")
    return Record(id=record_id(obj, default_id), text=text, entities=tuple(out), meta=meta)


def read(path: Path, *, notes: Counter[str] | None = None, **_: Any) -> Iterator[Parsed | Reject]:
    yield from parse_json_lines(path, lambda obj, rid: parse_object(obj, default_id=rid), notes=notes)


def encode(record: Record) -> str:
    return json.dumps(record.to_dict(), ensure_ascii=False) + "\n"


def write(records: Iterable[Record], path: Path, **options: Any) -> WriteResult:
    return write_encoded(records, path, NAME, encode, **options)
