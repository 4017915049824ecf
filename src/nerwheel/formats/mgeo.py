"""MGeo-style JSONL: ``{"id"?, "address"|"text": ..., "entities": {"road": "清远路", "poi": "九堡, 商贸中心"}}``.

Address annotations often come as a label -> value(s) object rather than
offsets (MGeo / GeoGLUE exports, LLM answers). Several values of one label are
comma-separated (``,`` or ``，``; spaces around values are stripped; a JSON list
of strings is accepted too). Offsets are not given, so each value has to be
*placed* in the text. The rule, chosen so the common cases are unambiguous and
nothing is placed on top of something else:

1. Values are taken in listed order: labels in the object's key order, values
   left to right within a label.
2. Each value takes its **leftmost** occurrence that does not overlap a value
   already placed, preferring occurrences that start **after the previous value
   of the same label** (values of one label are usually listed in reading order,
   so ``"poi": "九堡, 九堡"`` means the first and the second 九堡).
3. If a choice leaves a later value with no free occurrence, earlier choices are
   revised (depth-first backtracking in the same preference order), so a record
   is rejected only when no non-overlapping placement exists at all, or when a
   value does not occur in the text. The reject names the label and the value.

The writer emits the same shape: labels in order of first appearance, values in
text order, joined with ``,``. A record is only written if reading the line back
places every value exactly where it was; otherwise it is reported as
unexpressible (e.g. an entity on the second 九堡 when the first one is unlabelled,
overlapping entities, or a value containing a comma).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.formats.base import BadRecord, Parsed, Reject, Unexpressible, WriteResult, write_encoded
from nerwheel.formats.lines import parse_json_lines
from nerwheel.formats.spans import record_id
from nerwheel.records import Entity, Record

NAME = "mgeo"
CAN_EXPRESS = "non-overlapping spans whose values are found again at the same place (no offsets in the format)"

TEXT_KEYS = ("address", "text")
_SEP = re.compile(r"[,，]")
_MAX_STEPS = 20_000  # backtracking budget; real addresses need a handful of steps


def split_values(raw: Any, label: str) -> list[str]:
    if isinstance(raw, str):
        parts = _SEP.split(raw)
    elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        parts = list(raw)
    else:
        raise BadRecord(f"entities[{label!r}] must be a string (values separated by ',' or '，') or a list of "
                        f"strings, got {raw!r}")
    return [p.strip() for p in parts if p.strip()]


def _occurrences(text: str, value: str) -> list[int]:
    out, i = [], text.find(value)
    while i != -1:
        out.append(i)
        i = text.find(value, i + 1)
    return out


def place(text: str, wanted: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Place ``(label, value)`` pairs in ``text`` by the module's rule; raise :class:`BadRecord` if impossible."""
    occ: list[list[int]] = []
    for label, value in wanted:
        found = _occurrences(text, value)
        if not found:
            raise BadRecord(f"cannot place {label} value {value!r}: it does not occur in the text", "mgeo-place")
        occ.append(found)
    n = len(wanted)
    starts: list[int] = [-1] * n
    prev_same: list[int | None] = []
    last: dict[str, int] = {}
    for i, (label, _) in enumerate(wanted):
        prev_same.append(last.get(label))
        last[label] = i
    steps = 0
    deepest = 0

    def free(i: int, s: int) -> bool:
        e = s + len(wanted[i][1])
        return all(not (s < starts[j] + len(wanted[j][1]) and starts[j] < e) for j in range(i))

    def candidates(i: int) -> list[int]:
        p = prev_same[i]
        floor = starts[p] + len(wanted[p][1]) if p is not None else 0
        after = [s for s in occ[i] if s >= floor]
        before = [s for s in occ[i] if s < floor]
        return [s for s in after + before if free(i, s)]

    def solve(i: int) -> bool:
        nonlocal steps, deepest
        if i == n:
            return True
        deepest = max(deepest, i)
        for s in candidates(i):
            steps += 1
            if steps > _MAX_STEPS:
                return False
            starts[i] = s
            if solve(i + 1):
                return True
        starts[i] = -1
        return False

    if not solve(0):
        label, value = wanted[deepest]
        why = ("the placement search gave up (too many repeated values)" if steps > _MAX_STEPS
               else "every occurrence overlaps another value")
        raise BadRecord(f"cannot place {label} value {value!r}: {why}", "mgeo-place")
    return [(s, s + len(v), lab) for s, (lab, v) in zip(starts, wanted, strict=True)]


def parse_object(obj: Any, *, default_id: str) -> Record:
    if not isinstance(obj, dict):
        raise BadRecord(f"expected a JSON object, got {type(obj).__name__}")
    key = next((k for k in TEXT_KEYS if k in obj), None)
    if key is None:
        raise BadRecord("field 'address' (or 'text') is missing")
    text = obj[key]
    if not isinstance(text, str):
        raise BadRecord(f"field {key!r} must be a string, got {type(text).__name__}")
    ents = obj.get("entities") or {}
    if not isinstance(ents, dict):
        raise BadRecord("field 'entities' must be an object of label -> 'value, value'")
    wanted = [(str(label), v) for label, raw in ents.items() for v in split_values(raw, str(label))]
    for label, _ in wanted:
        if not label.strip():
            raise BadRecord("entities has an empty label")
    spans = place(text, wanted)
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise BadRecord("field 'meta' must be an object")
    return Record(record_id(obj, default_id), text, tuple(Entity.at(text, s, e, lab) for s, e, lab in spans), meta)


def read(path: Path, *, notes: Counter[str] | None = None) -> Iterator[Parsed | Reject]:
    yield from parse_json_lines(path, lambda obj, rid: parse_object(obj, default_id=rid), notes=notes)


def to_object(record: Record, text_key: str = "address") -> dict[str, Any]:
    grouped: dict[str, list[str]] = {}
    for e in record.entities:  # sorted by start: labels in order of first appearance, values in text order
        if _SEP.search(e.text) or e.text != e.text.strip():
            raise Unexpressible(f"{e.label} value {e.text!r} contains a comma or surrounding spaces")
        grouped.setdefault(e.label, []).append(e.text)
    obj: dict[str, Any] = {"id": record.id, text_key: record.text,
                           "entities": {k: ",".join(v) for k, v in grouped.items()}}
    if record.meta:
        obj["meta"] = dict(record.meta)
    return obj


def encode(record: Record, text_key: str = "address") -> str:
    obj = to_object(record, text_key)
    try:
        back = {(s, e, lab) for s, e, lab in
                place(record.text, [(lab, v) for lab, raw in obj["entities"].items() for v in split_values(raw, lab)])}
    except BadRecord as exc:
        raise Unexpressible(str(exc)) from None
    if back != record.spans():
        moved = sorted(record.spans() - back)
        s, e, lab = moved[0]
        raise Unexpressible(f"{lab} value {record.text[s:e]!r} at [{s}, {e}) would be read back elsewhere "
                            "(MGeo carries no offsets)")
    return json.dumps(obj, ensure_ascii=False) + "\n"


def write(records: Iterable[Record], path: Path, *, text_key: str = "address", **options: Any) -> WriteResult:
    if text_key not in TEXT_KEYS:
        raise ConfigError(f"text_key must be one of {', '.join(TEXT_KEYS)}, got {text_key!r}")
    return write_encoded(records, path, NAME, lambda r: encode(r, text_key), **options)
