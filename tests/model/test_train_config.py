"""Training config: YAML and INI as users write them, overrides, the commented default, bad keys named."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.model.config import ConfigError, TrainConfig, default_yaml, load_config, parse_overrides

INI = """\
[model]
model_id = hfl/chinese-bert-wwm-ext

[data]
train_file = data/train.txt
test_file = data/test.txt

[training]
max_epochs = 20
batch_size = 16
learning_rate = 3e-5
sequence_length = 256

[output]
output_dir = ./runs
model_name = address_ner

[model.lora]
enabled = true
target_modules = [query, value]
"""

YAML = """\
training:
  epochs: 5
  batch_size: 8
  learning_rate: 2.0e-5
  warmup_ratio: 0.06
  gradient_accumulation_steps: 4
  fp16: true
optimizer:
  weight_decay: 0.05
  adam_epsilon: 1.0e-6
scheduler:
  type: cosine
early_stopping:
  patience: 2
  min_delta: 0.0005
output:
  save_total_limit: 3
"""


def test_ini_keys_users_write(tmp_path):
    path = tmp_path / "train.ini"
    path.write_text(INI, encoding="utf-8")
    c = load_config(path)
    assert c.model.model_id == "hfl/chinese-bert-wwm-ext"
    assert (c.data.train_file, c.data.test_file) == ("data/train.txt", "data/test.txt")
    assert (c.training.epochs, c.training.batch_size, c.training.learning_rate, c.training.sequence_length) == (
        20, 16, 3e-5, 256)
    assert c.model.lora.enabled and c.model.lora.target_modules == ["query", "value"]
    assert c.run_dir(datetime(2024, 5, 6, 7, 8, 9)) == Path("./runs/address_ner-20240506-070809")


def test_yaml_sections_users_write(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(YAML, encoding="utf-8")
    c = load_config(path)
    assert (c.training.epochs, c.training.gradient_accumulation_steps, c.training.fp16) == (5, 4, True)
    assert (c.optimizer.weight_decay, c.optimizer.adam_epsilon, c.scheduler.type) == (0.05, 1e-6, "cosine")
    assert (c.early_stopping.patience, c.early_stopping.min_delta, c.output.save_total_limit) == (2, 0.0005, 3)


def test_default_yaml_round_trips_and_is_commented():
    text = default_yaml()
    assert TrainConfig.model_validate(yaml.safe_load(text)) == TrainConfig()
    assert "# maximum epochs" in text and "early_stopping:" in text


def test_dump_round_trips(tmp_path):
    c = load_config(None, overrides={"training": {"epochs": 3}, "model": {"head": "softmax"}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(c.model_dump(mode="json")), encoding="utf-8")
    assert load_config(path) == c


def test_overrides_beat_the_file(tmp_path):
    path = tmp_path / "train.ini"
    path.write_text(INI, encoding="utf-8")
    c = load_config(path, overrides=parse_overrides(["training.batch_size=4", "model.head=softmax",
                                                      "training.fp16=true"]))
    assert (c.training.batch_size, c.model.head, c.training.fp16, c.training.epochs) == (4, "softmax", True, 20)


@pytest.mark.parametrize("text,suffix,named,allowed", [
    ("training:\n  epoch: 3\n", ".yaml", "training.epoch", "max_epochs"),
    ("optimizer:\n  lr: 0.1\n", ".yaml", "optimizer.lr", "weight_decay"),
    ("modle:\n  model_id: tiny\n", ".yaml", "modle", "early_stopping"),
    ("[training]\nmax_epoch = 3\n", ".ini", "training.max_epoch", "max_epochs"),
    ("[model.lora]\nrank = 4\n", ".ini", "model.lora.rank", "target_modules"),
])
def test_unknown_keys_are_named_with_the_allowed_ones(tmp_path, text, suffix, named, allowed):
    path = tmp_path / f"c{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert f"unknown key {named!r}" in msg and allowed in msg and str(path) in msg


@pytest.mark.parametrize("overrides,fragment", [
    ({"training": {"batch_size": "many"}}, "training.batch_size"),
    ({"training": {"fp16": True, "bf16": True}}, "choose one"),
    ({"model": {"head": "mlp"}}, "model.head"),
    ({"model": {"tiny": {"hidden_size": 10, "num_heads": 3}}}, "model.tiny.num_heads=3 must divide"),
    ({"training": {"sequence_length": 24}}, "training.stride=32 must be smaller than training.sequence_length=24 "
                                            "minus the 2 special tokens"),
    ({"training": {"sequence_length": 24, "stride": 22}}, "lower training.stride .* raise training.sequence_length"),
])
def test_bad_values_are_explained(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, overrides=overrides)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["training.epochs"])


def test_cli_create_config_and_bad_key(tmp_path):
    path = tmp_path / "default.yaml"
    res = CliRunner().invoke(cli, ["train", "--create-config", str(path)])
    assert res.exit_code == 0, res.output
    assert load_config(path) == TrainConfig()
    res = CliRunner().invoke(cli, ["train", "--set", "training.epoc=1"])
    assert res.exit_code == 1 and "unknown key 'training.epoc'" in res.output
    res = CliRunner().invoke(cli, ["train", "--epochs", "1"])
    assert res.exit_code == 1 and "data.train_file" in res.output


def test_window_geometry_boundary():
    """stride must stay below sequence_length minus [CLS]/[SEP]: 21 of 22 content tokens is the largest."""
    assert load_config(None, overrides={"training": {"sequence_length": 24, "stride": 21}}).training.stride == 21
    with pytest.raises(ConfigError, match="training.stride=22"):
        load_config(None, overrides={"training": {"sequence_length": 24, "stride": 22}})


def test_cli_refuses_bad_window_geometry_before_reading_data(tmp_path, monkeypatch):
    import nerwheel.formats

    def no_reading(*args, **kwargs):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(nerwheel.formats, "read_records", no_reading)
    train_file = tmp_path / "train.jsonl"
    train_file.write_text('{"text": "杭州市", "entities": [{"start": 0, "end": 3, "label": "city"}]}\n',
                          encoding="utf-8")
    res = CliRunner().invoke(cli, ["train", "--sequence-length", "24", "--train", str(train_file),
                                   "--output-dir", str(tmp_path / "runs")])
    assert res.exit_code == 1, res.output
    assert "training.stride=32" in res.output and "training.sequence_length=24" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "runs").exists()
