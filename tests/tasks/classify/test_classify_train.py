"""Training the classifier: files, checkpoints by steps, best by macro-F1, imbalance options, trackers, and the
users' command-line flow (train, then predict) with bad input that never crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from classify_messages import tiny_yaml

from nerwheel.cli import cli
from nerwheel.tasks.classify.card import ClassifierCard
from nerwheel.tasks.classify.config import validate


def test_trained_directory_is_a_standard_hf_classifier_with_card_and_history(tiny_classifier: Path):
    from transformers import AutoModelForSequenceClassification

    names = {p.name for p in tiny_classifier.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "labels.json", "nerwheel.json", "metrics.jsonl",
            "training_curve.png", "train_config.yaml", "rejects.jsonl", "checkpoints"} <= names
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    assert model.config.id2label == {0: "low_value", 1: "normal", 2: "interrupt"}
    card = ClassifierCard.read(tiny_classifier)
    assert card.labels == ["low_value", "normal", "interrupt"] and card.task == "classify"
    d = card.data["train_file"]
    assert d["read"] == d["accepted"] + d["rejected"] == 160
    epochs = [json.loads(x) for x in (tiny_classifier / "metrics.jsonl").read_text().splitlines()]
    steps = [json.loads(x) for x in (tiny_classifier / "steps.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, 13)) and epochs[0]["step"] == 18  # 144 messages / 8
    # logging.steps=5: a loss line every 5 optimiser steps; logging.eval_steps=10: a dev evaluation every 10
    assert [r["step"] for r in steps if "train_loss" in r][:3] == [5, 10, 15]
    evals = [r for r in steps if "dev" in r] + epochs
    assert [r["step"] for r in steps if "dev" in r][:3] == [10, 20, 30]
    best = max(evals, key=lambda r: (r["dev"]["macro_f1"], -r["step"]))  # the first evaluation at the top score
    assert card.metrics["best_step"] == best["step"]
    assert card.metrics["dev"]["overall"]["macro"]["f1"] == pytest.approx(best["dev"]["macro_f1"])
    assert card.metrics["dev"]["overall"]["macro"]["f1"] > 0.8  # the classes are easy: the model learned them
    # save_strategy=steps, save_steps=10, save_total_limit=2: two step checkpoints, the best among them
    kept = sorted(p.name for p in (tiny_classifier / "checkpoints").iterdir())
    assert len(kept) == 2 and all(k.startswith("step-") for k in kept)
    assert f"step-{best['step']}" in kept


@pytest.mark.parametrize("options", [{"class_weights": "balanced"}, {"sampler": "balanced"}])
def test_imbalance_options_train(tmp_path: Path, message_files, options):
    raw = tiny_yaml(epochs=1, **options)
    raw["data"] = {"train_file": str(message_files["train"])}
    raw["output"].update(output_dir=str(tmp_path), model_name="m", save_strategy="no")
    raw["output"].pop("save_steps")
    from nerwheel.tasks.classify.train import train

    card = ClassifierCard.read(train(validate(raw)))
    weights = card.training["class_weights"]
    if options.get("class_weights"):
        counts = card.data["train_class_counts"]
        n = sum(counts.values())
        assert weights == pytest.approx([n / (3 * counts[c]) for c in card.labels])
    else:
        assert weights is None and card.training["training"]["sampler"] == "balanced"
    assert not (tmp_path / "m" / "checkpoints").exists()


def test_num_labels_is_checked_against_the_label_set(tmp_path: Path, message_files):
    from nerwheel.configfile import ConfigError
    from nerwheel.tasks.classify.train import train

    raw = tiny_yaml(epochs=1)
    raw["model"]["num_labels"] = 4
    raw["data"] = {"train_file": str(message_files["train"])}
    raw["output"].update(output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="num_labels=4 does not match the data: it has 3 classes"):
        train(validate(raw))


@pytest.mark.parametrize("flags, produced", [
    (["--report-to", "tensorboard"], "tensorboard"),
    (["--wandb", "--wandb-project", "chat"], "wandb"),
    (["--report-to", "mlflow"], "mlruns"),
])
def test_report_to_each_tracker_offline(tmp_path: Path, message_files, monkeypatch, flags, produced):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tmp_path / "c.yaml"
    raw = tiny_yaml(epochs=1)
    raw["output"].update(save_strategy="no")
    raw["output"].pop("save_steps")
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    res = CliRunner().invoke(cli, ["train", "--task", "classify", "--data-path", str(message_files["train"]),
                                   "--config", str(cfg), "--output-dir", str(tmp_path / "D"), *flags])
    assert res.exit_code == 0, res.output
    run = Path(res.stdout.strip().splitlines()[-1])
    assert (run / produced).is_dir() and any((run / produced).rglob("*"))
    if produced == "wandb":
        assert any("offline-run" in p.name for p in (run / "wandb").iterdir())


def test_users_flow_train_then_predict_in_input_order(tmp_path: Path, message_files):
    """`nerwheel train --task classify --data-path F --config C --output-dir D`, then predict on a file."""
    cfg = tmp_path / "c.yaml"
    raw = tiny_yaml(epochs=2)
    raw["output"].update(timestamp=True)
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--task", "classify", "--data-path", str(message_files["train"]),
                              "--config", str(cfg), "--output-dir", str(tmp_path / "D"), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    run = Path(res.stdout.strip().splitlines()[-1])
    assert run.parent == tmp_path / "D" and run.name.startswith("classifier-")
    assert "read 160 = accepted 160 + rejected 0" in res.stderr
    live = tmp_path / "live.jsonl"
    live.write_text('{"id": "x", "message": "好的", "context": "你好"}\n{"id": "y", "message": ""}\nnot json\n'
                    '{"id": "z", "message": "停停停，换个问题"}\n', encoding="utf-8")
    out = tmp_path / "P.jsonl"
    res = runner.invoke(cli, ["predict", "--task", "classify", "--model", str(run), str(live), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["x", "z"] and rows[0]["context"] == "你好"
    for r in rows:
        assert r["label"] in ("low_value", "normal", "interrupt")
        assert set(r["probabilities"]) == {"low_value", "normal", "interrupt"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    rejects = [json.loads(x) for x in (tmp_path / "P.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["kind"]) for r in rejects] == [(2, "empty"), (3, "json")]
    # the task comes from the model's card when --task is not given
    res = runner.invoke(cli, ["predict", "--model", str(run), str(live)])
    assert res.exit_code == 0 and [json.loads(x)["id"] for x in res.stdout.splitlines()] == ["x", "z"]


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\xff\xfe" * 50, b"[\n{\"message\": 1}\n]\n"])
def test_bad_training_input_fails_with_a_message_never_a_traceback(tmp_path: Path, content: bytes):
    data = tmp_path / "bad.json"
    data.write_bytes(content)
    res = CliRunner().invoke(cli, ["train", "--task", "classify", "--data-path", str(data), "--output-dir",
                                   str(tmp_path / "D"), "--epochs", "1"])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Error:" in res.output and "Traceback" not in res.output


def test_evaluate_writes_metrics_errors_and_plots(tmp_path: Path, tiny_classifier: Path, message_files):
    res = CliRunner().invoke(cli, ["evaluate", "--model", str(tiny_classifier), "--data", str(message_files["eval"]),
                                   "--out", str(tmp_path / "E")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "E"
    assert {"metrics.json", "report.txt", "errors.jsonl", "predictions.jsonl", "rejects.jsonl", "confusion.png",
            "calibration.png"} <= {p.name for p in out.iterdir()}
    m = json.loads((out / "metrics.json").read_text())
    assert m["input"] == {"read": 40, "accepted": 40, "rejected": 0}
    assert set(m["per_class"]) == {"low_value", "normal", "interrupt"} and "ece" in m["overall"]
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    matrix = m["confusion"]["matrix"]
    assert len(errors) == 40 - sum(matrix[i][i] for i in range(3))
    for e in errors:
        assert {"message", "context", "gold", "predicted", "probability"} <= set(e) and e["gold"] != e["predicted"]
    # unlabelled data cannot be evaluated: a non-zero exit with the reason
    live = tmp_path / "live.txt"
    live.write_text("好的\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["evaluate", "--model", str(tiny_classifier), "--data", str(live), "--out",
                                   str(tmp_path / "E2")])
    assert res.exit_code == 1 and "no labelled messages" in res.output


def test_evaluate_rejects_gold_labels_outside_the_models_classes(tmp_path: Path, tiny_classifier: Path,
                                                                message_files):
    """Issue 17: gold read against the model's classes (no labels.json needed): an integer label is an index into
    them, a class the model does not know is a counted reject with its line; the summary names the label set."""
    rows = [json.loads(x) for x in message_files["eval"].read_text(encoding="utf-8").splitlines()]
    classes = ClassifierCard.read(tiny_classifier).labels
    rows[3] = {**rows[3], "label": "spam"}  # line 4: not a class of the model
    rows[5] = {**rows[5], "label": classes.index(rows[5]["label"])}  # line 6: an index into the model's classes
    gold = tmp_path / "gold.jsonl"  # no labels.json beside it
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    res = CliRunner().invoke(cli, ["evaluate", "--model", str(tiny_classifier), "--data", str(gold),
                                   "--out", str(tmp_path / "E")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "E" / "metrics.json").read_text())
    assert m["input"] == {"read": 40, "accepted": 39, "rejected": 1} and m["n_records"] == 39
    (reject,) = [json.loads(x) for x in (tmp_path / "E" / "rejects.jsonl").read_text().splitlines()]
    assert (reject["file"], reject["line"], reject["kind"]) == (str(gold), 4, "unknown-label")
    assert "unknown label 'spam'" in reject["reason"]
    assert m["label_set"] == {"source": f"the model ({tiny_classifier})", "labels": sorted(classes)}
    line = f"labels checked (3, from the model ({tiny_classifier})): {', '.join(sorted(classes))}"
    assert line in (tmp_path / "E" / "report.txt").read_text() and line in res.stderr


def test_any_hugging_face_directory_is_a_backbone(tmp_path: Path, message_files, tiny_classifier: Path):
    """model.name: a Hugging Face model directory (here the trained tiny classifier: its encoder, a fresh head)."""
    from nerwheel.tasks.classify.train import train

    raw = tiny_yaml(epochs=1)
    raw["model"] = {"name": str(tiny_classifier), "max_length": 32}
    raw["data"] = {"train_file": str(message_files["train"])}
    raw["output"].update(output_dir=str(tmp_path), model_name="from-dir", save_strategy="no")
    raw["output"].pop("save_steps")
    card = ClassifierCard.read(train(validate(raw)))
    assert card.backbone == str(tiny_classifier) and card.labels == ["low_value", "normal", "interrupt"]


def test_create_config_for_the_classifier_loads_back(tmp_path: Path):
    res = CliRunner().invoke(cli, ["train", "--task", "classify", "--create-config", str(tmp_path / "c.yaml")])
    assert res.exit_code == 0 and "--task classify" in res.output
    assert "class_weights" in (tmp_path / "c.yaml").read_text()
    from nerwheel.tasks.classify.config import ClassifyConfig, load_config

    assert load_config(tmp_path / "c.yaml") == ClassifyConfig()
