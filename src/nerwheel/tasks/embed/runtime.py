"""Texts in, L2-normalised embeddings out: ONNX Runtime (:class:`OnnxEncoder`) or PyTorch (:class:`TorchEncoder`).

Both take ``kind`` (``query``, ``document`` or ``None``) and add the model's
prompt for it (:func:`with_prompt`, the one place prompts are applied outside
sentence-transformers), so ``encode --kind query`` means the same thing in
PyTorch, ONNX Runtime and against a Triton server.

The export folder (what :mod:`nerwheel.tasks.embed.export` writes)::

    model.onnx        input_ids, attention_mask int64 [batch, seq] -> embedding float32 [batch, dim]
                      (encoder, mean pooling over the mask, L2 normalisation: all in the graph)
    model.int8.onnx   the same, weights dynamically quantised to int8 (when asked)
    tokenizer.json    the model's fast tokenizer (added words included)
    nerwheel.json     task "embed", dimension, max_seq_length, prompts, pad_id, export checks

This module imports neither torch nor transformers: the Triton python backend
imports :class:`OnnxEncoder` alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nerwheel.errors import ConfigError
from nerwheel.model.layout import CARD_FILE, ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE, find_export
from nerwheel.model.ort_session import open_session

__all__ = ["CARD_FILE", "ONNX_FILE", "ONNX_INT8_FILE", "OUTPUT", "TOKENIZER_FILE", "Kind", "OnnxEncoder",
           "TorchEncoder", "load_runtime", "with_prompt"]

OUTPUT = "embedding"
Kind = Literal["query", "document"] | None
KINDS = ("query", "document")


def with_prompt(texts: Sequence[str], kind: Kind, prompts: Mapping[str, str]) -> list[str]:
    """``texts`` with the prompt of ``kind`` in front (``None``: as they are)."""
    if kind is None:
        return list(texts)
    if kind not in KINDS:
        raise ConfigError(f"kind {kind!r}: expected query, document or none", field="kind")
    prefix = prompts.get(kind, "")
    return [prefix + t for t in texts]


class OnnxEncoder:
    """An export folder on ONNX Runtime; ``int8=True`` runs ``model.int8.onnx``."""

    def __init__(self, path: str | Path, *, int8: bool = False, batch_size: int = 32, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        from tokenizers import Tokenizer

        directory = Path(path)
        card_file = directory / CARD_FILE
        if not card_file.is_file():
            raise FileNotFoundError(f"{card_file}: missing; not an embedding export folder (run `nerwheel embed "
                                    "export`)")
        self.card: dict[str, Any] = json.loads(card_file.read_text(encoding="utf-8"))
        if self.card.get("task") != "embed":
            raise ConfigError(f"{directory}: holds a {self.card.get('task') or 'ner'} model, not an embedding model",
                              field="model")
        self.model_file = directory / (ONNX_INT8_FILE if int8 else ONNX_FILE)
        if not self.model_file.is_file():
            hint = " (export with --quantize int8)" if int8 else ""
            raise FileNotFoundError(f"{self.model_file}: missing; not an embedding export folder{hint}")
        self.prompts: dict[str, str] = dict(self.card.get("prompts") or {})
        self.max_seq_length = int(self.card["max_seq_length"])
        self.pad_id = int(self.card.get("pad_id", 0))
        self.dimension = int(self.card["dimension"])
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.session = open_session(self.model_file, threads=threads, providers=providers)

    def tokens(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def run(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Embeddings ``[n, dim]`` for token id lists (padded here to the longest)."""
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return self.session.run([OUTPUT], {"input_ids": input_ids, "attention_mask": mask})[0]

    def encode(self, texts: Sequence[str], *, kind: Kind = None) -> np.ndarray:
        """Embeddings ``[len(texts), dim]`` float32, in input order; batches are grouped by length."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        ids = self.tokens(with_prompt(texts, kind, self.prompts))
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self.run([ids[i] for i in chunk])
        return out


class TorchEncoder:
    """A sentence-transformers model (a model name or folder, or one in memory) with the same interface."""

    def __init__(self, model: Any, *, batch_size: int = 32) -> None:
        if isinstance(model, (str, Path)):
            from nerwheel.tasks.embed.model import load_encoder

            model = load_encoder(str(model))
        self.model = model
        self.batch_size = batch_size
        self.prompts: dict[str, str] = dict(model.prompts or {})
        self.dimension = int(model.get_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str], *, kind: Kind = None) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        # the prompt is added here, like every runtime does (the model has no default prompt to add twice)
        return np.asarray(self.model.encode(with_prompt(texts, kind, self.prompts), batch_size=self.batch_size,
                                            normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)


def load_runtime(path: str, *, runtime: Literal["auto", "onnx", "torch"] = "auto", int8: bool = False,
                 batch_size: int = 32) -> OnnxEncoder | TorchEncoder:
    """An encoder for a model name/folder or an export folder; ``auto`` prefers an export (``MODEL/onnx``)."""
    p = Path(path)
    export = find_export(p)
    if runtime == "onnx" or (runtime == "auto" and export is not None):
        if export is None:
            raise FileNotFoundError(f"{p}: no {ONNX_FILE} here or in its export folder; run `nerwheel embed "
                                    "export` or use --runtime torch")
        return OnnxEncoder(export, int8=int8, batch_size=batch_size)
    if int8:
        raise ConfigError("int8 needs the ONNX runtime (an export folder with model.int8.onnx)", field="int8")
    return TorchEncoder(path, batch_size=batch_size)
