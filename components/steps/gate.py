"""Gate step: promote the candidate only if it beats production (:func:`nerwheel.stages.gate.gate`)."""

__all__ = ["run"]


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
