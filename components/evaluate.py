"""KFP component: score the candidate (and production) on the fixed eval set (:mod:`nerwheel.stages.evaluate`).

Both models are scored here, on the same records in the same task, so the gate
always compares like with like.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Metrics, Model, Output

from nerwheel.components.images import image

__all__ = ["evaluate", "run", "scalars"]


def scalars(metrics: dict) -> dict[str, float]:
    """The numbers the KFP UI shows: overall strict/partial/type P/R/F1, token accuracy, per-type strict F1."""
    overall = metrics["overall"]
    out: dict[str, float] = {}
    for kind in ("strict", "partial", "type"):
        for name in ("precision", "recall", "f1"):
            if kind in overall and name in overall[kind]:
                out[f"{kind}_{name}"] = float(overall[kind][name])
    if "token_accuracy" in overall:
        out["token_accuracy"] = float(overall["token_accuracy"])
    for label, per in sorted(metrics.get("per_type", {}).items()):
        if "strict" in per:
            out[f"f1_{label}"] = float(per["strict"]["f1"])
    out["n_records"] = float(metrics.get("n_records", 0))
    return out


def run(*, model_path: str, eval_uri: str, production_model_uri: str, scores_path: str,
        production_scores_path: str, report_path: str) -> dict[str, float]:
    """Evaluate ``model_path`` (and the production model, when given) on the eval set.

    Writes the candidate's metrics.json to ``scores_path`` and production's (or ``null``) to
    ``production_scores_path``. Returns the candidate's scalars.
    """
    import tempfile
    from pathlib import Path

    from nerwheel import storage
    from nerwheel.components.data import read_dataset, resolve_uri, write_json
    from nerwheel.stages.evaluate import evaluate

    data = read_dataset(resolve_uri(eval_uri, "eval"))
    if not data.records:
        raise ValueError(f"{data.source}: no usable eval records ({len(data.rejects)} rejected)")
    with tempfile.TemporaryDirectory(prefix="nerwheel-eval-") as tmp:
        candidate = evaluate(Path(model_path), data.records, Path(tmp) / "candidate")
        production = None
        if production_model_uri.strip():
            with storage.get_storage().local_dir(production_model_uri.strip()) as prod_dir:
                production = evaluate(prod_dir, data.records, Path(tmp) / "production")
    write_json(scores_path, candidate)
    write_json(production_scores_path, production)
    _report(candidate, production, data.summary(), report_path)
    return scalars(candidate)


def _report(candidate: dict, production: dict | None, data_summary: str, report_path: str) -> None:
    from nerwheel.components.report import Report, bar_chart

    rep = Report("evaluate: candidate on the eval set").paragraph(data_summary)
    rows = []
    for kind in ("strict", "partial", "type"):
        c = candidate["overall"].get(kind, {})
        p = (production or {}).get("overall", {}).get(kind, {})
        rows.append((kind, c.get("precision"), c.get("recall"), c.get("f1"), p.get("f1", "n/a")))
    rep.table(rows, ("match", "precision", "recall", "F1", "production F1"))
    per_type = {label: v["strict"]["f1"] for label, v in sorted(candidate.get("per_type", {}).items())
                if "strict" in v}
    rep.heading("Strict F1 per entity type").raw(bar_chart(per_type, max_value=1.0))
    rep.table(((label, v["strict"].get("support"), v["strict"]["f1"]) for label, v in
               sorted(candidate.get("per_type", {}).items()) if "strict" in v), ("type", "support", "strict F1"))
    if candidate.get("seqeval_report"):
        rep.heading("seqeval report").pre(candidate["seqeval_report"])
    rep.write(report_path)


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
    """Score the candidate with seqeval-style strict, partial and type-only P/R/F1.

    Args:
        model: the trained model folder.
        eval_uri: the fixed eval set (local path or s3:// URI); empty = the bundled sample eval set.
        production_model_uri: the model in production (folder or s3:// prefix); empty = none yet.

    Returns:
        The candidate's overall strict F1; scores: its metrics.json; production_scores: production's
        metrics.json on the same records (``null`` when there is none); metrics: the UI scalars;
        report: HTML with per-type F1 and the seqeval report.
    """
    from nerwheel.components.evaluate import run

    values = run(model_path=model.path, eval_uri=eval_uri, production_model_uri=production_model_uri,
                 scores_path=scores.path, production_scores_path=production_scores.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    return values["strict_f1"]
