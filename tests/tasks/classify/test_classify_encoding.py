"""The (context, message) pair goes through the tokenizer as a sentence pair: what transformers' tokenizer(a, b) does."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab, tiny_tokenizer
from nerwheel.tasks.classify.encoding import PairEncoder

PAIRS = [("你好，有什么可以帮你？", "帮我查一下订单"), ("", "好的"), ("请稍等" * 20, "停一下，我有急事" * 5)]


def _bert() -> Tokenizer:
    return tiny_tokenizer(char_vocab([c + m for c, m in PAIRS]))


def test_bert_pair_matches_transformers_tokenizer_call():
    from transformers import PreTrainedTokenizerFast

    tok = _bert()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    enc = PairEncoder(tok, max_length=32, pad_id=0)
    for (context, message), (ids, types) in zip(PAIRS, enc.encode(PAIRS), strict=True):
        kw = {"truncation": True, "max_length": 32, "return_token_type_ids": True}
        want = hf(context, message, **kw) if context else hf(message, **kw)
        assert ids == want["input_ids"] and types == want["token_type_ids"]
    ids, types = enc.encode(PAIRS[:1])[0]
    tokens = [tok.id_to_token(i) for i in ids]
    # [CLS] context [SEP] message [SEP]; segment 0 for the context, 1 for the message
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    sep = tokens.index("[SEP]")
    assert "".join(tokens[1:sep]) == PAIRS[0][0] and "".join(tokens[sep + 1:-1]) == PAIRS[0][1]
    assert set(types[: sep + 1]) == {0} and set(types[sep + 1:]) == {1}


def test_empty_context_is_the_message_alone_and_long_pairs_truncate_longest_first():
    enc = PairEncoder(_bert(), max_length=32, pad_id=0)
    (ids, types), = enc.encode([("", "好的")])
    assert len(ids) == 4 and set(types) == {0}  # [CLS] 好 的 [SEP]
    (ids, types), = enc.encode([PAIRS[2]])
    assert len(ids) == 32
    # both sides cut to (about) the same length, longest first: 29 content tokens as 15 + 14
    assert abs((types.count(0) - 2) - (types.count(1) - 1)) <= 1


def test_xlmr_pair_template_and_padding():
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    enc = PairEncoder(tok, max_length=16, pad_id=1)
    batch = enc([("a", "b b"), ("", "a")])
    assert batch.input_ids.tolist() == [[0, 4, 2, 2, 5, 5, 2], [0, 4, 2, 1, 1, 1, 1]]
    assert batch.attention_mask.tolist() == [[1] * 7, [1, 1, 1, 0, 0, 0, 0]]


def test_too_short_max_length_is_refused():
    with pytest.raises(ValueError, match="max_length=2"):
        PairEncoder(_bert(), max_length=2, pad_id=0)
