"""CRF maths against brute-force enumeration; torch and numpy decoders agree; span building."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nerwheel.decode import CrfParams, allowed_transitions, marginals, tags_to_entities, viterbi
from nerwheel.model.crf import CRF, pack
from nerwheel.records import Entity


def _score(em, path, trans, start, end):
    s = start[path[0]] + end[path[-1]] + sum(em[t, k] for t, k in enumerate(path))
    return s + sum(trans[a, b] for a, b in zip(path, path[1:]))


def _all_paths(length, num_tags):
    return list(itertools.product(range(num_tags), repeat=length))


def _rand_crf(num_tags, seed):
    torch.manual_seed(seed)
    crf = CRF(num_tags)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def _np(crf: CRF) -> CrfParams:
    return CrfParams(*(p.detach().numpy() for p in (crf.transitions, crf.start_transitions, crf.end_transitions)))


@pytest.mark.parametrize("lengths", [[1], [3], [4, 2, 1], [2, 4]])
def test_forward_algorithm_equals_enumeration(lengths):
    num_tags = 3
    crf = _rand_crf(num_tags, seed=len(lengths))
    width = max(lengths)
    em = torch.randn(len(lengths), width, num_tags)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(em, mask)
    p = _np(crf)
    for b, n in enumerate(lengths):
        scores = [_score(em[b, :n].numpy(), path, p.transitions, p.start, p.end) for path in _all_paths(n, num_tags)]
        assert log_z[b].item() == pytest.approx(float(np.logaddexp.reduce(scores)), abs=1e-4)
        # the NLL of one path is logZ - score(path)
        path = torch.tensor([list(_all_paths(n, num_tags)[-1]) + [0] * (width - n)])
        nll = crf.nll(em[b : b + 1], path, mask[b : b + 1])
        expected = float(np.logaddexp.reduce(scores)) - _score(em[b, :n].numpy(), path[0, :n].tolist(), p.transitions,
                                                               p.start, p.end)
        assert nll.item() == pytest.approx(expected, abs=1e-4)


def test_nll_is_differentiable_and_ignores_empty_rows():
    crf = _rand_crf(4, 0)
    em = torch.randn(3, 5, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    tags = torch.randint(0, 4, (3, 5))
    loss = crf.nll(em, tags, mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(em.grad).all()
    assert em.grad[1].abs().sum() == 0  # the empty row takes no part


def test_viterbi_numpy_equals_enumeration_and_torch():
    rng = np.random.default_rng(0)
    for trial in range(6):
        num_tags = 3 + trial % 2
        crf = _rand_crf(num_tags, trial)
        lengths = [int(x) for x in rng.integers(1, 5, size=4)]
        em = rng.normal(size=(4, max(lengths), num_tags)).astype(np.float32)
        p = _np(crf)
        paths = viterbi(em, lengths, p)
        mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
        assert crf.decode(torch.from_numpy(em), mask) == paths
        for b, n in enumerate(lengths):
            best = max(_all_paths(n, num_tags), key=lambda q: _score(em[b, :n], q, p.transitions, p.start, p.end))
            assert paths[b] == list(best)


def test_constrained_decoding_matches_between_torch_and_numpy():
    tags = ["O", "B-a", "I-a", "B-b", "I-b"]
    crf = _rand_crf(len(tags), 7)
    em = torch.randn(5, 9, len(tags))
    lengths = torch.tensor([9, 5, 1, 7, 3])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    ok = tuple(torch.from_numpy(x) for x in allowed_transitions(tags, "BIO"))
    p = _np(crf).constrained(tags, "BIO")
    got = crf.decode(em, mask, constraints=ok)
    assert got == viterbi(em.numpy(), lengths.numpy(), p)
    for path in got:  # never I-x after O or after another label, never I-x first
        names = [tags[i] for i in path]
        for prev, cur in zip(["O", *names], names):
            if cur.startswith("I-"):
                assert prev[2:] == cur[2:]


@pytest.mark.parametrize("scheme,tags,bad", [
    ("BIO", ["O", "B-a", "I-a"], [("O", "I-a")]),
    ("BIOES", ["O", "B-a", "I-a", "E-a", "S-a"], [("O", "I-a"), ("B-a", "O"), ("I-a", "S-a"), ("O", "E-a")]),
])
def test_allowed_transitions_table(scheme, tags, bad):
    trans, start, end = allowed_transitions(tags, scheme)
    for a, b in bad:
        assert not trans[tags.index(a), tags.index(b)]
    assert trans[tags.index("B-a"), tags.index("I-a")]
    assert not start[tags.index("I-a")]
    if scheme == "BIOES":
        assert not end[tags.index("B-a")] and end[tags.index("E-a")]


def test_marginals_equal_enumeration():
    num_tags = 3
    crf = _rand_crf(num_tags, 3)
    p = _np(crf)
    rng = np.random.default_rng(1)
    lengths = [3, 1, 2]
    em = rng.normal(size=(3, 3, num_tags)).astype(np.float32)
    post = marginals(em, lengths, p)
    for b, n in enumerate(lengths):
        paths = _all_paths(n, num_tags)
        w = np.exp([_score(em[b, :n], q, p.transitions, p.start, p.end) for q in paths])
        w /= w.sum()
        expected = np.zeros((n, num_tags))
        for q, wt in zip(paths, w):
            for t, k in enumerate(q):
                expected[t, k] += wt
        np.testing.assert_allclose(post[b, :n], expected, atol=1e-5)
        assert np.all(post[b, n:] == 0)


def test_pack_gathers_heads_left():
    values = torch.arange(12).view(2, 6)
    keep = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    packed, mask = pack(values, keep)
    assert packed.tolist() == [[1, 3, 4], [6, 11, 0]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_tags_to_entities_uses_character_spans_and_scores():
    text = "浙江省杭州市 100号"
    tags = ["O", "B-prov", "I-prov", "B-roadno", "I-roadno"]
    # positions: 浙 江 省 杭 州 市 100 号 (one head covers "100")
    spans = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (7, 10), (10, 11)]
    path = [1, 2, 2, 0, 0, 0, 3, 4]
    conf = [0.9, 0.8, 0.7, 1, 1, 1, 0.5, 0.7]
    ents = tags_to_entities(text, path, spans, tags, "BIO", confidences=conf, source="model:x")
    assert ents == [Entity(0, 3, "prov", "浙江省"), Entity(7, 11, "roadno", "100号")]
    assert ents[0].score == pytest.approx(0.8) and ents[1].score == pytest.approx(0.6)
    assert {e.source for e in ents} == {"model:x"}
