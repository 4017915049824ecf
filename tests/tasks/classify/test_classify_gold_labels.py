"""Issue 17: the gate and the classifier pipeline's evaluate step judge gold classes as ``nerwheel evaluate``
does (:func:`nerwheel.stages.evaluate.read_gold`): a class no scored model knows is a counted reject with its
line, an integer label indexes the model's classes, and the label set used is reported."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.tasks.classify.card import ClassifierCard


def _gold(tmp_path: Path, eval_file: Path, classes: list[str]) -> Path:
    rows = [json.loads(x) for x in eval_file.read_text(encoding="utf-8").splitlines()]
    rows[3] = {**rows[3], "label": "spam"}  # line 4: not a class of the model
    rows[5] = {**rows[5], "label": classes.index(rows[5]["label"])}  # line 6: an index into the model's classes
    gold = tmp_path / "gold.jsonl"  # no labels.json beside it
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return gold


def test_gate_rejects_gold_classes_no_model_knows(tmp_path: Path, tiny_classifier: Path, message_files):
    classes = list(ClassifierCard.read(tiny_classifier).labels)
    gold = _gold(tmp_path, message_files["eval"], classes)
    out = tmp_path / "decision.json"
    res = CliRunner().invoke(cli, ["gate", "--candidate", str(tiny_classifier), "--data", str(gold),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    dec = json.loads(out.read_text(encoding="utf-8"))
    assert dec["input"] == {"read": 40, "accepted": 39, "rejected": 1}
    assert dec["label_set"] == {"source": f"the model ({tiny_classifier})", "labels": sorted(classes)}
    assert dec["candidate"]["input"] == dec["input"] and dec["candidate"]["n_records"] == 39
    (reject,) = [json.loads(x) for x in (tmp_path / "gate-eval" / "candidate" / "rejects.jsonl").read_text(
        encoding="utf-8").splitlines()]
    assert (reject["file"], reject["line"], reject["kind"]) == (str(gold), 4, "unknown-label")
    assert "unknown label 'spam'" in reject["reason"]
    assert f"labels checked (3, from the model ({tiny_classifier}))" in res.stderr


def test_classify_evaluate_step_rejects_gold_classes_no_model_knows(tmp_path: Path, tiny_classifier: Path,
                                                                    message_files):
    from nerwheel.tasks.classify import steps

    classes = list(ClassifierCard.read(tiny_classifier).labels)
    gold = _gold(tmp_path, message_files["eval"], classes)
    steps.evaluate(model_path=str(tiny_classifier), eval_uri=str(gold), production_model_uri=str(tiny_classifier),
                   repository_uri="", model_name="classifier", production_from_repository=False,
                   scores_path=str(tmp_path / "scores"), production_scores_path=str(tmp_path / "production"),
                   report_path=str(tmp_path / "report.html"))
    source = f"the model ({tiny_classifier}) and the model ({tiny_classifier})"
    candidate = json.loads((tmp_path / "scores").read_text(encoding="utf-8"))
    production = json.loads((tmp_path / "production").read_text(encoding="utf-8"))["metrics"]
    for metrics in (candidate, production):
        assert metrics["input"] == {"read": 40, "accepted": 39, "rejected": 1} and metrics["n_records"] == 39
        assert metrics["label_set"] == {"source": source, "labels": sorted(classes)}
    assert "labels checked (3, from the model" in (tmp_path / "report.html").read_text(encoding="utf-8")
