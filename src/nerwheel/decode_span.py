"""Span scores -> character spans: the span head's decoder, one implementation for every runtime.

A span head (``model.head: span``, :mod:`nerwheel.model.span`) scores every
candidate span for every label at once, so overlapping and nested spans can
all be true. Its ``emissions`` have, per token, ``max_width * len(labels)``
columns: column ``w * L + l`` scores label ``l`` for the span that starts at
this token and ends ``w`` tokens later. Like the tagger's emissions they are
stitched per label-bearing position (:meth:`nerwheel.model.encoding.TextEncoder.stitch`),
so windows and batching are shared; what follows lives here, in numpy, for
PyTorch, ONNX Runtime and Triton alike:

- :func:`candidates`: the spans a text offers, from a head (the first token of
  a character span) to the last token of a later head, at most ``max_width``
  tokens wide. Training labels and decoding both enumerate through it, so
  what is learned is exactly what can be predicted.
- :class:`SpanDecoder`: scores above the threshold become entities. Target
  labels come back **flat** by default (best first, no overlaps) or
  **nested** on request (containment allowed, crossing refused). Extension
  labels (``pos:n``, ``kb:city``: :func:`nerwheel.labels.is_extension_label`)
  are never mixed into the target output; they come back only when asked,
  decoded per namespace with the same rule.

A span's ``score`` is its probability, ``sigmoid(score)``: the loss
(:func:`nerwheel.model.span.multilabel_loss`) puts the decision boundary at
score 0, probability 0.5.

Depends on numpy, :mod:`nerwheel.labels` and :mod:`nerwheel.records` only (no
torch): the serving image imports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nerwheel.errors import ConfigError, DataError
from nerwheel.labels import is_extension_label
from nerwheel.records import Entity

__all__ = ["SpanDecoder", "SpanLayout", "candidates", "group_ends", "select"]


@dataclass(frozen=True)
class SpanLayout:
    """What the span scores' columns mean: ``labels`` (targets first, then extensions) and ``max_width`` in tokens."""

    labels: tuple[str, ...]
    max_width: int

    def __post_init__(self) -> None:
        if self.max_width < 1:
            raise ConfigError(f"model.span.max_width must be >= 1, got {self.max_width}", field="model.span.max_width")
        if not self.labels:
            raise DataError("a span head needs at least one label; the training data holds no entities")

    @property
    def num_outputs(self) -> int:
        return self.max_width * len(self.labels)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(lab for lab in self.labels if not is_extension_label(lab))

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(lab for lab in self.labels if is_extension_label(lab))


def group_ends(heads: np.ndarray, n_tokens: int) -> np.ndarray:
    """The last token of each head's group (the head and the sub-tokens after it, up to the next head)."""
    heads = np.asarray(heads, dtype=np.int64)
    if not len(heads):
        return heads
    return np.append(heads[1:] - 1, n_tokens - 1)


def candidates(heads: np.ndarray, n_tokens: int, max_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate span of a text as ``(first, last, width)`` arrays.

    ``first``/``last`` index heads (so ``head_spans[first, 0]`` and
    ``head_spans[last, 1]`` are its character offsets); ``width`` is the
    number of tokens after the first one, from ``heads[first]`` to the last
    token of ``last``'s group; only ``width < max_width`` is a candidate. Sorted
    by ``first``, then ``last``.
    """
    heads = np.asarray(heads, dtype=np.int64)
    ends = group_ends(heads, n_tokens)
    h = len(heads)
    if h == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    # ends is increasing: the last group ending within max_width tokens of heads[k]
    upper = np.searchsorted(ends, heads + max_width - 1, side="right") - 1
    counts = np.maximum(upper - np.arange(h) + 1, 0)
    first = np.repeat(np.arange(h, dtype=np.int64), counts)
    offsets = np.arange(len(first), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    last = first + offsets
    return first, last, ends[last] - heads[first]


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ConfigError(f"model.span.threshold must lie strictly between 0 and 1, got {p}", field="model.span.threshold")
    return math.log(p / (1.0 - p))


def select(spans: Sequence[tuple[float, int, int, int]], *, nested: bool) -> list[tuple[float, int, int, int]]:
    """Greedy best-first choice among ``(score, first, last, label)`` spans of one output group.

    Flat: a span overlapping an accepted one is dropped. Nested: a span may sit
    inside an accepted one or contain it, but not cross it, and a span with
    the same boundaries as an accepted one is dropped (one label per span).
    """
    ordered = sorted(spans, key=lambda s: (-s[0], s[1], -s[2], s[3]))
    if not nested:  # an occupancy mask: linear in the spans, whatever their number
        taken = np.zeros(max((s[2] for s in spans), default=-1) + 1, dtype=bool)
        flat = []
        for cand in ordered:
            if not taken[cand[1] : cand[2] + 1].any():
                taken[cand[1] : cand[2] + 1] = True
                flat.append(cand)
        return flat
    accepted: list[tuple[float, int, int, int]] = []
    for cand in ordered:
        _, a, b, _ = cand
        ok = True
        for _, c, d, _ in accepted:
            disjoint = b < c or d < a
            if disjoint:
                continue
            inside = (c <= a and b <= d) or (a <= c and d <= b)
            if not inside or (a, b) == (c, d):
                ok = False
                break
        if ok:
            accepted.append(cand)
    return accepted


class SpanDecoder:
    """Stitched span scores of a text -> entities (see the module docstring for the rules).

    ``threshold`` is the lowest probability kept; ``nested`` and ``extensions``
    are the defaults for :meth:`decode`.
    """

    def __init__(self, layout: SpanLayout, *, threshold: float = 0.5, nested: bool = False,
                 extensions: bool = False) -> None:
        self.layout = layout
        self.threshold = threshold
        self.cutoff = _logit(threshold)
        self.nested = nested
        self.extensions = extensions
        labels = layout.labels
        group_of = [lab.split(":", 1)[0] if is_extension_label(lab) else "" for lab in labels]
        # output groups, decoded apart: "" (target labels), then one per extension namespace
        self.groups = [(g, np.array([i for i, x in enumerate(group_of) if x == g])) for g in sorted(set(group_of))]

    def decode_one(
        self, text: str, scores: np.ndarray, heads: np.ndarray, head_spans: np.ndarray, n_tokens: int, *,
        nested: bool | None = None, extensions: bool | None = None, with_scores: bool = True,
        source: str | None = None,
    ) -> list[Entity]:
        """Entities of one text from its stitched scores ``[heads, max_width * labels]``."""
        lay = self.layout
        if not len(heads):
            return []
        nested = self.nested if nested is None else nested
        extensions = self.extensions if extensions is None else extensions
        first, last, width = candidates(heads, n_tokens, lay.max_width)
        grid = np.asarray(scores, dtype=np.float32).reshape(len(heads), lay.max_width, len(lay.labels))
        cand = grid[first, width]  # [C, L]
        out: list[Entity] = []
        for group, cols in self.groups:
            if not extensions and group:
                continue
            # one label per span and group: its best one, if above the threshold (bounds the choice to heads x width)
            sub = cand[:, cols]
            best = sub.argmax(axis=1)
            top = sub[np.arange(len(sub)), best]
            hits = np.nonzero(top > self.cutoff)[0]
            spans = [(float(top[c]), int(first[c]), int(last[c]), int(cols[best[c]])) for c in hits.tolist()]
            for score, a, b, lab in select(spans, nested=nested):
                prob = round(1.0 / (1.0 + math.exp(-score)), 4) if with_scores else None
                out.append(Entity.at(text, int(head_spans[a][0]), int(head_spans[b][1]), lay.labels[lab],
                                     source=source, score=prob))
        return sorted(out, key=lambda e: (e.start, -e.end, e.label))

    def decode(
        self, texts: Sequence[str], encs: Sequence[object], emissions: Sequence[np.ndarray], *,
        nested: bool | None = None, extensions: bool | None = None, scores: bool = True, source: str | None = None,
    ) -> list[list[Entity]]:
        """:meth:`decode_one` for each text; ``encs`` are :class:`~nerwheel.model.encoding.Encoded`."""
        return [
            self.decode_one(t, em, enc.heads, enc.head_spans, len(enc), nested=nested,  # type: ignore[attr-defined]
                            extensions=extensions, with_scores=scores, source=source)
            for t, enc, em in zip(texts, encs, emissions, strict=True)
        ]
