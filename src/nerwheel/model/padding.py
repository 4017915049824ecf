"""Padding token id rows into one batch: the two tensors every encoder graph reads.

A module of its own, importing only numpy, because it travels: the message
classifier's Hugging Face folder carries the code its pipeline imports
(:mod:`nerwheel.hf.folder`), and that closure must stay small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pad_ids"]


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows as one batch: ``input_ids`` (int64, ``pad_id`` after each row) and ``attention_mask``
    (1 on a row's tokens, 0 on its padding), as wide as the longest row. Training, MLM, the classifier and
    the GPU tokenize step all batch this way; the ONNX graphs read exactly these two tensors."""
    width = max((len(r) for r in rows), default=1)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    return ids, mask
