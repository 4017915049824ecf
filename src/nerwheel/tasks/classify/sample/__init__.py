"""The classifier's embedded default data set: hand-written chat turns (see README.md); ``sample_path(role)``."""

from __future__ import annotations

from pathlib import Path

from nerwheel.errors import ConfigError
__all__ = ["SAMPLE_DIR", "SAMPLE_FILES", "sample_path"]

SAMPLE_DIR = Path(__file__).parent
#: role -> file: labelled seed, fixed eval set, unlabelled live traffic, the label map.
SAMPLE_FILES = {"seed": "seed.jsonl", "eval": "eval.jsonl", "texts": "traffic.txt", "labels": "labels.json"}


def sample_path(role: str) -> Path:
    if role not in SAMPLE_FILES:
        raise ConfigError(f"unknown sample file {role!r}; the classifier's sample set has: {', '.join(SAMPLE_FILES)}")
    return SAMPLE_DIR / SAMPLE_FILES[role]
