"""The span head on a Hugging Face directory of another family: an XLM-R encoder with a SentencePiece-style tokenizer.

What differs from the ``tiny`` BERT: ``<s> ... </s>`` around a window, RoBERTa position numbering, a leading ``▁``
piece that heads the first character, pieces of several characters (``563``), whitespace pieces that belong to
the head before them. The directory is made here (random weights, a Unigram vocabulary over the test texts);
no download, no external corpora.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model_config import tiny_config
from model_synth import make_fused
from nerwheel.model.card import ModelCard
from nerwheel.model.runtime import OnnxTagger, TorchTagger
from nerwheel.records import Entity, Record


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    chars = sorted({c for r in make_fused(200, seed=1) for c in r.text} | set("0123456789 "))
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -5.0) for c in chars if c != " "] + [(f"{d}{d}", -3.0) for d in "123456789"] + [("563", -3.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.decoder = decoders.Metaspace()
    out = tmp_path_factory.mktemp("hf") / "xlmr"
    XLMRobertaModel(XLMRobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=130, pad_token_id=1,
                                     bos_token_id=0, eos_token_id=2), add_pooling_layer=False).save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>", cls_token="<s>", sep_token="</s>").save_pretrained(out)
    return out


def test_span_head_trains_exports_and_decodes_on_an_xlmr_directory(xlmr_dir, tmp_path):
    from nerwheel.stages.export import export
    from nerwheel.stages.train import train

    records = make_fused(80, seed=2)
    # a boundary inside the piece "563": counted as misaligned, never silently moved
    text = "浙江省杭州市文三路563号 11号"
    records.append(Record("multi", text, (Entity(0, 3, "prov", "浙江省"), Entity(9, 11, "roadno", "56"),
                                          Entity(14, 17, "roadno", "11号"))))
    cfg = tiny_config(tmp_path, "xlmr-span", model={"model_id": str(xlmr_dir), "head": "span",
                                                    "span": {"max_width": 12, "size": 16}},
                      training={"epochs": 1, "learning_rate": 1e-3})
    model_dir = train(cfg, train_records=records[:70] + records[80:], dev_records=records[70:80])
    card = ModelCard.read(model_dir)
    assert card.head == "span" and card.backbone == str(xlmr_dir) and card.data["alignment"]["misaligned"] == 1
    tagger = TorchTagger.from_dir(model_dir, nested=True, extensions=True)
    assert tagger.model.span.suffix_tokens == 1 and tagger.model.encoder.config.model_type == "xlm-roberta"
    enc = tagger.encoder.encode(text)
    assert enc.head_spans.tolist()[9] == [9, 12]  # "563": one head of three characters

    report = export(model_dir, tmp_path / "onnx", texts=[r.text for r in records[:20]] + [text, text * 5])
    assert report.parity["failures"] == [] and report.parity["entities_identical"]
    onnx = OnnxTagger(tmp_path / "onnx", nested=True, extensions=True)
    texts = [text, text * 5, " 杭州市 ", *(r.text for r in records[70:80])]
    a, b = onnx.predict(texts), tagger.predict(texts)
    assert [[e.key for e in x] for x in a] == [[e.key for e in x] for x in b]
    for t, ents in zip(texts, a):  # whatever an untrained model finds lies on head boundaries
        starts = {s for s, _ in tagger.encoder.encode(t).head_spans.tolist()}
        ends = {e for _, e in tagger.encoder.encode(t).head_spans.tolist()}
        assert all(e.start in starts and e.end in ends and t[e.start:e.end] == e.text for e in ents)
