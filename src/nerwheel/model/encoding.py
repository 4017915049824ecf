"""Text -> token ids, the label-bearing positions, and sliding windows (numpy + ``tokenizers`` only).

Chinese NER labels characters, models see sub-tokens. The bridge is the fast
tokenizer's offset mapping:

- every token gets the character span it covers, trimmed of whitespace (a
  SentencePiece ``▁00`` covers the space before ``00``; entities never start
  on it);
- the first token of each character span is a *head*: it carries the tag of
  the span's first character; other sub-tokens of the same span (byte-fallback
  pieces, a split wordpiece of the same character) carry no label (``-100``);
- decoding works on heads only and rebuilds entities from the heads' character
  spans (:func:`nerwheel.decode.tags_to_entities`).

:func:`ensure_char_split` makes a tokenizer isolate every CJK character first
(BERT tokenizers already do; SentencePiece ones merge ``杭州市`` into one
piece), so entity boundaries between Chinese characters are always
representable.

Texts longer than ``sequence_length`` tokens are cut into overlapping windows
(``stride`` tokens of overlap). Each token is *owned* by the window in which
it sits furthest from an edge; :meth:`TextEncoder.stitch` keeps each window's
emissions for its own tokens only and the decoder runs once over the whole
text, so spans across window borders are neither lost nor duplicated.

Used by training, the PyTorch and ONNX runtimes and Triton alike, so it must
not import torch or transformers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from nerwheel.errors import ConfigError

__all__ = ["CJK", "Encoded", "EncodedBatch", "TextEncoder", "Window", "ensure_char_split", "is_cjk", "pad_ragged",
           "special_ids"]

IGNORE = -100

# CJK ideographs: unified (+ extension A, B-F), compatibility ideographs. Literal characters, not
# escapes, so the Rust regex engine reads exactly this class.
CJK = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]"
#: Any character but whitespace: ``model.tokenization: chars`` isolates them all (digits and Latin letters too).
ANY_CHAR = "[^\\s]"
_PROBE = "浙江省杭州市西湖区"
_PROBE_ALL = "浙江省杭州市西湖区文三路-00号A座0F"
_CJK_CHAR = re.compile(CJK)


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is one CJK ideograph (the class :func:`ensure_char_split` isolates)."""
    return bool(_CJK_CHAR.fullmatch(ch))


def _splits_every_char(tok: Tokenizer, probe: str) -> bool:
    enc = tok.encode(probe, add_special_tokens=False)
    starts = {s for s, e in enc.offsets if e > s}
    return starts >= set(range(len(probe))) and all(e - s <= 1 for s, e in enc.offsets)


def ensure_char_split(tok: Tokenizer, *, every_char: bool = False) -> Tokenizer:
    """A copy of ``tok`` that isolates every CJK character (``every_char``: every character) before its own
    pre-tokenizer runs.

    Returned unchanged when the tokenizer already does so (BERT's
    ``handle_chinese_chars``; the ``tiny`` character vocabulary). A
    SentencePiece ``Metaspace`` pre-tokenizer is switched to prefix ``▁`` only
    to the first piece, or every character would cost two tokens (``▁`` +
    ``浙``). ``every_char`` also splits digit and Latin runs (``-00`` is one
    e5-small piece), so no entity boundary can fall inside a token; every
    character then needs a single-character piece (e5-small keeps them all).
    """
    probe, pattern = (_PROBE_ALL, ANY_CHAR) if every_char else (_PROBE, CJK)
    spec = json.loads(tok.to_str())
    inner = spec.get("pre_tokenizer")
    parts = inner["pretokenizers"] if inner and inner.get("type") == "Sequence" else ([inner] if inner else [])
    # A probe cannot prove every character splits (a pruned vocabulary may lack the probe's multi-character
    # pieces and yet hold others), so per-character input looks for its own rule.
    if (any(p.get("type") == "Split" and p.get("pattern") == {"Regex": ANY_CHAR} for p in parts) if every_char
            else _splits_every_char(tok, probe)):
        return tok
    for p in parts:
        if p.get("type") == "Metaspace" and p.get("prepend_scheme") == "always":
            p["prepend_scheme"] = "first"
    split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, *parts]}
    out = Tokenizer.from_str(json.dumps(spec))
    if not _splits_every_char(out, probe):
        what = "every character" if every_char else "Chinese characters"
        raise ConfigError(f"could not make the tokenizer split {what}; its normalizer or model merges them")
    return out


def special_ids(tok: Tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer's post-processor puts before and after a single text (``[CLS]``/``[SEP]``, ``<s>``/``</s>``)."""
    probe = "a"
    bare = tok.encode(probe, add_special_tokens=False).ids
    full = tok.encode(probe, add_special_tokens=True).ids
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return full[:i], full[i + len(bare) :]
    raise ConfigError("the tokenizer's post-processor changes the text's own tokens; cannot find its special tokens")


@dataclass(frozen=True)
class Encoded:
    """One text, tokenized without special tokens.

    ``spans[i]`` is token i's whitespace-trimmed character span (empty for pure
    whitespace); ``heads`` are the indices of label-bearing tokens and
    ``head_spans`` their character spans, disjoint and in text order.
    """

    ids: np.ndarray  # int64 [n]
    spans: np.ndarray  # int64 [n, 2]
    heads: np.ndarray  # int64 [h]
    head_spans: np.ndarray  # int64 [h, 2]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Window:
    """Tokens ``[start, end)`` of a text fed to the model at once; it owns ``[own_start, own_end)``."""

    start: int
    end: int
    own_start: int
    own_end: int


# Every code point str.isspace() accepts lies below U+3001 (the last is U+3000, the ideographic space).
_SPACE_LIMIT = 0x3001
_SPACE_TABLE = np.array([chr(c).isspace() for c in range(_SPACE_LIMIT)], dtype=bool)


def _is_space(text: str) -> np.ndarray:
    """``str.isspace`` of every character of ``text`` at once (bool ``[len(text)]``)."""
    cp = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    return _SPACE_TABLE[np.minimum(cp, _SPACE_LIMIT - 1)] & (cp < _SPACE_LIMIT)


@dataclass(frozen=True)
class EncodedBatch:
    """Many texts tokenized at once, as flat arrays (what the runtimes batch from).

    Text ``i`` owns tokens ``token_offsets[i]:token_offsets[i + 1]`` of ``ids``
    and ``spans``, and heads ``head_offsets[i]:head_offsets[i + 1]`` of
    ``heads`` (token indices within the text) and ``head_spans``; spans are
    character offsets within the text. ``self[i]`` is text ``i``'s
    :class:`Encoded` (views, no copies).
    """

    ids: np.ndarray  # int64 [N]
    spans: np.ndarray  # int64 [N, 2]
    token_offsets: np.ndarray  # int64 [n + 1]
    heads: np.ndarray  # int64 [H]
    head_spans: np.ndarray  # int64 [H, 2]
    head_offsets: np.ndarray  # int64 [n + 1]

    def __len__(self) -> int:
        return len(self.token_offsets) - 1

    @property
    def token_counts(self) -> np.ndarray:
        return np.diff(self.token_offsets)

    @property
    def head_counts(self) -> np.ndarray:
        return np.diff(self.head_offsets)

    def __getitem__(self, i: int) -> Encoded:
        t0, t1 = self.token_offsets[i], self.token_offsets[i + 1]
        h0, h1 = self.head_offsets[i], self.head_offsets[i + 1]
        return Encoded(self.ids[t0:t1], self.spans[t0:t1], self.heads[h0:h1], self.head_spans[h0:h1])

    def items(self) -> list[Encoded]:
        return [self[i] for i in range(len(self))]


def _encode_flat(texts: Sequence[str], ids: Sequence[Sequence[int]], offsets: Sequence[Sequence[tuple[int, int]]]
                 ) -> EncodedBatch:
    """Token spans trimmed of whitespace, heads and head spans of every text, in numpy over the whole batch.

    The texts are laid end to end, so one pass over global character positions
    serves them all: a token's span is trimmed with "next non-space at or
    after" / "last non-space before" tables; a token is a head when its trimmed
    span is not empty and starts at or after every earlier non-empty span
    (a running maximum, which never crosses into the next text because its
    positions are larger); each head's span runs to the furthest end of the
    non-head pieces that follow it (byte-fallback pieces of one character).
    """
    n_texts = len(texts)
    counts = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n_texts)
    token_offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(token_offsets[-1])
    flat_ids = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=total)
    raw = np.fromiter(chain.from_iterable(chain.from_iterable(offsets)), dtype=np.int64, count=2 * total)
    raw = raw.reshape(total, 2)
    text_len = np.fromiter(map(len, texts), dtype=np.int64, count=n_texts)
    char_base = np.concatenate([[0], np.cumsum(text_len)])
    owner = np.repeat(np.arange(n_texts), counts)
    base = char_base[:-1][owner]
    joined = "".join(texts)
    n_chars = len(joined)
    space = _is_space(joined)
    positions = np.arange(n_chars)
    next_solid = np.append(np.minimum.accumulate(np.where(space, n_chars, positions)[::-1])[::-1], n_chars)
    solid_end = np.concatenate([[0], np.maximum.accumulate(np.where(space, -1, positions)) + 1])
    start = np.minimum(next_solid[raw[:, 0] + base], raw[:, 1] + base)
    end = np.maximum(solid_end[raw[:, 1] + base], start)
    filled = np.where(end > start, end, 0)
    covered = np.concatenate([[0], np.maximum.accumulate(filled)[:-1]]) if total else filled
    is_head = (end > start) & (start >= covered)
    head_idx = np.flatnonzero(is_head)
    head_end = np.maximum.reduceat(filled, head_idx) if head_idx.size else np.zeros(0, dtype=np.int64)
    head_owner = owner[head_idx]
    head_offsets = np.concatenate([[0], np.cumsum(np.bincount(head_owner, minlength=n_texts))])
    return EncodedBatch(
        ids=flat_ids,
        spans=np.stack([start - base, end - base], axis=1),
        token_offsets=token_offsets,
        heads=head_idx - token_offsets[:-1][head_owner],
        head_spans=np.stack([start[head_idx], head_end], axis=1) - char_base[:-1][head_owner][:, None],
        head_offsets=head_offsets,
    )


def pad_ragged(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int, fill: float | int = 0
               ) -> np.ndarray:
    """Rows ``flat[starts[r]:starts[r] + lengths[r]]`` left-aligned in a ``[len(starts), width, ...]`` array.

    One scatter for the whole batch instead of a copy per row.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.full((len(starts), width, *flat.shape[1:]), fill, dtype=flat.dtype)
    rows = np.repeat(np.arange(len(starts)), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat[np.repeat(starts, lengths) + cols]
    return out


class TextEncoder:
    """Tokenizes texts, plans windows, builds model inputs and stitches window outputs back together.

    ``sequence_length`` counts special tokens; ``stride`` is the overlap
    between consecutive windows in tokens.
    """

    def __init__(self, tokenizer: Tokenizer, *, sequence_length: int, stride: int, pad_id: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.prefix, self.suffix = special_ids(tokenizer)
        self.sequence_length = sequence_length
        self.content_length = sequence_length - len(self.prefix) - len(self.suffix)
        if self.content_length < 2:
            raise ConfigError(f"sequence_length={sequence_length} leaves no room for text after the special tokens")
        if not 0 <= stride < self.content_length:
            raise ConfigError(
                f"stride={stride} must be >= 0 and smaller than sequence_length minus special tokens "
                f"({self.content_length})"
            )
        self.stride = stride
        self.pad_id = pad_id

    @classmethod
    def from_file(cls, path: str | Path, *, sequence_length: int, stride: int, pad_id: int) -> TextEncoder:
        return cls(Tokenizer.from_file(str(path)), sequence_length=sequence_length, stride=stride, pad_id=pad_id)

    # -- tokenization ---------------------------------------------------------------------------
    def encode(self, text: str) -> Encoded:
        return self.encode_flat([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[Encoded]:
        return self.encode_flat(texts).items()

    def encode_flat(self, texts: Sequence[str]) -> EncodedBatch:
        """All texts through the Rust tokenizer in one call (its own threads), then :func:`_encode_flat`."""
        texts = list(texts)
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return _encode_flat(texts, [e.ids for e in encs], [e.offsets for e in encs])

    # -- windows ----------------------------------------------------------------------------------
    def windows(self, n_tokens: int) -> list[Window]:
        size = self.content_length
        if n_tokens <= size:
            return [Window(0, n_tokens, 0, n_tokens)]
        step = size - self.stride
        starts = list(range(0, n_tokens - size, step)) + [n_tokens - size]
        bounds = [(s, s + size) for s in starts]
        out = []
        for k, (s, e) in enumerate(bounds):
            own_s = 0 if k == 0 else (s + bounds[k - 1][1]) // 2
            own_e = n_tokens if k == len(bounds) - 1 else (bounds[k + 1][0] + e) // 2
            out.append(Window(s, e, own_s, own_e))
        return out

    def input_ids(self, enc: Encoded, window: Window) -> np.ndarray:
        """Model input of one window: special tokens around the window's tokens."""
        return np.concatenate(
            [np.asarray(self.prefix, np.int64), enc.ids[window.start : window.end], np.asarray(self.suffix, np.int64)]
        )

    def stitch(self, enc: Encoded, windows: Sequence[Window], outputs: Sequence[np.ndarray]) -> np.ndarray:
        """Per-head rows ``[h, T]`` from per-window model outputs ``[len(input_ids), T]`` (special tokens included)."""
        if not windows:
            return np.zeros((0, 0), dtype=np.float32)
        width = outputs[0].shape[-1]
        rows = np.zeros((len(enc), width), dtype=np.float32)
        off = len(self.prefix)
        for w, out in zip(windows, outputs, strict=True):
            rows[w.own_start : w.own_end] = out[off + w.own_start - w.start : off + w.own_end - w.start]
        return rows[enc.heads]

    # -- labels -------------------------------------------------------------------------------------
    def token_labels(self, enc: Encoded, char_tag_ids: Sequence[int], window: Window) -> np.ndarray:
        """Labels aligned with :meth:`input_ids`: each head gets its first character's tag, all else ``-100``."""
        labels = np.full(len(self.prefix) + window.end - window.start + len(self.suffix), IGNORE, dtype=np.int64)
        tags = np.asarray(char_tag_ids, dtype=np.int64)
        inside = (enc.heads >= window.start) & (enc.heads < window.end)
        heads = enc.heads[inside]
        labels[len(self.prefix) + heads - window.start] = tags[enc.head_spans[inside, 0]]
        return labels


def misaligned(enc: Encoded, entities: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Entities whose boundaries fall inside a token: the model cannot represent them exactly."""
    starts = set(enc.head_spans[:, 0].tolist())
    ends = set(enc.head_spans[:, 1].tolist())
    return [(s, e, lab) for s, e, lab in entities if s not in starts or e not in ends]
