"""Synthesize step: labelled texts from the knowledge base and examples (:func:`nerwheel.stages.synthesize.synthesize`).

Entity strings come from the knowledge base plus the examples this task is given:
the gold seed set and the teacher-labelled traffic (the edge annotate -> synthesize),
so synthetic texts reuse the roads and buildings real traffic mentions. No
synthetic text may equal an eval text.
"""

__all__ = ["run"]


def run(*, annotated_path: str, seed_uri: str, eval_uri: str, n_short: int, n_long: int, seed: int, out_path: str,
        report_path: str) -> dict[str, float]:
    """Synthesise ``n_short`` + ``n_long`` records with ``seed``; returns the scalars the component logs."""
    from nerwheel.components.data import read_artifact, read_dataset, resolve_uri, write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.leakage import EvalTexts
    from nerwheel.stages.synthesize import SynthesisConfig, coverage_table, synthesize

    examples = [*read_dataset(resolve_uri(seed_uri, "seed")).records, *read_artifact(annotated_path)]
    eval_texts, _ = EvalTexts.from_reads([read_dataset(resolve_uri(eval_uri, "eval"))])
    result = synthesize(SynthesisConfig(n_short=n_short, n_long=n_long, seed=seed), examples=examples,
                        eval_texts=eval_texts)
    write_dataset(out_path, result.records)
    cov = result.coverage
    totals = {lab: sum(cov[k].get(lab, 0) for k in ("short", "long", "llm")) for lab in cov["labels"]}
    Report("synthesize: labelled texts").paragraph(f"{len(result.records)} records from {len(examples)} examples "
                                                   f"and the knowledge base, seed {seed}").heading(
        "Entities per type").raw(bar_chart(totals)).pre(coverage_table(cov)).write(report_path)
    return {"records": float(len(result.records)), "short": float(cov["texts"]["short"]),
            "long": float(cov["texts"]["long"]), "skipped_duplicate": float(cov["skipped"]["duplicate"]),
            "skipped_eval": float(cov["skipped"]["eval"])}
