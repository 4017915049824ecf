"""(context, message) -> token ids: the tokenizer's own sentence-pair encoding (numpy + ``tokenizers`` only).

The pair goes through the tokenizer as a pair, exactly what
``tokenizer(context, message)`` does in transformers: the tokenizer's post
processor places the special tokens (``[CLS] context [SEP] message [SEP]`` for
BERT, ``<s> context </s></s> message </s>`` for XLM-R / e5-small) and the
segment ids (``token_type_ids``: 0 for the context, 1 for the message in BERT;
all 0 in XLM-R). Nothing glues ``[SEP]`` into a string. An empty context means
the message alone (a single sequence). Pairs longer than ``max_length`` are
truncated longest-first, as transformers' ``truncation=True`` does.

Used by training, the PyTorch and ONNX runtimes and the Triton model alike, so
it imports neither torch nor transformers.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from nerwheel.errors import ConfigError
from nerwheel.model.padding import pad_ids

__all__ = ["Encoded", "PairEncoder"]


@dataclass(frozen=True)
class Encoded:
    """One padded batch: int64 ``[batch, seq]`` arrays, the ONNX graph's inputs by name."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids}


class PairEncoder:
    """Encode (context, message) pairs with a fast tokenizer, truncated to ``max_length`` tokens."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int, pad_id: int) -> None:
        if max_length < 4:
            raise ConfigError(f"max_length={max_length} leaves no room for text between the special tokens; use 8 "
                             "or more")
        self.tokenizer = copy.deepcopy(tokenizer)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")
        self.max_length = max_length
        self.pad_id = pad_id

    @classmethod
    def from_file(cls, path: str | Path, *, max_length: int, pad_id: int) -> PairEncoder:
        return cls(Tokenizer.from_file(str(path)), max_length=max_length, pad_id=pad_id)

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """Per (context, message): token ids and segment ids, special tokens included, not padded."""
        inputs = [(c, m) if c else m for c, m in pairs]
        return [(e.ids, e.type_ids) for e in self.tokenizer.encode_batch(inputs)]

    def pad(self, rows: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Encoded:
        ids, mask = pad_ids([row for row, _ in rows], self.pad_id)
        types = np.zeros_like(ids)
        for r, (_, seg) in enumerate(rows):
            types[r, : len(seg)] = seg
        return Encoded(ids, mask, types)

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> Encoded:
        return self.pad(self.encode(pairs))
