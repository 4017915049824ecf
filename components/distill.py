"""KFP component: distil the trained model into a student (logic: :mod:`nerwheel.components.steps.distill`)."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from nerwheel.components.images import component

__all__ = ["distill"]


@component("distill")
def distill(
    model: Input[Model],
    train_data: Input[Dataset],
    student: str,
    overrides: str,
    distilled: Output[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Train a smaller student on the trained model's distributions (tagger or classifier), or pass the model on.

    Args:
        model: the trained model folder (the teacher).
        train_data: the merged training records (their labels count as gold).
        student: ``""`` (no distillation: the model passes on unchanged), ``tiny``,
            ``tiny:hidden_size=H,num_layers=L,...`` or ``shallow:K``.
        overrides: distillation settings, ``section.key=value`` separated by ``;``
            (e.g. ``distill.temperature=3; training.epochs=8``).

    Returns:
        distilled: the model the rest of the pipeline evaluates, gates and serves;
        metrics: student size, agreement with the teacher; report: HTML summary.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.distill import run

    task_logging()
    values = run(model_path=model.path, train_path=train_data.path, student=student, overrides=overrides,
                 student_path=distilled.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    distilled.metadata["framework"] = "pytorch"
    distilled.metadata["student"] = student or "none"
