"""KFP component: label unlabelled texts with a teacher (logic: :mod:`nerwheel.components.steps.annotate`)."""

from kfp.dsl import HTML, Dataset, Metrics, Output

from nerwheel.components.images import component

__all__ = ["annotate"]


@component("annotate")
def annotate(
    texts_uri: str,
    shard: dict,
    seed_uri: str,
    teacher: str,
    llm_endpoint: str,
    llm_model: str,
    llm_max_tokens: int,
    llm_cache_uri: str,
    annotated: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Label one shard of the unlabelled texts with the knowledge-base or LLM teacher.

    Args:
        texts_uri: plain-text lines (local path or s3:// URI); empty = the bundled sample traffic.
        shard: this task's shard (one item of the shard step's plan; an empty dict = the whole file).
        seed_uri: gold records; the LLM teacher's few-shot examples come from here. Empty = bundled sample.
        teacher: ``kb`` (gazetteer + rules, no network) or ``llm`` (an OpenAI-compatible endpoint;
            its API key comes from the ``nerwheel-llm`` secret as NERWHEEL_LLM_API_KEY).
        llm_endpoint: base URL of the OpenAI-compatible server (``llm`` only).
        llm_model: model name on that server (``llm`` only).
        llm_max_tokens: the longest answer the LLM may give per text (bounds cost and time).
        llm_cache_uri: folder or s3:// prefix of the LLM answer cache all shards share; empty = none.

    Returns:
        annotated: the labelled records (Dataset folder: records.jsonl, rejects.jsonl, shard.json);
        metrics: counts; report: HTML with label counts and teacher statistics.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.annotate import run

    task_logging()
    scalars = run(texts_uri=texts_uri, shard=shard, seed_uri=seed_uri, teacher=teacher, llm_endpoint=llm_endpoint,
                  llm_model=llm_model, llm_max_tokens=llm_max_tokens, llm_cache_uri=llm_cache_uri,
                  out_path=annotated.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    annotated.metadata["teacher"] = teacher
