"""The users' YAML is accepted exactly as written, every key landing where it means something."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerwheel.configfile import ConfigError
from nerwheel.tasks.classify.config import ClassifyConfig, load_config, write_default

USERS_YAML = """
model:
  name: e5-small
  num_labels: 3
  max_length: 128
  dropout: 0.1
training:
  epochs: 5
  batch_size: 32
  learning_rate: 2e-5
  warmup_ratio: 0.1
  gradient_accumulation_steps: 2
  fp16: true
optimizer:
  weight_decay: 0.01
  adam_epsilon: 1e-8
scheduler:
  type: linear
  num_warmup_steps: 100
early_stopping:
  patience: 3
  min_delta: 0.001
logging:
  steps: 50
  eval_steps: 200
output:
  save_total_limit: 2
  save_strategy: steps
  save_steps: 200
"""


def test_users_yaml_loads_verbatim(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(USERS_YAML, encoding="utf-8")
    c = load_config(path)
    assert isinstance(c, ClassifyConfig)
    assert (c.model.model_id, c.model.num_labels, c.model.max_length, c.model.dropout) == ("e5-small", 3, 128, 0.1)
    t = c.training
    assert (t.epochs, t.batch_size, t.learning_rate, t.warmup_ratio, t.gradient_accumulation_steps, t.fp16) == (
        5, 32, 2e-5, 0.1, 2, True)
    assert (c.optimizer.weight_decay, c.optimizer.adam_epsilon) == (0.01, 1e-8)
    assert (c.scheduler.type, c.scheduler.warmup_steps) == ("linear", 100)
    assert (c.early_stopping.patience, c.early_stopping.min_delta) == (3, 0.001)
    assert (c.logging.steps, c.logging.eval_steps) == (50, 200)
    assert (c.output.save_total_limit, c.output.save_strategy, c.output.save_steps) == (2, "steps", 200)
    assert c.output.model_name == "classifier"


def test_unknown_keys_fail_naming_key_file_and_allowed_keys(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(USERS_YAML.replace("  dropout: 0.1", "  droput: 0.1"), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and "'model.droput'" in msg and "dropout" in msg and "max_length" in msg


@pytest.mark.parametrize("name", ["c.yaml", "c.ini"])
def test_default_config_round_trips(tmp_path: Path, name: str):
    path = write_default(tmp_path / name)
    assert load_config(path) == ClassifyConfig()
    text = path.read_text()
    assert "class_weights" in text and "sampler" in text and "model.name -> model.model_id" in text
