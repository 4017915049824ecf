"""Records -> training windows for the span head: token ids, the candidate spans of each window, the gold ones.

Unlike the tagger's labels (one tag per head), a span head's gold is a set of
``(start position, width, label)`` triples: overlapping and nested spans,
target and extension labels, all kept. Candidates come from
:func:`nerwheel.decode_span.candidates`, the enumeration decoding uses, so a
span is learned exactly when it can be predicted. A window knows only the
spans that start and end inside it; the dense ``[B, S, max_width, labels]``
label array (1 gold, 0 not gold, -100 no such candidate) is built per batch
by :meth:`SpanFeature.collate_labels`, so memory grows with the gold spans,
not with ``max_width x labels`` per token.

What cannot be learned is counted, not hidden: spans whose boundary falls
inside a token (``misaligned``), spans wider than ``max_width`` tokens
(``too_wide``), and spans no window holds whole (``outside_windows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nerwheel.decode_span import SpanLayout, candidates, group_ends
from nerwheel.model.data import IGNORE, FeatureStats
from nerwheel.model.encoding import TextEncoder
from nerwheel.records import Record

__all__ = ["SpanFeature", "SpanStats", "build_span_features"]


@dataclass(frozen=True)
class SpanFeature:
    input_ids: np.ndarray  # int64 [n], special tokens included
    valid: np.ndarray  # bool [n, max_width]: the span (position, width) is a candidate in this window
    gold: np.ndarray  # int64 [k, 3]: (position, width, label id) of every gold span in this window
    num_labels: int

    @staticmethod
    def collate_labels(features: Sequence[SpanFeature], width: int) -> np.ndarray:
        """``int8 [B, width, max_width, labels]``: 1 gold, 0 candidate, -100 not a candidate (or padding)."""
        f0 = features[0]
        out = np.full((len(features), width, f0.valid.shape[1], f0.num_labels), IGNORE, dtype=np.int8)
        for r, f in enumerate(features):
            n = len(f.input_ids)
            out[r, :n][f.valid] = 0
            if len(f.gold):
                out[r, f.gold[:, 0], f.gold[:, 1], f.gold[:, 2]] = 1
        return out


@dataclass
class SpanStats(FeatureStats):
    too_wide: int = 0
    outside_windows: int = 0
    too_wide_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out.pop("too_wide_examples", None)
        return out | {"too_wide_examples": self.too_wide_examples[:5]}


def build_span_features(records: Sequence[Record], encoder: TextEncoder,
                        layout: SpanLayout) -> tuple[list[SpanFeature], SpanStats]:
    label_id = {lab: i for i, lab in enumerate(layout.labels)}
    width = layout.max_width
    prefix = len(encoder.prefix)
    stats = SpanStats(records=len(records))
    features: list[SpanFeature] = []
    for rec, enc in zip(records, encoder.encode_batch([r.text for r in records]), strict=True):
        if len(enc.heads) == 0:
            stats.empty_texts += 1
            continue
        heads = enc.heads
        ends = group_ends(heads, len(enc))
        first, _, widths = candidates(heads, len(enc), width)
        starts_at = {int(s): k for k, s in enumerate(enc.head_spans[:, 0])}
        ends_at = {int(e): k for k, e in enumerate(enc.head_spans[:, 1])}
        gold: list[tuple[int, int, int]] = []  # (start token, width, label)
        for e in dict.fromkeys(rec.entities):
            stats.entities += 1
            k, k2 = starts_at.get(e.start), ends_at.get(e.end)
            if k is None or k2 is None or k2 < k:
                stats.misaligned += 1
                stats.examples.append(f"{rec.id}: {e.label} {e.text!r} [{e.start}:{e.end}]")
                continue
            w = int(ends[k2] - heads[k])
            if w >= width:
                stats.too_wide += 1
                stats.too_wide_examples.append(f"{rec.id}: {e.label} {e.text!r} ({w + 1} tokens)")
                continue
            gold.append((int(heads[k]), w, label_id[e.label]))
        cand_start = heads[first]
        seen = np.zeros(len(gold), dtype=bool)
        for win in encoder.windows(len(enc)):
            inside = (cand_start >= win.start) & (cand_start + widths < win.end)
            valid = np.zeros((prefix + win.end - win.start + len(encoder.suffix), width), dtype=bool)
            valid[prefix + cand_start[inside] - win.start, widths[inside]] = True
            rows = []
            for i, (s, w, lab) in enumerate(gold):
                if win.start <= s and s + w < win.end:
                    rows.append((prefix + s - win.start, w, lab))
                    seen[i] = True
            features.append(SpanFeature(encoder.input_ids(enc, win), valid,
                                        np.asarray(rows, dtype=np.int64).reshape(-1, 3), len(layout.labels)))
        stats.outside_windows += int((~seen).sum())
    stats.windows = len(features)
    return features, stats
