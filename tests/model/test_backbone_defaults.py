"""What a user gets without a config: each backbone's measured schedule, said in the log and the card; continued runs
name their parent; the --test score is printed; a hub id without a network fails in one line."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from model_config import tiny_config
from model_synth import make_records
from nerwheel.formats import write_records
from nerwheel.model.backbones import Backbone
from nerwheel.model.card import ModelCard
from nerwheel.stages.train import resolve_schedule, train


def _backbone(name: str, pretrained: bool) -> Backbone:
    return Backbone(name=name, tokenizer=None, special_tokens={}, pad_id=0,  # type: ignore[arg-type]
                    info={"pretrained": pretrained})


@pytest.mark.parametrize(("name", "pretrained", "lr", "epochs"), [
    ("tiny", False, 1e-3, 12),
    ("e5-small", True, 2e-4, 6),
    ("bert-moe-qwen2", False, 1e-3, 12),  # on tiny and a Qwen2 built from config: trained from scratch like tiny
    ("bert-moe-qwen2", True, 5e-5, 3),
    ("/models/chinese-bert-wwm-ext", True, 5e-5, 3),
])
def test_schedule_without_config_is_the_backbones(tmp_path, name, pretrained, lr, epochs):
    cfg = tiny_config(tmp_path, "x")
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": None})})
    resolved, record = resolve_schedule(cfg, _backbone(name, pretrained))
    assert (resolved.training.learning_rate, resolved.training.epochs) == (lr, epochs)
    assert record["from_backbone_defaults"] == ["learning_rate", "epochs"]
    assert record["source"].startswith(f"{name} defaults for learning_rate and epochs (")


def test_a_pretrain_folder_gets_the_schedule_of_the_backbone_it_continued(tmp_path):
    """`nerwheel pretrain --model e5-small` writes a plain HF folder; without this it trained at 5e-5 for 3 epochs."""
    cfg = tiny_config(tmp_path, "x")
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": None})})
    adapted = _backbone("/runs/dapt-e5", True)
    adapted.info["adapted_from"] = "e5-small"
    resolved, record = resolve_schedule(cfg, adapted)
    assert (resolved.training.learning_rate, resolved.training.epochs) == (2e-4, 6)
    assert record["source"].startswith("e5-small defaults for learning_rate and epochs, /runs/dapt-e5 being "
                                       "e5-small after nerwheel pretrain (measured:")


def test_schedule_from_config_wins_key_by_key(tmp_path):
    cfg = tiny_config(tmp_path, "x", training={"learning_rate": 3e-4, "epochs": None})
    resolved, record = resolve_schedule(cfg, _backbone("e5-small", True))
    assert (resolved.training.learning_rate, resolved.training.epochs) == (3e-4, 6)
    assert record["from_backbone_defaults"] == ["epochs"]
    cfg = tiny_config(tmp_path, "x", training={"learning_rate": 3e-4, "epochs": 2})
    assert resolve_schedule(cfg, _backbone("e5-small", True))[1]["source"] == "config"


def test_defaults_are_logged_and_recorded_and_a_continued_run_names_its_parent(tmp_path, tiny_model, caplog):
    records = make_records(40, seed=12)
    cfg = tiny_config(tmp_path, "continued", model={"model_id": str(tiny_model)}, training={"epochs": 1})
    with caplog.at_level(logging.INFO, logger="nerwheel.stages.train"):
        out = train(cfg, train_records=records[:30], dev_records=records[30:])
    card, parent = ModelCard.read(out), ModelCard.read(tiny_model)
    assert card.parent == {"path": str(tiny_model), "name": parent.name, "backbone": "tiny",
                           "dev_strict_f1": parent.metrics["dev"]["overall"]["strict"]["f1"]}
    resolved = card.training["resolved"]
    assert resolved["learning_rate"] == 1e-3 and resolved["epochs"] == 1
    assert resolved["from_backbone_defaults"] == ["learning_rate"]
    text = caplog.text
    assert f"continuing training from {tiny_model}" in text
    assert "learning rate 0.001, at most 1 epochs: tiny defaults for learning_rate (measured:" in text
    assert "continued from" in (out / "README.md").read_text(encoding="utf-8")


def test_cli_train_prints_dev_and_test_scores(tmp_path):
    from nerwheel.cli import cli

    recs = make_records(60, seed=4)
    write_records(recs[:40], tmp_path / "train.jsonl")
    write_records(recs[40:], tmp_path / "test.jsonl")
    res = CliRunner().invoke(cli, [
        "train", "--train", str(tmp_path / "train.jsonl"), "--test", str(tmp_path / "test.jsonl"),
        "--output-dir", str(tmp_path / "runs"), "--epochs", "1",
        "--set", "model.tiny.hidden_size=32", "--set", "model.tiny.num_layers=1", "--set", "model.tiny.num_heads=2",
        "--set", "training.sequence_length=32", "--set", "training.stride=8", "--set", "output.plots=false",
    ], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    card = ModelCard.read(Path(res.stdout.strip().splitlines()[-1]))
    test_f1 = card.metrics["test"]["overall"]["strict"]["f1"]
    assert f"test strict F1 {test_f1:.4f}" in res.stderr
    assert "learning rate 0.001, at most 1 epochs (backbone defaults)" in res.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_id_without_network_fails_in_one_line_naming_the_offline_choices(tmp_path):
    write_records(make_records(10, seed=1), tmp_path / "train.jsonl")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("nerwheel")), "train", "--model-id", "hfl/chinese-bert-wwm-ext", "--train",
         str(tmp_path / "train.jsonl"), "--output-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "hfl/chinese-bert-wwm-ext: not a local folder and not in the Hugging Face cache" in errors[0]
    assert "offline choices: e5-small" in errors[0] and "a local Hugging Face model folder" in errors[0]
