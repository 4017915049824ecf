"""The classifier's training config: the users' YAML, accepted exactly as they write it.

Every key of their existing setup is a field here (``model.name/num_labels/
max_length/dropout``, ``training.epochs/batch_size/learning_rate/warmup_ratio/
gradient_accumulation_steps/fp16``, ``optimizer.weight_decay/adam_epsilon``,
``scheduler.type/num_warmup_steps``, ``early_stopping.patience/min_delta``,
``logging.steps/eval_steps``, ``output.save_total_limit/save_strategy/
save_steps``), and the sections the loop shares with NER are the very same
classes (:mod:`nerwheel.model.config`), read by the same task-neutral machinery
(:mod:`nerwheel.configfile`: YAML or INI, overrides, one line per problem with
file and line, "did you mean"). Foreign spellings are mapped in :data:`RENAMES`
(``model.name`` -> ``model.model_id``, ``scheduler.num_warmup_steps`` ->
``scheduler.warmup_steps``); ``model.max_length`` is the classifier's own key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from nerwheel.configfile import Layer, Renames, dump, load
from nerwheel.configfile import validate as validate_layers
from nerwheel.model.config import (
    EarlyStoppingSettings,
    LoggingSettings,
    LoopSettings,
    OptimizerSettings,
    OutputSettings,
    SchedulerSettings,
    Section,
    TinySettings,
)

__all__ = ["RENAMES", "ClassifyConfig", "ClassifyData", "ClassifyModel", "ClassifyTraining", "load_config",
           "validate", "write_default"]


class ClassifyModel(Section):
    """Which encoder, how many classes, how long an input."""

    model_id: str = Field(
        "tiny", description="backbone (Hugging Face YAML: model.name): `tiny`, `e5-small` or a Hugging Face model "
        "directory")
    num_labels: int | None = Field(
        None, ge=2, description="number of classes; only checked against the label set (labels.json, model.labels "
        "or the data), which decides them")
    labels: list[str] | None = Field(
        None, description="class names in index order (default: labels.json beside the training file, else the "
        "labels in the data)")
    max_length: int = Field(128, ge=8, description="tokens of context + message, special tokens included "
                            "(longer pairs are truncated, longest first)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the classification head")
    cache_dir: str | None = Field(None, description="where the converted e5-small directory is kept")
    tiny: TinySettings = Field(default_factory=TinySettings, description="size of the `tiny` backbone")


class ClassifyData(Section):
    """Input files (JSON array, JSONL, CSV/TSV with a header)."""

    train_file: str | None = Field(None, description="labelled training messages")
    dev_file: str | None = Field(None, description="validation messages; without one, dev_ratio of train is "
                                 "carved out (stratified by class)")
    test_file: str | None = Field(None, description="optional held-out messages, evaluated once after training")
    format: Literal["json", "jsonl", "csv", "tsv"] | None = Field(None, description="input format (default: "
                                                                   "detected)")
    labels_file: str | None = Field(None, description="labels.json ({\"0\": \"name\", ...}); default: the one "
                                    "beside train_file")
    dev_ratio: float = Field(0.1, gt=0, lt=1, description="share of train carved out for validation without "
                             "dev_file")


class ClassifyTraining(LoopSettings):
    """The optimisation loop and the answer to class imbalance."""

    class_weights: Literal["none", "balanced"] | None = Field(
        None, description="balanced: weight the loss by n / (classes * count) per class (none: unweighted)")
    sampler: Literal["random", "balanced"] = Field(
        "random", description="balanced: draw each epoch's examples with probability 1 / class count")


class ClassifyOutput(OutputSettings):
    """Where the trained classifier goes: <output_dir>/<model_name>-<timestamp>/."""

    model_name: str = Field("classifier", description="name of the model folder (a timestamp is appended)")


class ClassifyConfig(Section):
    """Everything `nerwheel train --task classify` needs."""

    model: ClassifyModel = Field(default_factory=ClassifyModel, description="backbone and classes")
    data: ClassifyData = Field(default_factory=ClassifyData, description="input files")
    training: ClassifyTraining = Field(default_factory=ClassifyTraining, description="optimisation loop")
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings, description="AdamW")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="learning-rate schedule")
    early_stopping: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings,
                                                  description="early stopping on dev macro-F1")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="logging and tracking")
    output: ClassifyOutput = Field(default_factory=ClassifyOutput, description="output folder")

    def run_dir(self, now: datetime | None = None) -> Path:
        return self.output.run_dir(now)


#: Keys users bring from other setups -> the key that holds the setting here.
RENAMES = Renames({
    "training.max_epochs": "training.epochs",
    "model.name": "model.model_id",
    "scheduler.num_warmup_steps": "scheduler.warmup_steps",
})


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ClassifyConfig:
    """Read a YAML or INI config, then apply ``overrides`` on top (:func:`nerwheel.configfile.load`)."""
    return load(ClassifyConfig, path, overrides, renames=RENAMES)


def validate(data: Mapping[str, Any], *, source: str = "config") -> ClassifyConfig:
    """An in-memory config dict (foreign keys accepted) as a :class:`ClassifyConfig`."""
    return validate_layers(ClassifyConfig, Layer(dict(data), source), renames=RENAMES)


def write_default(path: str | Path) -> Path:
    """The commented default config at ``path``: INI for ``.ini``/``.cfg``/``.conf``, YAML otherwise."""
    return dump(ClassifyConfig(), path, header=[
        "nerwheel message-classifier training config. Every key is optional; shown are the defaults.",
        "Keys from other setups are read as ours: " + ", ".join(f"{k} -> {v}" for k, v in RENAMES.table.items()),
        "Use it with: nerwheel train --task classify --config FILE --data-path DATA"])
