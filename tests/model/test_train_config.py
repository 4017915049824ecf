"""Training config: YAML and INI as users write them, overrides, the commented default, bad keys named."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.configfile import dump
from nerwheel.model.config import (ConfigError, TrainConfig, check_num_labels, default_yaml, learning_rate_warning,
                                   load_config, parse_overrides, validate)

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


# -- the YAML users bring from a Hugging Face setup ---------------------------------------------------------
HF_YAML = """\
model:
  name: tiny
  num_labels: 7
  max_length: 64
training:
  epochs: 3
  batch_size: 16
  learning_rate: 1.0e-3
scheduler:
  type: linear
  num_warmup_steps: 10
logging:
  steps: 5
  eval_steps: 20
output:
  output_dir: ./runs
  save_strategy: steps
  save_steps: 20
  save_total_limit: 2
"""


def test_hugging_face_yaml_is_read_as_ours(tmp_path):
    path = tmp_path / "hf.yaml"
    path.write_text(HF_YAML, encoding="utf-8")
    c = load_config(path)
    assert (c.model.model_id, c.model.num_labels, c.training.sequence_length) == ("tiny", 7, 64)
    assert (c.scheduler.warmup_steps, c.logging.steps, c.logging.eval_steps) == (10, 5, 20)
    assert (c.output.save_strategy, c.output.save_steps, c.output.save_total_limit) == ("steps", 20, 2)


def test_command_line_beats_a_renamed_file_key(tmp_path):
    """model.max_length in the file is training.sequence_length; --sequence-length on top of it wins."""
    path = tmp_path / "hf.yaml"
    path.write_text(HF_YAML, encoding="utf-8")
    c = load_config(path, overrides={"training": {"sequence_length": 32, "stride": 8}})
    assert c.training.sequence_length == 32
    assert load_config(None, overrides=parse_overrides(["model.name=e5-small"])).model.model_id == "e5-small"


def test_one_setting_under_two_names_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  max_length: 64\ntraining:\n  sequence_length: 128\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert f"{path} line 2: model.max_length=64 and training.sequence_length=128 are the same setting" in msg
    assert "keep one" in msg


def test_a_bad_value_under_a_foreign_name_is_named_as_written(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  max_length: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml line 2: model.max_length \(read as training.sequence_length\): "
                                          "Input should be greater than or equal to 8"):
        load_config(path)


@pytest.mark.parametrize("output,expected", [
    ({"save_steps": 50}, ("steps", 50)),  # save_steps alone means step-based saving, as in Hugging Face
    ({"save_strategy": "no"}, ("no", None)),
    ({"save_strategy": "best"}, ("best", None)),
])
def test_save_strategies(output, expected):
    c = load_config(None, overrides={"output": output})
    assert (c.output.save_strategy, c.output.save_steps) == expected


@pytest.mark.parametrize("output,fragment", [
    ({"save_strategy": "steps"}, "output.save_steps is not set; add output.save_steps"),
    ({"save_strategy": "epoch", "save_steps": 5}, "output.save_steps=5 is only used with output.save_strategy: steps"),
    ({"save_strategy": "sometimes"}, "output.save_strategy: Input should be 'epoch', 'steps', 'best' or 'no'"),
])
def test_bad_save_strategies_are_explained(output, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, overrides={"output": output})


# -- unknown keys: did you mean, one line each, named where they were written --------------------------------
def test_unknown_keys_one_line_each_with_line_numbers_and_near_misses(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epoch: 3\n  batch_size: 8\n  weight_decay: 0.1\nloging:\n  steps: 5\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path} line 2: unknown key 'training.epoch'; did you mean 'training.epochs'?")
    assert lines[1].startswith(f"{path} line 4: unknown key 'training.weight_decay'; "
                               "did you mean 'optimizer.weight_decay'?")
    assert lines[2].startswith(f"{path} line 5: unknown key 'loging'; did you mean 'logging'?")
    assert "with overrides" not in str(err.value)


def test_ini_unknown_key_has_its_line(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[model]\nmodel_id = tiny\n\n[training]\nbatch_size = 8\nlearnig_rate = 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path} line 6: unknown key 'training.learnig_rate'; "
                                          "did you mean 'training.learning_rate'\\?"):
        load_config(path)


def test_problems_name_the_command_line_or_the_file_never_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  batch_size: 8\n  epoc: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides=parse_overrides(["training.seed=1", "model.hed=crf"]))
    lines = sorted(str(err.value).splitlines())
    assert len(lines) == 2
    assert lines[0].startswith(f"{path} line 3: unknown key 'training.epoc'; did you mean 'training.epochs'? "
                               "(allowed in [training]: epochs, ")
    assert lines[1].startswith("command line: unknown key 'model.hed'; did you mean 'model.head'? "
                               "(allowed in [model]: model_id, head, ")
    res = CliRunner().invoke(cli, ["train", "--config", str(path)])
    assert res.exit_code == 1 and "with overrides" not in res.output and f"{path} line 3" in res.output
    assert "Traceback" not in res.output


# -- --create-config: INI for .ini, YAML otherwise, each loadable as written --------------------------------
@pytest.mark.parametrize("name,kind", [("my.ini", "ini"), ("my.cfg", "ini"), ("my.yaml", "yaml"), ("my.yml", "yaml")])
def test_create_config_writes_what_the_suffix_says_and_loads_back(tmp_path, name, kind):
    import configparser

    path = tmp_path / name
    res = CliRunner().invoke(cli, ["train", "--create-config", str(path)])
    assert res.exit_code == 0, res.output
    text = path.read_text(encoding="utf-8")
    if kind == "ini":
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        assert {"model", "model.tiny", "model.lora", "training", "output", "logging"} <= set(parser.sections())
        # unset: the backbone's measured epoch budget (nerwheel.model.defaults) applies
        assert parser["training"]["epochs"] == "" and "\nmodel:" not in text
    else:
        assert yaml.safe_load(text)["training"]["epochs"] is None and "\n[training]" not in text
    assert load_config(path) == TrainConfig()
    res = CliRunner().invoke(cli, ["train", "--config", str(path)])  # the file itself is accepted
    assert res.exit_code == 1 and "data.train_file" in res.output and "unknown key" not in res.output


@pytest.mark.parametrize("suffix", [".ini", ".yaml"])
def test_non_default_config_round_trips(tmp_path, suffix):
    c = load_config(None, overrides=parse_overrides([
        "model.lora.enabled=true", "model.lora.target_modules=[query, value]", "training.learning_rate=3e-5",
        "optimizer.adam_epsilon=1e-6", "model.cache_dir=/tmp/x y", "logging.steps=5", "output.save_steps=7",
        "training.fp16=true", "model.head=softmax"]))
    path = dump(c, tmp_path / f"c{suffix}")
    assert load_config(path) == c


# -- checks that need the data or the backbone ---------------------------------------------------------------
def test_num_labels_is_checked_against_the_data():
    tags = ["O", "B-city", "I-city", "B-road", "I-road"]
    check_num_labels(None, tags)
    check_num_labels(5, tags)
    with pytest.raises(ConfigError, match="model.num_labels=3 does not match the data: it has 5 tags "
                                          r"\(O, B-city, I-city, B-road, I-road\); set model.num_labels: 5"):
        check_num_labels(3, tags)


def test_num_labels_mismatch_stops_train_before_training(tmp_path):
    from model_synth import make_records
    from nerwheel.formats import write_records

    write_records(make_records(20, seed=1), tmp_path / "train.jsonl")
    res = CliRunner().invoke(cli, ["train", "--train", str(tmp_path / "train.jsonl"), "--set", "model.num_labels=3",
                                   "--output-dir", str(tmp_path / "runs")])
    assert res.exit_code == 1, res.output
    assert "model.num_labels=3 does not match the data" in res.output and "BIO tags (O + B-/I- per type)" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("backbone,lr,warned", [
    ("tiny", 2e-5, "tiny backbone is trained from scratch and usually takes 1e-4 to 3e-3 (default 1e-3)"),
    ("tiny", 1e-3, None), ("tiny", 3e-4, None), ("tiny", None, None),
    ("e5-small", 5e-5, None), ("e5-small", 1e-2, "usually takes 1e-5 to 3e-4 (default 2e-4)"),
])
def test_learning_rate_warning_names_the_usual_range(backbone, lr, warned):
    msg = learning_rate_warning(backbone, lr)
    assert (msg is None) if warned is None else (warned in msg), msg


def test_validate_accepts_foreign_keys_in_memory():
    assert validate({"model": {"name": "e5-small"}}).model.model_id == "e5-small"


def test_the_shipped_address_recipe_loads_and_takes_unlabeled_from_the_command_line(tmp_path):
    """configs/address-e5-small.yaml (issue 20's recipe) is a valid config; --unlabeled fills unlabeled.file."""
    path = Path(__file__).resolve().parents[2] / "configs" / "address-e5-small.yaml"
    cfg = load_config(path, overrides={"unlabeled": {"file": "traffic.jsonl"}, "data": {"train_file": "t.jsonl"}})
    assert cfg.model.model_id == "e5-small" and cfg.model.head == "crf" and cfg.model.lexicon.enabled
    assert cfg.unlabeled.file == "traffic.jsonl" and cfg.unlabeled.teacher == "kb"
    assert cfg.training.learning_rate == pytest.approx(2e-4)
