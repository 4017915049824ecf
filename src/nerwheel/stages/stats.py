"""Describe a data set: sizes, labels, text lengths, which labels occur together.

A plain function over records (no file or CLI knowledge) so the CLI, the
pipeline's data report and benchmarks print the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from nerwheel.records import Record

__all__ = ["DatasetStats", "LengthStats", "describe", "percentile"]

def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile of an ascending list (an actual value, never interpolated)."""
    if not sorted_values:
        return 0
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[k - 1]


@dataclass(frozen=True)
class LengthStats:
    min: int
    p50: int
    p90: int
    p99: int
    max: int
    mean: float

    @classmethod
    def of(cls, values: Iterable[int]) -> LengthStats:
        v = sorted(values)
        if not v:
            return cls(0, 0, 0, 0, 0, 0.0)
        return cls(v[0], percentile(v, 50), percentile(v, 90), percentile(v, 99), v[-1], round(sum(v) / len(v), 2))


@dataclass
class DatasetStats:
    records: int = 0
    labelled_records: int = 0
    entities: int = 0
    text_length: LengthStats = field(default_factory=lambda: LengthStats.of([]))
    per_label: dict[str, dict[str, Any]] = field(default_factory=dict)
    cooccurrence: list[dict[str, Any]] = field(default_factory=list)
    overlapping_records: int = 0
    sources: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "labelled_records": self.labelled_records,
            "entities": self.entities,
            "text_length": vars(self.text_length),
            "per_label": self.per_label,
            "cooccurrence": self.cooccurrence,
            "overlapping_records": self.overlapping_records,
            "sources": self.sources,
        }


def describe(records: Iterable[Record]) -> DatasetStats:
    """One pass over ``records``; co-occurrence counts records that contain both labels."""
    lengths: list[int] = []
    ent_count: Counter[str] = Counter()
    rec_count: Counter[str] = Counter()
    ent_len: dict[str, list[int]] = {}
    pairs: Counter[tuple[str, str]] = Counter()
    sources: Counter[str] = Counter()
    st = DatasetStats()
    for r in records:
        st.records += 1
        lengths.append(len(r.text))
        if r.entities:
            st.labelled_records += 1
        st.entities += len(r.entities)
        labels = sorted({e.label for e in r.entities})
        rec_count.update(labels)
        for a, b in combinations(labels, 2):
            pairs[(a, b)] += 1
        ents = r.entities
        if any(ents[i].end > ents[i + 1].start for i in range(len(ents) - 1)):
            st.overlapping_records += 1
        for e in ents:
            ent_count[e.label] += 1
            ent_len.setdefault(e.label, []).append(e.end - e.start)
            sources[e.source or "(none)"] += 1
    st.text_length = LengthStats.of(lengths)
    st.per_label = {
        lab: {"entities": ent_count[lab], "records": rec_count[lab],
              "mean_length": round(sum(ent_len[lab]) / len(ent_len[lab]), 2)}
        for lab in sorted(ent_count, key=lambda x: (-ent_count[x], x))
    }
    st.cooccurrence = [{"labels": [a, b], "records": n} for (a, b), n in
                       sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))]
    st.sources = dict(sources.most_common())
    return st
