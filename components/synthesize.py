"""KFP component: synthesise labelled texts (logic: :mod:`nerwheel.components.steps.synthesize`)."""

from kfp.dsl import HTML, Dataset, Metrics, Output

from nerwheel.components.images import component

__all__ = ["synthesize"]


@component("synthesize")
def synthesize(
    labelled_uri: str,
    seed_uri: str,
    eval_uri: str,
    n_short: int,
    n_long: int,
    seed: int,
    synthetic: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Synthesise short (one entity type each) and long (composite) labelled address texts.

    Args:
        labelled_uri: the teacher-labelled traffic (the fan-in's Dataset folder, by URI); its entities join the
            synthesiser's pools.
        seed_uri: gold records whose entities join the pools too; empty = bundled sample.
        eval_uri: the eval set; no synthetic text may equal one of its texts. Empty = bundled sample.
        n_short: short texts in total, spread over the entity types.
        n_long: long composite texts.
        seed: random seed (same inputs and seed, same records).

    Returns:
        synthetic: the records (Dataset folder); metrics: counts; report: HTML with type coverage.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.synthesize import run

    task_logging()
    scalars = run(annotated_path=labelled_uri, seed_uri=seed_uri, eval_uri=eval_uri, n_short=n_short,
                  n_long=n_long, seed=seed, out_path=synthetic.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
