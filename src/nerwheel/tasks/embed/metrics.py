"""Retrieval metrics: graded nDCG (pure), and sentence-transformers' evaluator made to use the grades.

sentence-transformers' :class:`InformationRetrievalEvaluator` does the work
(encode queries with the query prompt and the corpus with the document prompt,
exact cosine top-k in chunks, deterministic tie-breaking) and computes
recall@k, MRR@k, accuracy@k and MAP@k from the set of relevant passages
(grade > 0). Its nDCG, though, gives every relevant passage gain 1, which
throws judged grades away (cMedIR grades 0-4: a title that answers the query
outranks one that only mentions it). :class:`GradedRetrievalEvaluator`
replaces only that number with :func:`ndcg_at_k` over the grades.

nDCG follows trec_eval / BEIR (pytrec_eval ``ndcg_cut``): linear gain
``grade / log2(rank + 1)``, ideal ordering of every judged grade of the query,
queries without a relevant passage left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nerwheel.tasks.embed.beir import RetrievalData

__all__ = ["METRICS", "GradedRetrievalEvaluator", "ndcg_at_k", "report_metrics"]

#: What ``embed evaluate`` reports per model, in this order; ``ndcg@10`` is what the gate decides on.
METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10", "recall@100")
RECALL_AT = (1, 5, 10, 100)


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking against graded judgements (``grades[cid]``; unjudged = 0)."""
    dcg = sum(grades.get(cid, 0) / math.log2(rank + 2) for rank, cid in enumerate(ranked[:k]))
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _evaluator_base() -> type:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    return InformationRetrievalEvaluator


def GradedRetrievalEvaluator(data: RetrievalData, split: str, *, name: str = "", batch_size: int = 32,  # noqa: N802
                             max_queries: int | None = None, seed: int = 0, write_csv: bool = True) -> Any:
    """A sentence-transformers IR evaluator over ``data``'s ``split`` whose nDCG uses the grades.

    The corpus is every passage of ``data`` (the other splits' passages are
    distractors, as in use). ``max_queries`` evaluates a seeded sample of the
    queries (bounds the time of each evaluation during training). Built by a
    function so that importing this module does not import torch.
    """
    judged = data.split(split)
    qids = sorted(judged)
    if max_queries is not None and len(qids) > max_queries:
        rng = np.random.default_rng(seed)
        qids = sorted(rng.choice(qids, size=max_queries, replace=False).tolist())
    grades = {q: judged[q] for q in qids}
    relevant = {q: {c for c, g in v.items() if g > 0} for q, v in grades.items()}

    class _Graded(_evaluator_base()):  # type: ignore[misc]
        def compute_metrics(self, queries_result_list: list[Any]) -> dict[str, Any]:
            scores = super().compute_metrics(queries_result_list)
            per_query = {k: [] for k in self.ndcg_at_k}
            for qi, hits in enumerate(queries_result_list):
                ranked = [h["corpus_id"] for h in sorted(hits, key=lambda x: (-x["score"], x["corpus_id"]))]
                for k in self.ndcg_at_k:
                    per_query[k].append(ndcg_at_k(ranked, grades[self.queries_ids[qi]], k))
            scores["ndcg@k"] = {k: float(np.mean(v)) if v else 0.0 for k, v in per_query.items()}
            return scores

    return _Graded(
        queries={q: data.queries[q] for q in qids}, corpus=data.corpus, relevant_docs=relevant,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 5, 10], precision_recall_at_k=list(RECALL_AT),
        map_at_k=[100], batch_size=batch_size, name=name, write_csv=write_csv, main_score_function="cosine",
    )


def report_metrics(st_metrics: Mapping[str, float], evaluator: Any) -> dict[str, float]:
    """``{"ndcg@10", "mrr@10", "recall@1", ...}`` from the evaluator's ``<name>_cosine_<metric>`` keys."""
    prefix = f"{evaluator.name}_" if evaluator.name else ""
    out = {m: float(st_metrics[f"{prefix}cosine_{m}"]) for m in METRICS}
    return out
