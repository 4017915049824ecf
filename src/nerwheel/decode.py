"""Turn per-position tag scores into character spans: one implementation for every runtime.

PyTorch, ONNX Runtime and the Triton python backend all produce the same thing,
an ``emissions`` array ``[batch, positions, tags]`` over the *label-bearing*
positions of each text (the first sub-token of each character span, see
:mod:`nerwheel.model.encoding`). Everything after that lives here, in numpy, so
the three runtimes cannot drift apart:

- :func:`viterbi_batch` (:func:`viterbi` for lists): batched best path under
  CRF transitions (or, for a softmax head, under zero transitions) plus the
  scheme's hard constraints;
- :func:`beam_search`: Viterbi over the ``beam_size`` most promising tags per
  position, for ``decode: beam``; exact once the beam holds every tag, so a
  large beam agrees with Viterbi;
- :func:`nbest_viterbi`: the exact ``n`` best paths (list Viterbi);
  :func:`best_paths_batch` (:func:`best_paths` for lists) / :func:`n_best` pick
  the method a model's card asks for;
- :func:`marginals`: per-position posterior probabilities (forward-backward), the
  confidence reported on each entity; :func:`log_partition` turns a path score
  into the path's probability;
- :func:`entities_batch` (:func:`tags_to_entities` for one text): tag ids + the
  character span of each position -> :class:`~nerwheel.records.Entity` in
  character offsets, spans read by :func:`spans_batch`.

Every one-best function works on a whole padded batch at once: the Python loops
run over positions (a few dozen for an address), never over texts, so decoding
costs little next to the encoder even for the smallest models.

Depends on numpy and :mod:`nerwheel.labels` only (no torch): the serving image
imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nerwheel.errors import ConfigError
from nerwheel.labels import get_scheme, tags_to_spans
from nerwheel.records import Entity

__all__ = ["DECODE_METHODS", "CrfParams", "Decoding", "allowed_transitions", "backtrack", "backtrack_batch",
           "beam_search", "best_paths", "best_paths_batch", "entities_batch", "log_partition", "marginals", "n_best",
           "nbest_viterbi", "path_score", "spans_batch", "tags_to_entities", "viterbi", "viterbi_batch"]

# Finite stand-in for -inf: keeps max/logsumexp free of nan when a whole row is forbidden.
NEG = -1e4
#: How a model turns emissions into one tag path (``decode`` in the training config and the card).
DECODE_METHODS = ("viterbi", "beam")


@dataclass(frozen=True)
class Decoding:
    """Which search finds the tag path: exact ``viterbi``, or ``beam`` keeping the ``beam_size`` best tags per position."""

    method: str = "viterbi"
    beam_size: int = 4

    def __post_init__(self) -> None:
        if self.method not in DECODE_METHODS:
            raise ConfigError(f"Invalid decode: {self.method!r}. Allowed values are: {', '.join(DECODE_METHODS)}",
                              field="model.decode")
        if self.beam_size < 1:
            raise ConfigError(f"beam_size={self.beam_size} must be at least 1", field="model.beam_size")

    @classmethod
    def from_dict(cls, d: dict | None) -> Decoding:
        d = d or {}
        return cls(str(d.get("method", "viterbi")), int(d.get("beam_size", 4)))

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "beam_size": self.beam_size}


@dataclass(frozen=True)
class CrfParams:
    """Transition scores of a linear-chain CRF: ``transitions[i, j]`` scores tag i followed by tag j."""

    transitions: np.ndarray  # [T, T]
    start: np.ndarray  # [T]
    end: np.ndarray  # [T]

    @classmethod
    def zeros(cls, num_tags: int) -> CrfParams:
        """The "CRF" of a softmax head: no learned transitions, only the scheme's constraints apply."""
        z = np.zeros(num_tags, dtype=np.float32)
        return cls(np.zeros((num_tags, num_tags), dtype=np.float32), z, z.copy())

    @classmethod
    def load(cls, path: str) -> CrfParams:
        with np.load(path) as f:
            return cls(f["transitions"].astype(np.float32), f["start"].astype(np.float32), f["end"].astype(np.float32))

    def save(self, path: str) -> None:
        np.savez(path, transitions=self.transitions, start=self.start, end=self.end)

    def constrained(self, tags: Sequence[str], scheme: str) -> CrfParams:
        """Add the scheme's hard constraints (e.g. no ``I-x`` after ``O`` in BIO) as large penalties."""
        trans_ok, start_ok, end_ok = allowed_transitions(tags, scheme)
        return CrfParams(
            np.where(trans_ok, self.transitions, NEG).astype(np.float32),
            np.where(start_ok, self.start, NEG).astype(np.float32),
            np.where(end_ok, self.end, NEG).astype(np.float32),
        )


def allowed_transitions(tags: Sequence[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which tag bigrams, first tags and last tags a well-formed sequence may contain.

    BIO: ``I-x`` only after ``B-x``/``I-x``. BIOES/BMES additionally: ``B-x`` and
    ``I-x`` (``M-x``) must be followed by ``I-x``/``E-x``, a sequence cannot end
    inside a span, and ``E-x`` only closes an open ``x``.
    """
    s = get_scheme(scheme)
    parsed = [(t, None) if t == s.outside else (t[0], t[2:]) for t in tags]
    n = len(tags)
    trans = np.ones((n, n), dtype=bool)
    start = np.ones(n, dtype=bool)
    end = np.ones(n, dtype=bool)
    continuing = {s.inside} | ({s.end} if s.end else set())
    for j, (pj, lj) in enumerate(parsed):
        if pj in continuing:
            start[j] = False
            for i, (pi, li) in enumerate(parsed):
                opens = pi in (s.begin, s.inside)
                trans[i, j] = opens and li == lj
    if s.end:  # spans must be closed explicitly: B/I(M) are followed by I(M)/E of the same label
        for i, (pi, li) in enumerate(parsed):
            if pi in (s.begin, s.inside):
                end[i] = False
                for j, (pj, lj) in enumerate(parsed):
                    trans[i, j] = pj in continuing and lj == li
    return trans, start, end


def viterbi(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams) -> list[list[int]]:
    """Best tag path of each sequence in a padded batch, as lists (see :func:`viterbi_batch`)."""
    return _rows(viterbi_batch(emissions, lengths, crf), lengths)


def viterbi_batch(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams) -> np.ndarray:
    """Best tag paths of a padded batch as one ``[B, L]`` int64 array, ``-1`` after each row's length.

    ``emissions`` is ``[B, L, T]``; row ``b`` is valid for its first
    ``lengths[b]`` positions (padding after it is ignored). Vectorised over the
    batch and the tags in both passes (forward max-sum and back-pointers); the
    only Python loops are over positions, never over texts.
    """
    em = np.asarray(emissions, dtype=np.float32)
    bsz, max_len, num_tags = em.shape
    lengths = np.asarray(lengths, dtype=np.int64).reshape(bsz)
    if bsz == 0 or max_len == 0:
        return np.full((bsz, max_len), -1, dtype=np.int64)
    into = np.ascontiguousarray(crf.transitions.T, dtype=np.float32)[None]  # [1, to, from]: reduce the last axis
    score = crf.start[None, :] + em[:, 0]  # [B, T]
    history = np.zeros((bsz, max_len - 1, num_tags), dtype=np.int64)
    for t in range(1, max_len):
        cand = score[:, None, :] + into  # [B, to, from]
        best = cand.argmax(axis=2)
        history[:, t - 1] = best
        reached = np.take_along_axis(cand, best[:, :, None], axis=2)[:, :, 0]
        score = np.where((t < lengths)[:, None], reached + em[:, t], score)
    return backtrack_batch(history, (score + crf.end[None, :]).argmax(axis=1), lengths)


def backtrack(history: np.ndarray, last: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Viterbi paths from back-pointers ``history[b, t, tag]`` (best tag at t for ``tag`` at t+1) and last tags."""
    return _rows(backtrack_batch(history, last, lengths), lengths)


def backtrack_batch(history: np.ndarray, last: np.ndarray, lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """:func:`backtrack` for the whole batch at once: ``[B, L]`` paths, ``-1`` after each row's length.

    Walks the positions backwards once, every row in step: a row joins at its
    own last position (``lengths[b] - 1``) with ``last[b]`` and follows its
    back-pointers from there.
    """
    history = np.asarray(history)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    bsz = lengths.shape[0]
    max_len = history.shape[1] + 1 if history.ndim == 3 and bsz else int(lengths.max(initial=0))
    paths = np.full((bsz, max_len), -1, dtype=np.int64)
    if bsz == 0 or max_len == 0:
        return paths
    last = np.asarray(last, dtype=np.int64).reshape(bsz)
    rows = np.arange(bsz)
    cur = np.zeros(bsz, dtype=np.int64)
    for t in range(max_len - 1, -1, -1):
        stepped = history[rows, t, cur] if t < max_len - 1 else cur
        cur = np.where(t == lengths - 1, last, np.where(t < lengths - 1, stepped, cur))
        paths[:, t] = np.where(t < lengths, cur, -1)
    return paths


def _rows(paths: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[list[int]]:
    return [row[: int(n)].tolist() for row, n in zip(paths, np.asarray(lengths).reshape(-1), strict=True)]


Scored = list[tuple[list[int], float]]


def path_score(emissions: np.ndarray, path: Sequence[int], crf: CrfParams) -> float:
    """Unnormalised score of one tag path over one row's valid emissions ``[n, T]``."""
    if not len(path):
        return 0.0
    em = np.asarray(emissions, dtype=np.float64)
    tags = np.asarray(path, dtype=np.int64)
    score = crf.start[tags[0]] + em[np.arange(len(tags)), tags].sum() + crf.end[tags[-1]]
    return float(score + crf.transitions[tags[:-1], tags[1:]].astype(np.float64).sum())


def beam_search(
    emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams, beam_size: int, n: int = 1
) -> list[Scored]:
    """Beam search: Viterbi over only the ``beam_size`` most promising tags at each position.

    At each position the tags are ranked by the best partial path ending in
    them and all but the first ``beam_size`` are dropped; paths into the same
    tag are recombined as in Viterbi, keeping the ``n`` best per tag for n-best
    lists. Cost per position falls from ``T x T`` to ``beam_size x T``. With
    ``beam_size`` >= the number of tags nothing is dropped and the result is
    exactly :func:`nbest_viterbi` (so the first path is :func:`viterbi`'s);
    narrower beams may miss the best path. Returns, per row, up to ``n``
    complete paths with their unnormalised scores, best first.
    """
    if beam_size < 1:
        raise ConfigError(f"beam_size={beam_size} must be at least 1", field="model.beam_size")
    return _list_viterbi(emissions, lengths, crf, n, beam_size)


def nbest_viterbi(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams, n: int) -> list[Scored]:
    """The exact ``n`` best paths of each row (list Viterbi), best first, with their unnormalised scores.

    Keeps the ``n`` best partial paths ending in each tag at each position
    (``[B, T, n]``), so the result is exact for any ``n``; the first path is
    :func:`viterbi`'s.
    """
    return _list_viterbi(emissions, lengths, crf, n, None)


def _list_viterbi(
    emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams, n: int, beam: int | None
) -> list[Scored]:
    """List Viterbi (``n`` best partial paths per tag), optionally over the ``beam`` best tags per position only.

    Only the live tags (``alive [B, K]``: all ``T``, or the ``beam`` best) are
    extended at each step, so a step costs ``K x T x n`` instead of ``T x T x n``.
    """
    if n < 1:
        raise ConfigError(f"n_best={n} must be at least 1")
    em = np.asarray(emissions, dtype=np.float64)
    bsz, max_len, num_tags = em.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    if bsz == 0:
        return []
    if max_len == 0:
        return [[([], 0.0)] for _ in range(bsz)]
    width = num_tags if beam is None else min(beam, num_tags)
    trans = crf.transitions.astype(np.float64)
    rows = np.arange(bsz)[:, None]

    def keep_best(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``width`` tags with the best partial path ([B, K]), and ``score`` with every other tag dead."""
        if width == num_tags:
            return np.broadcast_to(np.arange(num_tags), (bsz, num_tags)), score
        order = np.argsort(-score[:, :, 0], axis=1, kind="stable")
        out = np.full_like(score, -np.inf)
        alive = order[:, :width]
        out[rows, alive] = score[rows, alive]
        return alive, out

    score = np.full((bsz, num_tags, n), -np.inf)
    score[:, :, 0] = crf.start[None, :] + em[:, 0]
    alive, score = keep_best(score)
    back_tag: list[np.ndarray] = []  # [B, T, n] at each t >= 1: (tag, rank) at t-1 of each kept path
    back_rank: list[np.ndarray] = []
    for t in range(1, max_len):
        used = alive
        live = score[rows, used]  # [B, K, n]
        cand = live[:, :, None, :] + trans[used][:, :, :, None]  # [B, K(from), T(to), n]
        cand = cand.transpose(0, 2, 1, 3).reshape(bsz, num_tags, used.shape[1] * n)  # [B, to, K*n]
        if n == 1:
            best = cand.argmax(axis=2)[:, :, None]
        else:
            best = np.argsort(-cand, axis=2, kind="stable")[:, :, :n]
        back_tag.append(np.take_along_axis(used, (best // n).reshape(bsz, -1), axis=1).reshape(best.shape))
        back_rank.append(best % n)
        new_alive, new = keep_best(np.take_along_axis(cand, best, axis=2) + em[:, t, :, None])
        active = (t < lengths)[:, None]
        score = np.where(active[:, :, None], new, score)
        alive = np.where(active, new_alive, alive)
    out: list[Scored] = []
    final = (score + crf.end[None, :, None]).reshape(bsz, num_tags * n)
    for b, length in enumerate(int(x) for x in lengths):
        if length == 0:
            out.append([([], 0.0)])
            continue
        row: Scored = []
        for k in np.argsort(-final[b], kind="stable")[:n]:
            if not np.isfinite(final[b, k]):
                break
            tag, rank = int(k) // n, int(k) % n
            path = [tag]
            for t in range(length - 2, -1, -1):
                tag, rank = int(back_tag[t][b, tag, rank]), int(back_rank[t][b, tag, rank])
                path.append(tag)
            row.append((path[::-1], float(final[b, k])))
        out.append(row)
    return out


def best_paths(
    emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams, decoding: Decoding | None = None
) -> list[list[int]]:
    """The one path per row that ``decoding`` (default: Viterbi) finds, as lists (see :func:`best_paths_batch`)."""
    return _rows(best_paths_batch(emissions, lengths, crf, decoding), lengths)


def best_paths_batch(
    emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams, decoding: Decoding | None = None
) -> np.ndarray:
    """The one path per row that ``decoding`` finds, as one ``[B, L]`` int64 array, ``-1`` after each row's length.

    Viterbi (the default) is :func:`viterbi_batch`; beam search
    (:func:`beam_search`) keeps its best path per row.
    """
    d = decoding or Decoding()
    if d.method == "viterbi":
        return viterbi_batch(emissions, lengths, crf)
    bsz, max_len = np.shape(emissions)[:2]
    paths = np.full((bsz, max_len), -1, dtype=np.int64)
    for b, row in enumerate(beam_search(emissions, lengths, crf, d.beam_size)):
        paths[b, : len(row[0][0])] = row[0][0]
    return paths


def n_best(
    emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams, n: int,
    decoding: Decoding | None = None,
) -> list[list[tuple[list[int], float]]]:
    """Up to ``n`` paths per row with their probabilities ``P(path | text)``, best first.

    Viterbi models give the exact n best (:func:`nbest_viterbi`); beam models
    the n best paths through their beams (:func:`beam_search`). Paths that
    break the scheme's constraints (score near :data:`NEG`) are left out.
    Probabilities are ``exp(score - log Z)`` (:func:`log_partition`).
    """
    d = decoding or Decoding()
    rows = nbest_viterbi(emissions, lengths, crf, n) if d.method == "viterbi" else \
        beam_search(emissions, lengths, crf, d.beam_size, n)
    log_z = log_partition(emissions, lengths, crf)
    # A forbidden transition costs NEG: such a path scores far below the best one, whatever the text's length.
    return [[(path, float(np.exp(score - log_z[b]))) for path, score in row if score >= row[0][1] + NEG / 2]
            for b, row in enumerate(rows)]


def log_partition(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams) -> np.ndarray:
    """``log Z`` of each row of a padded batch (forward algorithm), so ``P(path) = exp(score - log Z)``."""
    em = np.asarray(emissions, dtype=np.float64)
    bsz, max_len, _ = em.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    if bsz == 0 or max_len == 0:
        return np.zeros(bsz)
    trans = crf.transitions.astype(np.float64)
    alpha = crf.start[None, :] + em[:, 0]
    for t in range(1, max_len):
        nxt = _logsumexp(alpha[:, :, None] + trans[None], axis=1) + em[:, t]
        alpha = np.where((t < lengths)[:, None], nxt, alpha)
    return np.where(lengths > 0, _logsumexp(alpha + crf.end[None, :], axis=1), 0.0)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def marginals(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams) -> np.ndarray:
    """Posterior ``P(tag at position t | text)`` for a padded batch (``[B, L, T]``), by forward-backward.

    For a softmax head (zero transitions) this is the per-position softmax
    under the scheme's constraints; with a CRF it is the proper sequence-level
    confidence. Padding positions come back as zeros.

    Computed in probability space with each step rescaled to sum 1 (the scaled
    forward-backward of HMMs): one ``[B, T] x [T, T]`` matrix product per
    position and direction, instead of a ``[B, T, T]`` log-sum-exp. The scale
    factors cancel in the per-position normalisation, so no log partition is
    needed; every exponent is taken relative to its row's maximum, so nothing
    overflows.
    """
    em = np.asarray(emissions, dtype=np.float64)
    bsz, max_len, num_tags = em.shape
    lengths = np.asarray(lengths, dtype=np.int64).reshape(bsz)
    if bsz == 0 or max_len == 0:
        return np.zeros(em.shape, dtype=np.float32)
    trans = crf.transitions.astype(np.float64)
    step = np.exp(trans - trans.max())  # [from, to]
    pe = np.exp(np.maximum(em - em.max(axis=2, keepdims=True), -200.0))  # [B, L, T], max 1 per position
    start = np.exp(crf.start.astype(np.float64) - crf.start.max())
    end = np.exp(crf.end.astype(np.float64) - crf.end.max())
    alpha = np.empty_like(pe)
    beta = np.empty_like(pe)
    alpha[:, 0] = _normalise(start[None, :] * pe[:, 0])
    for t in range(1, max_len):
        alpha[:, t] = _normalise((alpha[:, t - 1] @ step) * pe[:, t])
    final = np.broadcast_to(_normalise(end[None, :]), (bsz, num_tags))
    beta[:, max_len - 1] = final
    for t in range(max_len - 2, -1, -1):
        inner = _normalise((pe[:, t + 1] * beta[:, t + 1]) @ step.T)
        beta[:, t] = np.where((t == lengths - 1)[:, None], final, inner)
    post = _normalise(alpha * beta)
    post[np.arange(max_len)[None, :] >= lengths[:, None]] = 0.0
    return post.astype(np.float32)


# Scaled probabilities below this are set to zero: they cannot move a posterior at float32 precision, and
# left alone they decay step by step into subnormal numbers, on which the CPU's arithmetic is ~100x slower.
_FLUSH = 1e-100


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows of the last axis scaled to sum 1 (an all-zero row stays zero), negligible entries flushed to zero."""
    total = x.sum(axis=-1, keepdims=True)
    out = x / np.where(total > 0, total, 1.0)
    out[out < _FLUSH] = 0.0
    return out


# Tag kinds for the vectorised span reader.
_OUT, _BEGIN, _INSIDE, _END, _SINGLE = range(5)


@lru_cache(maxsize=64)
def _tag_kinds(tags: tuple[str, ...], scheme: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per tag id: its kind (outside/begin/inside/end/single), its label index, and the label names."""
    s = get_scheme(scheme)
    kind_of = {s.begin: _BEGIN, s.inside: _INSIDE, s.end: _END, s.single: _SINGLE}
    labels: dict[str, int] = {}
    kinds = np.zeros(len(tags), dtype=np.int8)
    label_ids = np.full(len(tags), -1, dtype=np.int64)
    for i, tag in enumerate(tags):
        names = tags_to_spans([tag], s)  # validates the tag; a lone tag always reads as one span
        if not names:
            continue
        kinds[i] = kind_of[tag[0]]
        label_ids[i] = labels.setdefault(names[0][2], len(labels))
    return kinds, label_ids, list(labels)


def spans_batch(
    paths: np.ndarray, tags: Sequence[str], scheme: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Spans of every row of a ``[B, L]`` path array (``-1`` = padding), read as
    :func:`~nerwheel.labels.tags_to_spans` does.

    Returns ``rows, starts, ends, label_ids`` (``end`` exclusive, ordered by
    row then start) and the label names ``label_ids`` index. The lenient
    reading is a rule on neighbours, so it vectorises: a position *continues*
    a span when it is inside/end, the previous position left a span open
    (begin or inside) and the labels match; a span starts at every non-outside
    position that does not continue, and ends where the next position does
    not continue it or at an end/single tag.
    """
    paths = np.asarray(paths, dtype=np.int64)
    kinds, label_of, names = _tag_kinds(tuple(tags), scheme)
    valid = paths >= 0
    ids = np.where(valid, paths, 0)
    kind = np.where(valid, kinds[ids], _OUT)
    label = np.where(valid, label_of[ids], -1)
    bsz = paths.shape[0]
    prev_kind = np.concatenate([np.full((bsz, 1), _OUT, dtype=kind.dtype), kind[:, :-1]], axis=1)
    prev_label = np.concatenate([np.full((bsz, 1), -1, dtype=label.dtype), label[:, :-1]], axis=1)
    cont = ((kind == _INSIDE) | (kind == _END)) & ((prev_kind == _BEGIN) | (prev_kind == _INSIDE)) & (
        prev_label == label)
    inside = kind != _OUT
    next_cont = np.concatenate([cont[:, 1:], np.zeros((bsz, 1), dtype=bool)], axis=1)
    rows, starts = np.nonzero(inside & ~cont)
    _, lasts = np.nonzero(inside & ((kind == _END) | (kind == _SINGLE) | ~next_cont))
    return rows, starts, lasts + 1, label[rows, starts], names


def entities_batch(
    texts: Sequence[str],
    paths: np.ndarray,
    char_spans: Sequence[np.ndarray],
    tags: Sequence[str],
    scheme: str,
    *,
    offsets: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
    source: str | None = None,
) -> list[list[Entity]]:
    """Character-offset entities of every row of a decoded batch (``[B, L]`` paths, ``-1`` = padding).

    ``char_spans[b][k]`` is the ``[start, end)`` character span of position
    ``k`` of row ``b``; with ``offsets``, ``char_spans`` is instead one flat
    ``[H, 2]`` array in which row ``b``'s positions start at ``offsets[b]``.
    ``confidences`` (``[B, L]``) gives each entity's ``score``, the mean over
    its positions. Spans come from :func:`spans_batch`; only building the
    :class:`~nerwheel.records.Entity` objects is a Python loop.
    """
    rows, starts, ends, label_ids, names = spans_batch(paths, tags, scheme)
    out: list[list[Entity]] = [[] for _ in texts]
    if not len(rows):
        return out
    if offsets is None:
        sizes = np.array([len(c) for c in char_spans], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate([np.asarray(c, dtype=np.int64).reshape(-1, 2) for c in char_spans])
    else:
        flat = np.asarray(char_spans, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
    char_start = flat[offsets[rows] + starts, 0].tolist()
    char_end = flat[offsets[rows] + ends - 1, 1].tolist()
    scores: list[float | None] = [None] * len(rows)
    if confidences is not None:
        conf = np.where(np.asarray(paths) >= 0, np.asarray(confidences, dtype=np.float64), 0.0)
        cum = np.concatenate([np.zeros((conf.shape[0], 1)), np.cumsum(conf, axis=1)], axis=1)
        scores = np.round((cum[rows, ends] - cum[rows, starts]) / (ends - starts), 4).tolist()
    for r, s, e, lab, score in zip(rows.tolist(), char_start, char_end, label_ids.tolist(), scores, strict=True):
        out[r].append(Entity.at(texts[r], s, e, names[lab], source=source, score=score))
    return out


def tags_to_entities(
    text: str,
    tag_ids: Sequence[int],
    char_spans: np.ndarray | Sequence[tuple[int, int]],
    tags: Sequence[str],
    scheme: str,
    *,
    confidences: Sequence[float] | np.ndarray | None = None,
    source: str | None = None,
) -> list[Entity]:
    """Build character-offset entities from one decoded tag path.

    ``char_spans[k]`` is the ``[start, end)`` character span that position ``k``
    stands for. An entity runs from the start of its first position to the end
    of its last; its ``score`` is the mean confidence of its positions when
    ``confidences`` is given. Ill-formed paths are read leniently
    (:func:`nerwheel.labels.tags_to_spans`).
    """
    paths = np.asarray(tag_ids, dtype=np.int64).reshape(1, -1)
    conf = None if confidences is None else np.asarray(confidences, dtype=np.float64).reshape(1, -1)
    spans = np.asarray(char_spans, dtype=np.int64).reshape(-1, 2)
    return entities_batch([text], paths, [spans], tags, scheme, confidences=conf, source=source)[0]
