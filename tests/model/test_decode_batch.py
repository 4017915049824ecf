"""The batched decoder against plain references: per-sequence Viterbi, log-space forward-backward, tags_to_spans.

The references are written here the slow, obvious way (one sequence at a time,
Python loops); the production code is vectorised over the batch. Random inputs
cover empty and one-position rows, padding, the schemes' hard constraints and
ill-formed tag paths.
"""

from __future__ import annotations

import numpy as np
import pytest

from nerwheel.decode import (
    CrfParams,
    backtrack,
    entities_batch,
    marginals,
    spans_batch,
    tags_to_entities,
    viterbi,
    viterbi_batch,
)
from nerwheel.labels import TagSet, tags_to_spans
from nerwheel.records import Entity


def reference_viterbi(em: np.ndarray, crf: CrfParams) -> list[int]:
    """One sequence ``[n, T]``: the textbook max-sum recursion with Python loops."""
    n, num_tags = em.shape
    if n == 0:
        return []
    score = [float(crf.start[j] + em[0, j]) for j in range(num_tags)]
    back: list[list[int]] = []
    for t in range(1, n):
        prev, new = [], []
        for j in range(num_tags):
            cands = [score[i] + float(crf.transitions[i, j]) for i in range(num_tags)]
            best = max(range(num_tags), key=lambda i: (cands[i], -i))  # first best on ties, as argmax
            prev.append(best)
            new.append(cands[best] + float(em[t, j]))
        back.append(prev)
        score = new
    final = [score[j] + float(crf.end[j]) for j in range(num_tags)]
    tag = max(range(num_tags), key=lambda j: (final[j], -j))
    path = [tag]
    for t in range(n - 2, -1, -1):
        tag = back[t][tag]
        path.append(tag)
    return path[::-1]


def reference_marginals(em: np.ndarray, crf: CrfParams) -> np.ndarray:
    """One sequence ``[n, T]``: forward-backward in log space."""
    n, _ = em.shape
    em = em.astype(np.float64)
    trans = crf.transitions.astype(np.float64)
    alpha = np.zeros_like(em)
    beta = np.zeros_like(em)
    alpha[0] = crf.start + em[0]
    for t in range(1, n):
        alpha[t] = np.logaddexp.reduce(alpha[t - 1][:, None] + trans, axis=0) + em[t]
    beta[n - 1] = crf.end
    for t in range(n - 2, -1, -1):
        beta[t] = np.logaddexp.reduce(trans + (em[t + 1] + beta[t + 1])[None, :], axis=1)
    log_z = np.logaddexp.reduce(alpha[n - 1] + crf.end)
    return np.exp(alpha + beta - log_z)


def _random_batch(rng: np.random.Generator, tags: list[str], scheme: str, *, constrained: bool, scale: float = 3.0):
    num_tags = len(tags)
    bsz = int(rng.integers(1, 9))
    lengths = rng.integers(0, 12, size=bsz)
    lengths[0] = max(lengths[0], 1)
    em = (rng.normal(size=(bsz, int(lengths.max()), num_tags)) * scale).astype(np.float32)
    crf = CrfParams(*(rng.normal(size=s).astype(np.float32) for s in ((num_tags, num_tags), num_tags, num_tags)))
    return em, lengths, crf.constrained(tags, scheme) if constrained else crf


SCHEMES = ["BIO", "BIOES", "BMES"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("constrained", [True, False])
def test_vectorised_viterbi_equals_the_reference_decoder(scheme: str, constrained: bool) -> None:
    tags = TagSet(("a", "b", "c"), scheme).tags
    rng = np.random.default_rng(len(scheme) + constrained)
    for _ in range(25):
        em, lengths, crf = _random_batch(rng, tags, scheme, constrained=constrained)
        got = viterbi_batch(em, lengths, crf)
        assert got.shape == em.shape[:2]
        for b, n in enumerate(lengths):
            assert got[b, :n].tolist() == reference_viterbi(em[b, :n], crf)
            assert (got[b, n:] == -1).all()
        assert viterbi(em, lengths, crf) == [reference_viterbi(em[b, :n], crf) for b, n in enumerate(lengths)]


def test_backtrack_follows_each_rows_own_pointers() -> None:
    rng = np.random.default_rng(3)
    lengths = np.array([4, 1, 0, 3])
    history = rng.integers(0, 5, size=(4, 3, 5))
    last = rng.integers(0, 5, size=4)
    expected = []
    for b, n in enumerate(lengths):
        path = [int(last[b])] if n else []
        for t in range(n - 2, -1, -1):
            path.append(int(history[b, t, path[-1]]))
        expected.append(path[::-1])
    assert backtrack(history, last, lengths) == expected


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_scaled_marginals_equal_log_space_forward_backward(scale: float) -> None:
    tags = TagSet(("a", "b"), "BIOES").tags
    rng = np.random.default_rng(int(scale))
    for _ in range(20):
        em, lengths, crf = _random_batch(rng, tags, "BIOES", constrained=True, scale=scale)
        post = marginals(em, lengths, crf)
        for b, n in enumerate(lengths):
            if n:
                np.testing.assert_allclose(post[b, :n], reference_marginals(em[b, :n], crf), atol=1e-5)
            assert (post[b, n:] == 0).all()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_vectorised_span_reading_equals_tags_to_spans_on_any_path(scheme: str) -> None:
    """Random paths, most of them ill-formed (I after O, E without B, label switches): the lenient reading."""
    tags = TagSet(("a", "b"), scheme).tags
    rng = np.random.default_rng(7)
    paths = rng.integers(0, len(tags), size=(300, 9))
    lengths = rng.integers(0, 10, size=300)
    paths[np.arange(9)[None, :] >= lengths[:, None]] = -1
    rows, starts, ends, label_ids, names = spans_batch(paths, tags, scheme)
    got: list[list[tuple[int, int, str]]] = [[] for _ in paths]
    for r, s, e, lab in zip(rows, starts, ends, label_ids, strict=True):
        got[r].append((int(s), int(e), names[lab]))
    for b, n in enumerate(lengths):
        assert got[b] == tags_to_spans([tags[i] for i in paths[b, :n]], scheme)


def test_entities_batch_equals_one_text_at_a_time() -> None:
    tags = TagSet(("prov", "city"), "BIO").tags
    texts = ["浙江省杭州市", "杭州 市", "", "浙"]
    spans = [np.array([[i, i + 1] for i in range(6)]), np.array([[0, 1], [1, 2], [3, 4]]), np.zeros((0, 2)),
             np.array([[0, 1]])]
    paths = np.array([[1, 2, 2, 3, 4, 4], [3, 4, 4, -1, -1, -1], [-1] * 6, [2, -1, -1, -1, -1, -1]])
    conf = np.linspace(0.1, 0.9, 24).reshape(4, 6)
    got = entities_batch(texts, paths, spans, tags, "BIO", confidences=conf, source="model:m")
    assert got[0] == [Entity(0, 3, "prov", "浙江省"), Entity(3, 6, "city", "杭州市")]
    assert got[1] == [Entity(0, 4, "city", "杭州 市")] and got[2] == [] and got[3] == [Entity(0, 1, "prov", "浙")]
    for b, text in enumerate(texts):
        n = int((paths[b] >= 0).sum())
        one = tags_to_entities(text, paths[b, :n], spans[b], tags, "BIO", confidences=conf[b, :n], source="model:m")
        assert one == got[b] and [e.score for e in one] == [e.score for e in got[b]]
    assert got[0][0].score == pytest.approx(round(float(conf[0, :3].mean()), 4))
