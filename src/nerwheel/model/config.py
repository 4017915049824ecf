"""Training configuration: typed sections, read from YAML or INI, with command-line overrides.

Users arrive with configs of two shapes and both are accepted as they are:

- INI: ``[model] model_id``, ``[data] train_file/test_file``,
  ``[training] max_epochs/batch_size/learning_rate/sequence_length``,
  ``[output] output_dir/model_name``;
- YAML from a Hugging Face training setup: ``model`` (name, num_labels,
  max_length), ``training`` (epochs, batch_size, learning_rate, warmup_ratio,
  gradient_accumulation_steps, fp16), ``optimizer`` (weight_decay,
  adam_epsilon), ``scheduler`` (type, num_warmup_steps), ``early_stopping``
  (patience, min_delta), ``logging`` (steps, eval_steps), ``output``
  (save_strategy, save_steps, save_total_limit).

Keys from other tools are mapped onto ours in one table, :data:`RENAMES`
(``model.name`` -> ``model.model_id``, ``model.max_length`` ->
``training.sequence_length``, ...); ``model.num_labels`` is not a setting but a
claim, checked against the labels the data has (:func:`check_num_labels`).
Every section forbids unknown keys; reading, overrides and the one-line-per-key
errors ("did you mean") are the task-neutral :mod:`nerwheel.configfile`.
:func:`write_default` writes the commented default, INI or YAML by suffix, from
the field descriptions below, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nerwheel.configfile import ConfigError, Layer, Renames, load, merge_overrides, parse_overrides, render
from nerwheel.configfile import validate as validate_layers

__all__ = ["RENAMES", "SPECIAL_TOKENS", "EarlyStoppingSettings", "LoggingSettings", "LoopSettings", "OptimizerSettings",
           "OutputSettings", "SchedulerSettings", "Section", "TinySettings", "ConfigError", "TrainConfig", "check_num_labels", "default_learning_rate",
           "default_yaml", "learning_rate_warning", "load_config", "merge_overrides", "parse_overrides", "validate",
           "write_default"]


#: Special tokens around each window ([CLS] ... [SEP] for BERT, <s> ... </s> for XLM-R / e5-small).
SPECIAL_TOKENS = 2


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
    target_modules: list[str] | None = Field(
        None, description="encoder modules that get adapters (default: query, key, value for BERT-family encoders; "
        "q_proj, k_proj, v_proj, o_proj for bert-moe-qwen2, whose Qwen2 layers are the deep ones)")
    layers_to_transform: list[int] | None = Field(
        None, description="only these layer indices get adapters, e.g. [8, 9, 10, 11] (default: every layer)")
    layers_pattern: str | None = Field(
        None, description="name of the layer list the indices count in (`layer` for BERT, `layers` for Qwen2; "
        "default: found from the target modules)")
    modules_to_save: list[str] = Field(
        ["classifier", "crf"], description="modules trained in full beside the adapters: the head (classifier, crf) "
        "and any encoder module by name (e.g. moe); head modules left out stay frozen")


class HybridSettings(Section):
    """The `bert-moe-qwen2` backbone: BERT encoder -> mixture of experts -> Qwen2 layers -> linear -> CRF."""

    bert: str = Field("tiny", description="the BERT encoder: `tiny` (sized by model.tiny) or a Hugging Face BERT "
                      "directory")
    qwen2: str | None = Field(None, description="a Hugging Face Qwen2 directory whose layers are used; without one "
                              "the Qwen2 layers are built from the qwen2_* sizes below")
    qwen2_layers: int | None = Field(None, gt=0, description="keep the first N layers of the Qwen2 directory "
                                     "(default: all)")
    qwen2_hidden_size: int = Field(256, gt=0, description="Qwen2 width (built from config)")
    qwen2_intermediate_size: int = Field(512, gt=0, description="Qwen2 feed-forward width (built from config)")
    qwen2_num_layers: int = Field(2, gt=0, description="Qwen2 layers (built from config)")
    qwen2_num_heads: int = Field(4, gt=0, description="Qwen2 attention heads (built from config)")
    qwen2_num_kv_heads: int = Field(2, gt=0, description="Qwen2 key/value heads (built from config)")
    num_experts: int = Field(4, gt=0, description="experts in the mixture-of-experts block")
    top_k: int = Field(2, gt=0, description="experts each position is routed to")
    expert_size: int | None = Field(None, gt=0, description="feed-forward width of each expert (default: 2 x the "
                                    "BERT width)")
    router_aux_loss_coef: float = Field(0.01, ge=0, description="weight of the load-balancing loss")
    freeze_moe: bool = Field(False, description="keep the mixture-of-experts block fixed while training")
    bidirectional: bool = Field(True, description="Qwen2 layers see the whole window (false: causal, as in the LLM)")

    @model_validator(mode="after")
    def _top_k_fits(self) -> HybridSettings:
        if self.top_k > self.num_experts:
            raise ValueError(f"model.hybrid.top_k={self.top_k} exceeds model.hybrid.num_experts={self.num_experts}; "
                             "route to at most as many experts as there are")
        return self


class SpanSettings(Section):
    """The span head (`model.head: span`): overlapping and nested spans, extension labels as auxiliary outputs."""

    max_width: int = Field(
        16, gt=0, le=128, description="longest span scored, in tokens (characters for Chinese); in texts longer "
        "than one window, spans up to training.stride / 2 tokens are found across window borders")
    size: int = Field(64, gt=0, description="width of the start/end representations of the biaffine scorer")
    extension_weight: float = Field(
        0.5, ge=0, description="loss weight of extension labels (a namespace prefix such as pos: or kb:) relative "
        "to target labels; 0 ignores them")
    threshold: float = Field(0.5, gt=0, lt=1, description="lowest span probability returned")
    nested: bool = Field(False, description="decode nested target spans by default (predict --nested asks per run)")


class LexiconSettings(Section):
    """Knowledge-base matches as per-character input features (nerwheel.kb.lexicon), added to the encoder output."""

    enabled: bool = Field(False, description="feed the address knowledge base's matches (gazetteer levels, number "
                          "patterns, suffix words, its own labels) to the tagger; served the same way")


class ModelSettings(Section):
    """Which encoder, which head."""

    model_id: str = Field(
        "tiny",
        description="backbone (Hugging Face YAML: model.name): `tiny`, `e5-small`, `bert-moe-qwen2` (see "
        "model.hybrid), a Hugging Face model directory or hub id, or a nerwheel model directory to continue training "
        "from",
    )
    head: Literal["crf", "softmax", "span"] = Field(
        "crf", description="crf (learned transitions), softmax, or span (every span up to model.span.max_width "
        "scored per label: overlapping and nested spans)")
    scheme: Literal["BIO", "BIOES", "BMES"] = Field("BIO", description="tagging scheme")
    tokenization: Literal["pieces", "chars"] = Field(
        "pieces", description="pieces: the backbone's own pieces (Chinese characters always one each); chars: one "
        "piece per character, digits and Latin letters too, so no entity boundary falls inside a token")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the linear head")
    decode: Literal["viterbi", "beam"] = Field("viterbi", description="tag-path search: exact viterbi, or beam "
                                               "search keeping the beam_size best tags per position")
    beam_size: int = Field(4, gt=0, description="tags kept per position with decode: beam (at least the number of tags: "
                           "exactly viterbi)")
    init_from: str | None = Field(None, description="nerwheel model directory to continue training from")
    num_labels: int | None = Field(
        None, gt=0, description="classifier outputs as Hugging Face counts them (NER: O + B-/I- per type); only "
        "checked against the data, which decides them"
    )
    cache_dir: str | None = Field(
        None, description="where the converted e5-small directory is kept (default: $NERWHEEL_CACHE/e5-small or "
        "~/.cache/nerwheel/e5-small)"
    )
    tiny: TinySettings = Field(default_factory=TinySettings, description="size of the `tiny` backbone")
    hybrid: HybridSettings = Field(default_factory=HybridSettings, description="the `bert-moe-qwen2` backbone")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="optional LoRA adapters")
    span: SpanSettings = Field(default_factory=SpanSettings, description="the span head (model.head: span)")
    lexicon: LexiconSettings = Field(default_factory=LexiconSettings,
                                     description="knowledge-base lexicon features (crf and softmax heads)")

    @model_validator(mode="after")
    def _lexicon_head(self) -> ModelSettings:
        if self.lexicon.enabled and self.head == "span":
            raise ValueError("model.lexicon.enabled works with the crf and softmax heads, not span; set model.head: "
                             "crf or model.lexicon.enabled: false")
        return self


class DataSettings(Section):
    """Input files (any format `nerwheel data` reads)."""

    train_file: str | None = Field(None, description="labelled training records")
    dev_file: str | None = Field(None, description="validation records; without one, dev_ratio of train is carved out")
    test_file: str | None = Field(None, description="optional held-out records, evaluated once after training")
    format: str | None = Field(None, description="input format (default: detected from content)")
    dev_ratio: float = Field(0.1, gt=0, lt=1, description="share of train carved out for validation without dev_file")
    max_text_length: int = Field(
        2048, ge=0, description="records whose text is longer (characters) are rejected, in every file (0: no limit)"
    )
    labels: list[str] | Literal["any"] | None = Field(
        None, description="the allowed entity labels; a record with another label is rejected, in every file "
        "(default: the labels of the model being continued, else the address task's labels; `any`: no check)"
    )


class UnlabeledSettings(Section):
    """Teacher-labelled traffic added to gold (nerwheel.stages.unlabeled; nerwheel.model.curriculum)."""

    file: str | None = Field(None, description="unlabelled texts (any format nerwheel reads; labels in it are "
                             "ignored); eval, dev, test and gold texts are kept out")
    teacher: Literal["kb", "model", "both"] = Field(
        "kb", description="kb (the knowledge base), model (its confident predictions) or both (used only where "
        "they agree)")
    teacher_model: str | None = Field(
        None, description="the model that labels for teacher model/both (default: first train one on gold alone)")
    threshold: float = Field(0.9, gt=0, le=1, description="teacher model: lowest entity score of a used text")
    weight: float = Field(0.5, gt=0, le=1, description="loss weight of a teacher-labelled window (gold: 1)")
    curriculum: Literal["mixed", "anneal"] = Field(
        "mixed", description="mixed (teacher windows every epoch at unlabeled.weight) or anneal (their weight falls "
        "to 0 by the last epoch, which trains on gold alone)")
    max_records: int | None = Field(None, gt=0, description="at most this many traffic texts (a seeded sample)")
    exclude: list[str] = Field([], description="eval files whose texts must never be trained on (dev and test "
                               "are always excluded)")


class LoopSettings(Section):
    """The optimisation loop (every task's ``training`` section extends it)."""

    epochs: int | None = Field(None, gt=0, description="maximum epochs (INI: max_epochs; default: the backbone's "
                               "measured best, see nerwheel.model.defaults)")
    batch_size: int = Field(32, gt=0, description="examples per optimiser step (before accumulation)")
    eval_batch_size: int = Field(64, gt=0, description="windows per forward pass when evaluating")
    learning_rate: float | None = Field(
        None, gt=0, description="encoder learning rate (default: the backbone's measured best: 1e-3 tiny, 2e-4 "
        "e5-small, 5e-5 other pretrained encoders)"
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of steps with a linear warm-up")
    gradient_accumulation_steps: int = Field(1, gt=0, description="batches per optimiser step")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping (0 = off)")
    fp16: bool = Field(False, description="float16 autocast + loss scaling (CUDA only; ignored on CPU)")
    bf16: bool = Field(False, description="bfloat16 autocast (CUDA only; ignored on CPU)")
    seed: int = Field(42, description="seed for data order, dropout, initialisation and the dev split")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    threads: int = Field(
        0, ge=0, description="CPU threads for torch (0 = torch's default); 1 is often fastest on a busy small machine"
    )

    @model_validator(mode="after")
    def _one_precision(self) -> LoopSettings:
        if self.fp16 and self.bf16:
            raise ValueError("training.fp16 and training.bf16 are both true; choose one")
        return self


class TrainingSettings(LoopSettings):
    """The optimisation loop and the token windows."""

    sequence_length: int = Field(
        128, ge=8, description="tokens per window, special tokens included (Hugging Face YAML: model.max_length)"
    )
    stride: int = Field(32, ge=0, description="overlap between consecutive windows of a long text, in tokens")
    length_bucketing: bool = Field(True, description="batch examples of similar length together (less padding)")

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
    warmup_steps: int | None = Field(
        None, ge=0, description="warm-up steps; overrides training.warmup_ratio (Hugging Face: num_warmup_steps)"
    )


class EarlyStoppingSettings(Section):
    """Stop when dev strict F1 stops improving."""

    enabled: bool = Field(True, description="stop early when dev strict F1 stalls")
    patience: int = Field(
        3, ge=1, description="evaluations without improvement before stopping (one per epoch, more with "
        "logging.eval_steps)"
    )
    min_delta: float = Field(0.001, ge=0, description="smallest F1 gain that counts as improvement")


class LoggingSettings(Section):
    """Progress within an epoch (a line per epoch goes to metrics.jsonl regardless)."""

    steps: int | None = Field(
        None, gt=0, description="every N optimiser steps, log train loss and learning rate (to steps.jsonl)"
    )
    eval_steps: int | None = Field(
        None, gt=0, description="every N optimiser steps, also score dev (to steps.jsonl); each evaluation can "
        "become the best model and counts for early stopping"
    )
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] | None = Field(
        None, description="experiment tracker (CLI --report-to, --wandb): none, tensorboard, wandb (offline unless "
        "WANDB_MODE says otherwise) or mlflow (a file store in the run folder unless MLFLOW_TRACKING_URI is set)"
    )
    project: str = Field("nerwheel", description="W&B project / MLflow experiment name (CLI --wandb-project)")


class OutputSettings(Section):
    """Where the trained model goes: <output_dir>/<model_name>-<timestamp>/."""

    output_dir: str = Field("models", description="parent folder of trained models")
    model_name: str = Field("nerwheel", description="name of the model folder (a timestamp is appended)")
    timestamp: bool = Field(True, description="append -YYYYmmdd-HHMMSS to the folder name")
    save_strategy: Literal["epoch", "steps", "best", "no"] = Field(
        "epoch", description="when to write a checkpoint under checkpoints/: every epoch, every save_steps "
        "optimiser steps, when dev F1 improves, or never (the final model is always written)"
    )
    save_steps: int | None = Field(None, gt=0, description="optimiser steps between checkpoints (save_strategy: steps)")
    save_total_limit: int = Field(
        1, ge=0, description="checkpoints kept under checkpoints/ (the best is always kept; with 1, epoch saving "
        "writes only improvements)"
    )
    plots: bool = Field(True, description="write the training-curve PNG")

    def run_dir(self, now: datetime | None = None) -> Path:
        """``<output_dir>/<model_name>[-YYYYmmdd-HHMMSS]``."""
        name = self.model_name
        if self.timestamp:
            name = f"{name}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
        return Path(self.output_dir) / name

    @model_validator(mode="before")
    @classmethod
    def _save_steps_alone(cls, data: Any) -> Any:
        """``save_steps`` without ``save_strategy`` means step-based saving, as in Hugging Face."""
        if isinstance(data, dict) and data.get("save_steps") is not None and "save_strategy" not in data:
            return {**data, "save_strategy": "steps"}
        return data

    @model_validator(mode="after")
    def _steps_need_a_count(self) -> OutputSettings:
        if self.save_strategy == "steps" and self.save_steps is None:
            raise ValueError("output.save_strategy is steps but output.save_steps is not set; add output.save_steps "
                             "(e.g. 500) or use save_strategy: epoch")
        if self.save_strategy != "steps" and self.save_steps is not None:
            raise ValueError(f"output.save_steps={self.save_steps} is only used with output.save_strategy: steps "
                             f"(it is {self.save_strategy}); set save_strategy: steps or remove save_steps")
        return self


class TrainConfig(Section):
    """Everything `nerwheel train` needs."""

    model: ModelSettings = Field(default_factory=ModelSettings, description="backbone and head")
    data: DataSettings = Field(default_factory=DataSettings, description="input files")
    unlabeled: UnlabeledSettings = Field(default_factory=UnlabeledSettings,
                                         description="teacher-labelled traffic added to gold")
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="optimisation loop")
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings, description="AdamW")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="learning-rate schedule")
    early_stopping: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings, description="early stopping")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="progress within an epoch")
    output: OutputSettings = Field(default_factory=OutputSettings, description="output folder")

    def run_dir(self, now: datetime | None = None) -> Path:
        return self.output.run_dir(now)


# -- keys from other tools ------------------------------------------------------------------------------
#: Keys users bring from other setups (INI ``max_epochs``, Hugging Face YAML) -> the key that holds the setting here.
RENAMES = Renames({
    "training.max_epochs": "training.epochs",
    "model.name": "model.model_id",
    "model.max_length": "training.sequence_length",
    "scheduler.num_warmup_steps": "scheduler.warmup_steps",
})


def validate(data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """An in-memory config dict (foreign keys accepted) as a :class:`TrainConfig`."""
    return validate_layers(TrainConfig, Layer(dict(data), source), renames=RENAMES)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or INI (``.ini``/``.cfg``) config, then apply ``overrides`` on top."""
    return load(TrainConfig, path, overrides, renames=RENAMES)


# -- checks that need the data or the backbone ------------------------------------------------------------
def check_num_labels(declared: int | None, labels: list[str] | tuple[str, ...], *, what: str = "tags") -> None:
    """``model.num_labels``, when given, must equal the classifier's outputs the data implies.

    Hugging Face counts outputs: for NER the tags (``O`` plus ``B-``/``I-``...
    per type), for classification the classes. nerwheel derives them from the
    data, so the key can only confirm the count, never change it.
    """
    if declared is None or declared == len(labels):
        return
    shown = ", ".join(labels[:12]) + (f", ... ({len(labels)} in all)" if len(labels) > 12 else "")
    raise ConfigError(f"model.num_labels={declared} does not match the data: it has {len(labels)} {what} ({shown}); "
                      f"set model.num_labels: {len(labels)} or remove the key (nerwheel counts them from the data)")


#: Usual learning rates: a from-scratch encoder vs fine-tuning a pretrained one.
_LR_RANGES = {"scratch": (1e-4, 3e-3), "pretrained": (1e-5, 3e-4)}  # e5-small: 2e-4 measured best


def default_learning_rate(backbone: str, *, pretrained: bool | None = None, task: str = "ner") -> float:
    """The backbone's measured default (:mod:`nerwheel.model.defaults`): 1e-3 tiny, 2e-4 e5-small, 5e-5 others.

    The table was measured on NER; another ``task`` keeps the generic values
    (1e-3 from scratch, 5e-5 pretrained) until its own are measured.
    """
    from nerwheel.model.defaults import PRETRAINED, TABLE, defaults_for

    scratch = backbone == "tiny" if pretrained is None else not pretrained
    if task != "ner":
        return TABLE["tiny"].learning_rate if scratch else PRETRAINED.learning_rate
    return defaults_for(backbone, pretrained=not scratch).learning_rate


def learning_rate_warning(backbone: str, learning_rate: float | None, *, pretrained: bool | None = None) -> str | None:
    """A sentence when ``learning_rate`` is far outside the usual range for this kind of backbone.

    The common mistake: a pretrained fine-tuning rate (2e-5) carried over to
    ``tiny``, which starts from random weights and barely moves at that rate.
    ``pretrained`` (default: every backbone but ``tiny``) says which kind it is.
    """
    if learning_rate is None:
        return None
    scratch = backbone == "tiny" if pretrained is None else not pretrained
    kind = "scratch" if scratch else "pretrained"
    lo, hi = _LR_RANGES[kind]
    if lo / 3 <= learning_rate <= hi * 3:
        return None
    what = (f"the {backbone} backbone is trained from scratch" if kind == "scratch"
            else f"{backbone} is a pretrained encoder being fine-tuned")
    if kind == "scratch" and learning_rate < lo:
        consequence = "it will barely learn; that rate suits fine-tuning a pretrained encoder"
    else:
        consequence = "it will likely diverge or forget" if learning_rate > hi else "it will learn very slowly"
    default = default_learning_rate(backbone, pretrained=not scratch)
    return (f"training.learning_rate={learning_rate:g} is outside the usual range: {what} and usually "
            f"takes {_sci(lo)} to {_sci(hi)} (default {_sci(default)}); {consequence}. "
            "Remove the key to use the default")


def _sci(x: float) -> str:
    """1e-4 rather than 0.0001 or 1e-04: how learning rates are written."""
    mantissa, exp = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


# -- the commented default -----------------------------------------------------------------------------
def _header(ini: bool) -> list[str]:
    other = ("YAML works too (--create-config train.yaml)" if ini
             else "INI works too (--create-config train.ini): [model] model_id = tiny / [training] max_epochs = 10")
    return [f"nerwheel training config ({'INI' if ini else 'YAML'}). Every key is optional; shown are the defaults.",
            other,
            "Keys from other setups (INI, Hugging Face) are read as ours: " + ", ".join(f"{k} -> {v}" for k, v in
                                                                           RENAMES.table.items()),
            "Override any key on the command line: nerwheel train --set training.epochs=5"]


def default_yaml() -> str:
    """The default config as YAML, every key commented from its field description."""
    return render(TrainConfig(), header=_header(False))


def write_default(path: str | Path) -> Path:
    """The commented default config at ``path``: INI for ``.ini``/``.cfg``/``.conf``, YAML otherwise."""
    from nerwheel.configfile import INI_SUFFIXES, dump

    return dump(TrainConfig(), path, header=_header(Path(path).suffix.lower() in INI_SUFFIXES))
