"""The classifier's evaluate stage: a model (any :func:`load_classifier` target) on labelled messages.

Writes into ``out_dir``:

- ``metrics.json``: accuracy, macro / weighted / micro P/R/F1, per class
  P/R/F1 and support, the confusion matrix, expected calibration error
  (:mod:`nerwheel.tasks.classify.metrics`), ``input`` counts
  (read = accepted + rejected) and ``n_records``;
- ``report.txt``: the same as a table a person reads;
- ``errors.jsonl``: every misclassified message with its context, gold and
  predicted class and the predicted class's probability (most confident
  errors first: the ones worth a look);
- ``predictions.jsonl``: every message with ``label`` and ``probabilities``;
- ``rejects.jsonl``: the input lines that could not be read (file, line,
  kind, reason), those with a class the model does not know among them when
  the caller read them against the model's classes (``nerwheel evaluate`` does);
  ``metrics.json``'s ``label_set`` names the classes gold was judged against;
- ``confusion.png``: counts in every cell and a colour bar (row-normalised
  colours), ``calibration.png``: the reliability diagram.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerwheel.errors import DataError
from nerwheel.formats.base import Reject
from nerwheel.stages.evaluate import REJECTS_FILE, input_counts, input_lines, model_label_set
from nerwheel.tasks.classify.records import Message

__all__ = ["evaluate", "prediction_row", "render_report"]


def render_report(metrics: dict[str, Any]) -> str:
    o = metrics["overall"]
    lines = input_lines(metrics)
    lines.append(f"messages: {metrics['n_records']}  accuracy: {o['accuracy']:.4f}  macro-F1: {o['macro']['f1']:.4f}"
                 + (f"  ECE: {o['ece']:.4f}" if "ece" in o else ""))
    lines += ["", f"{'class':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, s in metrics["per_class"].items():
        lines.append(f"{label:<24}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}{s['support']:>10}")
    for avg in ("macro", "weighted"):
        s = o[avg]
        lines.append(f"{avg + ' avg':<24}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}"
                     f"{metrics['n_records']:>10}")
    labels, matrix = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    width = max(8, *(len(x) + 1 for x in labels))
    lines += ["", "confusion (rows gold, columns predicted):", " " * width + "".join(f"{x:>{width}}" for x in labels)]
    lines += [f"{g:<{width}}" + "".join(f"{v:>{width}}" for v in row) for g, row in zip(labels, matrix, strict=True)]
    return "\n".join(lines) + "\n"


def prediction_row(message: Message, label: str, probabilities: dict[str, float]) -> dict[str, Any]:
    """The output form of one classified message: the input fields, ``label`` and ``probabilities``."""
    row: dict[str, Any] = {"id": message.id, "message": message.message, "context": message.context,
                           "label": label, "probabilities": probabilities}
    if message.label is not None:
        row["gold"] = message.label
    return row


def evaluate(model: str | Path, messages: Sequence[Message], out_dir: str | Path, *, predictor: Any = None,
             plots: bool = True, rejects: Sequence[Reject] = (), label_set: Any = None) -> dict[str, Any]:
    """Predict ``messages`` with the model, score against their gold labels, write the files above.

    ``label_set``: the :class:`nerwheel.labels.LabelSet` gold was judged against
    (:func:`nerwheel.stages.evaluate.read_gold`; default: the model's classes), named in metrics.json.
    """
    import numpy as np

    from nerwheel.formats import write_rejects
    from nerwheel.tasks.classify.formats import write_messages
    from nerwheel.tasks.classify.metrics import classification_metrics
    from nerwheel.tasks.classify.predict import load_classifier

    messages, rejects = list(messages), list(rejects)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_rejects(rejects, out / REJECTS_FILE)
    unlabelled = sum(1 for m in messages if m.label is None)
    if not messages or unlabelled == len(messages):
        raise DataError(f"no labelled messages to evaluate ({len(messages)} read, {unlabelled} without a label, "
                         f"{len(rejects)} rejected, listed in {out / REJECTS_FILE}); evaluation needs gold labels")
    if unlabelled:
        raise DataError(f"{unlabelled} of {len(messages)} messages have no gold label; evaluate labelled data only")
    predictor = predictor or load_classifier(model)
    preds = predictor.predict(messages)
    labels = list(predictor.labels)
    outside = sorted({m.label for m in messages} - set(labels))
    if outside:
        raise DataError(f"gold labels {outside} are not classes of the model ({', '.join(labels)}); evaluate on data "
                         "with the model's label set")
    probs = np.array([[p.probabilities[lab] for lab in labels] for p in preds], dtype=np.float64)
    metrics = {"input": input_counts(messages, rejects),
               "label_set": (label_set or model_label_set(predictor, model)).to_dict(),
               **classification_metrics([m.label for m in messages], [p.label for p in preds], labels, probs)}
    metrics["model"] = str(model)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "report.txt").write_text(render_report(metrics), encoding="utf-8")
    errors = sorted(((m, p) for m, p in zip(messages, preds, strict=True) if p.label != m.label),
                    key=lambda mp: -mp[1].confidence)
    write_messages(({"id": m.id, "message": m.message, "context": m.context, "gold": m.label, "predicted": p.label,
                     "probability": p.confidence, "gold_probability": p.probabilities[m.label]}
                    for m, p in errors), out / "errors.jsonl")
    write_messages((prediction_row(m, p.label, p.probabilities) for m, p in zip(messages, preds, strict=True)),
                   out / "predictions.jsonl")
    if plots:
        from nerwheel.tasks.classify.plots import calibration_png, confusion_png

        confusion_png(labels, metrics["confusion"]["matrix"], out / "confusion.png")
        calibration_png(probs.max(axis=1), np.array([p.label == m.label for m, p in zip(messages, preds,
                                                                                          strict=True)]),
                        out / "calibration.png")
    return metrics
