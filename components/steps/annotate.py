"""Annotate step: label one shard of the unlabelled texts with a teacher (:func:`nerwheel.stages.annotate.annotate`).

The pipeline fans this step out over the shards of the traffic (``dsl.ParallelFor``):
each task reads only its shard (:func:`nerwheel.shards.read_shard`), and the fan-in
(:mod:`nerwheel.components.steps.gather`) puts the shards back together in input order.
"""

from __future__ import annotations

from typing import Any

__all__ = ["read_texts", "run", "teachers_for"]


def read_texts(texts_uri: str, shard: dict[str, Any] | None) -> tuple[Any, Any]:
    """The texts of ``shard`` (or of the whole file at ``texts_uri`` without one, as one shard): the
    :class:`~nerwheel.formats.ReadResult` and the :class:`~nerwheel.shards.Shard` it is. A text over
    :data:`~nerwheel.validate.DEFAULT_MAX_LENGTH` characters is a ``too-long`` reject of its shard."""
    from nerwheel.components.data import resolve_uri
    from nerwheel.components.steps.shard import shard_of
    from nerwheel.shards import plan_shards, read_shard
    from nerwheel.validate import DEFAULT_MAX_LENGTH, limit_length

    if shard:
        s = shard_of(shard)
        uri = resolve_uri(texts_uri, "texts")
        if s.uri != uri:
            from nerwheel.errors import DataError

            raise DataError(f"the shard is of {s.uri}, but the step was given texts_uri {uri}", field="shard")
    else:
        (s,) = plan_shards(resolve_uri(texts_uri, "texts"), 1)
    return limit_length(read_shard(s), DEFAULT_MAX_LENGTH), s


def teachers_for(teacher: str, llm_endpoint: str, llm_model: str, llm_max_tokens: int, seed_uri: str,
                 llm_cache_uri: str) -> tuple[list[Any], Any]:
    """The teachers a step's parameters name, and the LLM response cache they share (``None`` without one)."""
    from nerwheel.components.data import read_dataset, resolve_uri
    from nerwheel.components.steps import parameter_hints
    from nerwheel.stages.annotate import build_teachers

    configs, seed, cache = [], [], None
    if teacher == "llm" and llm_endpoint.strip() and llm_model.strip():
        from nerwheel.llm.config import LLMConfig

        configs = [LLMConfig(base_url=llm_endpoint.strip(), model=llm_model.strip(), max_tokens=llm_max_tokens)]
        seed = read_dataset(resolve_uri(seed_uri, "seed")).records
        if llm_cache_uri.strip():
            from nerwheel.llm.cache import open_cache

            cache = open_cache(llm_cache_uri.strip())
    with parameter_hints():
        return build_teachers([teacher], configs, examples=seed, cache=cache), cache


def run(*, texts_uri: str, seed_uri: str, teacher: str, llm_endpoint: str, llm_model: str, out_path: str,
        report_path: str, llm_max_tokens: int = 1024, shard: dict[str, Any] | None = None,
        llm_cache_uri: str = "") -> dict[str, float]:
    """Label the texts of ``shard`` of ``texts_uri`` (empty = bundled sample traffic; no shard = all of them) with
    the ``kb`` or ``llm`` teacher.

    The LLM teacher takes its few-shot examples from the gold seed set (``seed_uri``) and has its answers checked
    by the knowledge base; with ``llm_cache_uri`` (a folder or an ``s3://`` prefix every shard shares) a text
    answered before, on any shard of any run, is not asked again. Failed records and refused entities are kept
    in the artifact's ``rejects.jsonl``, the shard's counts in ``shard.json``. Returns the scalars the component
    logs.
    """
    import json

    from nerwheel.components.data import write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.components.steps.shard import write_part
    from nerwheel.shards import ShardPart
    from nerwheel.stages.annotate import annotate

    texts, s = read_texts(texts_uri, shard)
    teachers, cache = teachers_for(teacher, llm_endpoint, llm_model, llm_max_tokens, seed_uri, llm_cache_uri)
    try:
        result = annotate(texts.records, teachers, input_rejects=texts.rejects)
    finally:
        if cache is not None:
            cache.close()
    write_dataset(out_path, result.records, rejects=result.reject_items())
    stats = result.stats
    scalars = {"texts": float(len(texts.records)), "texts_rejected": float(len(texts.rejects)),
               "labelled": float(stats["labelled"]), "failed": float(stats["failed"]),
               "entities": float(stats["entities_kept"]), "entities_rejected": float(len(result.entity_items))}
    write_part(out_path, ShardPart.of(s, texts, {**scalars, "records": float(len(result.records))},
                                      accepted=len(result.records)))

    labels: dict[str, int] = {}
    for rec in result.records:
        for ent in rec.entities:
            labels[ent.label] = labels.get(ent.label, 0) + 1
    Report(f"annotate: {teacher} teacher, shard {s.index + 1} of {s.count}").paragraph(texts.summary()).pre(
        result.summary()).heading("Entities per label").raw(bar_chart(dict(sorted(labels.items())))).heading(
        "Counts").pre(json.dumps(stats, ensure_ascii=False, indent=2)).write(report_path)
    return scalars
