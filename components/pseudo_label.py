"""KFP component: the production model labels what the teacher could not (logic:
:mod:`nerwheel.components.steps.pseudo_label`)."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from nerwheel.components.images import component

__all__ = ["pseudo_label"]


@component("pseudo_label")
def pseudo_label(
    feedback: Input[Dataset],
    production_uri: str,
    threshold: float,
    part: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Label the shard's texts no teacher could label with the production model, keeping confident spans.

    Args:
        feedback: the feedback step's output for the same shard (its ``unlabelled`` side set is read).
        production_uri: the production model's export (from the production step).
        threshold: lowest entity confidence kept (0..1).

    Returns:
        part: the pseudo-labelled records (source kind ``model``) and shard.json; metrics: counts;
        report: HTML.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.pseudo_label import run

    task_logging()
    scalars = run(feedback_path=feedback.path, production_uri=production_uri, threshold=threshold,
                  out_path=part.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
