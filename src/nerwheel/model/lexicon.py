"""Lexicon features as a model input: per-character knowledge-base features aligned to tokens and windows.

:class:`~nerwheel.kb.lexicon.LexiconFeatures` says, per character, which
knowledge-base matches cover it. A model with ``model.lexicon.enabled`` reads a
third input beside ``input_ids``/``attention_mask``: ``lexicon``, float32
``[batch, sequence, width]``, one row per token:

- a token's row is the element-wise maximum over the characters it covers
  (one character per token for Chinese; a piece such as ``▁12`` gets what
  either digit has);
- special tokens, whitespace tokens and padding get zeros;
- a window's rows are the rows of its tokens, in the same positions as
  :meth:`~nerwheel.model.encoding.TextEncoder.input_ids` puts their ids.

Training (:mod:`nerwheel.model.data`), the PyTorch and ONNX Runtime taggers
and the Triton python backend all go through :class:`LexiconInputs`, so the
features a served model sees are the ones it was trained on; the card's
``lexicon`` section (the features' signature) is checked when a model is
loaded. numpy only: no torch here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nerwheel.model.encoding import Encoded, TextEncoder, Window

__all__ = ["INPUT_NAME", "LexiconInputs"]

#: The model input's name (PyTorch argument, ONNX input, collated batch key).
INPUT_NAME = "lexicon"


class LexiconInputs:
    """Computes a text's per-token lexicon rows and cuts them into windows.

    ``features`` is a :class:`~nerwheel.kb.lexicon.LexiconFeatures` (it caches the character matrices).
    """

    name = INPUT_NAME

    def __init__(self, features: Any, encoder: TextEncoder) -> None:
        self.features = features
        self.encoder = encoder
        self.width = int(features.width)

    @classmethod
    def for_card(cls, lexicon: dict[str, Any], encoder: TextEncoder, *, where: str) -> LexiconInputs | None:
        """The inputs a model card asks for (``None`` without a ``lexicon`` section), checked against this KB."""
        if not lexicon:
            return None
        from nerwheel.kb.lexicon import check_signature, shared_features

        features = shared_features()
        check_signature(lexicon, features.signature, where=where)
        return cls(features, encoder)

    def token_rows(self, text: str, enc: Encoded) -> np.ndarray:
        """float32 ``[len(enc), width]``: each token's row is the maximum over the characters it covers."""
        chars = self.features.matrix(text)
        rows = np.zeros((len(enc), self.width), dtype=np.float32)
        spans = enc.spans
        nonempty = np.flatnonzero(spans[:, 1] > spans[:, 0]) if len(enc) else np.zeros(0, dtype=np.int64)
        if len(nonempty):
            single = nonempty[spans[nonempty, 1] - spans[nonempty, 0] == 1]
            rows[single] = chars[spans[single, 0]]
            for i in nonempty[spans[nonempty, 1] - spans[nonempty, 0] > 1]:
                rows[i] = chars[spans[i, 0] : spans[i, 1]].max(axis=0)
        return rows

    def window_rows(self, rows: np.ndarray, window: Window) -> np.ndarray:
        """Rows aligned with ``encoder.input_ids(enc, window)``: zeros for the special tokens around the window."""
        e = self.encoder
        out = np.zeros((len(e.prefix) + window.end - window.start + len(e.suffix), self.width), dtype=np.float32)
        out[len(e.prefix) : len(e.prefix) + window.end - window.start] = rows[window.start : window.end]
        return out
