"""``embed evaluate``: every model side by side on one BEIR folder, and the metrics file the gate reads.

Each model (``e5-small``, a sentence-transformers folder, a Hugging Face
folder: :func:`nerwheel.tasks.embed.model.load_encoder`; or an ONNX export
folder, such as a version folder of the Triton repository) is scored by the
same :func:`~nerwheel.tasks.embed.metrics.GradedRetrievalEvaluator` on the
same queries and corpus, one model in memory at a time. ONNX Runtime and
Triton encoders enter sentence-transformers' evaluator through
:class:`RuntimeRetriever`, so every runtime is scored by one retrieval and
one set of metrics. The result is keyed by the model exactly as given, so
``--model e5-small --model runs/ft`` reads back as
``{"e5-small": {...}, "runs/ft": {...}}``.

``metrics.json`` (what the pipeline's gate reads, :func:`metrics_record`)::

    {"task": "embed", "overall": {"ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10", "recall@100"},
     "n_queries", "n_corpus", "split", "input": {"read", "accepted", "rejected"}, "model"}
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

from nerwheel.tasks.embed.beir import RetrievalData
from nerwheel.tasks.embed.metrics import GradedRetrievalEvaluator, report_metrics

__all__ = ["RuntimeRetriever", "evaluate_model", "evaluate_models", "load_for_evaluation", "metrics_record", "table"]

log = logging.getLogger(__name__)


class _NoCard:
    """sentence-transformers' evaluator records its metrics on the model's card; a runtime has none to keep."""

    def set_evaluation_metrics(self, *args: Any, **kwargs: Any) -> None:
        return None


class RuntimeRetriever:
    """A nerwheel encoder (``encode(texts, kind=...)``: ONNX Runtime, Triton) as sentence-transformers'
    evaluator sees a model: ``encode_query`` / ``encode_document`` (the encoder adds its own prompts),
    cosine similarity, and a card that keeps nothing."""

    similarity_fn_name = "cosine"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.model_card_data = _NoCard()

    def _encode(self, sentences: Any, kind: str) -> Any:
        import torch

        return torch.from_numpy(self.encoder.encode(list(sentences), kind=kind))

    def encode_query(self, sentences: Any, **_: Any) -> Any:
        return self._encode(sentences, "query")

    def encode_document(self, sentences: Any, **_: Any) -> Any:
        return self._encode(sentences, "document")

    def similarity(self, a: Any, b: Any) -> Any:
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)


def load_for_evaluation(name: str, *, max_seq_length: int | None = None, device: str = "cpu") -> Any:
    """What the evaluator scores for model ``name``: an export folder (``model.onnx``) on ONNX Runtime, else
    the sentence-transformers model (:func:`nerwheel.tasks.embed.model.load_encoder`)."""
    from nerwheel.model.layout import is_export

    if is_export(name):
        from nerwheel.tasks.embed.runtime import OnnxEncoder

        return RuntimeRetriever(OnnxEncoder(name))
    from nerwheel.tasks.embed.model import load_encoder

    return load_encoder(name, max_seq_length=max_seq_length, device=device)


def evaluate_model(model: Any, data: RetrievalData, split: str, *, batch_size: int = 32,
                   max_queries: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Metrics of one loaded ``SentenceTransformer`` on ``data``'s ``split``, plus counts and seconds."""
    evaluator = GradedRetrievalEvaluator(data, split, batch_size=batch_size, max_queries=max_queries, seed=seed,
                                         write_csv=False)
    t0 = time.perf_counter()
    scores = report_metrics(evaluator(model), evaluator)
    return {**scores, "queries": len(evaluator.queries), "corpus": len(evaluator.corpus),
            "seconds": round(time.perf_counter() - t0, 2)}


def evaluate_models(models: Sequence[str], data: RetrievalData, split: str = "test", *, batch_size: int = 32,
                    max_seq_length: int | None = None, max_queries: int | None = None,
                    device: str = "cpu") -> dict[str, dict[str, Any]]:
    """``{model as given: metrics}`` for every model, in order; each loaded, scored and released in turn."""
    data.split(split)  # fail before loading any model when the split has no judgements
    out: dict[str, dict[str, Any]] = {}
    for name in models:
        log.info("evaluating %s on %s (%s)", name, data.source, split)
        model = load_for_evaluation(name, max_seq_length=max_seq_length, device=device)
        out[name] = evaluate_model(model, data, split, batch_size=batch_size, max_queries=max_queries)
        del model
        gc.collect()
    return out


def metrics_record(metrics: dict[str, Any], data: RetrievalData, split: str, model: str) -> dict[str, Any]:
    """The ``metrics.json`` the gate reads (see the module docstring)."""
    files = data.files
    read = sum(f.read for f in files)
    rejected = sum(f.rejected for f in files)
    return {"task": "embed", "model": model, "split": split,
            "overall": {k: metrics[k] for k in metrics if "@" in k},
            "n_queries": metrics["queries"], "n_corpus": metrics["corpus"],
            "input": {"read": read, "accepted": read - rejected, "rejected": rejected}}


def table(results: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table ``embed evaluate`` prints (one row per model)."""
    from nerwheel.tasks.embed.metrics import METRICS

    width = max([len("model"), *(len(m) for m in results)])
    head = f"{'model':<{width}}  " + "  ".join(f"{m:>10}" for m in METRICS) + f"  {'queries':>8}"
    rows = [f"{name:<{width}}  " + "  ".join(f"{r[m]:>10.4f}" for m in METRICS) + f"  {r['queries']:>8}"
            for name, r in results.items()]
    return "\n".join([head, *rows])
