"""KFP component: score the candidate (and production) on the fixed eval set (:mod:`nerwheel.stages.evaluate`).

Both models are scored here, on the same records in the same task, so the gate
always compares like with like.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Metrics, Model, Output

from nerwheel.components.images import image

__all__ = ["evaluate"]


@dsl.component(base_image=image("evaluate"), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    eval_uri: str,
    production_model_uri: str,
    metrics: Output[Metrics],
    scores: Output[Artifact],
    production_scores: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Score the candidate with strict, exact, partial and type-only P/R/F1 (seqeval report included).

    Args:
        model: the trained model folder.
        eval_uri: the fixed eval set (local path or s3:// URI); empty = the bundled sample eval set.
        production_model_uri: the model in production (folder or s3:// prefix); empty = none yet.

    Returns:
        The candidate's overall strict F1; scores: its metrics.json; production_scores: production's
        metrics.json on the same records (``null`` when there is none); metrics: the UI scalars;
        report: HTML with per-type F1 and the seqeval report.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.evaluate import run

    task_logging()
    values = run(model_path=model.path, eval_uri=eval_uri, production_model_uri=production_model_uri,
                 scores_path=scores.path, production_scores_path=production_scores.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    return values["strict_f1"]
