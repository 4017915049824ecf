"""The evaluate stage: a model (any :func:`~nerwheel.stages.predict.load_predictor` target) on gold records.

Writes into ``out_dir``:

- ``metrics.json``: strict / exact / partial / type P/R/F1 overall and per type,
  token accuracy, the seqeval report (shape in docs/architecture.md; the modes
  are defined in :mod:`nerwheel.metrics`);
- ``report.txt``: the seqeval ``classification_report`` (IOB2, strict) and a
  table of the four modes;
- ``errors.jsonl``: every false negative and false positive with its context;
- ``predictions.jsonl``: the predicted records (span JSONL);
- ``rejects.jsonl``: the gold input records that could not be read, or that
  carry a label outside the model's label set (file, line, reason; empty when
  none), counted in ``metrics.json`` as ``input``:
  ``{"read", "accepted", "rejected"}`` with read = accepted + rejected;
  ``metrics.json``'s ``label_set`` (``{"source", "labels"}``) names the label
  set gold was judged against (:func:`model_label_set`), as report.txt does;
  ``metrics.json``'s ``confusion`` holds the character-level confusion by
  type (``labels``, ``matrix``: gold rows, predicted columns, ``O`` last),
  which the pipeline also logs as KFP ``ClassificationMetrics``;
- ``f1_by_type.png`` and ``confusion.png`` (character-level, by type).

:class:`MetricsSource` is one side of the gate: a ``metrics.json`` read as it
is, or a model loaded and scored here. ``nerwheel gate`` and the pipeline's
evaluate step both get the metrics they compare through it.

Data without a single gold entity is refused (DataError): an F1 of 0 on it
would say nothing about the model.

Scores are for target labels: extension labels (``pos:n``, ``kb:city``) are
left out of gold and predictions and counted in ``metrics.json`` as
``extension_spans_ignored`` (``extensions=True`` scores them too). Overlapping
and nested spans count in every span score; ``overlapping_spans`` scores them
on their own (:func:`nerwheel.metrics.overlapping_scores`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerwheel import metrics as M
from nerwheel.errors import DataError
from nerwheel.formats.base import ReadResult, Reject
from nerwheel.labels import ANY, LabelSet
from nerwheel.records import Record

__all__ = ["REJECTS_FILE", "MetricsSource", "evaluate", "input_counts", "input_lines", "label_set_line",
           "model_label_set", "models_label_set", "read_gold", "render_report"]


REJECTS_FILE = "rejects.jsonl"


def input_counts(records: Sequence[Record], rejects: Sequence[Reject]) -> dict[str, int]:
    return {"read": len(records) + len(rejects), "accepted": len(records), "rejected": len(rejects)}


def model_label_set(predictor: Any, model: str | Path) -> LabelSet:
    """The labels gold may carry in an evaluation: the model's own (every task's predictor names them).

    A gold label the model cannot predict is a typo (``STREETX``) or data for another model: scored, it
    would only lower recall without a word. A served NER tagger does not publish its labels
    (``labels is None``): then nothing is checked, and the summary says so.
    """
    names = getattr(predictor, "labels", None)
    if names is None:
        return LabelSet(None, f"the served model {model}, which does not publish its labels")
    return LabelSet(frozenset(names), f"the model ({model})")


def models_label_set(models: Sequence[tuple[Any, str | Path]]) -> LabelSet:
    """The labels gold may carry when every one of ``models`` ((predictor, model) pairs) is scored on it.

    The gate and the pipeline's evaluate step score candidate and production on the same records, so both
    are judged against one set: every label either model knows. A label only production knows stays in
    (the candidate missing it is the regression the gate exists to see); a label no model knows is a
    reject for both. One model: :func:`model_label_set`. If any model does not publish its labels,
    nothing is checked, and the set says so.
    """
    sets = [model_label_set(predictor, model) for predictor, model in models]
    if len(sets) == 1:
        return sets[0]
    source = " and ".join(s.source for s in sets)
    if any(s.labels is None for s in sets):
        return LabelSet(None, source)
    return LabelSet(frozenset().union(*(s.labels or () for s in sets)), source)


def read_gold(task: Any, read: Callable[..., ReadResult], models: Callable[[], Sequence[tuple[Any, str | Path]]], *,
              fix: str = "evaluate on gold labelled with the model's labels") -> tuple[ReadResult, LabelSet | None]:
    """Gold for an evaluation, its records with a label no scored model knows turned into rejects.

    The one home of that rule for ``nerwheel evaluate``, ``nerwheel gate --data`` and the pipelines'
    evaluate steps: a gold label the model cannot predict (a typo, data for another model) would
    otherwise only lower recall without a word. ``read(**options)`` reads the gold (a file, a dataset
    artifact); ``models()`` gives the (predictor, model) pairs that will be scored on it, and is called
    only when needed (NER gold without any entity is refused by the evaluation, no model loaded).

    NER: :func:`nerwheel.validate.reject_unknown_labels` against :func:`models_label_set` (``unknown-label``
    rejects with file and line; extension labels are never judged). Classifier: the gold is read against
    the models' classes, so integer labels index them (the first model's head order) and an unknown class
    is the reader's ``unknown-label`` reject. Other tasks carry no gold labels: read as they are.
    Returns the gold (read = accepted + rejected) and the label set used (``None``: none was needed).
    """
    if task.name == "classify":
        from nerwheel.tasks.classify.records import LabelSet as Classes

        sides = models()
        classes = Classes(tuple(dict.fromkeys(name for predictor, _ in sides for name in predictor.labels)))
        return read(labels=classes), models_label_set(sides)
    data = read()
    if task.name != "ner" or not any(r.entities for r in data.records):
        return data, None
    from nerwheel.validate import reject_unknown_labels

    label_set = models_label_set(models())
    return reject_unknown_labels(data, label_set, fix=fix), label_set


def input_lines(metrics: dict[str, Any]) -> list[str]:
    """The head of every task's report: what was read and rejected, and the label set gold was judged against."""
    lines = []
    if "input" in metrics:
        i = metrics["input"]
        lines.append(f"input: read {i['read']} = accepted {i['accepted']} + rejected {i['rejected']} "
                     f"(rejects in {REJECTS_FILE})")
    if "label_set" in metrics:
        lines.append(label_set_line(metrics["label_set"]))
    return lines


def label_set_line(label_set: dict[str, Any]) -> str:
    """One line naming a ``metrics.json`` ``label_set``: where it comes from and its labels."""
    return LabelSet(None if label_set["labels"] == ANY else frozenset(label_set["labels"]),
                    label_set["source"]).describe()


def render_report(metrics: dict[str, Any]) -> str:
    o = metrics["overall"]
    lines = input_lines(metrics)
    lines += [f"records: {metrics['n_records']}  gold spans: {o['support']}  predicted spans: {o['predicted']}  "
              f"token accuracy: {o['token_accuracy']:.4f}"]
    if metrics.get("gold_spans_not_in_tag_metrics"):
        lines.append(f"{metrics['gold_spans_not_in_tag_metrics']} gold spans overlap an earlier one: counted in the "
                     "span scores, left out of token accuracy, the seqeval report and the confusion matrix")
    if metrics.get("extension_spans_ignored"):
        x = metrics["extension_spans_ignored"]
        lines.append(f"extension-label spans left out (target labels scored): {x['gold']} gold, {x['predicted']} "
                     "predicted")
    lines += ["", f"{'mode':<10}{'precision':>10}{'recall':>10}{'f1':>10}"]
    for mode in M.MODES:
        s = o[mode]
        lines.append(f"{mode:<10}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}")
    ov = metrics.get("overlapping_spans")
    if ov and (ov["gold"] or ov["predicted"]):
        lines += ["", f"overlapping/nested spans only ({ov['gold']} gold, {ov['predicted']} predicted):"]
        for mode in M.MODES:
            s = ov[mode]
            lines.append(f"{mode:<10}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}")
    lines += ["", "seqeval classification_report (IOB2, mode=strict, character tags):", metrics["seqeval_report"]]
    return "\n".join(lines)


def evaluate(model_dir: str | Path, records: Sequence[Record], out_dir: str | Path, *, predictor: Any = None,
             plots: bool = True, rejects: Sequence[Reject] = (), extensions: bool = False,
             label_set: LabelSet | None = None) -> dict[str, Any]:
    """Predict ``records`` with the model, score against their gold entities, write the files above.

    ``rejects``: the gold file's lines the reader refused (and those with labels outside the model's,
    which the caller rejects with their lines: :func:`model_label_set`); written to
    ``rejects.jsonl`` and counted in ``metrics["input"]``, so a score is never
    read without knowing how much of the gold set it covers. ``extensions``:
    score extension labels too (the predictor must return them). ``label_set``: the set gold was judged
    against (:func:`read_gold`; default: the model's own), named in ``metrics.json`` and report.txt.
    """
    from nerwheel.formats import write_records, write_rejects
    from nerwheel.stages.predict import load_predictor, predict_records
    from nerwheel.storage import write_json

    records, rejects = list(records), list(rejects)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_rejects(rejects, out / REJECTS_FILE)
    if not records:
        first = f"; first: {rejects[0]}" if rejects else ""
        raise DataError(f"no records to evaluate: the gold data is empty ({len(rejects)} lines rejected, listed in "
                         f"{out / REJECTS_FILE}{first})")
    if not any(r.entities for r in records):
        raise DataError(f"no gold labels to score against: none of the {len(records)} records has an entity; "
                         "evaluate needs labelled data (label it with `nerwheel annotate` or review it in Label "
                         "Studio), or use `nerwheel predict` to tag unlabelled text")
    predictor = predictor or load_predictor(model_dir, extensions=extensions or None)
    predicted = predict_records(predictor, records, desc="evaluate")
    ignored = {"gold": 0, "predicted": 0}
    if not extensions:
        records, ignored["gold"] = M.target_records(records)
        predicted, ignored["predicted"] = M.target_records(predicted)
    pred = [r.entities for r in predicted]
    metrics = {"input": input_counts(records, rejects),
               "label_set": (label_set or model_label_set(predictor, model_dir)).to_dict(), **M.evaluate(records, pred)}
    if ignored["gold"] or ignored["predicted"]:
        metrics["extension_spans_ignored"] = ignored
    metrics["model"] = str(model_dir)
    labels, matrix = M.confusion([r.text for r in records], [r.entities for r in records], pred)
    metrics["confusion"] = {"unit": "characters", "labels": labels, "matrix": matrix}
    write_json(out / "metrics.json", metrics)
    (out / "report.txt").write_text(render_report(metrics), encoding="utf-8")
    with (out / "errors.jsonl").open("w", encoding="utf-8") as f:
        for row in M.error_rows(records, pred):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_records(predicted, out / "predictions.jsonl", format="spans")
    if plots and metrics["per_type"]:
        from nerwheel.model.plots import confusion_matrix_png, f1_bars_png

        f1_bars_png(metrics, out / "f1_by_type.png")
        confusion_matrix_png(labels, matrix, out / "confusion.png")
    return metrics


@dataclass
class MetricsSource:
    """One side of the gate: a ``metrics.json`` file read as it is, or a model loaded and ready to be scored.

    :meth:`open` loads a model at once, so a production model that cannot run fails before anything is
    scored (never a silent "first model"); :meth:`score` then evaluates it on the fixed eval records
    (no plots: the gate reads numbers). A metrics file is returned as it is, whatever the records.
    """

    path: Path
    metrics: dict[str, Any] | None = None
    predictor: Any = None
    task: Any = None  # the task (nerwheel.tasks) the metrics or the model belong to

    @property
    def is_model(self) -> bool:
        return self.metrics is None

    @classmethod
    def open(cls, source: str | Path) -> MetricsSource:
        """A metrics file (its task named inside; NER's predates tasks) or a model of any task (its nerwheel.json)."""
        from nerwheel.tasks import get_task, task_of

        path = Path(source)
        if path.is_file():
            try:
                metrics = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: not a metrics JSON file ({exc.msg} at line {exc.lineno})") from None
            return cls(path, metrics=metrics, task=get_task(metrics.get("task") if isinstance(metrics, dict)
                                                            else None))
        task = get_task(task_of(path))
        return cls(path, predictor=task.load_predictor(path), task=task)

    def score(self, records: Sequence[Any], out_dir: str | Path, *, rejects: Sequence[Reject] = (),
              label_set: LabelSet | None = None) -> dict[str, Any]:
        """The metrics; a model is evaluated on ``records`` (``rejects`` and ``label_set``: :func:`read_gold`'s)."""
        if self.metrics is not None:
            return self.metrics
        judged = {"label_set": label_set} if label_set is not None else {}  # tasks without gold labels take none
        return self.task.evaluate(self.path, records, out_dir, predictor=self.predictor, plots=False,
                                  rejects=rejects, **judged)
