"""KFP component: score candidate and production (logic: :mod:`nerwheel.components.steps.evaluate`)."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Input, Metrics, Model, Output

from nerwheel.components.images import component

__all__ = ["evaluate"]


@component("evaluate")
def evaluate(
    model: Input[Model],
    eval_uri: str,
    production_model_uri: str,
    repository_uri: str,
    model_name: str,
    production_from_repository: bool,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    scores: Output[Artifact],
    production_scores: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Score the candidate with strict, exact, partial and type-only P/R/F1 (seqeval report included).

    Args:
        model: the trained model folder.
        eval_uri: the fixed eval set (local path or s3:// URI); empty = the bundled sample eval set.
        production_model_uri: the model in production (model or export folder, or s3:// prefix); empty = the
            version of model_name live in repository_uri.
        repository_uri: the Triton model repository deploy writes to and Triton reads.
        model_name: the Triton model name.
        production_from_repository: look up the live version when production_model_uri is empty (False: the
            candidate is gated as the first model).

    Returns:
        The candidate's overall strict F1; scores: its metrics.json; production_scores: which model is
        production and why (uri, how, note) with its metrics.json on the same records (``null`` when
        there is none); metrics: the UI scalars; confusion: the candidate's character-level confusion
        by type, which the KFP UI draws as a matrix; report: HTML with per-type F1 and the seqeval report.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.evaluate import confusion_of, run

    task_logging()
    values = run(model_path=model.path, eval_uri=eval_uri, production_model_uri=production_model_uri,
                 repository_uri=repository_uri, model_name=model_name,
                 production_from_repository=production_from_repository, scores_path=scores.path,
                 production_scores_path=production_scores.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    labels, matrix = confusion_of(scores.path)
    confusion.log_confusion_matrix(labels, matrix)
    return values["strict_f1"]
