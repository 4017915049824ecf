"""KFP component: promote the candidate only if it beats production (logic: :mod:`nerwheel.components.steps.gate`)."""

from kfp.dsl import Artifact, Input, Markdown, Metrics, Output

from nerwheel.components.images import component

__all__ = ["gate"]


@component("gate")
def gate(
    candidate: Input[Artifact],
    production: Input[Artifact],
    min_delta: float,
    max_type_drop: float,
    noise_spans: float,
    min_support: int,
    metric: str,
    decision: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[Markdown],
) -> bool:
    """Compare the candidate's metrics with production's on the same eval set.

    Args:
        candidate: the candidate's metrics.json (from evaluate).
        production: evaluate's production record: which model is production and why, with its
            metrics.json on the same eval set (``null`` metrics: none, the candidate is the first model).
        min_delta: required rise of overall F1 (absolute, e.g. 0.005).
        max_type_drop: largest allowed fall of a well-supported entity type's F1.
        noise_spans: a type's F1 may fall by max(max_type_drop, noise_spans / its gold spans).
        min_support: opt-out: types with fewer gold spans are reported, not enforced (0 = check all).
        metric: which F1 decides: strict, partial or type.

    Returns:
        True when the candidate is promoted (the pipeline exports and deploys only then);
        decision: the full decision record (JSON); report: reasons, policy and per-type allowed drops
        as Markdown.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.gate import run

    task_logging()
    promoted, scalars = run(candidate_path=candidate.path, production_path=production.path, min_delta=min_delta,
                            max_type_drop=max_type_drop, noise_spans=noise_spans, min_support=min_support,
                            metric=metric, decision_path=decision.path, report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    decision.metadata["verdict"] = "promote" if promoted else "refuse"
    return promoted
