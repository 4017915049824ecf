"""Records -> training windows with aligned labels, and length-bucketed batches.

Each record becomes one window (or several, for a text longer than
``sequence_length``) with ``input_ids`` and ``labels`` aligned by
:class:`~nerwheel.model.encoding.TextEncoder`. Records must not hold
overlapping spans (the train stage resolves them with the ``keep-longest``
validation policy first; the span head keeps them, with its own features in
:mod:`nerwheel.model.span_data`). Each feature type pads its own labels
(``collate_labels``), so :func:`collate` batches either kind. What alignment loses is counted, not hidden: spans
whose boundary falls inside a token.

Two optional parts of a window: ``extra`` model inputs with one row per
input position (``lexicon``: knowledge-base features, :mod:`nerwheel.model.lexicon`),
padded with zeros; and a loss ``weight`` (teacher-labelled traffic counts
less than gold, :mod:`nerwheel.model.curriculum`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nerwheel.labels import TagSet, spans_to_tags
from nerwheel.model.encoding import IGNORE, Encoded, TextEncoder, misaligned
from nerwheel.model.padding import pad_ids
from nerwheel.records import Record

if TYPE_CHECKING:
    from nerwheel.model.lexicon import LexiconInputs

__all__ = ["IGNORE", "Feature", "FeatureStats", "batches", "build_features", "collate", "pad_rows"]


@dataclass(frozen=True)
class Feature:
    input_ids: np.ndarray  # int64 [n], special tokens included
    labels: np.ndarray  # int64 [n], -100 where no label
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # more model inputs, [n, ...] each
    weight: float = 1.0  # this window's loss weight
    soft: np.ndarray | None = None  # float32 [n, T]: a teacher's emissions (distillation), NaN rows where none

    @staticmethod
    def collate_labels(features: Sequence[Feature], width: int) -> np.ndarray:
        labels = np.full((len(features), width), IGNORE, dtype=np.int64)
        for r, f in enumerate(features):
            labels[r, : len(f.labels)] = f.labels
        return labels


@dataclass
class FeatureStats:
    records: int = 0
    windows: int = 0
    entities: int = 0
    misaligned: int = 0
    empty_texts: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "examples"} | {"misaligned_examples": self.examples[:5]}


def build_features(records: Sequence[Record], encoder: TextEncoder, tagset: TagSet, *,
                   lexicon: LexiconInputs | None = None, soft: Callable[[int, Encoded], np.ndarray] | None = None
                   ) -> tuple[list[Feature], FeatureStats]:
    """Windows of ``records`` with aligned labels (and, with ``lexicon``, each window's lexicon rows).

    ``soft(i, enc)`` (distillation) gives record ``i``'s per-token teacher
    rows, ``[len(enc), T]`` (NaN rows where the teacher says nothing); each
    window takes its slice, NaN over the special tokens.
    """
    label2id = tagset.label2id
    stats = FeatureStats(records=len(records))
    features: list[Feature] = []
    encs = encoder.encode_batch([r.text for r in records])
    for i, (rec, enc) in enumerate(zip(records, encs, strict=True)):
        if len(enc.heads) == 0:
            stats.empty_texts += 1
            continue
        teacher_rows = soft(i, enc) if soft is not None else None
        ents = rec.entities
        stats.entities += len(ents)
        bad = misaligned(enc, [(e.start, e.end, e.label) for e in ents])
        stats.misaligned += len(bad)
        stats.examples.extend(f"{rec.id}: {lab} {rec.text[s:e]!r} [{s}:{e}]" for s, e, lab in bad)
        tag_ids = [label2id[t] for t in spans_to_tags(len(rec.text), ents, tagset.scheme)]
        rows = lexicon.token_rows(rec.text, enc) if lexicon is not None else None
        for w in encoder.windows(len(enc)):
            extra = {} if rows is None else {lexicon.name: lexicon.window_rows(rows, w)}  # type: ignore[union-attr]
            window_soft = None
            if teacher_rows is not None:
                pad = np.full((len(encoder.prefix), teacher_rows.shape[1]), np.nan, dtype=np.float32)
                tail = np.full((len(encoder.suffix), teacher_rows.shape[1]), np.nan, dtype=np.float32)
                window_soft = np.concatenate([pad, teacher_rows[w.start : w.end], tail])
            features.append(Feature(encoder.input_ids(enc, w), encoder.token_labels(enc, tag_ids, w), extra,
                                    soft=window_soft))
    stats.windows = len(features)
    return features, stats


def batches(lengths: Sequence[int], batch_size: int, *, rng: np.random.Generator | None, bucketing: bool) -> list[list[int]]:
    """Index batches. With ``rng``: shuffled; with ``bucketing``: similar lengths together.

    Bucketing sorts within shuffled pools of 50 batches, then shuffles the
    batches: little padding, yet every epoch sees a different order.
    """
    n = len(lengths)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    if bucketing:
        pool = batch_size * 50
        order = np.concatenate(
            [sorted(order[i : i + pool], key=lambda j: lengths[j]) for i in range(0, n, pool)]
        ).astype(np.int64) if n else order
    out = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    if rng is not None and bucketing:
        rng.shuffle(out)
    return out


def pad_rows(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    """``[len(rows), width, ...]`` from arrays of ``[n_i, ...]`` rows, zero-padded after each."""
    first = rows[0]
    out = np.zeros((len(rows), width, *first.shape[1:]), dtype=first.dtype)
    for r, x in enumerate(rows):
        out[r, : len(x)] = x
    return out


def collate(features: Sequence[Any], pad_id: int) -> dict[str, np.ndarray]:
    """Padded ``input_ids``/``attention_mask``, the labels as the features' own type pads them, the windows'
    ``extra`` inputs padded with zeros, ``weight`` (float32 per window), and, when the features carry a
    teacher's rows (distillation), ``soft`` and ``soft_mask``."""
    ids, mask = pad_ids([f.input_ids for f in features], pad_id)
    width = ids.shape[1]
    with_soft = [f.soft for f in features if getattr(f, "soft", None) is not None]
    soft = np.full((len(features), width, with_soft[0].shape[1]), np.nan, dtype=np.float32) if with_soft else None
    if soft is not None:
        for r, f in enumerate(features):
            if getattr(f, "soft", None) is not None:
                soft[r, : len(f.input_ids)] = f.soft
    out = {"input_ids": ids, "attention_mask": mask, "labels": type(features[0]).collate_labels(features, width),
           "weight": np.array([getattr(f, "weight", 1.0) for f in features], dtype=np.float32)}
    for key in getattr(features[0], "extra", {}):
        out[key] = pad_rows([f.extra[key] for f in features], width)
    if soft is not None:
        out["soft_mask"] = ~np.isnan(soft[:, :, 0])
        out["soft"] = np.nan_to_num(soft)
    return out
