"""The embedded default data set (see README.md here); read it with ``sample_path(name)``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_DIR", "sample_path"]

SAMPLE_DIR = Path(__file__).parent


def sample_path(name: str) -> Path:
    """Path of a sample file (``seed.jsonl``, ``eval.jsonl``, ``traffic.txt``)."""
    path = SAMPLE_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"no sample file {name!r}; available: {sorted(p.name for p in SAMPLE_DIR.iterdir() if p.suffix in ('.jsonl', '.txt'))}")
    return path
