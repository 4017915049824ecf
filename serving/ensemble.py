"""The python steps of the GPU layout: ``tokenize`` before and ``decode`` after the onnxruntime model.

On a GPU Triton image the ONNX graph runs in Triton's ``onnxruntime`` backend
(TensorRT/CUDA providers, dynamic batching), and only the cheap CPU work
stays in Python. Both steps reuse the export's own pieces
(:class:`~nerwheel.model.encoding.TextEncoder`, the runtime's ``decode``), so
tokenisation, stitching and Viterbi are the same code as offline. A model
trained with knowledge-base lexicon features gets them from the tokenize step,
computed by the runtime's own :class:`~nerwheel.model.lexicon.LexiconInputs`
(the card's feature signature checked when the step loads). The decode step
also lists the n best readings (``NBEST``) with the runtime's own
``decode_n_best``, for the requests that name that output.

One limit of the layout: a text must fit into one model window (the ensemble
maps one text to one row), so longer texts are refused with a message that
names the limit; the CPU layout slides windows over texts of any length.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.model.data import pad_rows
from nerwheel.model.padding import pad_ids
from nerwheel.serving.backend import (
    Limits,
    RequestError,
    decode_texts,
    entities_json,
    internal_error,
    n_best_json,
    pad_tag_ids,
)
from nerwheel.serving.config import ATTENTION_MASK, INPUT_IDS, OUTPUT_ENTITIES, OUTPUT_NBEST, OUTPUT_TAG_IDS

__all__ = ["DecodeHandler", "TokenizeHandler", "load_decoder"]


def load_decoder(folder: str | Path) -> Any:
    """A runtime ``Tagger`` without a forward pass: card, encoder and CRF of an export (no model.onnx needed)."""
    from nerwheel.decode import CrfParams
    from nerwheel.model.card import ModelCard
    from nerwheel.model.encoding import TextEncoder
    from nerwheel.model.layout import CRF_NPZ, TOKENIZER_FILE
    from nerwheel.model.runtime import Tagger, lexicon_for

    folder = Path(folder)
    card = ModelCard.read(folder)
    encoder = TextEncoder.from_file(folder / TOKENIZER_FILE, sequence_length=card.sequence_length,
                                    stride=card.stride, pad_id=card.pad_id)
    crf = CrfParams.load(str(folder / CRF_NPZ)) if card.head == "crf" else None
    # the lexicon inputs a lexicon model reads, as the runtimes build them (the tokenize step computes them)
    return Tagger(card, encoder, crf, lexicon=lexicon_for(card, encoder))


class TokenizeHandler:
    """``TEXT`` -> ``input_ids``, ``attention_mask`` (int64, one window per text, padded per request), and
    ``lexicon`` (float32 ``[n, sequence, columns]``, zeros on padding) when the model reads lexicon features."""

    def __init__(self, encoder: Any, limits: Limits, lexicon: Any = None) -> None:
        self.encoder = encoder
        self.limits = limits
        self.lexicon = lexicon  # nerwheel.model.lexicon.LexiconInputs, or None

    @classmethod
    def from_folder(cls, folder: str | Path, limits: Limits) -> TokenizeHandler:
        tagger = load_decoder(folder)
        return cls(tagger.encoder, limits, tagger.lexicon)

    def encode(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        texts = decode_texts(raw, self.limits)
        lex = self.lexicon
        rows, features = [], []
        for i, enc in enumerate(self.encoder.encode_batch(texts)):
            windows = self.encoder.windows(len(enc))
            if len(windows) > 1:
                raise RequestError(
                    f"TEXT[{i}] is {len(enc)} tokens; the GPU layout takes at most {self.encoder.content_length} "
                    "tokens per text: split it, or deploy the cpu variant (which slides windows)"
                )
            rows.append(self.encoder.input_ids(enc, windows[0]))
            if lex is not None:
                features.append(lex.window_rows(lex.token_rows(texts[i], enc), windows[0]))
        ids, mask = pad_ids(rows, self.encoder.pad_id)
        out = {INPUT_IDS: ids, ATTENTION_MASK: mask}
        if lex is not None:
            out[lex.name] = pad_rows(features, ids.shape[1])
        return out

    def serve(self, requests: Sequence[dict[str, np.ndarray]], wanted: Sequence[set[str]]) -> list[Any]:
        out: list[Any] = []
        for r in requests:
            try:
                out.append(self.encode(r["TEXT"]))
            except RequestError as e:
                out.append(e)
        return out


class DecodeHandler:
    """``TEXT`` + ``attention_mask`` + ``emissions`` -> ``ENTITIES`` (JSON) and ``TAG_IDS``, and ``NBEST`` (JSON,
    :func:`~nerwheel.serving.backend.n_best_json`) for a request that names it.

    The ensemble asks this model twice (see :func:`~nerwheel.serving.config.gpu_model_configs`): once for
    ``ENTITIES`` and ``TAG_IDS``, once, only when a client names it, for ``NBEST``; each request gets
    what it names (none named: ``ENTITIES`` and ``TAG_IDS``). Both read the same emissions, so the first
    reading is the one best path.
    """

    def __init__(self, tagger: Any, n_best: int = Limits.n_best) -> None:
        self.tagger = tagger
        # Texts were validated by the tokenize step; here only their decoding matters.
        self.limits = Limits(max_text_length=1 << 30, max_batch_size=1 << 30, n_best=n_best)

    @classmethod
    def from_folder(cls, folder: str | Path, limits: Limits | None = None) -> DecodeHandler:
        """``limits``: the step's config (:meth:`Limits.from_model_config`); only its ``n_best`` applies here."""
        return cls(load_decoder(folder), n_best=(limits or Limits()).n_best)

    def decode(self, raw: np.ndarray, mask: np.ndarray, emissions: np.ndarray,
               wanted: Collection[str] = (OUTPUT_ENTITIES, OUTPUT_TAG_IDS)) -> dict[str, np.ndarray]:
        texts = decode_texts(raw, self.limits)
        encoder = self.tagger.encoder
        encs = encoder.encode_batch(texts)
        num_tags = emissions.shape[-1]
        stitched = []
        for i, enc in enumerate(encs):
            valid = int(mask[i].sum())
            if len(enc) == 0:
                stitched.append(np.zeros((0, num_tags), dtype=np.float32))
                continue
            stitched.append(encoder.stitch(enc, encoder.windows(len(enc)), [emissions[i, :valid]]))
        out: dict[str, np.ndarray] = {}
        if OUTPUT_ENTITIES in wanted or OUTPUT_TAG_IDS in wanted:
            entities, tags = self.tagger.decode_paths(texts, encs, stitched)
            out[OUTPUT_ENTITIES] = np.array([[entities_json(e)] for e in entities], dtype=object)
            out[OUTPUT_TAG_IDS] = pad_tag_ids(tags)
        if OUTPUT_NBEST in wanted:
            most = self.limits.n_best
            readings = self.tagger.decode_n_best(texts, encs, stitched, most)
            out[OUTPUT_NBEST] = np.array([[n_best_json(r, most)] for r in readings], dtype=object)
        return out

    def serve(self, requests: Sequence[dict[str, np.ndarray]], wanted: Sequence[set[str]]) -> list[Any]:
        out: list[Any] = []
        for r, names in zip(requests, wanted, strict=True):
            try:
                out.append(self.decode(r["TEXT"], r["attention_mask"], r["emissions"],
                                       names or (OUTPUT_ENTITIES, OUTPUT_TAG_IDS)))
            except (RequestError, ValueError, IndexError) as e:
                out.append(e if isinstance(e, RequestError) else internal_error(f"decode failed: {e}"))
        return out
