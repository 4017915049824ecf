"""Character alignment through offsets, CJK splitting, sliding windows and their stitching."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from nerwheel.labels import TagSet
from nerwheel.model.card import ModelCard
from nerwheel.model.encoding import IGNORE, TextEncoder, ensure_char_split, misaligned, special_ids
from nerwheel.model.runtime import Tagger
from nerwheel.model.tiny import char_vocab, tiny_tokenizer
from nerwheel.records import Entity


def _tiny(texts, **kw):
    return TextEncoder(tiny_tokenizer(char_vocab(texts)), pad_id=0, **({"sequence_length": 64, "stride": 8} | kw))


def _sentencepiece_like(byte_fallback=False) -> Tokenizer:
    """A small XLM-R-like tokenizer: unigram pieces with multi-character Chinese words, metaspace, <s> </s>."""
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0), ("浙江", -1.0),
              ("杭州市", -1.0), ("\u2581浙江", -0.5), ("浙", -3.0), ("江", -3.0), ("杭", -3.0), ("州", -3.0),
              ("市", -3.0), ("00", -1.0), ("0", -2.0), ("号", -2.0), ("\u2581100", -0.5), ("1", -2.0)]
    if byte_fallback:
        pieces += [(f"<0x{b:02X}>", -5.0) for b in range(256)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=byte_fallback))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def test_tiny_tokenizer_isolates_every_character():
    enc = _tiny(["浙江省杭州市100号 Ab"]).encode("浙江省杭州市100号 Ab")
    assert enc.head_spans.tolist() == [[i, i + 1] for i in range(10)] + [[11, 12], [12, 13]]


def test_special_ids_are_found_for_both_families():
    assert special_ids(tiny_tokenizer("ab")) == ([2], [3])
    assert special_ids(_sentencepiece_like()) == ([0], [2])


def test_ensure_char_split_breaks_multi_character_pieces():
    tok = _sentencepiece_like()
    before = tok.encode("浙江杭州市", add_special_tokens=False)
    assert "杭州市" in before.tokens  # a word piece: no boundary inside it could be learned
    split = ensure_char_split(tok)
    e = TextEncoder(split, sequence_length=16, stride=0, pad_id=1).encode("浙江杭州市")
    assert e.head_spans.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]
    assert len(e.ids) <= 6  # at most the leading "▁" extra: no "▁" per character
    assert ensure_char_split(tiny_tokenizer("浙江")) is not None


def test_heads_skip_whitespace_and_merge_pieces_of_one_character():
    tok = ensure_char_split(_sentencepiece_like(byte_fallback=True))
    enc = TextEncoder(tok, sequence_length=32, stride=4, pad_id=1)
    e = enc.encode("浙江 100号龘")  # "▁100" covers the space; 龘 is three byte-fallback tokens
    assert e.head_spans.tolist() == [[0, 1], [1, 2], [3, 6], [6, 7], [7, 8]]
    assert len(e.ids) == len(e.heads) + 3  # the leading "▁" and two extra byte pieces of 龘 carry no label
    # a span ending inside the "100" token cannot be represented, and is reported
    assert misaligned(e, [(3, 5, "x"), (3, 7, "y")]) == [(3, 5, "x")]


def test_token_labels_put_tags_on_heads_only():
    text = "浙江省 100号"
    enc = _tiny([text])
    tagset = TagSet(("prov", "roadno"))
    e = enc.encode(text)
    char_tags = [tagset.label2id[t] for t in ["B-prov", "I-prov", "I-prov", "O", "B-roadno", "I-roadno", "I-roadno",
                                              "I-roadno"]]
    (w,) = enc.windows(len(e))
    labels = enc.token_labels(e, char_tags, w)
    ids = enc.input_ids(e, w)
    assert len(labels) == len(ids) and labels[0] == IGNORE and labels[-1] == IGNORE
    assert [tagset.tags[i] for i in labels[1:-1]] == ["B-prov", "I-prov", "I-prov", "B-roadno", "I-roadno",
                                                      "I-roadno", "I-roadno"]


@pytest.mark.parametrize("n", [1, 5, 6, 7, 30, 61, 100])
@pytest.mark.parametrize("size,stride", [(8, 0), (8, 3), (10, 5), (16, 13)])
def test_windows_cover_every_token_once(n, size, stride):
    enc = TextEncoder(tiny_tokenizer("a"), sequence_length=size, stride=stride, pad_id=0)
    ws = enc.windows(n)
    owned = [i for w in ws for i in range(w.own_start, w.own_end)]
    assert owned == list(range(n))
    for w in ws:
        assert w.start <= w.own_start <= w.own_end <= w.end and w.end - w.start <= size - 2
    for a, b in zip(ws, ws[1:]):
        assert b.start - a.start <= size - 2 - stride  # consecutive windows overlap by at least `stride`


def test_stride_must_leave_room():
    with pytest.raises(ValueError, match="stride"):
        TextEncoder(tiny_tokenizer("a"), sequence_length=10, stride=8, pad_id=0)


# -- an oracle model: spans across window borders come back exactly ---------------------------------
class Oracle(Tagger):
    """Emissions read off each token: 'X' begins an entity of label x, 'x' continues it, '.' is outside."""

    def __init__(self, encoder: TextEncoder, labels=("a", "b", "c")):
        card = ModelCard.new(TagSet(tuple(labels)), head="softmax", backbone="oracle",
                             sequence_length=encoder.sequence_length, stride=encoder.stride)
        super().__init__(card, encoder, None, batch_size=3)
        vocab = encoder.tokenizer.get_vocab()
        self.id2tok = {i: t for t, i in vocab.items()}
        self.tag_index = {t: i for i, t in enumerate(card.tags)}
        self.calls = 0

    def run(self, input_ids, attention_mask):
        self.calls += 1
        out = np.zeros((*input_ids.shape, len(self.card.tags)), dtype=np.float32)
        for b, row in enumerate(input_ids):
            for t, i in enumerate(row):
                ch = self.id2tok[int(i)].removeprefix("##")
                tag = f"B-{ch.lower()}" if ch.isupper() else (f"I-{ch}" if ch.islower() else "O")
                out[b, t, self.tag_index.get(tag, 0)] = 10.0
        return out


def _oracle_text(n_entities: int, seed: int) -> tuple[str, list[Entity]]:
    rng = random.Random(seed)
    text, ents = "", []
    for _ in range(n_entities):
        text += "." * rng.randint(0, 3)
        label = rng.choice("abc")
        span = label.upper() + label * rng.randint(0, 6)
        ents.append(Entity(len(text), len(text) + len(span), label, span))
        text += span
    return text, ents


@pytest.mark.parametrize("size,stride", [(8, 0), (9, 3), (16, 5), (32, 16), (512, 0)])
def test_spans_across_window_borders_are_rebuilt_exactly(size, stride):
    text, gold = _oracle_text(60, seed=size)
    short, short_gold = _oracle_text(3, seed=1)
    encoder = TextEncoder(tiny_tokenizer(char_vocab([text])), sequence_length=size, stride=stride, pad_id=0)
    tagger = Oracle(encoder)
    got = tagger.predict([text, "", short], scores=False)
    assert [(e.start, e.end, e.label) for e in got[0]] == [(e.start, e.end, e.label) for e in gold]
    assert got[1] == []
    assert [e.key for e in got[2]] == [e.key for e in short_gold]
    if size < 100:
        assert len(encoder.windows(len(encoder.encode(text)))) > 5


def test_stitch_keeps_each_window_own_rows():
    encoder = TextEncoder(tiny_tokenizer("abc"), sequence_length=8, stride=2, pad_id=0)
    e = encoder.encode("abcabcabcabcab")
    ws = encoder.windows(len(e))
    full = np.arange(len(e) * 2, dtype=np.float32).reshape(len(e), 2)
    outs = [np.vstack([np.full((1, 2), -1.0), full[w.start:w.end], np.full((1, 2), -1.0)]) for w in ws]
    np.testing.assert_array_equal(encoder.stitch(e, ws, outs), full[e.heads])


def test_every_char_split_gives_digits_and_letters_their_own_piece():
    """model.tokenization: chars: no entity boundary can fall inside a token (``100`` is one piece otherwise)."""
    tok = _sentencepiece_like()
    text = "浙江100号"
    pieces = ensure_char_split(tok).encode(text, add_special_tokens=False)
    assert any(e - s > 1 for s, e in pieces.offsets)
    chars = ensure_char_split(tok, every_char=True)
    enc = chars.encode(text, add_special_tokens=False)
    assert sorted({s for s, e in enc.offsets if e > s}) == list(range(len(text)))
    assert all(e - s <= 1 for s, e in enc.offsets)
    assert ensure_char_split(chars, every_char=True) is chars  # already split: returned as is


def _reference_encoded(text: str, offsets: list[tuple[int, int]]) -> tuple[list, list, list]:
    """The per-token Python reading the vectorised encoder replaced: trim, heads, head spans."""
    spans = []
    for s, e in offsets:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        spans.append([s, e])
    heads, head_spans, covered = [], [], 0
    for i, (s, e) in enumerate(spans):
        if e <= s:
            continue
        if s >= covered:
            heads.append(i)
            head_spans.append([s, e])
        elif head_spans:
            head_spans[-1][1] = max(head_spans[-1][1], e)
        covered = max(covered, e)
    return spans, heads, head_spans


@pytest.mark.parametrize("kind", ["tiny", "sentencepiece"])
def test_batch_encoding_equals_the_per_token_reading(kind):
    """Random texts with spaces (ASCII, full-width, tabs), digits, Latin, unknown and multi-byte characters."""
    rng = random.Random(5)
    alphabet = list("浙江省杭州市号00 1Ab\u3000\t龘é") + ["  ", "100"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(300)] + ["", " ", "浙"]
    if kind == "tiny":
        encoder = _tiny(texts)
    else:
        encoder = TextEncoder(ensure_char_split(_sentencepiece_like(byte_fallback=True)), sequence_length=32,
                              stride=4, pad_id=1)
    batch = encoder.encode_batch(texts)
    for text, got in zip(texts, batch, strict=True):
        raw = encoder.tokenizer.encode(text, add_special_tokens=False)
        spans, heads, head_spans = _reference_encoded(text, raw.offsets)
        assert got.ids.tolist() == raw.ids
        assert got.spans.tolist() == spans and got.heads.tolist() == heads, text
        assert got.head_spans.tolist() == head_spans, text
        assert encoder.encode(text).head_spans.tolist() == head_spans
