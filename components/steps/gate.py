"""Gate step: promote the candidate only if it beats production (:func:`nerwheel.stages.gate.gate`).

Task-agnostic: the candidate's metrics.json names its task (``"task": "classify"``; NER's has none), and the
task's scores view (``gate_scores``) reads it; the policy is the same for every task.
"""

__all__ = ["run"]


def run(*, candidate_path: str, production_path: str, min_delta: float, max_type_drop: float, noise_spans: float,
        min_support: int, metric: str, decision_path: str, report_path: str) -> tuple[bool, dict[str, float]]:
    """Decide on the candidate's metrics.json and the production record the evaluate step wrote.

    The production record is ``{"uri", "how", "note", "metrics"}`` (``metrics`` ``null``: nothing in
    production, ``note`` says why). The decision record (JSON) and the Markdown report both carry the
    whole policy and each type's allowed drop. Returns whether the candidate is promoted, and the
    scalars the component logs.
    """
    from pathlib import Path

    from nerwheel.components.data import read_json, write_json
    from nerwheel.errors import DataError
    from nerwheel.stages.gate import GatePolicy, gate

    candidate = read_json(candidate_path)
    production = read_json(production_path)
    if not isinstance(production, dict) or "metrics" not in production or "note" not in production:
        raise DataError(f"{production_path}: expected the evaluate step's production record "
                         "{uri, how, note, metrics}")
    policy = GatePolicy(min_delta=min_delta, max_type_drop=max_type_drop, noise_spans=noise_spans,
                        min_support=min_support, metric=metric)
    from nerwheel.tasks import get_task

    task = get_task(candidate.get("task") or "ner")  # a classifier's metrics.json names its task; NER's predates tasks
    decision = gate(candidate, production["metrics"], policy, production_source=production["note"],
                    scores=task.gate_scores)
    record = {**decision.to_dict(), "production_model": {k: production.get(k) for k in ("uri", "how", "note")}}
    write_json(decision_path, record)
    Path(report_path).write_text(_markdown(decision, policy, production["uri"]), encoding="utf-8")

    overall = decision.overall
    scalars = {"promoted": 1.0 if decision.promote else 0.0, "candidate_f1": float(overall["candidate"])}
    if overall["production"] is not None:
        scalars["production_f1"] = float(overall["production"])
        scalars["delta_f1"] = float(overall["delta"])
    return decision.promote, scalars


def _markdown(decision, policy, production_uri: str | None) -> str:  # noqa: ANN001 - GateDecision, GatePolicy
    overall = decision.overall
    m = policy.metric
    exempt = (f"types with fewer than {policy.min_support} gold spans are reported, not enforced"
              if policy.min_support > 0 else "every type with gold spans is checked")
    lines = [
        f"# Gate: **{decision.verdict}**",
        "",
        *(f"- {r}" for r in decision.reasons),
        "",
        f"Production model: `{production_uri}`" if production_uri else "Production model: none",
        "",
        f"| | {m} F1 |",
        "|---|---|",
        f"| candidate | {_num(overall['candidate'])} |",
        f"| production | {_num(overall['production'])} |",
        f"| delta | {_num(overall['delta'])} |",
        "",
        "## Policy",
        "",
        "| setting | value |",
        "|---|---|",
        f"| metric | {m} |",
        f"| min_delta (required rise of overall F1) | {policy.min_delta} |",
        f"| max_type_drop | {policy.max_type_drop} |",
        f"| noise_spans | {policy.noise_spans:g} |",
        f"| min_support | {policy.min_support} |",
        "",
        f"A type's F1 may fall by max(max_type_drop, noise_spans / support) = max({policy.max_type_drop}, "
        f"{policy.noise_spans:g} / support); {exempt}.",
        "",
        "## Entity types",
        "",
        "| type | support | candidate | production | delta | allowed drop | checked | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t, v in decision.per_type.items():
        verdict = "fell too far" if v["regressed"] else "ok" if v["checked"] else "not checked"
        lines.append(f"| {t} | {v['support']} | {_num(v['candidate'])} | {_num(v['production'])} | "
                     f"{_num(v['delta'])} | {_num(v['allowed_drop'])} | {'yes' if v['checked'] else 'no'} | "
                     f"{verdict} |")
    return "\n".join(lines) + "\n"


def _num(v: object) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
