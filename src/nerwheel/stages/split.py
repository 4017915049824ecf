"""Deterministic splits: ratio splits, nested few-shot fractions, dedup, and the leakage check.

Every ordering here comes from a seeded hash of the record's *normalised text*
(not from ``random`` over the input order), so:

- the same data and seed give the same split whatever order the records come in;
- adding records later moves few existing ones across the boundary;
- records with the same normalised text always land in the same part, so a
  split can never leak an evaluation text into training (``find_leaks`` checks
  the same property for splits made elsewhere, e.g. by the flywheel).

What "the same text" means (:func:`normalize_text`: NFKC, whitespace collapsed)
is the eval-text rule of :mod:`nerwheel.leakage`, re-exported here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.leakage import drop_leaks, find_leaks, normalize_text
from nerwheel.records import Record

__all__ = [
    "DedupResult",
    "SplitResult",
    "dedup",
    "drop_leaks",
    "find_leaks",
    "nested_fractions",
    "normalize_text",
    "parse_fractions",
    "parse_ratio",
    "split_dataset",
    "split_records",
    "subset_name",
]

DEFAULT_RATIO = (8.0, 2.0)
DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)


def _rank(key: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=16).digest()


def parse_ratio(spec: str | Sequence[float]) -> tuple[float, ...]:
    """``"8:2"``, ``"80:10:10"``, ``"0.8:0.2"`` or a sequence -> positive weights (not yet normalised)."""
    parts: Sequence[Any] = spec.split(":") if isinstance(spec, str) else spec
    try:
        weights = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid ratio {spec!r}; write it like 8:2 or 80:10:10") from None
    if len(weights) < 2 or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"invalid ratio {spec!r}; need two or more non-negative parts, e.g. 8:2 or 8:1:1")
    return weights


def parse_fractions(spec: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.25,0.5,1.0"`` -> sorted unique fractions in (0, 1]."""
    parts: Sequence[Any] = [p for p in spec.split(",") if p.strip()] if isinstance(spec, str) else spec
    try:
        fr = sorted({float(p) for p in parts})
    except (TypeError, ValueError):
        raise ConfigError(f"invalid fractions {spec!r}; write them like 0.25,0.5,1.0") from None
    if not fr or any(not (0 < f <= 1) for f in fr):
        raise ConfigError(f"invalid fractions {spec!r}; each must be in (0, 1], e.g. 0.25,0.5,1.0")
    return tuple(fr)


def default_names(n: int) -> tuple[str, ...]:
    if n == 2:
        return ("train", "dev")
    if n == 3:
        return ("train", "dev", "test")
    raise ConfigError(f"a {n}-way ratio needs explicit names (e.g. names=train,dev,test,extra)")


@dataclass(frozen=True)
class DedupResult:
    """Records kept (first of each text, input order) and the dropped duplicates.

    ``conflicts`` counts dropped duplicates whose labels differ from the kept
    record's: the same text annotated two ways, worth a look.
    """

    records: list[Record]
    duplicates: list[Record]
    conflicts: int


def dedup(records: Iterable[Record], *, normalize: bool = False) -> DedupResult:
    """Drop records whose text (exactly, or normalised when ``normalize``) was seen before."""
    first: dict[str, Record] = {}
    kept: list[Record] = []
    dups: list[Record] = []
    conflicts = 0
    for r in records:
        key = normalize_text(r.text) if normalize else r.text
        if key in first:
            dups.append(r)
            conflicts += first[key].spans() != r.spans()
            continue
        first[key] = r
        kept.append(r)
    return DedupResult(kept, dups, conflicts)


def _ordered(records: Sequence[Record], seed: int) -> list[int]:
    """Indices of ``records`` in seeded-hash order of their normalised text (ties: id, then input order)."""
    keys = [(_rank(normalize_text(r.text), seed), r.id, i) for i, r in enumerate(records)]
    return [i for *_, i in sorted(keys)]


def split_records(
    records: Sequence[Record],
    ratio: str | Sequence[float] = DEFAULT_RATIO,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, list[Record]]:
    """Split into named parts in proportion ``ratio``; same-text records stay together.

    Part sizes are exact for distinct texts (cumulative rounding of the record
    count); a group of identical texts is never cut, so sizes can drift by at
    most the group size. Each part keeps the input order.
    """
    weights = parse_ratio(ratio)
    names = tuple(names) if names is not None else default_names(len(weights))
    if len(names) != len(weights) or len(set(names)) != len(names):
        raise ConfigError(f"need {len(weights)} distinct names for ratio {ratio!r}, got {list(names)}")
    records = list(records)
    n = len(records)
    total = sum(weights)
    cum, bounds = 0.0, []
    for w in weights:
        cum += w
        bounds.append(round(cum / total * n))
    groups: dict[str, list[int]] = {}
    for i in _ordered(records, seed):
        groups.setdefault(normalize_text(records[i].text), []).append(i)
    assign: dict[int, int] = {}
    filled, part = 0, 0
    for members in groups.values():  # dicts keep insertion order: the seeded order of first members
        while part < len(bounds) - 1 and filled >= bounds[part]:
            part += 1
        for i in members:
            assign[i] = part
        filled += len(members)
    out: dict[str, list[Record]] = {name: [] for name in names}
    for i, r in enumerate(records):
        out[names[assign[i]]].append(r)
    return out


def nested_fractions(
    records: Sequence[Record], fractions: str | Sequence[float] = DEFAULT_FRACTIONS, *, seed: int = 0,
) -> dict[float, list[Record]]:
    """Subsets of ``ceil(f * n)`` records for each fraction ``f``; each contains every smaller one.

    The subsets are prefixes of one seeded order, which is what makes them
    nested (and a 25% model comparable with a 50% model). Input order is kept
    inside each subset.
    """
    fr = parse_fractions(fractions)
    records = list(records)
    order = _ordered(records, seed)
    out: dict[float, list[Record]] = {}
    for f in fr:
        take = set(order[: math.ceil(f * len(records) - 1e-9)])
        out[f] = [r for i, r in enumerate(records) if i in take]
    return out


def subset_name(part: str, fraction: float) -> str:
    """File stem of a nested subset: ``train_25pct``, ``train_12.5pct``."""
    return f"{part}_{fraction * 100:g}pct"


@dataclass
class SplitResult:
    """Everything ``nerwheel data split`` writes: parts, nested subsets of the first part, and counts."""

    parts: dict[str, list[Record]]
    subsets: dict[float, list[Record]]
    seed: int
    ratio: tuple[float, ...]
    duplicates: list[Record] = field(default_factory=list)
    conflicts: int = 0

    def manifest(self) -> dict[str, Any]:
        first = next(iter(self.parts))
        return {
            "seed": self.seed,
            "ratio": list(self.ratio),
            "parts": {k: len(v) for k, v in self.parts.items()},
            "subsets": {subset_name(first, f): len(v) for f, v in self.subsets.items()},
            "fractions": list(self.subsets),
            "duplicates_dropped": len(self.duplicates),
            "duplicate_conflicts": self.conflicts,
            "leaks": sum(len(find_leaks(self.parts[first], v)) for k, v in self.parts.items() if k != first),
        }


def split_dataset(
    records: Iterable[Record],
    ratio: str | Sequence[float] = DEFAULT_RATIO,
    fractions: str | Sequence[float] = DEFAULT_FRACTIONS,
    *,
    seed: int = 0,
    names: Sequence[str] | None = None,
    deduplicate: bool = True,
) -> SplitResult:
    """Dedup (exact text), split by ``ratio``, and cut nested ``fractions`` of the first (training) part."""
    records = list(records)
    dups: list[Record] = []
    conflicts = 0
    if deduplicate:
        d = dedup(records)
        records, dups, conflicts = d.records, d.duplicates, d.conflicts
    parts = split_records(records, ratio, names=names, seed=seed)
    first = next(iter(parts))
    subsets = nested_fractions(parts[first], fractions, seed=seed)
    return SplitResult(parts, subsets, seed, parse_ratio(ratio), dups, conflicts)
