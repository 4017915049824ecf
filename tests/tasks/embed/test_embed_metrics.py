"""Retrieval metrics against values computed by hand (graded nDCG, recall@k, MRR@10)."""

from __future__ import annotations

import math

import pytest

from nerwheel.tasks.embed.beir import RetrievalData
from nerwheel.tasks.embed.metrics import GradedRetrievalEvaluator, ndcg_at_k, report_metrics

# q1 judges d1 (grade 2) and d2 (grade 1) relevant, d5 not; q2 judges d3; q3 has no relevant passage (left out).
DATA = RetrievalData(
    corpus={f"d{i}": f"passage {i}" for i in range(1, 6)},
    queries={"q1": "one", "q2": "two", "q3": "three"},
    qrels={"test": {"q1": {"d1": 2, "d2": 1, "d5": 0}, "q2": {"d3": 1}, "q3": {"d4": 0}}},
)
RANKED = {"q1": ["d2", "d1", "d3", "d4", "d5"], "q2": ["d1", "d2", "d4", "d5", "d3"]}

# By hand:
# q1: DCG = 1/log2(2) + 2/log2(3) = 2.261860; IDCG = 2/log2(2) + 1/log2(3) = 2.630930; nDCG = 0.859719
#     recall@1 = 1/2, recall@5 = 1, MRR = 1
# q2: d3 at rank 5: nDCG = 1/log2(6) = 0.386853; recall@1 = 0, recall@5 = 1, MRR = 1/5
EXPECTED = {"ndcg@10": (0.859719 + 0.386853) / 2, "mrr@10": (1 + 0.2) / 2, "recall@1": 0.25, "recall@5": 1.0,
            "recall@10": 1.0, "recall@100": 1.0}


def test_graded_ndcg_by_hand():
    assert ndcg_at_k(RANKED["q1"], DATA.qrels["test"]["q1"], 10) == pytest.approx(0.859719, abs=1e-6)
    assert ndcg_at_k(RANKED["q2"], DATA.qrels["test"]["q2"], 10) == pytest.approx(1 / math.log2(6))
    assert ndcg_at_k(["d1", "d2"], DATA.qrels["test"]["q1"], 10) == pytest.approx(1.0)  # the ideal order
    assert ndcg_at_k(["d3"], DATA.qrels["test"]["q1"], 10) == 0.0
    assert ndcg_at_k(["d1"], {"d1": 0}, 10) == 0.0  # nothing relevant: 0, not a division by zero
    assert ndcg_at_k(RANKED["q2"], DATA.qrels["test"]["q2"], 4) == 0.0  # cut-off before rank 5


def test_evaluator_metrics_by_hand():
    evaluator = GradedRetrievalEvaluator(DATA, "test", write_csv=False)
    assert evaluator.queries_ids == ["q1", "q2"]  # q3 has no relevant passage
    results = [[{"corpus_id": cid, "score": 1.0 - 0.1 * rank} for rank, cid in enumerate(RANKED[q])]
               for q in evaluator.queries_ids]
    scores = evaluator.compute_metrics(results)
    flat = {f"cosine_{name.replace('@k', '@' + str(k))}": v for name, ks in scores.items() for k, v in ks.items()}
    got = report_metrics(flat, evaluator)
    assert got == pytest.approx(EXPECTED, abs=1e-6)
    # sentence-transformers' own nDCG would give q1 a perfect 1.0: its gains are binary
    assert EXPECTED["ndcg@10"] < (1.0 + 1 / math.log2(6)) / 2
