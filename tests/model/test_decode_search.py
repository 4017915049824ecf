"""Beam search and n-best paths: against brute force on small problems, against Viterbi on a trained model."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from model_synth import long_record, make_mixed
from nerwheel.decode import (CrfParams, Decoding, beam_search, best_paths, log_partition, n_best, nbest_viterbi,
                             path_score, viterbi)
from nerwheel.model.runtime import TorchTagger

TAGS = ["O", "B-a", "I-a", "B-b", "I-b"]


def _problem(seed: int, num_tags: int = 4, rows: int = 3, length: int = 5, constrained: bool = False):
    rng = np.random.default_rng(seed)
    crf = CrfParams(*(rng.normal(size=s).astype(np.float32) for s in ((num_tags, num_tags), num_tags, num_tags)))
    if constrained:
        crf = crf.constrained(TAGS, "BIO")
    emissions = rng.normal(scale=2.0, size=(rows, length, num_tags)).astype(np.float32)
    lengths = [length, max(1, length - 2), 1][:rows]
    return emissions, lengths, crf


def _brute_force(emissions, lengths, crf):
    """Every path of every row, best first: [(score, path), ...]."""
    out = []
    for b, n in enumerate(lengths):
        paths = itertools.product(range(emissions.shape[2]), repeat=n)
        out.append(sorted(((path_score(emissions[b, :n], p, crf), list(p)) for p in paths), reverse=True))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_nbest_viterbi_is_the_exact_top_n(seed):
    emissions, lengths, crf = _problem(seed)
    truth = _brute_force(emissions, lengths, crf)
    found = nbest_viterbi(emissions, lengths, crf, 6)
    for b, row in enumerate(found):
        assert [p for p, _ in row] == [p for _, p in truth[b][: len(row)]]
        np.testing.assert_allclose([s for _, s in row], [s for s, _ in truth[b][: len(row)]], rtol=1e-6)
        assert len(row) == min(6, len(truth[b]))
        assert row[0][0] == viterbi(emissions, lengths, crf)[b]


@pytest.mark.parametrize("seed", range(4))
def test_beam_holding_every_tag_is_exact(seed):
    emissions, lengths, crf = _problem(seed, constrained=seed % 2 == 1, num_tags=5)
    truth = _brute_force(emissions, lengths, crf)
    for beam in (5, 50):
        wide = beam_search(emissions, lengths, crf, beam_size=beam, n=7)
        for b, row in enumerate(wide):
            assert [p for p, _ in row] == [p for _, p in truth[b][:7]]  # the exact 7 best, in order
        assert best_paths(emissions, lengths, crf, Decoding("beam", beam)) == viterbi(emissions, lengths, crf)


def test_narrow_beam_can_miss_the_best_path_and_never_beats_viterbi():
    misses = 0
    for seed in range(40):
        emissions, lengths, crf = _problem(seed, num_tags=5, length=6)
        vit = viterbi(emissions, lengths, crf)
        for b, (path, score) in enumerate(r[0] for r in beam_search(emissions, lengths, crf, beam_size=1)):
            best = path_score(emissions[b, : lengths[b]], vit[b], crf)
            assert score <= best + 1e-6
            misses += path != vit[b]
    assert misses > 0  # greedy search is not exact: the test problems are hard enough to show it


def test_nbest_scores_are_probabilities_in_order():
    emissions, lengths, crf = _problem(7, num_tags=5, constrained=True)
    rows = n_best(emissions, lengths, crf, 8)
    log_z = log_partition(emissions, lengths, crf)
    for b, row in enumerate(rows):
        probs = [p for _, p in row]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
        np.testing.assert_allclose(probs[0], np.exp(path_score(emissions[b, : lengths[b]], row[0][0], crf) - log_z[b]))
        assert len({tuple(p) for p, _ in row}) == len(row)  # distinct paths
        # constrained: no path starts inside a span or jumps from O to I-x
        for path, _ in row:
            names = [TAGS[i] for i in path]
            assert not names[0].startswith("I-")
            assert all(not (b2.startswith("I-") and a[2:] != b2[2:]) for a, b2 in zip(names, names[1:]))


def test_beam_nbest_stays_inside_the_beam():
    emissions, lengths, crf = _problem(3, num_tags=5, length=6)
    for row in beam_search(emissions, lengths, crf, 2, n=4):
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True) and len(row) <= 4
    narrow = n_best(emissions, lengths, crf, 4, Decoding("beam", 2))
    exact = n_best(emissions, lengths, crf, 4)
    for a, b in zip(narrow, exact):  # a narrow beam finds no path the exact search ranks lower than it does
        assert a[0][1] <= b[0][1] + 1e-12
    with pytest.raises(ValueError, match="Allowed values are: viterbi, beam"):
        Decoding("greedy", 4)


def test_empty_rows_and_batches():
    crf = CrfParams.zeros(3)
    assert beam_search(np.zeros((0, 4, 3)), [], crf, 2) == []
    assert nbest_viterbi(np.zeros((2, 0, 3)), [0, 0], crf, 2) == [[([], 0.0)], [([], 0.0)]]


def test_large_beam_equals_viterbi_on_a_trained_model(tiny_model):
    texts = [r.text for r in make_mixed(40, seed=21)] + [long_record(15, seed=5).text]
    viterbi_tagger = TorchTagger.from_dir(tiny_model)
    num_tags = len(viterbi_tagger.card.tags)
    beam_tagger = TorchTagger.from_dir(tiny_model, decoding=Decoding("beam", num_tags))
    assert beam_tagger.predict(texts) == viterbi_tagger.predict(texts)
    assert beam_tagger.n_best(texts, 3) == viterbi_tagger.n_best(texts, 3)
    readings = viterbi_tagger.n_best(texts, 3)
    assert [r[0][1] for r in readings] == viterbi_tagger.predict(texts)
    for r in readings:
        assert [p for p, _ in r] == sorted((p for p, _ in r), reverse=True)


def test_predict_cli_n_best_and_beam(tmp_path, tiny_model):
    from click.testing import CliRunner

    from nerwheel.cli import cli as main

    src = tmp_path / "in.txt"
    src.write_text("浙江省杭州市西湖区文三路100号\n南京市鼓楼区中山路\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["predict", "--model", str(tiny_model), str(src), "--out", str(out),
                                       "--n-best", "3", "--decode", "beam", "--beam-size", "4"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2
    for row in rows:
        alts = row["meta"]["n_best"]
        assert 1 <= len(alts) <= 3 and alts[0]["entities"] == row["entities"]
        assert [a["score"] for a in alts] == sorted((a["score"] for a in alts), reverse=True)
    bad = CliRunner().invoke(main, ["predict", "--url", "127.0.0.1:1", str(src), "--decode", "beam"])
    assert bad.exit_code == 2 and "need --model" in bad.output
