"""Distillation: the config, the teacher's per-character targets lined up with the student's tokens, the loss.

The student learns from two signals:

- the teacher's *distributions*: for a tagger, at every label-bearing
  position the teacher's distribution over tags; for a classifier
  (:mod:`nerwheel.tasks.classify.distill`), its distribution over classes per
  message. Both are softened by a temperature ``T`` and compared with the
  student's (KL divergence, scaled by ``T**2`` so its gradients keep their size
  as ``T`` changes; Hinton et al. 2015): one :class:`DistillLoss` for both;
- the hard loss, the model's own: the CRF loss (or cross-entropy, softmax
  head) on the teacher's Viterbi path, or the classifier's cross-entropy on the
  teacher's most probable class; gold labels wherever a text has them.

Teacher and student taggers may cut a text differently (``tiny`` reads one
character per token, e5-small keeps ``00`` as one piece): targets are matched
by the character a position *starts* at (:func:`align_teacher`); a student
position whose character starts no teacher position gets only the hard loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from nerwheel.configfile import ConfigError, load
from nerwheel.model.config import (
    EarlyStoppingSettings,
    LoggingSettings,
    OptimizerSettings,
    SchedulerSettings,
    Section,
    TrainConfig,
    TrainingSettings,
)
from nerwheel.model.encoding import Encoded

__all__ = ["DistillConfig", "DistillLoss", "DistillSettings", "align_teacher", "load_distill_config"]


class DistillSettings(Section):
    """How the teacher's knowledge is weighed."""

    temperature: float = Field(2.0, gt=0, description="softens both distributions in the KL term")
    kl_weight: float = Field(1.0, ge=0, description="weight of the KL term on the teacher's distributions "
                             "(tagger: per character; classifier: over classes)")
    hard_weight: float = Field(1.0, ge=0, description="weight of the hard loss on the teacher's answer (tagger: CRF "
                               "on its Viterbi path; classifier: cross-entropy on its top class), gold where known")
    dev_ratio: float = Field(0.05, gt=0, lt=1,
                             description="share of the texts held out to measure agreement with the teacher")
    max_texts: int = Field(200_000, gt=0, description="texts read at most (the rest are counted, not used)")
    teacher_runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="how the teacher runs: onnx where it has an export (auto), or torch")
    teacher_batch_size: int = Field(64, gt=0, description="windows (classifier: messages) per teacher forward pass")

    @model_validator(mode="after")
    def _some_signal(self) -> DistillSettings:
        if self.kl_weight == 0 and self.hard_weight == 0:
            raise ValueError("distill.kl_weight and distill.hard_weight are both 0; the student would learn nothing")
        return self


def _distill_training() -> TrainingSettings:
    return TrainingSettings(epochs=5)


class DistillConfig(Section):
    """Everything ``nerwheel distill`` needs."""

    teacher: str = Field(..., description="the teacher: a nerwheel model directory (a tagger or a classifier; its "
                         "nerwheel.json says which)")
    student: str = Field("tiny", description="tiny, tiny:hidden_size=H,num_layers=L,..., or shallow:K")
    texts_file: str = Field(..., description="traffic: texts to distil on (records with entities, or messages with "
                            "a label, count as gold)")
    gold_file: str | None = Field(None, description="more labelled records (gold labels plus teacher targets)")
    dev_file: str | None = Field(None, description="gold records to choose the best epoch on (default: agreement "
                                 "with the teacher on held-out texts)")
    format: str | None = Field(None, description="input format (default: detected from content; the teacher's "
                               "task reads it, classifier: json, jsonl, csv, tsv, text)")
    out: str = Field(..., description="the student's model directory (must not exist, or be empty)")
    distill: DistillSettings = Field(default_factory=DistillSettings, description="the distillation loss")
    training: TrainingSettings = Field(default_factory=_distill_training,
                                       description="optimisation loop (tagger: sequence_length/stride default to "
                                       "the teacher's, a classifier keeps its max_length; learning_rate to 1e-3 for "
                                       "tiny, 1e-4 for shallow)")
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings, description="AdamW")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="learning-rate schedule")
    early_stopping: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings, description="early stopping")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="progress within an epoch")

    @model_validator(mode="after")
    def _epochs(self) -> DistillConfig:
        # a training section given in part (--set training.threads=1, a YAML with only batch_size) replaces the
        # default factory's, and TrainingSettings leaves epochs to the backbone's measured row, which a student
        # does not have: the distillation default applies instead of None reaching the loop
        if self.training.epochs is None:
            self.training.epochs = _distill_training().epochs
        return self

    def loop_config(self, out: Path, *, schema: type[Section] = TrainConfig, **training: Any) -> Any:
        """The training loop's view of this config as the task's ``schema`` (TrainConfig, ClassifyConfig, ...).

        ``training`` sets loop keys the teacher decides (the tagger's
        sequence_length and stride); keys the schema's training section does
        not have are left out. No checkpoints: the student is written once, at
        the end.
        """
        keys = schema.model_fields["training"].annotation.model_fields  # type: ignore[union-attr]
        values = {k: v for k, v in {**self.training.model_dump(), **training}.items() if k in keys}
        return schema(training=values, optimizer=self.optimizer, scheduler=self.scheduler,
                      early_stopping=self.early_stopping, logging=self.logging,
                      output={"output_dir": str(out.parent), "model_name": out.name, "timestamp": False,
                              "save_strategy": "no", "plots": False})


def load_distill_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DistillConfig:
    """A :class:`DistillConfig` from a YAML/INI file and overrides (one error line per bad key)."""
    return load(DistillConfig, path, overrides)


def align_teacher(student: Encoded, teacher: Encoded, emissions: np.ndarray) -> np.ndarray:
    """The teacher's emission row for each student token: ``[len(student), T]``, NaN where there is none.

    A student token gets a row when it is a head and a teacher head starts at
    the same character; both are heads of character spans, so the row is the
    teacher's distribution for the tag of that character.
    """
    rows = np.full((len(student), emissions.shape[1]), np.nan, dtype=np.float32)
    starts = teacher.head_spans[:, 0]
    if not len(starts) or not len(student.heads):
        return rows
    want = student.head_spans[:, 0]
    at = np.minimum(np.searchsorted(starts, want), len(starts) - 1)
    hit = starts[at] == want
    rows[student.heads[hit]] = emissions[at[hit]]
    return rows


class DistillLoss:
    """``hard_weight * model.loss(labels) + kl_weight * T**2 * KL(softmax(teacher/T) || softmax(student/T))``.

    ``model.loss`` is the student's own hard loss (a tagger's CRF or
    cross-entropy; a classifier's :class:`~nerwheel.tasks.classify.train.CrossEntropy`).
    The last axis holds the classes (tags or message classes); the KL is
    averaged over the rows that have a teacher row (``batch["soft_mask"]``:
    positions of a window, or messages of a batch); batches without teacher
    rows take the hard loss only. The teacher's row may be logits or log
    probabilities (the same softmax). :attr:`last` holds the two parts of the
    latest call (for logs).
    """

    def __init__(self, temperature: float = 2.0, kl_weight: float = 1.0, hard_weight: float = 1.0) -> None:
        if temperature <= 0:
            raise ConfigError(f"distill.temperature must be > 0, got {temperature}", field="distill.temperature")
        self.temperature, self.kl_weight, self.hard_weight = temperature, kl_weight, hard_weight
        self.last: dict[str, float] = {}

    def kl(self, emissions: torch.Tensor, soft: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not bool(mask.any()):
            return emissions.sum() * 0.0
        t = self.temperature
        target = torch.log_softmax(soft[mask].float() / t, dim=-1)
        pred = torch.log_softmax(emissions[mask].float() / t, dim=-1)
        return (target.exp() * (target - pred)).sum(-1).mean() * t * t

    def __call__(self, model: Any, emissions: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hard = model.loss(emissions, batch["labels"])
        total = self.hard_weight * hard
        kl = None
        if "soft" in batch and self.kl_weight:
            kl = self.kl(emissions, batch["soft"], batch["soft_mask"])
            total = total + self.kl_weight * kl
        self.last = {"hard": float(hard.detach()), "kl": float(kl.detach()) if kl is not None else 0.0}
        return total
