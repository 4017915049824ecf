"""The ``tiny`` backbone: a small BERT built from config, with a character vocabulary made from the data.

No download and no pretraining: for tests, quick runs and as a from-scratch
baseline. The tokenizer is a real fast WordPiece/BERT tokenizer (``tokenizers``)
whose vocabulary holds every character seen in the training texts, each CJK
character isolated (BERT's ``handle_chinese_chars``) and every other character
also as a ``##`` continuation, so digit and Latin runs split into one token
per character. Saved with the model, it travels to ONNX and Triton unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig

__all__ = ["SPECIAL_TOKENS", "char_vocab", "tiny_config", "tiny_tokenizer"]

# name in a Hugging Face special_tokens_map -> token, in vocabulary order (ids 0..4)
SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}
_ALWAYS = "".join(chr(c) for c in range(0x21, 0x7F))  # printable ASCII: cheap, and unseen digits/letters are common


def char_vocab(texts: Iterable[str], *, min_count: int = 1) -> list[str]:
    """Characters seen at least ``min_count`` times (plus printable ASCII), sorted for a stable vocabulary."""
    counts = Counter(ch for t in texts for ch in t if not ch.isspace())
    return sorted({ch for ch, n in counts.items() if n >= min_count} | set(_ALWAYS))


def tiny_tokenizer(chars: Iterable[str]) -> Tokenizer:
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(f"##{ch}", len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=200))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return tok


def tiny_config(
    vocab_size: int, *, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int, max_positions: int
) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        pad_token_id=0,
    )
