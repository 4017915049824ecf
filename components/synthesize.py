"""KFP component: synthesise labelled texts from the knowledge base (:func:`nerwheel.stages.synthesize.synthesize`)."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Metrics, Output

from nerwheel.components.images import image

__all__ = ["run", "synthesize"]


def run(*, count: int, seed: int, out_path: str, report_path: str) -> dict[str, float]:
    """Synthesise ``count`` records with ``seed``; returns the scalars the component logs."""
    from nerwheel.components.data import write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.stages.synthesize import SynthesisConfig, synthesize

    result = synthesize(SynthesisConfig(count=count, seed=seed))
    write_dataset(out_path, result.records)
    labels: dict[str, int] = {}
    for rec in result.records:
        for ent in rec.entities:
            labels[ent.label] = labels.get(ent.label, 0) + 1
    Report("synthesize: knowledge-base texts").heading("Entities per label").raw(
        bar_chart(dict(sorted(labels.items())))).write(report_path)
    return {"records": float(len(result.records)), "entities": float(sum(labels.values()))}


@dsl.component(base_image=image("synthesize"), install_kfp_package=False)
def synthesize(
    count: int,
    seed: int,
    synthetic: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Synthesise short and long labelled address texts from the knowledge base.

    Args:
        count: how many records to synthesise.
        seed: random seed (same seed, same records).

    Returns:
        synthetic: the records (Dataset folder with records.jsonl); metrics: counts; report: HTML with label coverage.
    """
    from nerwheel.components.synthesize import run

    scalars = run(count=count, seed=seed, out_path=synthetic.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
