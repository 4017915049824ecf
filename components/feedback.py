"""KFP component: production model vs teacher on one shard (logic: :mod:`nerwheel.components.steps.feedback`)."""

from kfp.dsl import HTML, Dataset, Metrics, Output

from nerwheel.components.images import component

__all__ = ["feedback"]


@component("feedback")
def feedback(
    texts_uri: str,
    shard: dict,
    production_uri: str,
    seed_uri: str,
    eval_uri: str,
    teacher: str,
    llm_endpoint: str,
    llm_model: str,
    llm_max_tokens: int,
    llm_cache_uri: str,
    part: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Run the production model and the teacher over one shard of the traffic; keep where they disagree.

    Args:
        texts_uri: plain-text lines (local path or s3:// URI); empty = the bundled sample traffic.
        shard: this task's shard (one item of the shard step's plan).
        production_uri: the production model's export (from the production step).
        seed_uri: gold records; the LLM teacher's few-shot examples. Empty = bundled sample.
        eval_uri: the eval set; traffic texts equal to an eval text are dropped. Empty = bundled sample.
        teacher: ``kb`` or ``llm`` (key from the ``nerwheel-llm`` secret as NERWHEEL_LLM_API_KEY).
        llm_endpoint: base URL of the OpenAI-compatible server (``llm`` only).
        llm_model: model name on that server (``llm`` only).
        llm_max_tokens: the longest answer the LLM may give per text.
        llm_cache_uri: folder or s3:// prefix of the LLM answer cache all shards share; empty = none.

    Returns:
        part: disagreement records (teacher labels) with the agreed and unlabelled texts as side sets and
        shard.json; metrics: counts by disagreement kind; report: HTML with examples.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.feedback import run

    task_logging()
    scalars = run(texts_uri=texts_uri, shard=shard, production_uri=production_uri, teacher=teacher,
                  llm_endpoint=llm_endpoint, llm_model=llm_model, llm_max_tokens=llm_max_tokens, seed_uri=seed_uri,
                  eval_uri=eval_uri, llm_cache_uri=llm_cache_uri, out_path=part.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
