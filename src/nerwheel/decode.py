"""Turn per-position tag scores into character spans: one implementation for every runtime.

PyTorch, ONNX Runtime and the Triton python backend all produce the same thing,
an ``emissions`` array ``[batch, positions, tags]`` over the *label-bearing*
positions of each text (the first sub-token of each character span, see
:mod:`nerwheel.model.encoding`). Everything after that lives here, in numpy, so
the three runtimes cannot drift apart:

- :func:`viterbi`: batched best path under CRF transitions (or, for a softmax
  head, under zero transitions) plus the scheme's hard constraints;
- :func:`marginals`: per-position posterior probabilities (forward-backward), the
  confidence reported on each entity;
- :func:`tags_to_entities`: tag ids + the character span of each position ->
  :class:`~nerwheel.records.Entity` in character offsets.

Depends on numpy and :mod:`nerwheel.labels` only (no torch): the serving image
imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nerwheel.labels import get_scheme, tags_to_spans
from nerwheel.records import Entity

__all__ = ["CrfParams", "allowed_transitions", "backtrack", "marginals", "tags_to_entities",
           "viterbi"]

# Finite stand-in for -inf: keeps max/logsumexp free of nan when a whole row is forbidden.
NEG = -1e4


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
    """Best tag path of each sequence in a padded batch.

    ``emissions`` is ``[B, L, T]``; row ``b`` is valid for its first
    ``lengths[b]`` positions (padding after it is ignored). Vectorised over the
    batch and the tags; the only Python loop is over positions.
    """
    em = np.asarray(emissions, dtype=np.float32)
    bsz, max_len, _ = em.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    if bsz == 0:
        return []
    if max_len == 0:
        return [[] for _ in range(bsz)]
    score = crf.start[None, :] + em[:, 0]  # [B, T]
    history = np.zeros((bsz, max(max_len - 1, 0), em.shape[2]), dtype=np.int64)
    for t in range(1, max_len):
        cand = score[:, :, None] + crf.transitions[None, :, :]  # [B, from, to]
        best_prev = cand.argmax(axis=1)
        nxt = np.take_along_axis(cand, best_prev[:, None, :], axis=1)[:, 0] + em[:, t]
        active = (t < lengths)[:, None]
        score = np.where(active, nxt, score)
        history[:, t - 1] = best_prev
    return backtrack(history, (score + crf.end[None, :]).argmax(axis=1), lengths)


def backtrack(history: np.ndarray, last: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Viterbi paths from back-pointers ``history[b, t, tag]`` (best tag at t for ``tag`` at t+1) and last tags."""
    paths: list[list[int]] = []
    for b, n in enumerate(int(x) for x in lengths):
        if n == 0:
            paths.append([])
            continue
        tag = int(last[b])
        path = [tag]
        for t in range(n - 2, -1, -1):
            tag = int(history[b, t, tag])
            path.append(tag)
        paths.append(path[::-1])
    return paths


def marginals(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray, crf: CrfParams) -> np.ndarray:
    """Posterior ``P(tag at position t | text)`` for a padded batch (``[B, L, T]``), by forward-backward.

    For a softmax head (zero transitions) this is the per-position softmax
    under the scheme's constraints; with a CRF it is the proper sequence-level
    confidence. Padding positions come back as zeros.
    """
    em = np.asarray(emissions, dtype=np.float64)
    bsz, max_len, _ = em.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    if bsz == 0 or max_len == 0:
        return np.zeros(em.shape, dtype=np.float32)
    trans = crf.transitions.astype(np.float64)
    alpha = np.zeros_like(em)
    beta = np.zeros_like(em)
    alpha[:, 0] = crf.start + em[:, 0]
    for t in range(1, max_len):
        alpha[:, t] = _logsumexp(alpha[:, t - 1, :, None] + trans[None], axis=1) + em[:, t]
    beta[:, max_len - 1] = crf.end
    for t in range(max_len - 2, -1, -1):
        inner = _logsumexp(trans[None] + (em[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
        beta[:, t] = np.where((t == lengths - 1)[:, None], crf.end[None, :], inner)
    last = np.clip(lengths - 1, 0, None)
    log_z = _logsumexp(alpha[np.arange(bsz), last] + crf.end[None, :], axis=1)
    post = np.exp(alpha + beta - log_z[:, None, None])
    post[np.arange(max_len)[None, :] >= lengths[:, None]] = 0.0
    return post.astype(np.float32)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


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
    names = [tags[i] for i in tag_ids]
    out: list[Entity] = []
    for i, j, label in tags_to_spans(names, scheme):
        start, end = int(char_spans[i][0]), int(char_spans[j - 1][1])
        score = None if confidences is None else round(float(np.mean(confidences[i:j])), 4)
        out.append(Entity.at(text, start, end, label, source=source, score=score))
    return out
