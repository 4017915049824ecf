"""Classifier distillation: the KL term on class probabilities, students that learn the teacher, the CLI on the
bundled sample, and the rejects of the traffic file.

The teacher is the session's tiny classifier (conftest.py); the traffic is messages the test writes without
labels (or the bundled sample's traffic.txt), so what a student learns comes from the teacher.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from classify_messages import make_rows
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.errors import ConfigError
from nerwheel.model.distill import DistillLoss, load_distill_config
from nerwheel.stages.distill import distill
from nerwheel.tasks.classify.formats import read_messages
from nerwheel.tasks.classify.runtime import TorchClassifier
from nerwheel.tasks.classify.sample import sample_path
from nerwheel.tasks.classify.train import CrossEntropy

STUDENT_TINY = "tiny:hidden_size=32,num_layers=1,num_heads=2,intermediate_size=64"


def _kl(teacher: np.ndarray, student: np.ndarray, t: float) -> float:
    """The reference: ``T**2 * mean_rows KL(softmax(teacher/T) || softmax(student/T))`` in float64 numpy."""
    def log_softmax(x):
        z = x / t - (x / t).max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    p, q = log_softmax(teacher.astype(np.float64)), log_softmax(student.astype(np.float64))
    return float((np.exp(p) * (p - q)).sum(-1).mean() * t * t)


def test_kl_on_class_probabilities_vanishes_on_a_match_and_is_scaled_by_t_squared():
    g = torch.Generator().manual_seed(3)
    teacher = torch.randn(6, 3, generator=g) * 3
    student = torch.randn(6, 3, generator=g) * 3
    mask = torch.ones(6, dtype=torch.bool)
    for t in (1.0, 2.0, 5.0):
        loss = DistillLoss(t)
        # the teacher's row may be logits or log-probabilities (ONNX exports give probabilities): same softmax
        assert loss.kl(teacher.clone(), torch.log_softmax(teacher, -1), mask).item() == pytest.approx(0.0, abs=1e-6)
        assert loss.kl(student, teacher, mask).item() == pytest.approx(_kl(teacher.numpy(), student.numpy(), t),
                                                                        rel=1e-5)
    # T**2 keeps the gradient's size as T grows (without it, it would shrink by T**2: 4x from T=4 to T=8)
    near, sizes = teacher * 0.1 + 0.05 * torch.randn(6, 3, generator=g), []
    for t in (4.0, 8.0):
        s = (teacher * 0.1).clone().requires_grad_(True)
        DistillLoss(t).kl(s, near, mask).backward()
        sizes.append(float(s.grad.norm()))
    assert sizes[1] == pytest.approx(sizes[0], rel=0.1) and sizes[0] > 0
    # through the classifier's own hard loss: hard * CE(labels) + kl * T**2 KL, each part reported
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = DistillLoss(2.0, kl_weight=0.5, hard_weight=2.0)
    total = loss(CrossEntropy(), student, {"labels": labels, "soft": teacher, "soft_mask": mask})
    ce = torch.nn.functional.cross_entropy(student, labels).item()
    assert loss.last["hard"] == pytest.approx(ce, rel=1e-5)
    assert total.item() == pytest.approx(2.0 * ce + 0.5 * _kl(teacher.numpy(), student.numpy(), 2.0), rel=1e-5)


@pytest.fixture(scope="module")
def traffic_csv(tmp_path_factory):
    """Unlabelled (context, message) pairs as CSV with a header: what live traffic looks like to the reader."""
    path = tmp_path_factory.mktemp("traffic") / "traffic.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "context", "message"])
        for i, r in enumerate(make_rows(500, seed=17)):
            w.writerow([f"t{i}", r["context"], r["message"]])
    return path


def _agreement(a, b) -> float:
    return float(np.mean([x.label == y.label for x, y in zip(a, b, strict=True)]))


def test_a_distilled_student_agrees_with_the_teacher_far_beyond_an_untrained_one(tiny_classifier, traffic_csv,
                                                                                  message_files, tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification

    from nerwheel.model.students import parse_student
    from nerwheel.tasks.classify.card import ClassifierCard
    from nerwheel.tasks.classify.distill import build_student
    from nerwheel.tasks.classify.encoding import PairEncoder

    config = load_distill_config(overrides={
        "teacher": str(tiny_classifier), "texts_file": str(traffic_csv), "student": STUDENT_TINY,
        "out": str(tmp_path / "s"), "distill": {"dev_ratio": 0.2},
        "training": {"epochs": 6, "batch_size": 16, "learning_rate": 3e-3, "threads": 1}})  # the teacher's rate
    result = distill(config)
    s = result.summary
    assert s["task"] == "classify" and s["heldout_texts"] == 100 and s["dev"]["kind"] == "agreement"
    assert s["agreement_with_teacher"]["accuracy"] >= 0.9, s
    card = json.loads((result.model_dir / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["task"] == "classify" and card["distillation"]["student"] == STUDENT_TINY
    assert card["data"]["texts_file"] == {"path": str(traffic_csv), "read": 500, "accepted": 500, "rejected": 0}
    assert card["data"]["gold_texts"] == 0 and card["data"]["train_texts"] == 400
    assert set(card["distillation"]["last_batch_losses"]) == {"hard", "kl"}

    # fresh messages (the eval file): the student answers what the teacher answers; an untrained one does not
    messages = read_messages(message_files["eval"]).records
    teacher = TorchClassifier.from_dir(tiny_classifier).predict(messages)
    student = TorchClassifier.from_dir(result.model_dir).predict(messages)
    t_card = ClassifierCard.read(tiny_classifier)
    fresh = build_student(parse_student(STUDENT_TINY), AutoModelForSequenceClassification.from_pretrained(
        tiny_classifier), Tokenizer.from_file(str(tiny_classifier / "tokenizer.json")), t_card.pad_id,
        t_card.labelset, [x for m in messages for x in (m.context, m.message) if x], max_length=t_card.max_length)
    untrained = TorchClassifier(fresh.model.eval(), t_card, PairEncoder(fresh.tokenizer, max_length=t_card.max_length,
                                                                        pad_id=fresh.pad_id)).predict(messages)
    distilled, baseline = _agreement(teacher, student), _agreement(teacher, untrained)
    assert distilled >= 0.9 and distilled - baseline >= 0.25, (distilled, baseline)


def test_a_shallow_student_is_the_teachers_first_layers_with_a_pruned_vocabulary(tiny_classifier, traffic_csv,
                                                                                 tmp_path):
    """The 1-layer teacher cut to shallow:1 and (learning rates ~0) left untrained answers exactly as the teacher on
    the traffic: the cut keeps the head and the pruned vocabulary cuts every traffic text as the teacher's did."""
    config = load_distill_config(overrides={
        "teacher": str(tiny_classifier), "texts_file": str(traffic_csv), "student": "shallow:1",
        "out": str(tmp_path / "s"), "training": {"epochs": 1, "threads": 1, "learning_rate": 1e-12},
        "optimizer": {"head_learning_rate": 1e-12}})
    result = distill(config)
    card = json.loads((result.model_dir / "nerwheel.json").read_text(encoding="utf-8"))
    hf = json.loads((result.model_dir / "config.json").read_text(encoding="utf-8"))
    assert card["training"]["layers"] == 1 and hf["num_hidden_layers"] == 1
    assert hf["vocab_size"] == card["training"]["vocab_size"] < card["training"]["teacher_vocab_size"]
    pairs = [(m.context, m.message) for m in read_messages(traffic_csv).records]
    teacher = TorchClassifier.from_dir(tiny_classifier).probabilities(pairs)
    np.testing.assert_allclose(TorchClassifier.from_dir(result.model_dir).probabilities(pairs), teacher, atol=1e-5)
    assert result.summary["agreement_with_teacher"]["accuracy"] == 1.0
    with pytest.raises(ConfigError, match="choose K from 1 to 1"):
        distill(config.model_copy(update={"student": "shallow:2", "out": str(tmp_path / "t")}))


def test_distill_cli_on_the_bundled_sample_writes_a_classifier_evaluate_and_export_take(tiny_classifier, tmp_path):
    """Teacher -> student over the sample's traffic.txt (plain lines), gold dev = the sample's eval set."""
    out, runner = tmp_path / "student", CliRunner()
    res = runner.invoke(cli, ["distill", "--teacher", str(tiny_classifier), "--texts", str(sample_path("texts")),
                              "--student", STUDENT_TINY, "--out", str(out), "--dev", str(sample_path("eval")),
                              "--epochs", "3", "--learning-rate", "3e-3", "--set", "training.threads=1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(out)
    assert "agreement with the teacher on" in res.stderr and "dev (gold): student macro-F1" in res.stderr
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    d = card["distillation"]
    assert d["dev"]["kind"] == "gold" and 0.0 <= d["dev"]["teacher"]["macro_f1"] <= 1.0
    read = card["data"]["texts_file"]
    assert read["read"] == read["accepted"] + read["rejected"] == 240
    assert card["data"]["dev_file"]["accepted"] == 37

    ev = runner.invoke(cli, ["evaluate", "--task", "classify", "--model", str(out), "--data",
                             str(sample_path("eval")), "--out", str(tmp_path / "ev"), "--runtime", "torch"])
    assert ev.exit_code == 0, ev.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["overall"]["macro"]["f1"] == pytest.approx(d["dev"]["student"]["macro_f1"], abs=1e-6)
    ex = runner.invoke(cli, ["export", "--model", str(out), "--out", str(tmp_path / "onnx")])
    assert ex.exit_code == 0, ex.output
    pr = runner.invoke(cli, ["predict", "--task", "classify", "--model", str(tmp_path / "onnx"),
                             str(sample_path("eval")), "--out", str(tmp_path / "pred.jsonl")])
    assert pr.exit_code == 0, pr.output
    rows = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 37 and {r["label"] for r in rows} <= set(card["labels"])


def test_traffic_rejects_are_counted_and_written_with_their_lines(tiny_classifier, tmp_path):
    good = [{"id": f"m{i}", "message": r["message"], "context": r["context"]} for i, r in
            enumerate(make_rows(60, seed=5))]
    lines = [json.dumps(x, ensure_ascii=False) for x in good]
    bad = ['{"id": "b1", "message": ', json.dumps({"id": "b2", "message": "  "}),
           json.dumps({"id": "b3", "message": "好的", "label": "spam"}),
           json.dumps({"id": "m0", "message": "duplicate id"}), json.dumps({"id": "b5", "text": 5})]
    for k, b in enumerate(bad):  # spread over the file: lines 11, 21, 31, 41, 51
        lines.insert(10 * (k + 1), b)
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "s"
    config = load_distill_config(overrides={"teacher": str(tiny_classifier), "texts_file": str(traffic),
                                            "student": STUDENT_TINY, "out": str(out),
                                            "training": {"epochs": 1, "threads": 1}})
    distill(config)
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["data"]["texts_file"] | {"path": None} == {"path": None, "read": 65, "accepted": 60, "rejected": 5}
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["kind"]) for r in rejects] == [(11, "json"), (21, "empty"), (31, "unknown-label"),
                                                         (41, "duplicate-id"), (51, "schema")]
    assert all(r["file"] == str(traffic) for r in rejects)
    again = CliRunner().invoke(cli, ["distill", "--teacher", str(tiny_classifier), "--texts", str(traffic),
                                     "--out", str(out)])
    assert again.exit_code == 1 and "not empty" in again.stderr  # a used folder is refused before any work


def test_the_pipeline_distil_step_takes_a_classifier_and_its_merged_messages(tiny_classifier, message_files,
                                                                            tmp_path):
    """The DAG's shared distill step on the classifier's artifacts: the merged messages (labelled: gold) in."""
    from nerwheel.components.steps.distill import run
    from nerwheel.tasks.classify.formats import write_messages

    merged = tmp_path / "merged"
    merged.mkdir()
    write_messages(read_messages(message_files["train"]).records, merged / "records.jsonl")
    out = tmp_path / "student" / "distilled"
    smaller = "tiny:hidden_size=16,num_layers=1,num_heads=2,intermediate_size=32"
    scalars = run(model_path=str(tiny_classifier), train_path=str(merged), student=smaller,
                  overrides="training.epochs=2; training.threads=1; distill.dev_ratio=0.2", student_path=str(out),
                  report_path=str(tmp_path / "student.html"))
    assert scalars["distilled"] == 1.0 and scalars["student_parameters"] < scalars["teacher_parameters"]
    assert 0.0 <= scalars["agreement_accuracy"] <= 1.0
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["task"] == "classify" and card["distillation"]["student"] == smaller
    assert card["data"]["texts_file"]["accepted"] == card["data"]["texts_file"]["read"] == 160
    assert card["data"]["gold_texts"] == card["data"]["train_texts"] > 0  # the merged labels count as gold
    assert TorchClassifier.from_dir(out).predict(read_messages(message_files["eval"]).records)
