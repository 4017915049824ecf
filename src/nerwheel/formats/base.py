"""What every on-disk format shares: the reject type, the read result, the reader protocol.

A reader never raises on bad input: it yields :class:`Reject` for each record it
cannot accept (with file, line and reason) and carries on, so the counts always
reconcile: ``read == accepted + rejected``. ``strict`` callers turn the first
reject into an error themselves (:meth:`ReadResult.raise_first`, or
``read_records(..., strict=True)``).

Readers yield :class:`Parsed` (a record plus the line it came from) so that a
later stage, such as validation, can still name the line when it rejects the
record.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nerwheel.errors import ConfigError, NerwheelError
from nerwheel.records import Entity, Record

__all__ = [
    "BadRecord",
    "FormatError",
    "Parsed",
    "ReadResult",
    "Reader",
    "Reject",
    "Unexpressible",
    "WriteResult",
    "Writer",
    "atomic_path",
    "check_entity",
    "write_encoded",
    "read_rejects",
    "write_rejects",
]


class FormatError(NerwheelError, ValueError):
    """Unusable input as a whole (unknown format, unreadable file, strict mode hit a reject)."""


class Unexpressible(ValueError):
    """A record that a target format cannot represent faithfully (raised by a writer's ``encode``)."""


class BadRecord(ValueError):
    """One input record is unusable; ``kind`` is the reject category. Readers turn it into a :class:`Reject`."""

    def __init__(self, reason: str, kind: str = "schema") -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Reject:
    """One input record that was not accepted, and why.

    ``line`` is 1-based: the JSONL line, for CoNLL the line of the offending
    token (or the sentence's first line), for Label Studio the line where the
    task starts. ``kind`` is a short, stable category (``json``, ``offsets``,
    ``span-text``, ``overlap``, ...) for summaries and tests; ``reason`` is the
    sentence a person reads. ``raw`` keeps the original text so nothing is lost.

    ``extra`` holds what a stage knows beyond that (the annotate stage: the
    record ``id``, the ``teacher``, the reader's ``code`` ...). It is written
    flat beside the five fields (:meth:`to_dict`) and read back into ``extra``
    (:meth:`from_dict`), so a reject keeps one form from the reader through a
    stage to every rejects file, in the CLI and the pipeline alike.
    """

    file: str
    line: int
    reason: str
    raw: str = ""
    kind: str = "invalid"
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The rejects-file row: ``file``, ``line``, ``kind``, ``reason``, ``raw``, then ``extra``'s keys."""
        row = {"file": self.file, "line": self.line, "kind": self.kind, "reason": self.reason, "raw": self.raw}
        row.update((k, v) for k, v in self.extra.items() if k not in row)
        return row

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reject:
        extra = {k: v for k, v in d.items() if k not in _REJECT_FIELDS}
        return cls(file=d["file"], line=int(d["line"]), reason=d["reason"], raw=d.get("raw", ""),
                   kind=d.get("kind", "invalid"), extra=extra)


_REJECT_FIELDS = ("file", "line", "kind", "reason", "raw")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A record a reader accepted, with the (1-based) line it starts on."""

    line: int
    record: Record


@dataclass(slots=True)
class ReadResult:
    """Accepted records and rejects from one input, in input order.

    ``lines[i]`` is the input line of ``records[i]`` (kept in step by
    :meth:`add`); ``notes`` counts things that were tolerated and fixed on the
    way in (a stripped BOM, CRLF line endings, dropped duplicate entities) so a
    summary can say so without rejecting anything.
    """

    source: str
    format: str
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)

    def add(self, item: Parsed | Reject | Record, line: int = 0) -> None:
        if isinstance(item, Reject):
            self.rejects.append(item)
        elif isinstance(item, Parsed):
            self.records.append(item.record)
            self.lines.append(item.line)
        else:
            self.records.append(item)
            self.lines.append(line)

    def line_of(self, index: int) -> int:
        """Input line of ``records[index]`` (0 when the result was built without lines)."""
        return self.lines[index] if len(self.lines) == len(self.records) else 0

    def located(self) -> Iterator[tuple[int, Record]]:
        for i, r in enumerate(self.records):
            yield self.line_of(i), r

    @property
    def read(self) -> int:
        return len(self.records) + len(self.rejects)

    def reject_kinds(self) -> Counter[str]:
        return Counter(r.kind for r in self.rejects)

    def summary(self) -> str:
        """One reconciling line, then rejected-by-kind and notes when there are any."""
        out = [f"{self.source} ({self.format}): read {self.read} = accepted {len(self.records)} "
               f"+ rejected {len(self.rejects)}"]
        if self.rejects:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.reject_kinds().items(), key=lambda kv: (-kv[1], kv[0])))
            out.append(f"  rejected by kind: {kinds}")
        if self.notes:
            out.append("  notes: " + "; ".join(f"{k}: {n}" for k, n in sorted(self.notes.items())))
        return "\n".join(out)

    def raise_first(self) -> None:
        if self.rejects:
            raise FormatError(str(self.rejects[0]))


@dataclass(slots=True)
class WriteResult:
    """What a writer did: how many records it wrote and which it could not express."""

    path: str
    format: str
    written: int = 0
    rejects: list[Reject] = field(default_factory=list)


class Reader(Protocol):
    """Yields parsed records and rejects from one file, in file order."""

    def __call__(self, path: Path, **options: Any) -> Iterator[Parsed | Reject]: ...


class Writer(Protocol):
    """Writes records to one file (plus a side file for formats that need one).

    Returns the records it could not express as :class:`Reject` (``line`` is the
    record's 1-based position in the input sequence).
    """

    def __call__(self, records: Iterable[Record], path: Path, **options: Any) -> WriteResult: ...


class atomic_path:  # noqa: N801 - used like open()
    """Context manager yielding a temporary path beside ``path``; renamed over it on success.

    A writer that fails half way (or a strict caller that aborts) never leaves a
    truncated file where a complete one is expected.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Not mkstemp: its files are 0600, so a renamed output would differ from every other file
        # nerwheel writes (0666 less the umask, like open()).
        while True:
            tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp"
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:  # pragma: no cover - a 48-bit name collision
                continue
        self.tmp = tmp
        return self.tmp

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        assert self.tmp is not None
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> int:
    """Write rejects as JSONL (``file``, ``line``, ``kind``, ``reason``, ``raw``); returns how many."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_rejects(path: str | Path) -> list[Reject]:
    """Read a rejects file written by :func:`write_rejects`."""
    with open(path, encoding="utf-8") as f:
        return [Reject.from_dict(json.loads(line)) for line in f if line.strip()]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_entity(
    text: str, start: Any, end: Any, label: Any, span_text: Any = None, *, where: str,
    source: str | None = None, score: Any = None,
) -> Entity:
    """Build an :class:`Entity` from raw reader values, or raise :class:`BadRecord` saying what is wrong.

    ``end`` is exclusive here; readers of inclusive formats convert first.
    ``where`` names the field for the message (``entities[2]``).
    ``span_text`` (when the format carries it) must equal ``text[start:end]``.
    """
    if not (_is_int(start) and _is_int(end)):
        raise BadRecord(f"{where}: start/end must be integers, got {start!r}/{end!r}", "schema")
    if not isinstance(label, str) or not label.strip():
        raise BadRecord(f"{where}: label must be a non-empty string, got {label!r}", "schema")
    if start < 0 or end > len(text) or start >= end:
        raise BadRecord(
            f"{where}: offsets [{start}, {end}) out of range for a text of length {len(text)} "
            "(need 0 <= start < end <= length, end exclusive)", "offsets",
        )
    here = text[start:end]
    if span_text is not None and span_text != here:
        raise BadRecord(
            f"{where}: span text {span_text!r} does not match the text at [{start}, {end}): {here!r}; "
            "fix the offsets (end is exclusive) or the span text", "span-text",
        )
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise BadRecord(f"{where}: score must be a number, got {score!r}", "schema")
    if source is not None and not isinstance(source, str):
        raise BadRecord(f"{where}: source must be a string, got {source!r}", "schema")
    return Entity(start, end, label, here, source=source, score=float(score) if score is not None else None)


Origin = Callable[[int, Record], tuple[str, int]]


def write_encoded(
    records: Iterable[Record],
    path: Path,
    fmt: str,
    encode: Callable[[Record], str],
    *,
    origin: Origin | None = None,
    on_unexpressible: str = "raise",
    header: str = "",
    footer: str = "",
) -> WriteResult:
    """Write ``encode(record)`` for each record, atomically; handle records the format cannot express.

    ``on_unexpressible="raise"`` (the default, for programmatic callers) aborts
    with a :class:`FormatError` and leaves no file; ``"reject"`` skips the
    record and returns it as a :class:`Reject` located by ``origin(index,
    record)`` (the input file and line when the caller knows them).
    """
    if on_unexpressible not in ("raise", "reject"):
        raise ConfigError(f"on_unexpressible must be 'raise' or 'reject', got {on_unexpressible!r}")
    result = WriteResult(str(path), fmt)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(header)
        for i, r in enumerate(records):
            try:
                chunk = encode(r)
            except Unexpressible as exc:
                where, line = origin(i, r) if origin else (str(path), i + 1)
                reason = f"record {r.id!r} cannot be written as {fmt}: {exc}"
                if on_unexpressible == "raise":
                    raise FormatError(f"{where}:{line}: {reason}") from None
                result.rejects.append(Reject(where, line, reason, json.dumps(r.to_dict(), ensure_ascii=False),
                                             kind="unexpressible"))
                continue
            f.write(chunk)
            result.written += 1
        f.write(footer)
    return result
