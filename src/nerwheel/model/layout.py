"""The model folder and the export folder: every file name, and "is this an export?".

Training, export, predict, the Triton repository and deploy all read and write
these two folders (docs/architecture.md, "Model directory" and "Export
directory"). The names live here once, with the three questions every reader
asks: is this folder an export, is it a trained model, and where is the export
of a model (``nerwheel export MODEL`` writes into ``MODEL/onnx`` by default).
Nothing here imports torch, transformers or onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CARD_FILE",
    "CHECKPOINTS_DIR",
    "CRF_FILE",
    "CRF_NPZ",
    "DROPPED_SPANS_FILE",
    "EXPORT_FILES",
    "EXPORT_OPTIONAL",
    "EXPORT_REQUIRED",
    "EXPORT_SUBDIR",
    "HF_CONFIG_FILE",
    "HISTORY_FILE",
    "LEXICON_FILE",
    "ONNX_FILE",
    "ONNX_INT8_FILE",
    "PRETRAIN_REPORT",
    "REJECTS_FILE",
    "STEP_HISTORY_FILE",
    "TOKENIZER_FILE",
    "TRAIN_CONFIG_FILE",
    "UNLABELED_REJECTS_FILE",
    "WEIGHTS_FILE",
    "find_export",
    "is_export",
    "is_model_dir",
    "missing_export_files",
]

# -- both folders ---------------------------------------------------------------------------------
CARD_FILE = "nerwheel.json"  # labels, scheme, head, window geometry, provenance (nerwheel.model.card)
TOKENIZER_FILE = "tokenizer.json"

# -- the model folder (``nerwheel train``): a Hugging Face directory plus nerwheel's files -----------
HF_CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CRF_FILE = "crf.safetensors"
LEXICON_FILE = "lexicon.safetensors"  # lexicon-feature projection (model.lexicon.enabled; nerwheel.model.lexicon_model)
HISTORY_FILE = "metrics.jsonl"  # one line per epoch
STEP_HISTORY_FILE = "steps.jsonl"  # loss every logging.steps, dev scores every logging.eval_steps
TRAIN_CONFIG_FILE = "train_config.yaml"  # the resolved training config
CHECKPOINTS_DIR = "checkpoints"
REJECTS_FILE = "rejects.jsonl"  # input lines not used, with file, line and reason
DROPPED_SPANS_FILE = "dropped_spans.jsonl"  # spans the keep-longest overlap policy removed
UNLABELED_REJECTS_FILE = "unlabeled_rejects.jsonl"  # traffic lines train --unlabeled did not use, with reasons

# -- the folder ``nerwheel pretrain`` writes: a Hugging Face encoder directory plus its record --------------------
PRETRAIN_REPORT = "pretrain.json"  # the base backbone, texts read/used, steps, masking, loss curve

# -- the export folder (``nerwheel export``) -----------------------------------------------------------
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
CRF_NPZ = "crf.npz"  # absent for softmax heads
EXPORT_SUBDIR = "onnx"  # where `nerwheel export MODEL` writes by default: MODEL/onnx
EXPORT_REQUIRED = (ONNX_FILE, TOKENIZER_FILE, CARD_FILE)
EXPORT_OPTIONAL = (CRF_NPZ, ONNX_INT8_FILE)
EXPORT_FILES = EXPORT_REQUIRED + EXPORT_OPTIONAL


def is_export(path: str | Path) -> bool:
    """An export folder is one that holds ``model.onnx`` (the rest is checked by :func:`missing_export_files`)."""
    return (Path(path) / ONNX_FILE).is_file()


def is_model_dir(path: str | Path) -> bool:
    """A trained model folder: a Hugging Face ``config.json`` and nerwheel's card."""
    p = Path(path)
    return (p / HF_CONFIG_FILE).is_file() and (p / CARD_FILE).is_file()


def find_export(path: str | Path) -> Path | None:
    """The export for ``path``: the folder itself when it is one, else its ``onnx/`` sub-folder, else ``None``."""
    p = Path(path)
    return next((d for d in (p, p / EXPORT_SUBDIR) if is_export(d)), None)


def missing_export_files(path: str | Path) -> list[str]:
    """The required export files ``path`` lacks (empty: a complete export)."""
    p = Path(path)
    return [f for f in EXPORT_REQUIRED if not (p / f).is_file()]
