"""Line reading shared by every line-based format.

Decodes each line on its own so one bad byte sequence rejects one line, not the
file. A UTF-8 BOM at the start of the file and CRLF line endings are tolerated
(stripped) and counted in ``notes``, because Windows tools produce them and
rejecting them would lose data; the summary reports them so nobody is surprised.
Only the file's first line can carry a BOM: a U+FEFF anywhere else is content.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerwheel.formats import safejson
from nerwheel.formats.base import BadRecord, Parsed, Reject
from nerwheel.records import Record

BOM = b"\xef\xbb\xbf"

NOTE_BOM = "UTF-8 BOM stripped"
NOTE_CRLF = "CRLF line endings stripped"


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based
    text: str


def iter_lines(path: Path, *, skip_blank: bool = True, notes: Counter[str] | None = None) -> Iterator[Line | Reject]:
    """Yield decoded lines (without line ending) or a :class:`Reject` for undecodable ones."""
    name = str(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            item = decode_line(raw, number, name, skip_blank=skip_blank, notes=notes)
            if item is not None:
                yield item


def decode_line(raw: bytes, number: int, name: str, *, skip_blank: bool = True,
                notes: Counter[str] | None = None) -> Line | Reject | None:
    """One raw line (with or without its ending) as :func:`iter_lines` reads it: a :class:`Line`, a
    :class:`Reject` (not UTF-8), or ``None`` (blank, skipped). The one rule, shared with the shard planner
    (:mod:`nerwheel.shards`), which counts the texts of a byte range the way the reader will."""
    if number == 1 and raw.startswith(BOM):
        raw = raw[len(BOM):]
        if notes is not None:
            notes[NOTE_BOM] += 1
    raw = raw.rstrip(b"\n")
    if raw.endswith(b"\r"):
        raw = raw[:-1]
        if notes is not None:
            notes[NOTE_CRLF] += 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(
            name, number,
            f"invalid UTF-8 at byte {exc.start} of the line ({raw[exc.start:exc.start + 4]!r}); "
            "re-save the file as UTF-8 (e.g. iconv -f GBK -t UTF-8)",
            raw.decode("utf-8", errors="replace"), kind="utf8",
        )
    if skip_blank and not text.strip():
        return None
    return Line(number, text)


def iter_json_lines(path: Path, *, notes: Counter[str] | None = None) -> Iterator[tuple[Line, Any] | Reject]:
    """Yield ``(line, decoded JSON value)`` per non-blank line, or a :class:`Reject` naming the column
    (or, for a value nested too deep or holding a lone surrogate, the field: :mod:`.safejson`)."""
    name = str(path)
    for item in iter_lines(path, notes=notes):
        if isinstance(item, Reject):
            yield item
            continue
        try:
            yield item, safejson.loads(item.text)
        except json.JSONDecodeError as exc:
            yield Reject(name, item.number, f"invalid JSON: {exc.msg} at column {exc.colno}", item.text, kind="json")
        except BadRecord as exc:  # nested too deep, or a lone surrogate: not a record
            yield Reject(name, item.number, str(exc), item.text, kind=exc.kind)


def parse_json_lines(
    path: Path, parse: Callable[[Any, str], Record], *, notes: Counter[str] | None = None
) -> Iterator[Parsed | Reject]:
    """Each JSON line through ``parse(obj, default_id)`` (the JSONL formats differ only there); a
    :class:`BadRecord` it raises becomes a :class:`Reject` naming the file, line and reason."""
    name, stem = str(path), Path(path).stem
    for item in iter_json_lines(path, notes=notes):
        if isinstance(item, Reject):
            yield item
            continue
        line, obj = item
        try:
            yield Parsed(line.number, parse(obj, f"{stem}:{line.number}"))
        except BadRecord as exc:
            yield Reject(name, line.number, str(exc), line.text, kind=exc.kind)


def count_lines(path: Path) -> int:
    """Number of newline-terminated lines (cheap; used as a progress-bar total)."""
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n
