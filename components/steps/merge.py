"""Merge step: fuse gold, teacher-annotated and synthetic records (:func:`nerwheel.stages.merge.merge`).

The merged set is also cleared of eval texts (:class:`nerwheel.leakage.EvalTexts`, rejected eval lines included):
a teacher or the synthesiser can produce a text that is in the fixed eval set, and
training on it would inflate the very score the gate decides on.
"""

__all__ = ["run"]


def run(*, seed_uri: str, annotated_path: str, synthetic_path: str, teacher: str, precedence: str, eval_uri: str,
        out_path: str, report_path: str) -> dict[str, float]:
    """Merge the gold seed (URI; empty = bundled sample) with the two upstream Dataset folders.

    ``teacher`` is the source kind of annotated entities that carry no ``source`` of their own.
    Returns the scalars the component logs (counts of records, entities, conflicts and leaks).
    """
    import json

    from nerwheel.components.data import read_artifact, read_dataset, resolve_uri, write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.components.steps import parameter_hints
    from nerwheel.leakage import EvalTexts
    from nerwheel.stages.merge import MergeConfig, SourceInput, merge

    gold = read_dataset(resolve_uri(seed_uri, "seed"))
    evaluation = read_dataset(resolve_uri(eval_uri, "eval"))
    extras = [SourceInput("annotated", read_artifact(annotated_path), teacher),
              SourceInput("synthetic", read_artifact(synthetic_path), "synthetic")]
    with parameter_hints():
        cfg = MergeConfig(precedence=precedence)
        result = merge(gold.records, extras, cfg)
    kept, leaked = EvalTexts.from_reads([evaluation])[0].split(result.records)
    write_dataset(out_path, kept, rejects=gold.rejects, leaked=leaked)

    rep = result.report.to_dict()
    Report("merge: training set").paragraph(result.report.summary()).key_values({
        "gold": gold.summary(),
        "precedence": ",".join(cfg.precedence),
        "dropped because the text is in the eval set": len(leaked),
        "training records": len(kept),
    }).heading("Records per input").raw(bar_chart(rep["inputs"])).heading("Entities by source").raw(
        bar_chart(rep["entities_by_source"])).heading("Conflicts").raw(bar_chart(rep["conflicts"])).heading(
        "Examples").pre(json.dumps(rep["examples"], ensure_ascii=False, indent=2)).write(report_path)
    out = {
        "records": float(len(kept)),
        "entities": float(sum(len(r.entities) for r in kept)),
        "gold_rejected": float(len(gold.rejects)),
        "leaked_dropped": float(len(leaked)),
    }
    out.update({f"conflicts_{k}": float(v) for k, v in rep["conflicts"].items()})
    return out
