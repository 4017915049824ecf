"""chinese_ner_sft JSONL: ``{"text", "entities": [{"start_idx", "end_idx", "entity_label", "entity_text"}], ...}``.

The layout of the public ``qgyd2021/chinese_ner_sft`` collection (its loader
declares ``start_idx``, ``end_idx``, ``entity_text``/``entity``,
``entity_label``, ``entity_names`` and a record-level ``data_source``).

Is ``end_idx`` inclusive? The collection's card does not say, and its
preprocessing scripts copy each source corpus's own offsets: CMeEE and CLUENER
ship inclusive ends (``text[start_idx:end_idx + 1]``), brat-derived corpora ship
exclusive ones. The convention therefore varies by subset, and
``entity_text`` is the ground truth. So:

- reading, ``end="auto"`` (default) decides per entity from ``entity_text``:
  ``len(entity_text) == end_idx - start_idx + 1`` means inclusive,
  ``== end_idx - start_idx`` means exclusive (never both); without
  ``entity_text`` it assumes inclusive. ``end="inclusive"``/``"exclusive"``
  force one convention, and the span text must then match.
- writing uses ``end="inclusive"`` by default (the convention of the
  collection's largest subsets), always with ``entity_text`` so any reader can
  check it; ``entity_names`` is written as ``[label]``.

``id`` and ``meta`` are extra keys the collection does not have; they are
written so a round trip keeps them and are ignored by other consumers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.formats.base import BadRecord, Parsed, Reject, WriteResult, check_entity, write_encoded
from nerwheel.formats.lines import parse_json_lines
from nerwheel.formats.spans import record_id, require_text
from nerwheel.records import Record

NAME = "sft"
CAN_EXPRESS = "spans with labels (overlaps too); no source/score"
ENDS = ("auto", "inclusive", "exclusive")


def _check_end(end: str) -> None:
    if end not in ENDS:
        raise ConfigError(f"end must be one of {', '.join(ENDS)}, got {end!r}")


def parse_object(obj: Any, *, default_id: str, end: str = "auto") -> Record:
    text = require_text(obj)
    ents = obj.get("entities") or []
    if not isinstance(ents, list):
        raise BadRecord("field 'entities' must be a list of {start_idx, end_idx, entity_label, entity_text}")
    out = []
    for i, e in enumerate(ents):
        where = f"entities[{i}]"
        if not isinstance(e, dict):
            raise BadRecord(f"{where} is not an object")
        missing = [k for k in ("start_idx", "end_idx", "entity_label") if k not in e]
        if missing:
            raise BadRecord(f"{where} lacks field(s) {', '.join(missing)}")
        s, t = e["start_idx"], e["end_idx"]
        span_text = e.get("entity_text", e.get("entity"))
        if span_text is not None and not isinstance(span_text, str):
            raise BadRecord(f"{where}: entity_text must be a string, got {span_text!r}")
        if not (isinstance(s, int) and isinstance(t, int)) or isinstance(s, bool) or isinstance(t, bool):
            raise BadRecord(f"{where}: start_idx/end_idx must be integers, got {s!r}/{t!r}")
        mode = end
        if mode == "auto":
            mode = "exclusive" if span_text is not None and len(span_text) == t - s else "inclusive"
        stop = t + 1 if mode == "inclusive" else t
        out.append(check_entity(text, s, stop, e["entity_label"], span_text, where=f"{where} ({mode} end_idx)"))
    meta = dict(obj.get("meta") or {})
    if "data_source" in obj and "data_source" not in meta:
        meta["data_source"] = obj["data_source"]
    return Record(record_id(obj, default_id), text, tuple(out), meta)


def read(path: Path, *, end: str = "auto", notes: Counter[str] | None = None) -> Iterator[Parsed | Reject]:
    _check_end(end)
    yield from parse_json_lines(path, lambda obj, rid: parse_object(obj, default_id=rid, end=end), notes=notes)


def encode(record: Record, end: str = "inclusive") -> str:
    shift = 1 if end == "inclusive" else 0
    obj: dict[str, Any] = {
        "id": record.id,
        "text": record.text,
        "entities": [
            {"start_idx": e.start, "end_idx": e.end - shift, "entity_text": e.text, "entity_label": e.label,
             "entity_names": [e.label]}
            for e in record.entities
        ],
    }
    meta = dict(record.meta)
    if "data_source" in meta:
        obj["data_source"] = meta.pop("data_source")
    if meta:
        obj["meta"] = meta
    return json.dumps(obj, ensure_ascii=False) + "\n"


def write(records: Iterable[Record], path: Path, *, end: str = "inclusive", **options: Any) -> WriteResult:
    if end not in ("inclusive", "exclusive"):
        raise ConfigError(f"end must be 'inclusive' or 'exclusive' when writing, got {end!r}")
    return write_encoded(records, path, NAME, lambda r: encode(r, end), **options)
