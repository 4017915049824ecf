"""Message files in and out, with the same reject contract as every nerwheel reader.

Formats (detected by content unless ``format`` is given):

- ``json``: a JSON array of ``{"message", "context", "label"}`` objects (the
  users' own format, e.g. ``kuake_qqr/train.json``); a reject names the line
  the element starts on;
- ``jsonl``: one such object per line;
- ``csv`` / ``tsv``: a header row naming the columns (``message`` or ``text``,
  optional ``context``, ``label``, ``id``);
- ``text``: plain lines, one unlabelled message each.

``label`` may be an integer (an index into the label set, e.g. from
``labels.json``) or a string (a name, or an index written as digits). A reader
never raises on bad input: every element it cannot accept becomes a
:class:`~nerwheel.formats.base.Reject` with file, line, kind and reason, so
``read = accepted + rejected`` holds. Kinds: ``json``, ``utf8``, ``schema``
(wrong types, missing message), ``empty`` (blank message), ``label`` (not in the
label set), ``length`` (over ``max_chars``), ``duplicate-id``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.formats.base import BadRecord, FormatError, ReadResult, Reject, atomic_path
from nerwheel.formats.lines import BOM, iter_json_lines, iter_lines
from nerwheel.tasks.classify.records import LabelSet, Message

__all__ = ["FORMATS", "MAX_CHARS", "MAX_FILE_BYTES", "detect", "message_from", "read_messages", "write_messages"]

FORMATS = ("json", "jsonl", "csv", "tsv", "text")
#: Characters of message + context beyond which a record is rejected (``length``): a bound on the input.
MAX_CHARS = 4096
#: A JSON array is parsed in memory; larger files must come as JSONL (streamed).
MAX_FILE_BYTES = 512 << 20
_MESSAGE_KEYS = ("message", "text")


def detect(path: Path) -> str:
    """``json`` for a leading ``[``, ``jsonl`` for ``{``, ``csv``/``tsv`` for a header naming a message column."""
    with open(path, "rb") as f:
        head = f.read(1 << 16).removeprefix(BOM).decode("utf-8", errors="replace")
    first = next((ln.strip() for ln in head.splitlines() if ln.strip()), "")
    if first.startswith("["):
        return "json"
    if first.startswith("{"):
        return "jsonl"
    for fmt, sep in (("tsv", "\t"), ("csv", ",")):
        cols = [c.strip().strip('"').lower() for c in first.split(sep)]
        if len(cols) > 1 and any(k in cols for k in _MESSAGE_KEYS):
            return fmt
    return "text"


def _label(value: Any, labels: LabelSet | None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadRecord(f"label must be an integer or a string, got {value!r}", "schema")
    if isinstance(value, int) or (labels is not None and value.strip().isdigit() and value not in labels):
        index = int(value)
        if labels is None:
            return str(index)
        if not 0 <= index < len(labels):
            raise BadRecord(f"label {value!r} is not a class index 0..{len(labels) - 1} of the label set "
                            f"({', '.join(labels.names)})", "label")
        return labels.names[index]
    name = value.strip()
    if labels is not None and name not in labels:
        raise BadRecord(f"unknown label {value!r}; the label set is: {', '.join(labels.names)}", "unknown-label")
    return name


def message_from(obj: Any, default_id: str, *, labels: LabelSet | None = None, max_chars: int = MAX_CHARS) -> Message:
    """One decoded object -> :class:`Message`, or :class:`BadRecord` saying which field is wrong."""
    if not isinstance(obj, dict):
        raise BadRecord(f"expected an object with a message, got {type(obj).__name__}", "schema")
    key = next((k for k in _MESSAGE_KEYS if k in obj), None)
    if key is None:
        raise BadRecord(f"no 'message' field (keys: {', '.join(map(str, obj)) or 'none'})", "schema")
    message, context = obj[key], obj.get("context", "")
    if context is None:
        context = ""
    for name, value in ((key, message), ("context", context)):
        if not isinstance(value, str):
            raise BadRecord(f"{name} must be a string, got {type(value).__name__} {value!r}", "schema")
    if not message.strip():
        raise BadRecord(f"{key} is empty", "empty")
    if len(message) + len(context) > max_chars:
        raise BadRecord(f"message + context hold {len(message) + len(context)} characters; the limit is "
                        f"{max_chars} (max_chars)", "length")
    rid = obj.get("id", default_id)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise BadRecord(f"id must be a string or an integer, got {rid!r}", "schema")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise BadRecord(f"meta must be an object, got {type(meta).__name__}", "schema")
    return Message(str(rid), message, context, _label(obj.get("label"), labels), meta)


def _json_array(path: Path, notes: Any) -> Iterator[tuple[int, Any] | Reject]:
    """Elements of a top-level JSON array with the line each starts on; one broken element is one reject."""
    name = str(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FormatError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} bytes a JSON array may hold; "
                          "convert it to JSONL (one object per line), which is read line by line")
    raw = path.read_bytes()
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
        notes["UTF-8 BOM stripped"] += 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        yield Reject(name, line, f"invalid UTF-8 at line {line}; re-save the file as UTF-8", "", kind="utf8")
        return
    decoder = json.JSONDecoder()
    i, line, n = text.index("[") + 1, 1, len(text)
    line += text.count("\n", 0, i)

    def skip(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    while True:
        j = skip(i)
        line += text.count("\n", i, j)
        i = j
        if i >= n:
            yield Reject(name, line, "the JSON array is not closed (no ']' at the end)", "", kind="json")
            return
        if text[i] == "]":
            return
        if text[i] == ",":
            i += 1
            continue
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            nxt = text.find("\n{", exc.pos)  # resynchronise on the next object that starts a line
            stop = nxt + 1 if nxt >= 0 else n
            yield Reject(name, line, f"invalid JSON in the array element starting here: {exc.msg} at line "
                         f"{exc.lineno}", text[i:stop].strip()[:500], kind="json")
            line += text.count("\n", i, stop)
            i = stop
            if nxt < 0:
                return
            continue
        yield line, obj
        line += text.count("\n", i, end)
        i = end


def _table(path: Path, sep: str, notes: Any) -> Iterator[tuple[int, Any] | Reject]:
    name = str(path)
    header: list[str] | None = None
    for item in iter_lines(path, notes=notes):
        if isinstance(item, Reject):
            yield item
            continue
        try:
            row = next(csv.reader(io.StringIO(item.text), delimiter=sep))
        except csv.Error as exc:
            yield Reject(name, item.number, f"unreadable {'TSV' if sep == chr(9) else 'CSV'} row: {exc}", item.text,
                         kind="schema")
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            if not any(k in header for k in _MESSAGE_KEYS):
                raise FormatError(f"{path}:{item.number}: the header row must name a 'message' (or 'text') column, "
                                  f"got {row}")
            continue
        if len(row) != len(header):
            yield Reject(name, item.number, f"{len(row)} columns, the header has {len(header)}", item.text,
                         kind="schema")
            continue
        yield item.number, dict(zip(header, row, strict=True))


def read_messages(
    path: str | Path, format: str | None = None, *, labels: LabelSet | None = None, max_chars: int = MAX_CHARS,
    require_label: bool = False,
) -> ReadResult:
    """Read a message file into a :class:`ReadResult` of :class:`Message` (``records``) and rejects.

    ``labels`` (default: a ``labels.json`` beside the file) maps integer labels
    to names and refuses names outside it; ``require_label`` rejects unlabelled
    messages (kind ``label``), for training and evaluation data.
    """
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such file" if not p.exists() else f"{p}: is a folder; give a data file")
    fmt = format or detect(p)
    if fmt not in FORMATS:
        raise FormatError(f"unknown message format {fmt!r}; allowed formats are: {', '.join(FORMATS)}")
    if labels is None:
        labels = LabelSet.beside(p)
    result = ReadResult(source=str(p), format=fmt)
    name, stem = str(p), p.stem
    items: Iterable[tuple[int, Any] | Reject]
    if fmt == "json":
        items = _json_array(p, result.notes)
    elif fmt == "jsonl":
        items = ((it[0].number, it[1]) if not isinstance(it, Reject) else it
                 for it in iter_json_lines(p, notes=result.notes))
    elif fmt in ("csv", "tsv"):
        items = _table(p, "," if fmt == "csv" else "\t", result.notes)
    else:
        items = ((it.number, {"message": it.text}) if not isinstance(it, Reject) else it
                 for it in iter_lines(p, notes=result.notes))
    seen: set[str] = set()
    for n, item in enumerate(items, start=1):
        if isinstance(item, Reject):
            result.add(item)
            continue
        line, obj = item
        try:
            # default ids: the element number in a JSON array (several may share a line), else the line
            msg = message_from(obj, f"{stem}:{n if fmt == 'json' else line}", labels=labels, max_chars=max_chars)
            if require_label and msg.label is None:
                raise BadRecord("no label; training and evaluation data must be labelled", "label")
            if msg.id in seen:
                raise BadRecord(f"duplicate id {msg.id!r} (ids must be unique within a file)", "duplicate-id")
        except BadRecord as exc:
            raw = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
            result.add(Reject(name, line, str(exc), raw[:2000], kind=exc.kind))
            continue
        seen.add(msg.id)
        result.add(msg, line)
    return result


def write_messages(rows: Iterable[Message | dict[str, Any]], path: str | Path) -> int:
    """Write messages (or ready-made dict rows) as JSONL, atomically; returns how many."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            d = row.to_dict() if isinstance(row, Message) else row
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
            n += 1
    return n
