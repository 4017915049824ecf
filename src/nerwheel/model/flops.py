"""Arithmetic per text: how many floating-point operations a BERT-family tagger does on real inputs.

Counted from the model's Hugging Face config and the actual window lengths
(special tokens included, padding excluded), multiply-add = 2 FLOPs. Per
window of ``S`` tokens, hidden ``H``, feed-forward ``F``, ``L`` layers, ``T``
tags:

- each layer: Q, K, V and output projections ``2 * S * 4 * H * H``; the
  feed-forward pair ``2 * S * 2 * H * F``; attention scores and their
  weighted sum ``2 * 2 * S * S * H``;
- the tag head ``2 * S * H * T``.

Embedding look-ups, LayerNorm, softmax and GELU are left out (a few percent
for these sizes). Dividing by a measured time gives the achieved GFLOP/s, to
set beside what the CPU can do (``benchmarks/model_speed.py`` measures a plain
matrix product for that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EncoderSize", "window_flops"]


@dataclass(frozen=True)
class EncoderSize:
    hidden: int
    layers: int
    ffn: int
    tags: int

    @classmethod
    def from_config(cls, config: Any, tags: int) -> EncoderSize | None:
        """From a Hugging Face config (dict or object); ``None`` when it is not a BERT-shaped encoder."""
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        hidden, layers, ffn = get("hidden_size"), get("num_hidden_layers"), get("intermediate_size")
        if not all(isinstance(v, int) for v in (hidden, layers, ffn)):
            return None
        return cls(hidden, layers, ffn, tags)

    def flops(self, tokens: int | np.ndarray) -> np.ndarray:
        """FLOPs of windows of ``tokens`` tokens each (elementwise)."""
        s = np.asarray(tokens, dtype=np.float64)
        h, f = self.hidden, self.ffn
        per_layer = 2 * s * 4 * h * h + 2 * s * 2 * h * f + 2 * 2 * s * s * h
        return self.layers * per_layer + 2 * s * h * self.tags


def window_flops(size: EncoderSize, window_tokens: Sequence[int] | np.ndarray) -> float:
    """Total FLOPs of running the given windows (lengths with special tokens, no padding)."""
    return float(size.flops(np.asarray(window_tokens)).sum())
