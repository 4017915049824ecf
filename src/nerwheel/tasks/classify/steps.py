"""What the classifier's KFP components run (plain functions; the components in :mod:`.pipeline` are thin).

A Dataset artifact is a folder like NER's (:mod:`nerwheel.components.data`):
``records.jsonl`` (messages) and, when there are any, ``rejects.jsonl``. An
empty data URI means the bundled sample set (:mod:`.sample`). Gate, export and
deploy are the shared steps (they read the task from the metrics or the model).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError, DataError
__all__ = ["evaluate", "label", "merge", "resolve", "train"]

RECORDS_FILE = "records.jsonl"
REJECTS_FILE = "rejects.jsonl"


def resolve(uri: str, role: str) -> str:
    """``uri``, or the bundled sample file for ``role`` (seed, eval, texts) when empty."""
    from nerwheel.tasks.classify.sample import sample_path

    return uri.strip() or str(sample_path(role))


def _read(uri: str, labels: Any = None, **options: Any) -> Any:
    """Messages from a local path or S3 URI (a labels.json beside a local file maps integer labels)."""
    from nerwheel.components.data import local_copy
    from nerwheel.tasks.classify.formats import read_messages

    with local_copy(uri) as path:
        result = read_messages(path, labels=labels, **options)
    result.source = uri
    return result


def _write(folder: str, messages: list[Any], rejects: list[Any]) -> int:
    from nerwheel.formats import write_rejects
    from nerwheel.tasks.classify.formats import write_messages

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    n = write_messages(messages, out / RECORDS_FILE)
    if rejects:
        write_rejects(rejects, out / REJECTS_FILE)
    return n


def _artifact(folder: str) -> list[Any]:
    from nerwheel.tasks.classify.formats import read_messages

    result = read_messages(Path(folder) / RECORDS_FILE, "jsonl")
    result.raise_first()
    return list(result.records)


def label(*, texts_uri: str, seed_uri: str, teacher: str, teacher_model_uri: str, threshold: float,
          llm_endpoint: str, llm_model: str, llm_max_tokens: int, labelled_path: str,
          report_path: str) -> dict[str, float]:
    """Label live traffic with the teacher: a trained model above ``threshold`` (``teacher_model_uri``, else a
    teacher trained here on the seed set) or a few-shot LLM; writes the labelled Dataset folder."""
    from nerwheel.components.report import Report
    from nerwheel.tasks.classify.records import LabelSet
    from nerwheel.tasks.classify.teachers import LLMClassifier, ModelTeacher, vote

    seed = _read(resolve(seed_uri, "seed"), require_label=True)
    texts = _read(resolve(texts_uri, "texts"))
    labels = LabelSet.from_messages(seed.records) if seed.records else None
    if labels is None:
        raise DataError(f"{seed.source}: no labelled seed messages ({len(seed.rejects)} rejected)")
    with tempfile.TemporaryDirectory(prefix="nerwheel-teacher-") as tmp:
        if teacher == "model":
            from nerwheel.tasks.classify.predict import load_classifier

            model_uri = teacher_model_uri.strip() or str(_seed_teacher(seed.records, labels, Path(tmp)))
            built: Any = ModelTeacher(load_classifier(_local(model_uri, Path(tmp))), threshold=threshold,
                                      name=f"model:{Path(model_uri.rstrip('/')).name}")
        elif teacher == "llm":
            from nerwheel.llm.config import LLMConfig

            if not (llm_endpoint.strip() and llm_model.strip()):
                raise ConfigError("teacher 'llm' needs llm_endpoint and llm_model")
            cfg = LLMConfig(base_url=llm_endpoint, model=llm_model, max_tokens=llm_max_tokens)
            built = LLMClassifier(cfg, labels, examples=seed.records)
        else:
            raise ConfigError(f"unknown teacher {teacher!r}; choose model or llm")
        result = vote([m.with_label(None) for m in texts.records], [built])
    rejects = list(texts.rejects)
    from nerwheel.formats.base import Reject

    rejects += [Reject(texts.source, 0, f"{row['reason']}: {row['answers']}", json.dumps(row, ensure_ascii=False),
                       kind="unlabelled") for row in result.undecided + result.failed]
    _write(labelled_path, result.labelled, rejects)
    r = result.report
    Report("label: traffic labelled by the teacher").key_values(
        {"teacher": built.name, "read": r["read"], "labelled": r["labelled"], "undecided": r["undecided"],
         "failed (abstained)": r["failed"], "labels": r["labels"]}).write(report_path)
    return {"read": float(r["read"]), "labelled": float(r["labelled"]), "failed": float(r["failed"])}


def _local(uri: str, tmp: Path) -> str:
    from nerwheel import storage

    if not storage.is_s3(uri):
        return uri
    dest = tmp / "teacher-model"
    storage.get_storage().download_dir(uri, dest)
    return str(dest)


def _seed_teacher(seed: list[Any], labels: Any, tmp: Path) -> Path:
    """A small classifier trained on the seed set: the offline teacher of the embedded default."""
    from nerwheel.tasks.classify.config import validate
    from nerwheel.tasks.classify.train import train as run

    raw = {"model": {"name": "tiny", "labels": list(labels.names), "max_length": 48,
                     "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}},
           "training": {"epochs": 30, "batch_size": 8, "learning_rate": 2e-3, "threads": 1},
           "early_stopping": {"enabled": False}, "output": {"output_dir": str(tmp), "model_name": "seed-teacher",
                                                            "timestamp": False, "save_strategy": "no",
                                                            "plots": False}}
    return run(validate(raw), train_records=seed, dev_records=[])


def merge(*, seed_uri: str, labelled_path: str, eval_uri: str, teacher: str, precedence: str, merged_path: str,
          report_path: str) -> dict[str, float]:
    """Gold seed + teacher labels -> one training set with provenance; eval messages never enter it."""
    from nerwheel.components.report import Report
    from nerwheel.tasks.classify.feedback import merge as run

    seed = _read(resolve(seed_uri, "seed"), require_label=True)
    eval_set = _read(resolve(eval_uri, "eval"))
    banned = {(m.context.strip(), m.message.strip()) for m in eval_set.records}
    labelled = [m for m in _artifact(labelled_path) if (m.context.strip(), m.message.strip()) not in banned]
    leaked = len(_artifact(labelled_path)) - len(labelled)
    result = run([("gold", seed.records), (teacher, labelled)], [k.strip() for k in precedence.split(",")])
    _write(merged_path, result.records, seed.rejects)
    Report("merge: gold + teacher labels").key_values({**{k: v for k, v in result.report.items()
                                                         if k != "conflict_examples"},
                                                      "eval messages dropped (leak check)": leaked}).write(report_path)
    return {"written": float(result.report["written"]), "leaked_dropped": float(leaked)}


def train(*, train_path: str, backbone: str, epochs: int, seed: int, overrides: str, model_path: str,
          report_path: str) -> dict[str, float]:
    """Train the classifier on the merged Dataset folder into the folder ``model_path``."""
    from nerwheel.components.report import Report
    from nerwheel.components.steps.train import parse_override_list
    from nerwheel.configfile import merge_overrides, parse_overrides
    from nerwheel.tasks.classify.config import load_config
    from nerwheel.tasks.classify.metrics import summary
    from nerwheel.tasks.classify.sample import sample_path
    from nerwheel.tasks.classify.train import train as run

    out = Path(model_path)
    items = parse_override_list(overrides)
    fixed = {"model": {"model_id": backbone}, "training": {"epochs": epochs, "seed": seed},
             "data": {"train_file": str(Path(train_path) / RECORDS_FILE), "format": "jsonl",
                      "labels_file": str(sample_path("labels"))},
             "output": {"output_dir": str(out.parent), "model_name": out.name, "timestamp": False}}
    messages = _artifact(train_path)
    labels = sorted({m.label for m in messages})
    known = json.loads(sample_path("labels").read_text(encoding="utf-8"))
    if not set(labels) <= set(known.values()):  # not the sample's classes: the labels in the data
        fixed["data"]["labels_file"] = None
    config = load_config(None, merge_overrides(parse_overrides(items), fixed))
    model_dir = run(config)
    card = json.loads((model_dir / "nerwheel.json").read_text(encoding="utf-8"))
    m = card.get("metrics", {})
    scalars = {f"dev_{k}": float(v) for k, v in summary(m["dev"]).items()} if m.get("dev") else {}
    scalars.update(training_seconds=float(m.get("training_seconds", 0)), best_step=float(m.get("best_step", 0)))
    Report("train: classifier").key_values({"backbone": card["backbone"], "labels": ", ".join(card["labels"]),
                                            "max_length": card["max_length"], **scalars}).write(report_path)
    return scalars


def evaluate(*, model_path: str, eval_uri: str, production_model_uri: str, repository_uri: str, model_name: str,
             production_from_repository: bool, scores_path: str, production_scores_path: str,
             report_path: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Score the candidate and production on the same eval set; returns (scalars, candidate metrics)."""
    import contextlib

    from nerwheel import storage
    from nerwheel.serving.production import find_production
    from nerwheel.storage import write_json
    from nerwheel.components.report import Report
    from nerwheel.tasks.classify.evaluate import evaluate as run
    from nerwheel.tasks.classify.metrics import summary
    from nerwheel.stages.evaluate import read_gold
    from nerwheel.tasks import get_task
    from nerwheel.tasks.classify.predict import load_classifier

    production = find_production(production_model_uri, repository_uri, model_name,
                                 from_repository=production_from_repository)
    with tempfile.TemporaryDirectory(prefix="nerwheel-eval-") as tmp, contextlib.ExitStack() as stack:
        prod_metrics = None
        prod_predictor = None
        if production.uri is not None:
            prod_dir = stack.enter_context(storage.get_storage().local_dir(production.uri))
            prod_predictor = load_classifier(prod_dir)
        cand = load_classifier(Path(model_path))
        models = [(cand, model_path)] + ([(prod_predictor, production.uri)] if prod_predictor is not None else [])
        # read against both models' classes: a class neither knows is a counted reject (nerwheel evaluate's rule)
        data, label_set = read_gold(get_task("classify"),
                                    lambda **o: _read(resolve(eval_uri, "eval"), require_label=True, **o),
                                    lambda: models)
        if not data.records:
            raise DataError(f"{data.source}: no usable eval messages ({len(data.rejects)} rejected)")
        judged = {"rejects": data.rejects, "label_set": label_set}
        candidate = run(Path(model_path), data.records, Path(tmp) / "candidate", predictor=cand, **judged)
        if prod_predictor is not None:
            prod_metrics = run(prod_dir, data.records, Path(tmp) / "production", predictor=prod_predictor,
                               plots=False, **judged)
            prod_metrics["model"] = production.uri
        rep = Report("evaluate: candidate on the eval set").paragraph(data.summary())
        rep.paragraph(label_set.describe())
        rep.paragraph(f"production: {production.note}")
        rep.table([(k, v, summary(prod_metrics).get(k) if prod_metrics else "n/a")
                   for k, v in summary(candidate).items()], ("figure", "candidate", "production"))
        rep.table([(lab, v["support"], v["precision"], v["recall"], v["f1"])
                   for lab, v in candidate["per_class"].items()], ("class", "support", "precision", "recall", "F1"))
        import base64

        for png in ("confusion.png", "calibration.png"):
            f = Path(tmp) / "candidate" / png
            if f.is_file():
                rep.heading(png[:-4]).raw(f'<img alt="{png}" src="data:image/png;base64,'
                                          f'{base64.b64encode(f.read_bytes()).decode("ascii")}"/>')
        rep.write(report_path)
    write_json(scores_path, candidate)
    write_json(production_scores_path, {**production.to_dict(), "metrics": prod_metrics})
    return {**summary(candidate), "n_records": float(candidate["n_records"])}, candidate
