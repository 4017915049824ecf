"""KFP component: promote the candidate only if it beats production (:func:`nerwheel.stages.gate.gate`)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Output

from nerwheel.components.images import image

__all__ = ["gate", "run"]


def run(*, candidate_path: str, production_path: str, min_delta: float, tolerance: float, min_support: int,
        decision_path: str, report_path: str) -> tuple[bool, dict[str, float]]:
    """Decide on two metrics.json files (production may hold ``null``: nothing in production yet).

    Returns whether the candidate is promoted, and the scalars the component logs.
    """
    from pathlib import Path

    from nerwheel.components.data import read_json, write_json
    from nerwheel.stages.gate import GatePolicy, gate

    candidate = read_json(candidate_path)
    production = read_json(production_path)
    policy = GatePolicy(min_delta=min_delta, max_type_drop=tolerance, min_support=min_support)
    decision = gate(candidate, production, policy)
    write_json(decision_path, decision.to_dict())

    overall = decision.overall
    lines = [
        f"# Gate: **{decision.verdict}**",
        "",
        *(f"- {r}" for r in decision.reasons),
        "",
        f"| | {policy.metric} F1 |",
        "|---|---|",
        f"| candidate | {_num(overall['candidate'])} |",
        f"| production | {_num(overall['production'])} |",
        f"| delta | {_num(overall['delta'])} |",
        "",
        "| type | candidate | production | delta | support | enforced |",
        "|---|---|---|---|---|---|",
        *(f"| {t} | {_num(v['candidate'])} | {_num(v['production'])} | {_num(v['delta'])} | {v['support']} | "
          f"{'yes' if v['checked'] else 'no'} |" for t, v in decision.per_type.items()),
        "",
        f"Policy: min_delta {policy.min_delta}, max_type_drop (tolerance) {policy.max_type_drop}, "
        f"min_support {policy.min_support}.",
    ]
    Path(report_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    scalars = {"promoted": 1.0 if decision.promote else 0.0, "candidate_f1": float(overall["candidate"])}
    if overall["production"] is not None:
        scalars["production_f1"] = float(overall["production"])
        scalars["delta_f1"] = float(overall["delta"])
    return decision.promote, scalars


def _num(v: object) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


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
    from nerwheel.components.gate import run

    promoted, scalars = run(candidate_path=candidate.path, production_path=production.path, min_delta=min_delta,
                            tolerance=tolerance, min_support=min_support, decision_path=decision.path,
                            report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    decision.metadata["verdict"] = "promote" if promoted else "refuse"
    return promoted
