"""KFP component: promote the candidate only if it beats production (:func:`nerwheel.stages.gate.gate`)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Output

from nerwheel.components.images import image

__all__ = ["gate"]


@dsl.component(base_image=image("gate"), install_kfp_package=False)
def gate(
    candidate: Input[Artifact],
    production: Input[Artifact],
    min_delta: float,
    tolerance: float,
    min_support: int,
    decision: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[Markdown],
) -> bool:
    """Compare the candidate's metrics with production's on the same eval set.

    Args:
        candidate: the candidate's metrics.json (from evaluate).
        production: the production model's metrics.json on the same eval set, or ``null``.
        min_delta: required rise of overall strict F1 (absolute, e.g. 0.005).
        tolerance: largest allowed fall of any entity type's F1 (types with enough support).
        min_support: types with fewer gold spans are reported, not enforced.

    Returns:
        True when the candidate is promoted (the pipeline exports and deploys only then);
        decision: the full decision record (JSON); report: the reasons as Markdown.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.gate import run

    task_logging()
    promoted, scalars = run(candidate_path=candidate.path, production_path=production.path, min_delta=min_delta,
                            tolerance=tolerance, min_support=min_support, decision_path=decision.path,
                            report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    decision.metadata["verdict"] = "promote" if promoted else "refuse"
    return promoted
