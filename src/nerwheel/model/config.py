"""Training configuration: typed sections, read from YAML or INI, with command-line overrides.

Users arrive with configs of two shapes and both are accepted as they are:

- INI: ``[model] model_id``, ``[data] train_file/test_file``,
  ``[training] max_epochs/batch_size/learning_rate/sequence_length``,
  ``[output] output_dir/model_name``;
- YAML: ``training`` (epochs, batch_size, learning_rate, warmup_ratio,
  gradient_accumulation_steps, fp16), ``optimizer`` (weight_decay,
  adam_epsilon), ``scheduler``, ``early_stopping`` (patience, min_delta),
  ``output`` (save_total_limit).

Every section forbids unknown keys, and the error names the key, the file and
the keys that are allowed. :func:`default_yaml` writes the commented default
from the field descriptions below, so the documentation cannot drift from the
code.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["SPECIAL_TOKENS", "ConfigError", "TrainConfig", "default_yaml", "load_config", "merge_overrides",
           "parse_overrides", "validate"]


#: Special tokens around each window ([CLS] ... [SEP] for BERT, <s> ... </s> for XLM-R / e5-small).
SPECIAL_TOKENS = 2


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the fix."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class TinySettings(Section):
    """Size of the `tiny` backbone (a BERT trained from scratch)."""

    hidden_size: int = Field(256, gt=0, description="width of the encoder")
    num_layers: int = Field(4, gt=0, description="transformer layers")
    num_heads: int = Field(4, gt=0, description="attention heads (must divide hidden_size)")
    intermediate_size: int = Field(1024, gt=0, description="feed-forward width")
    min_char_count: int = Field(1, ge=1, description="a character enters the vocabulary after this many sightings")

    @model_validator(mode="after")
    def _heads_divide(self) -> TinySettings:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"model.tiny.num_heads={self.num_heads} must divide model.tiny.hidden_size="
                             f"{self.hidden_size}; choose a head count that divides the width")
        return self


class LoraSettings(Section):
    """Low-rank adapters (peft) on the encoder; merged into the weights when the model is saved."""

    enabled: bool = Field(False, description="train LoRA adapters instead of the whole encoder")
    r: int = Field(8, gt=0, description="adapter rank")
    alpha: int = Field(16, gt=0, description="adapter scaling (alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] = Field(["query", "key", "value"], description="encoder modules that get adapters")


class ModelSettings(Section):
    """Which encoder, which head."""

    model_id: str = Field(
        "tiny",
        description="backbone: `tiny`, `e5-small`, a Hugging Face model directory or hub id, or a nerwheel model "
        "directory to continue training from",
    )
    head: Literal["crf", "softmax"] = Field("crf", description="crf (learned transitions) or softmax")
    scheme: Literal["BIO", "BIOES", "BMES"] = Field("BIO", description="tagging scheme")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the linear head")
    init_from: str | None = Field(None, description="nerwheel model directory to continue training from")
    cache_dir: str | None = Field(
        None, description="where the converted e5-small directory is kept (default: $NERWHEEL_CACHE/e5-small or "
        "~/.cache/nerwheel/e5-small)"
    )
    tiny: TinySettings = Field(default_factory=TinySettings, description="size of the `tiny` backbone")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="optional LoRA adapters")


class DataSettings(Section):
    """Input files (any format `nerwheel data` reads)."""

    train_file: str | None = Field(None, description="labelled training records")
    dev_file: str | None = Field(None, description="validation records; without one, dev_ratio of train is carved out")
    test_file: str | None = Field(None, description="optional held-out records, evaluated once after training")
    format: str | None = Field(None, description="input format (default: detected from content)")
    dev_ratio: float = Field(0.1, gt=0, lt=1, description="share of train carved out for validation without dev_file")


class TrainingSettings(Section):
    """The optimisation loop."""

    epochs: int = Field(10, gt=0, validation_alias=AliasChoices("epochs", "max_epochs"), description="maximum epochs")
    batch_size: int = Field(32, gt=0, description="examples per optimiser step (before accumulation)")
    eval_batch_size: int = Field(64, gt=0, description="windows per forward pass when evaluating")
    learning_rate: float | None = Field(
        None, gt=0, description="encoder learning rate (default: 1e-3 for tiny, 5e-5 for a pretrained encoder)"
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of steps with a linear warm-up")
    gradient_accumulation_steps: int = Field(1, gt=0, description="batches per optimiser step")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping (0 = off)")
    fp16: bool = Field(False, description="float16 autocast + loss scaling (CUDA only; ignored on CPU)")
    bf16: bool = Field(False, description="bfloat16 autocast (CUDA only; ignored on CPU)")
    seed: int = Field(42, description="seed for data order, dropout, initialisation and the dev split")
    sequence_length: int = Field(128, ge=8, description="tokens per window, special tokens included")
    stride: int = Field(32, ge=0, description="overlap between consecutive windows of a long text, in tokens")
    length_bucketing: bool = Field(True, description="batch examples of similar length together (less padding)")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    threads: int = Field(
        0, ge=0, description="CPU threads for torch (0 = torch's default); 1 is often fastest on a busy small machine"
    )

    @model_validator(mode="after")
    def _one_precision(self) -> TrainingSettings:
        if self.fp16 and self.bf16:
            raise ValueError("training.fp16 and training.bf16 are both true; choose one")
        return self

    @model_validator(mode="after")
    def _windows_fit(self) -> TrainingSettings:
        """The window geometry :class:`~nerwheel.model.encoding.TextEncoder` needs, checked before any data is read.

        Every supported backbone (BERT, XLM-R) puts :data:`SPECIAL_TOKENS` around
        a window; the encoder re-checks with the tokenizer's real count.
        """
        content = self.sequence_length - SPECIAL_TOKENS
        if self.stride >= content:
            raise ValueError(
                f"training.stride={self.stride} must be smaller than training.sequence_length={self.sequence_length} "
                f"minus the {SPECIAL_TOKENS} special tokens ({content}); lower training.stride (e.g. "
                f"{max(0, content // 4)}) or raise training.sequence_length above {self.stride + SPECIAL_TOKENS}"
            )
        return self


class OptimizerSettings(Section):
    """AdamW."""

    weight_decay: float = Field(0.01, ge=0, description="decoupled weight decay (not on biases and LayerNorm)")
    adam_epsilon: float = Field(1e-8, gt=0, description="AdamW epsilon")
    adam_beta1: float = Field(0.9, gt=0, lt=1, description="AdamW beta1")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="AdamW beta2")
    head_learning_rate: float | None = Field(
        None, gt=0, description="learning rate of the linear head and CRF (default: max(learning_rate, 1e-3))"
    )


class SchedulerSettings(Section):
    """Learning-rate schedule after warm-up."""

    type: Literal["linear", "constant", "cosine"] = Field("linear", description="linear, constant or cosine decay")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up steps; overrides training.warmup_ratio")


class EarlyStoppingSettings(Section):
    """Stop when dev strict F1 stops improving."""

    enabled: bool = Field(True, description="stop early when dev strict F1 stalls")
    patience: int = Field(3, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.001, ge=0, description="smallest F1 gain that counts as improvement")


class OutputSettings(Section):
    """Where the trained model goes: <output_dir>/<model_name>-<timestamp>/."""

    output_dir: str = Field("models", description="parent folder of trained models")
    model_name: str = Field("nerwheel", description="name of the model folder (a timestamp is appended)")
    timestamp: bool = Field(True, description="append -YYYYmmdd-HHMMSS to the folder name")
    save_total_limit: int = Field(1, ge=0, description="epoch checkpoints kept under checkpoints/ (best always kept)")
    plots: bool = Field(True, description="write the training-curve PNG")


class TrainConfig(Section):
    """Everything `nerwheel train` needs."""

    model: ModelSettings = Field(default_factory=ModelSettings, description="backbone and head")
    data: DataSettings = Field(default_factory=DataSettings, description="input files")
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="optimisation loop")
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings, description="AdamW")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="learning-rate schedule")
    early_stopping: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings, description="early stopping")
    output: OutputSettings = Field(default_factory=OutputSettings, description="output folder")

    def run_dir(self, now: datetime | None = None) -> Path:
        name = self.output.model_name
        if self.output.timestamp:
            name = f"{name}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
        return Path(self.output.output_dir) / name


# -- reading -----------------------------------------------------------------------------------------
def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".ini", ".cfg", ".conf"):
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # keep key case: the error must name the key as the user wrote it
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            raise ConfigError(f"{path}: not a valid INI file: {exc}") from None
        data: dict[str, Any] = {}
        for section in parser.sections():
            node = data
            for part in section.split("."):  # [model.lora] -> model: {lora: {...}}
                node = node.setdefault(part, {})
            node.update({k: _ini_value(v) for k, v in parser.items(section)})
        return data
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections ({', '.join(TrainConfig.model_fields)})")
    return data


def _ini_value(raw: str) -> Any:
    """INI values are strings; read empty as null and lists written as YAML flow ([a, b])."""
    raw = raw.strip()
    if raw == "" or raw.lower() in ("none", "null"):
        return None
    if raw.startswith("["):
        return yaml.safe_load(raw)
    return raw


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["training.batch_size=16", "model.head=softmax"]`` -> a nested dict (values read as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. training.epochs=5)")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    return out


def merge_overrides(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` on top of ``base``, section by section (nested mappings merge, values replace)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_overrides(out[k], v)
        else:
            out[k] = v
    return out


def _allowed(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Keys accepted at ``loc`` (the parent of a rejected key), aliases included."""
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    keys = []
    for name, field in model.model_fields.items():
        keys.append(name)
        if isinstance(field.validation_alias, AliasChoices):
            keys.extend(str(a) for a in field.validation_alias.choices if a != name)
    return keys


def validate(data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc)
            if err["type"] == "extra_forbidden":
                parent = ".".join(str(p) for p in loc[:-1])
                where = f"in [{parent}]" if parent else "at the top level"
                lines.append(f"unknown key {key!r}; allowed keys {where} are: {', '.join(_allowed(TrainConfig, loc[:-1]))}")
            elif err["type"] == "value_error":  # a validator's own sentence names the keys and the fix
                msg = err["msg"].removeprefix("Value error, ")
                lines.append(msg if not key or key in msg else f"{key}: {msg}")
            else:
                lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or INI (``.ini``/``.cfg``) config, then apply ``overrides`` on top."""
    data: dict[str, Any] = _read_file(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "config"
    if overrides:
        data = merge_overrides(data, overrides)
        source += " (with overrides)"
    return validate(data, source=source)


# -- the commented default -----------------------------------------------------------------------------
def default_yaml() -> str:
    """The default config as YAML, every key commented from its field description."""
    lines = [
        "# nerwheel training config (YAML). Every key is optional; shown are the defaults.",
        "# INI works too: [model] model_id = tiny / [training] max_epochs = 10 ...",
        "# Override any key on the command line: nerwheel train --set training.epochs=5",
        "",
    ]
    _emit(TrainConfig(), lines, indent=0)
    return "\n".join(lines) + "\n"


def _emit(obj: BaseModel, lines: list[str], indent: int) -> None:
    pad = "  " * indent
    for name, field in type(obj).model_fields.items():
        value = getattr(obj, name)
        if isinstance(value, BaseModel):
            if indent == 0:
                lines.append("")
            doc = (type(value).__doc__ or "").strip().splitlines()[0]
            lines.append(f"{pad}# {doc}")
            lines.append(f"{pad}{name}:")
            _emit(value, lines, indent + 1)
            continue
        if field.description:
            lines.append(f"{pad}# {field.description}")
        dumped = yaml.safe_dump({name: value}, default_flow_style=True, allow_unicode=True).strip()
        lines.append(f"{pad}{dumped[1:-1]}")  # strip the flow-style braces
