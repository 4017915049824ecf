"""Annotate step: label unlabelled texts with a teacher (:func:`nerwheel.stages.annotate.annotate`)."""

__all__ = ["run"]


def run(*, texts_uri: str, seed_uri: str, teacher: str, llm_endpoint: str, llm_model: str, out_path: str,
        report_path: str, llm_max_tokens: int = 1024) -> dict[str, float]:
    """Label the texts at ``texts_uri`` (empty = bundled sample traffic) with the ``kb`` or ``llm`` teacher.

    The LLM teacher takes its few-shot examples from the gold seed set (``seed_uri``) and has its
    answers checked by the knowledge base. Failed records and refused entities are kept in the
    artifact's ``rejects.jsonl``. Returns the scalars the component logs.
    """
    import json

    from nerwheel.components.data import read_dataset, resolve_uri, write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.components.steps import parameter_hints
    from nerwheel.stages.annotate import annotate, build_teachers
    from nerwheel.validate import DEFAULT_MAX_LENGTH, limit_length

    texts = limit_length(read_dataset(resolve_uri(texts_uri, "texts"), format="text"), DEFAULT_MAX_LENGTH)
    configs, seed = [], []
    if teacher == "llm" and llm_endpoint.strip() and llm_model.strip():
        from nerwheel.llm.config import LLMConfig

        configs = [LLMConfig(base_url=llm_endpoint.strip(), model=llm_model.strip(), max_tokens=llm_max_tokens)]
        seed = read_dataset(resolve_uri(seed_uri, "seed")).records
    with parameter_hints():
        teachers = build_teachers([teacher], configs, examples=seed)
    result = annotate(texts.records, teachers, input_rejects=texts.rejects)
    write_dataset(out_path, result.records, rejects=result.reject_items())

    labels: dict[str, int] = {}
    for rec in result.records:
        for ent in rec.entities:
            labels[ent.label] = labels.get(ent.label, 0) + 1
    Report(f"annotate: {teacher} teacher").paragraph(texts.summary()).pre(result.summary()).heading(
        "Entities per label").raw(bar_chart(dict(sorted(labels.items())))).heading("Counts").pre(
        json.dumps(result.stats, ensure_ascii=False, indent=2)).write(report_path)
    s = result.stats
    return {"texts": float(len(texts.records)), "texts_rejected": float(len(texts.rejects)),
            "labelled": float(s["labelled"]), "failed": float(s["failed"]), "entities": float(s["entities_kept"]),
            "entities_rejected": float(len(result.entity_items))}
