"""Cut a text file into N contiguous shards, read one shard, and check the shards' outputs back together.

Why this shape: traffic of millions of texts a day is labelled by N pods at once
(KFP ``dsl.ParallelFor``), and the result must be the same as one pod's, in input
order, with nothing lost or counted twice.

* **Plan (one streaming pass).** :func:`plan_shards` cuts the file at line
  boundaries into N byte ranges of nearly equal size (labelling cost grows with
  text length, so bytes balance work better than lines), and records for each
  range its first line number, its lines, the texts the reader will count there
  (:func:`nerwheel.formats.lines.decode_line`, the reader's own rule) and the
  SHA-256 of its bytes.
* **Read (only its bytes).** :func:`read_shard` fetches the range (an S3 ranged
  GET) and checks the bytes against the plan, so a file replaced between plan
  and read is refused, never half-read. Records keep the ids and rejects the
  file and line numbers of the whole file (``traffic:1207``), so the output does
  not depend on N.
* **Reconcile (fan-in).** Each shard's output carries a :class:`ShardPart`
  (``shard.json``); :func:`reconcile` takes them in any order, puts them in plan
  order, and checks that every planned shard reported exactly once, read the
  planned bytes, counted the planned texts, and that read = accepted + rejected
  per shard and in total.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError, DataError, NerwheelError
from nerwheel.formats.base import ReadResult, Reject
from nerwheel.formats.lines import decode_line

__all__ = ["MAX_SHARDS", "Shard", "ShardError", "ShardPart", "Totals", "plan_shards", "read_shard", "reconcile"]

#: More shards than this is a mistake, not a plan: each is a pod, and the plan travels as one KFP parameter
#: (about 250 bytes a shard). 256 shards of 100M texts a day are 400k texts each.
MAX_SHARDS = 256


class ShardError(NerwheelError, ValueError):
    """Shard outputs that do not add up to the input (missing, repeated or changed shards, lost texts)."""


@dataclass(frozen=True)
class Shard:
    """One contiguous part of a text file: bytes ``[start, end)``, lines ``first_line .. first_line + lines - 1``."""

    index: int
    count: int
    uri: str
    start: int
    end: int
    first_line: int
    lines: int
    texts: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shard:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise DataError(f"shard description lacks {', '.join(missing)} (got {sorted(d)}); it comes from the "
                            "plan_shards step", field="shard")
        return cls(**{n: d[n] for n in names})


def _line_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Raw lines (each with its ``\\n``, the last one perhaps without) from a stream of byte chunks."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def plan_shards(uri: str, count: int, *, size: int | None = None, storage: Any = None) -> list[Shard]:
    """Cut the text file at ``uri`` into ``count`` line-aligned byte ranges (fewer when it has fewer lines).

    Every line belongs to exactly one range; a file with no lines gives one empty shard (so the fan-out still has
    an iteration and the fan-in an input). ``size`` is the file's size when known (else one more request).
    """
    from nerwheel import storage as st

    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"shards must be between 1 and {MAX_SHARDS}, got {count}", field="shards")
    store = storage or st.get_storage()
    total = size if size is not None else store.size(uri)
    # Range k ends at the first line end at or after k * total / count bytes.
    targets = [total * k // count for k in range(1, count)]
    out: list[Shard] = []
    start, offset, line_no, first_line, lines, texts = 0, 0, 0, 1, 0, 0
    digest = hashlib.sha256()

    def close(end: int) -> None:
        nonlocal start, first_line, lines, texts, digest
        out.append(Shard(len(out), 0, uri, start, end, first_line, lines, texts, digest.hexdigest()))
        start, first_line, lines, texts, digest = end, line_no + 1, 0, 0, hashlib.sha256()

    for raw in _line_chunks(store.iter_bytes(uri)):
        line_no += 1
        offset += len(raw)
        lines += 1
        digest.update(raw)
        if decode_line(raw, line_no, uri) is not None:
            texts += 1
        while targets and offset >= targets[0]:
            targets.pop(0)
            if lines:
                close(offset)
    if offset != total:
        raise DataError(f"{uri}: read {offset} bytes but the file has {total}; it changed while it was planned")
    if lines or not out:
        close(offset)
    return [Shard(s.index, len(out), s.uri, s.start, s.end, s.first_line, s.lines, s.texts, s.sha256) for s in out]


def read_shard(shard: Shard, *, storage: Any = None) -> ReadResult:
    """The shard's texts as the ``text`` reader reads the whole file: same ids, same reject file and lines.

    The bytes are checked against the plan's SHA-256 first: a file that changed since it was planned is an
    error naming the shard, not a silently different input.
    """
    from nerwheel import storage as st
    from nerwheel.formats import read_records
    from nerwheel.records import Record

    store = storage or st.get_storage()
    data = store.read_range(shard.uri, shard.start, shard.end)
    if hashlib.sha256(data).hexdigest() != shard.sha256:
        raise ShardError(f"{shard.uri}: shard {shard.index} of {shard.count} (bytes {shard.start}-{shard.end}) "
                         "differs from the plan; the file changed after it was planned: run the pipeline again")
    stem = Path(shard.uri.rstrip("/").rsplit("/", 1)[-1]).stem
    # A shard that does not start the file is read after one blank line, so the reader never takes a U+FEFF
    # at its start for the file's byte-order mark; line numbers are shifted back to the whole file's.
    pad = b"\n" if shard.first_line > 1 else b""
    offset = shard.first_line - 1 - len(pad)
    with tempfile.TemporaryDirectory(prefix="nerwheel-shard-") as tmp:
        path = Path(tmp) / f"{stem}.txt"
        path.write_bytes(pad + data)
        part = read_records(path, format="text")
    result = ReadResult(source=shard.uri, format="text", notes=part.notes)
    for i, rec in enumerate(part.records):
        line = part.line_of(i) + offset
        result.add(Record(f"{stem}:{line}", rec.text, rec.entities, rec.meta), line)
    for rej in part.rejects:
        result.rejects.append(Reject(shard.uri, rej.line + offset, rej.reason, rej.raw, rej.kind, dict(rej.extra)))
    result.rejects.sort(key=lambda r: r.line)
    if result.read != shard.texts:
        raise ShardError(f"{shard.uri}: shard {shard.index} of {shard.count} read {result.read} texts, the plan "
                         f"counted {shard.texts}")
    return result


@dataclass(frozen=True)
class ShardPart:
    """What one shard's task reports beside its output (``shard.json``): which shard, and its counts.

    ``read = accepted + rejected`` counts the shard's input texts; ``counts`` holds the stage's own figures
    (entities, disagreements ...), summed over shards by :func:`reconcile`.
    """

    index: int
    count: int
    sha256: str
    texts: int
    read: int
    accepted: int
    rejected: int
    counts: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "shard.json") -> ShardPart:
        names = [f.name for f in fields(cls) if f.name != "counts"]
        missing = [n for n in names if n not in d]
        if missing:
            raise ShardError(f"{where}: lacks {', '.join(missing)}")
        return cls(**{n: d[n] for n in names}, counts=dict(d.get("counts") or {}))

    @classmethod
    def of(cls, shard: Shard, result: ReadResult, counts: dict[str, float] | None = None,
           accepted: int | None = None) -> ShardPart:
        """The part of ``shard`` whose input read as ``result``; ``accepted`` when the stage refused more texts
        (those are then counted as rejected, so read = accepted + rejected still holds)."""
        ok = len(result.records) if accepted is None else accepted
        return cls(shard.index, shard.count, shard.sha256, shard.texts, result.read, ok, result.read - ok,
                   dict(counts or {}))


@dataclass(frozen=True)
class Totals:
    """The fan-in's reconciled totals; ``order`` is the parts' positions in plan order."""

    shards: int
    read: int
    accepted: int
    rejected: int
    counts: dict[str, float]
    order: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile(parts: Sequence[ShardPart], plan: Sequence[Shard], *, whole_shards: bool = True) -> Totals:
    """Put ``parts`` (in the order they were collected) in plan order and check they add up to the input.

    Every error is collected first and raised together, each naming its shard. ``whole_shards=False`` is for
    a step that reads only some texts of its shard (pseudo-labelling what the teacher left): each shard must
    still report once, on the planned bytes, with read = accepted + rejected, but its read is its own count.
    """
    problems: list[str] = []
    count = len(plan)
    by_index: dict[int, int] = {}
    for pos, part in enumerate(parts):
        if part.count != count:
            problems.append(f"a part says it is shard {part.index} of {part.count}, the plan has {count} shards")
        if part.index in by_index:
            problems.append(f"shard {part.index} reported twice")
        by_index[part.index] = pos
    missing = [s.index for s in plan if s.index not in by_index]
    if missing:
        problems.append(f"shard(s) {', '.join(map(str, missing))} of {count} reported nothing")
    extra = sorted(set(by_index) - {s.index for s in plan})
    if extra:
        problems.append(f"shard(s) {', '.join(map(str, extra))} are not in the plan of {count}")
    for s in plan:
        if s.index not in by_index:
            continue
        p = parts[by_index[s.index]]
        if p.sha256 != s.sha256:
            problems.append(f"shard {s.index} read other bytes than were planned")
        if whole_shards and p.read != s.texts:
            problems.append(f"shard {s.index} read {p.read} texts, the plan counted {s.texts}")
        if p.read != p.accepted + p.rejected:
            problems.append(f"shard {s.index}: read {p.read} != accepted {p.accepted} + rejected {p.rejected}")
    if problems:
        raise ShardError("the shards do not add up to the input: " + "; ".join(problems))
    ordered = [parts[by_index[s.index]] for s in plan]
    counts: dict[str, float] = {}
    for p in ordered:
        for k, v in p.counts.items():
            counts[k] = counts.get(k, 0) + v
    read, accepted, rejected = (sum(getattr(p, k) for p in ordered) for k in ("read", "accepted", "rejected"))
    assert read == accepted + rejected and (read == sum(s.texts for s in plan) or not whole_shards)
    return Totals(count, read, accepted, rejected, counts, [by_index[s.index] for s in plan])
