"""What every on-disk format shares: the reject type, the read result, the reader protocol.

A reader never raises on bad input: it yields :class:`Reject` for each record it
cannot accept (with file, line and reason) and carries on, so the counts always
reconcile: ``read == accepted + rejected``. ``--strict`` callers turn the first
reject into an error themselves (:meth:`ReadResult.raise_first`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nerwheel.records import Record

__all__ = ["FormatError", "ReadResult", "Reader", "Reject", "Writer", "write_rejects"]


class FormatError(ValueError):
    """Unusable input as a whole (unknown format, unreadable file, strict mode hit a reject)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """One input record that was not accepted, and why.

    ``line`` is 1-based: the JSONL line, or for CoNLL the first line of the
    sentence block. ``raw`` keeps the original text so nothing is lost.
    """

    file: str
    line: int
    reason: str
    raw: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason, "raw": self.raw}


@dataclass(slots=True)
class ReadResult:
    """Accepted records and rejects from one input, in input order."""

    source: str
    format: str
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.records) + len(self.rejects)

    def summary(self) -> str:
        return (
            f"{self.source} ({self.format}): read {self.read} = accepted {len(self.records)} "
            f"+ rejected {len(self.rejects)}"
        )

    def raise_first(self) -> None:
        if self.rejects:
            raise FormatError(str(self.rejects[0]))


class Reader(Protocol):
    """Yields records and rejects from one file, in file order."""

    def __call__(self, path: Path, **options: Any) -> Iterator[Record | Reject]: ...


class Writer(Protocol):
    """Writes records to one file (or folder, for formats that need a side file)."""

    def __call__(self, records: Iterable[Record], path: Path, **options: Any) -> None: ...


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> int:
    """Write rejects as JSONL (``file``, ``line``, ``reason``, ``raw``); returns how many."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n
