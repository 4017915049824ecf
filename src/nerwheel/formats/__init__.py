"""Readers and writers for every on-disk format users bring, behind two calls.

``read_records(path, format=None)`` auto-detects the format by content unless
told, and returns a :class:`ReadResult` (accepted records + rejects with file,
line and reason). ``write_records(records, path, format)`` writes one.
One module per format; this file only dispatches.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerwheel.formats import spans
from nerwheel.formats.base import FormatError, ReadResult, Reject, write_rejects
from nerwheel.records import Record

__all__ = ["FORMATS", "FormatError", "ReadResult", "Reject", "detect_format", "read_records", "write_records",
           "write_rejects"]

# name -> module with read(path, **opts) and write(records, path, **opts)
FORMATS: dict[str, Any] = {spans.NAME: spans}


def detect_format(path: str | Path) -> str:
    """Guess the format from the file's content (not its extension)."""
    return spans.NAME


def read_records(path: str | Path, format: str | None = None, **options: Any) -> ReadResult:
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file")
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; allowed formats are: {', '.join(sorted(FORMATS))}")
    result = ReadResult(source=str(p), format=fmt)
    for item in FORMATS[fmt].read(p, **options):
        (result.rejects if isinstance(item, Reject) else result.records).append(item)
    return result


def write_records(records: Iterable[Record], path: str | Path, format: str = "spans", **options: Any) -> None:
    if format not in FORMATS:
        raise FormatError(f"unknown format {format!r}; allowed formats are: {', '.join(sorted(FORMATS))}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    FORMATS[format].write(records, p, **options)
