"""The gate's view of an embedding model's metrics.json: nDCG@10 decides, recall@10 and MRR@10 may not collapse.

The policy (:class:`~nerwheel.stages.gate.GatePolicy`) is the same as for the
other tasks: nDCG@10 must rise by ``min_delta``, and each of the other two
metrics may fall by at most ``max(max_type_drop, noise_spans / queries)``
(with ``queries`` as the support: ``noise_spans`` queries flipping from hit
to miss is eval-set noise). ``policy.metric`` (strict/partial/type) has no
meaning for retrieval and is ignored. Two metric sets scored on different
numbers of queries are not comparable, and the gate says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CHECKED", "DECIDES", "embed_scores"]

DECIDES = "ndcg@10"
CHECKED = ("recall@10", "mrr@10")


def embed_scores(metrics: Mapping[str, Any], metric: str, who: str) -> Any:
    """``overall.ndcg@10``, and ``overall.recall@10`` / ``overall.mrr@10`` with ``n_queries`` as their support."""
    from nerwheel.stages.gate import GateError, Scores

    try:
        overall = metrics["overall"]
        n = int(metrics["n_queries"])
        values = {m: float(overall[m]) for m in (DECIDES, *CHECKED)}
    except (KeyError, TypeError, ValueError):
        raise GateError(f"{who} metrics: missing overall.{DECIDES}, overall.recall@10, overall.mrr@10 or "
                        "n_queries (expected the metrics.json the embedding task's evaluate writes)") from None
    for name, value in values.items():
        if value != value:  # NaN
            raise GateError(f"{who} metrics: overall.{name} must be a number, got NaN")
    return Scores("nDCG@10", "metric", values[DECIDES], {m: (values[m], n) for m in CHECKED}, n, label_score="",
                  support_unit="queries")
