"""Plain text lines: one unlabelled text per line (the flywheel's raw traffic).

Each non-blank line is one record with no entities and id ``<stem>:<line>``; the
line is kept exactly (only the line ending, and a BOM on line 1, is removed).
Writing drops entities on purpose (that is what converting to ``text`` is for);
a text that is blank, contains a line break, or starts with U+FEFF cannot be a
line and is reported as unexpressible.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.formats.base import Parsed, Reject, Unexpressible, WriteResult, write_encoded
from nerwheel.formats.lines import iter_lines
from nerwheel.records import Record

NAME = "text"
CAN_EXPRESS = "texts only (entities are dropped); one line each"


def read(path: Path, *, notes: Counter[str] | None = None) -> Iterator[Parsed | Reject]:
    stem = Path(path).stem
    for item in iter_lines(path, notes=notes):
        if isinstance(item, Reject):
            yield item
            continue
        yield Parsed(item.number, Record(f"{stem}:{item.number}", item.text))


def encode(record: Record) -> str:
    t = record.text
    if not t.strip():
        raise Unexpressible("the text is blank (blank lines are skipped when read)")
    if "\n" in t or "\r" in t:
        raise Unexpressible("the text contains a line break")
    if t[0] == "\ufeff":
        raise Unexpressible("the text starts with U+FEFF, which readers take for a byte-order mark")
    return t + "\n"


def write(records: Iterable[Record], path: Path, **options: Any) -> WriteResult:
    return write_encoded(records, path, NAME, encode, **options)
