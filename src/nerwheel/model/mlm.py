"""Masked-language-model pieces for domain-adaptive pretraining (``nerwheel pretrain``): masking and the MLM head.

Chinese addresses are read one character per token (:func:`nerwheel.model.encoding.ensure_char_split`),
so masking a token masks a whole character, never half of one. Two ways to choose what to mask:

- ``char``: each content token independently (BERT's 15 %);
- ``span``: runs of consecutive tokens (lengths drawn from a geometric
  distribution with mean ``span_mean``, SpanBERT-style) until the same share is
  covered, so the model must rebuild whole words such as ``西湖区`` from context
  instead of one character from its neighbours.

A chosen token becomes the mask token 80 % of the time, a random token 10 %
and stays itself 10 % (BERT); labels are the original ids there and ``-100``
elsewhere. Special tokens and padding are never chosen. :func:`mask_batch` is
numpy only, seeded by the caller's generator, so it is exactly testable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nerwheel.model.data import IGNORE
from nerwheel.model.padding import pad_ids

__all__ = ["MaskSettings", "MlmHead", "collate_mlm", "mask_batch", "ordinary_id_range"]


@dataclass(frozen=True)
class MaskSettings:
    mask_id: int
    vocab_size: int
    ratio: float = 0.15
    masking: str = "span"  # "char" or "span"
    span_mean: float = 3.0
    random_ids: tuple[int, int] = (0, 0)  # [low, high) ids a random replacement is drawn from (0, 0: any)


def ordinary_id_range(special_ids: Sequence[int], vocab_size: int) -> tuple[int, int]:
    """``[low, high)``: the longest run of ids with no special token in it, where random replacements come from.

    BERT vocabularies put their specials first (``[PAD]`` 0 ... ``[MASK]`` 103), XLM-R's (e5-small) put ``<mask>``
    last: "everything above the largest special id" is empty there (``low >= high`` stopped ``nerwheel pretrain
    --model e5-small`` at its first batch).
    """
    bounds = sorted({-1, vocab_size, *(i for i in special_ids if 0 <= i < vocab_size)})
    low, high = max(zip(bounds, bounds[1:]), key=lambda b: b[1] - b[0])
    if high - low < 2:
        raise ValueError(f"no ordinary token ids between the special ids {sorted(special_ids)} (vocabulary {vocab_size})")
    return low + 1, high


def _chosen(eligible: np.ndarray, settings: MaskSettings, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``[n]``: which of one row's positions are masked (only ``eligible`` ones)."""
    n_eligible = int(eligible.sum())
    chosen = np.zeros(len(eligible), dtype=bool)
    if n_eligible == 0:
        return chosen
    target = max(1, int(round(n_eligible * settings.ratio)))
    positions = np.flatnonzero(eligible)
    if settings.masking == "char":
        chosen[rng.choice(positions, size=target, replace=False)] = True
        return chosen
    p = 1.0 / max(settings.span_mean, 1.0)
    for _ in range(4 * len(positions)):  # bounded: each pass masks at least one new position or retries
        if chosen.sum() >= target:
            break
        start = int(rng.choice(positions))
        length = min(int(rng.geometric(p)), target - int(chosen.sum()))
        for i in range(start, min(len(eligible), start + length)):
            if not eligible[i]:
                break
            chosen[i] = True
    return chosen


def mask_batch(input_ids: np.ndarray, special: np.ndarray, settings: MaskSettings,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(masked_ids, labels)`` for int64 ``[B, S]`` ids; ``special`` is True at special tokens and padding."""
    masked = input_ids.copy()
    labels = np.full_like(input_ids, IGNORE)
    low, high = settings.random_ids if settings.random_ids != (0, 0) else (0, settings.vocab_size)
    for r in range(len(input_ids)):
        chosen = _chosen(~special[r], settings, rng)
        labels[r, chosen] = input_ids[r, chosen]
        roll = rng.random(len(chosen))
        to_mask = chosen & (roll < 0.8)
        to_random = chosen & (roll >= 0.8) & (roll < 0.9)
        masked[r, to_mask] = settings.mask_id
        masked[r, to_random] = rng.integers(low, high, size=int(to_random.sum()))
    return masked, labels


def collate_mlm(rows: Sequence[np.ndarray], *, pad_id: int, special_ids: Sequence[int], settings: MaskSettings,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pad windows (special tokens included) and mask them: ``input_ids``, ``attention_mask``, ``labels``."""
    ids, mask = pad_ids(rows, pad_id)
    special = (mask == 0) | np.isin(ids, np.asarray(list(special_ids), dtype=np.int64))
    masked, labels = mask_batch(ids, special, settings, rng)
    return {"input_ids": masked, "attention_mask": mask, "labels": labels}


class MlmHead(nn.Module):
    """dense -> GELU -> LayerNorm -> vocabulary logits, the decoder tied to the encoder's word embeddings.

    Pretrained encoders such as e5-small ship without their MLM head, so this
    one starts fresh; only the encoder is kept after pretraining.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        embeddings = encoder.get_input_embeddings()  # type: ignore[operator]
        hidden = embeddings.weight.shape[1]
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.embeddings = embeddings
        self.bias = nn.Parameter(torch.zeros(embeddings.weight.shape[0]))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.norm(nn.functional.gelu(self.dense(hidden)))
        return x @ self.embeddings.weight.T + self.bias
