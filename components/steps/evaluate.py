"""Evaluate step: score the candidate and production on the fixed eval set (:mod:`nerwheel.stages.evaluate`).

Both models are scored here, on the same records in the same task, so the gate
always compares like with like. Which model is production is decided by
:func:`nerwheel.serving.production.find_production`: the one named, else the
version live in the Triton repository, else none (the candidate is the first).
Production is scored through :class:`nerwheel.stages.evaluate.MetricsSource`,
as ``nerwheel gate`` scores its two sides. Gold records carrying a label that
neither model knows are counted rejects for both
(:func:`nerwheel.stages.evaluate.read_gold`, as ``nerwheel evaluate`` and the
gate judge gold); ``scores`` names the label set used (``label_set``).
"""

__all__ = ["confusion_of", "run", "scalars"]


def scalars(metrics: dict) -> dict[str, float]:
    """The numbers the KFP UI shows: overall strict/partial/type P/R/F1, token accuracy, per-type strict F1."""
    from nerwheel.components.steps import flatten_metrics

    overall = metrics["overall"]
    shown = ("strict", "exact", "partial", "type", "token_accuracy")
    out = flatten_metrics({k: overall[k] for k in shown if k in overall})
    for label, per in sorted(metrics.get("per_type", {}).items()):
        if "strict" in per:
            out[f"f1_{label}"] = float(per["strict"]["f1"])
    out["n_records"] = float(metrics.get("n_records", 0))
    return out


def confusion_of(scores_path: str) -> tuple[list[str], list[list[int]]]:
    """The candidate's confusion (labels, matrix) from its metrics.json, for the KFP ``ClassificationMetrics``."""
    from nerwheel.components.data import read_json

    c = read_json(scores_path)["confusion"]
    return list(c["labels"]), [[int(x) for x in row] for row in c["matrix"]]


def run(*, model_path: str, eval_uri: str, production_model_uri: str, repository_uri: str, model_name: str,
        production_from_repository: bool, scores_path: str, production_scores_path: str,
        report_path: str) -> dict[str, float]:
    """Evaluate ``model_path`` and the production model (when there is one) on the eval set.

    Writes the candidate's metrics.json to ``scores_path``, and to ``production_scores_path`` the
    production record ``{"uri", "how", "note", "metrics"}`` (``metrics`` is production's metrics.json,
    or ``null`` when there is no production model, with ``note`` saying why). Returns the candidate's
    scalars.
    """
    import contextlib
    import tempfile
    from pathlib import Path

    from nerwheel import storage
    from nerwheel.components.data import read_dataset, resolve_uri, write_json
    from nerwheel.errors import DataError
    from nerwheel.serving.production import find_production
    from nerwheel.stages.evaluate import MetricsSource, evaluate, read_gold
    from nerwheel.stages.predict import load_predictor
    from nerwheel.tasks import get_task

    read = read_dataset(resolve_uri(eval_uri, "eval"))
    if not read.records:
        raise DataError(f"{read.source}: no usable eval records ({len(read.rejects)} rejected)")
    production = find_production(production_model_uri, repository_uri, model_name,
                                 from_repository=production_from_repository)
    with tempfile.TemporaryDirectory(prefix="nerwheel-eval-") as tmp, contextlib.ExitStack() as stack:
        prod = None
        if production.uri is not None:  # loaded first: a production model that cannot run fails before any work
            prod_dir = stack.enter_context(storage.get_storage().local_dir(production.uri))
            try:
                prod = MetricsSource.open(prod_dir)
            except FileNotFoundError as e:  # e.g. a GPU ensemble's version folder holds no model.onnx
                raise FileNotFoundError(
                    f"production model {production.uri} ({production.note}) cannot be evaluated: {e}; set "
                    "production_model_uri to its export folder (model.onnx, nerwheel.json, tokenizer.json)"
                ) from None
        cand = load_predictor(Path(model_path))
        models = [(cand, model_path)] + ([(prod.predictor, production.uri)] if prod is not None else [])
        # gold labels neither model knows are rejects for both (nerwheel evaluate's and the gate's rule)
        data, label_set = read_gold(get_task("ner"), lambda **_: read, lambda: models,
                                    fix="evaluate on an eval set labelled with the models' labels")
        judged = {"rejects": data.rejects, "label_set": label_set}
        candidate = evaluate(Path(model_path), data.records, Path(tmp) / "candidate", predictor=cand, **judged)
        production_metrics = None
        if prod is not None:
            production_metrics = prod.score(data.records, Path(tmp) / "production", **judged)
            production_metrics["model"] = production.uri  # not the temporary download folder
        summary = data.summary() + (f"; {label_set.describe()}" if label_set is not None else "")
        _report(candidate, production_metrics, production.note, summary, Path(tmp) / "candidate", report_path)
    write_json(scores_path, candidate)
    write_json(production_scores_path, {**production.to_dict(), "metrics": production_metrics})
    return scalars(candidate)


def _report(candidate: dict, production: dict | None, production_note: str, data_summary: str, files,
            report_path: str) -> None:
    import base64

    from nerwheel.components.report import Report, bar_chart

    rep = Report("evaluate: candidate on the eval set").paragraph(data_summary)
    rep.paragraph(f"production: {production_note}" if production is not None
                  else f"no production model: {production_note}")
    rows = []
    for kind in ("strict", "exact", "partial", "type"):
        c = candidate["overall"].get(kind, {})
        p = (production or {}).get("overall", {}).get(kind, {})
        rows.append((kind, c.get("precision"), c.get("recall"), c.get("f1"), p.get("f1", "n/a")))
    rep.table(rows, ("match", "precision", "recall", "F1", "production F1"))
    per_type = candidate.get("per_type", {})
    rep.heading("Strict F1 per entity type").raw(bar_chart(
        {label: v["strict"]["f1"] for label, v in sorted(per_type.items()) if "strict" in v}, max_value=1.0))
    rep.table(((label, v["strict"].get("support"), v["strict"]["f1"]) for label, v in sorted(per_type.items())
               if "strict" in v), ("type", "support", "strict F1"))
    for png in ("f1_by_type.png", "confusion.png"):
        if (files / png).is_file():
            data = base64.b64encode((files / png).read_bytes()).decode("ascii")
            rep.heading(png[:-4].replace("_", " ")).raw(f'<img alt="{png}" src="data:image/png;base64,{data}"/>')
    if candidate.get("seqeval_report"):
        rep.heading("seqeval report").pre(candidate["seqeval_report"])
    rep.write(report_path)
