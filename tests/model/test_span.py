"""The span head: nested and overlapping gold spans trained and decoded, extension labels kept out of target output,
span windows and the width limit, ONNX parity, continued training, evaluation of target labels.

The tiny span model (``span_model`` in conftest.py) is trained on generated fusion data
(:func:`model_synth.fused`: a nested ``admin`` target, ``kb:road`` and ``pos:ns`` extension labels).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_config import SPAN_MODEL, tiny_config
from model_synth import fused, long_record, make_fused, make_records
from nerwheel import metrics as M
from nerwheel.decode_span import SpanLayout, candidates
from nerwheel.labels import is_extension_label
from nerwheel.model.card import ModelCard
from nerwheel.model.runtime import OnnxTagger, TorchTagger
from nerwheel.records import Entity, Record


def targets(records):
    return [[e for e in r.entities if not is_extension_label(e.label)] for r in records]


def test_card_and_training_data_keep_overlapping_and_nested_spans(span_model, fusion_data):
    card = ModelCard.read(span_model)
    assert card.head == "span" and card.tags == [] and card.span["max_width"] == 12
    assert card.span["extensions"] == ["kb:road", "pos:ns"] and "admin" in card.span["targets"]
    assert card.labels == card.span["targets"] + card.span["extensions"]  # targets first: the score columns' order
    validation = card.data["validation"]
    assert validation["overlap_spans_dropped"] == 0 and not (span_model / "dropped_spans.jsonl").exists()
    assert validation["records with overlapping or nested entities kept (keep)"] == len(fusion_data["train"])
    alignment = card.data["alignment"]
    assert alignment["entities"] == sum(len(r.entities) for r in fusion_data["train"])
    assert alignment["too_wide"] == alignment["misaligned"] == alignment["outside_windows"] == 0
    config = json.loads((span_model / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"]["0"] == card.labels[0] and config["nerwheel_span"]["max_width"] == 12


def test_nested_and_overlapping_gold_spans_are_learned_and_decoded(span_model, fusion_data):
    test = fusion_data["test"]
    nested = TorchTagger.from_dir(span_model, nested=True).predict([r.text for r in test])
    m = M.evaluate([r.with_entities(t) for r, t in zip(test, targets(test))], nested)
    assert m["overall"]["strict"]["f1"] >= 0.9
    ov = m["overlapping_spans"]
    assert ov["gold"] > len(test) and ov["strict"]["recall"] >= 0.85  # admin and the spans inside it, both found
    assert m["per_type"]["admin"]["strict"]["f1"] >= 0.7
    flat = TorchTagger.from_dir(span_model).predict([r.text for r in test])
    assert all(not a.overlaps(b) for ents in flat for i, a in enumerate(ents) for b in ents[i + 1:])
    assert sum(map(len, flat)) < sum(map(len, nested))


def test_extension_labels_train_as_outputs_but_never_leak_into_target_output(span_model, fusion_data):
    test = fusion_data["test"]
    texts = [r.text for r in test]
    for tagger in (TorchTagger.from_dir(span_model), TorchTagger.from_dir(span_model, nested=True)):
        assert not any(is_extension_label(e.label) for ents in tagger.predict(texts) for e in ents)
    card = ModelCard.read(span_model)
    for split in ("dev", "test"):  # what `nerwheel train` reports: target labels only
        assert not any(is_extension_label(lab) for lab in card.metrics[split]["per_type"])
    asked = TorchTagger.from_dir(span_model, extensions=True).predict(texts)
    gold_ext = [[e for e in r.entities if is_extension_label(e.label)] for r in test]
    pred_ext = [[e for e in ents if is_extension_label(e.label)] for ents in asked]
    assert M.span_scores(gold_ext, pred_ext)[0]["strict"]["f1"] >= 0.85
    # kb:road sits on the very span of a road: both come back, one per namespace
    both = [(e.start, e.end) for ents in asked for e in ents if e.label == "kb:road"]
    roads = {(e.start, e.end) for ents in asked for e in ents if e.label == "road"}
    assert len(both) > len(test) // 2 and sum(s in roads for s in both) >= 0.9 * len(both)


def test_span_windows_hold_every_candidate_and_count_what_cannot_be_learned():
    from nerwheel.model.data import collate
    from nerwheel.model.encoding import TextEncoder
    from nerwheel.model.span_data import build_span_features
    from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab, tiny_tokenizer

    text = "浙江省杭州市西湖区文三路"
    rec = Record("r", text, (Entity(0, 3, "prov", "浙江省"), Entity(0, 9, "admin", text[:9]),
                             Entity(3, 6, "city", "杭州市"), Entity(3, 5, "pos:ns", "杭州"),
                             Entity(0, 12, "admin", text)))  # 12 characters: wider than max_width 10
    tok = tiny_tokenizer(char_vocab([text]))
    enc = TextEncoder(tok, sequence_length=10, stride=4, pad_id=tok.token_to_id(SPECIAL_TOKENS["pad_token"]))
    layout = SpanLayout(("admin", "city", "prov", "pos:ns"), 10)
    features, stats = build_span_features([rec], enc, layout)
    assert stats.too_wide == 1 and stats.misaligned == 0 and stats.windows == len(features) == 2
    assert stats.outside_windows == 1  # admin 0..9 needs 9 tokens; each 8-token window sees only part of it
    labels = collate(features, 0)["labels"]
    assert labels.shape == (2, 10, 10, 4) and labels.dtype == np.int8
    w0 = labels[0]
    assert (w0[0] == -100).all() and (w0[-1] == -100).all()  # [CLS] and [SEP] start no span
    assert w0[1, 2, 2] == 1 and w0[4, 2, 1] == 1 and w0[4, 1, 3] == 1  # prov 0..3, city 3..6, pos:ns 3..5
    assert w0[1, 2, 0] == 0 and w0[1, 7, :].tolist() == [0, 0, 0, 0]  # candidates, not gold
    assert (w0[8, 1:] == -100).all()  # would end past the window
    n_candidates = len(candidates(np.arange(8), 8, 10)[0])
    assert int((w0[..., 0] >= 0).sum()) == n_candidates and int((w0 == 1).sum()) == 3


def test_onnx_export_parity_and_runtimes_agree(span_model, fusion_data, tmp_path):
    from nerwheel.stages.export import export

    long = fused(long_record(10, seed=4))
    texts = [r.text for r in fusion_data["test"][:30]] + [long.text]
    report = export(span_model, tmp_path / "onnx", eval_records=fusion_data["test"][:20])
    assert report.parity["failures"] == [] and report.parity["max_abs_diff"] <= 1e-3
    assert report.parity["entities_identical"] and report.fp32["gold_f1"] >= 0.75  # flat decoding: admin or parts
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["model.onnx", "nerwheel.json", "tokenizer.json"]
    onnx = OnnxTagger(tmp_path / "onnx", nested=True, extensions=True, batch_size=5)
    assert len(onnx.encoder.windows(len(onnx.encoder.encode(long.text)))) >= 3
    torch_tagger = TorchTagger.from_dir(span_model, nested=True, extensions=True, batch_size=16)
    a, b = onnx.predict(texts + ["", "未见过的字ＡＢＣ"]), torch_tagger.predict(texts + ["", "未见过的字ＡＢＣ"])
    assert [[e.key for e in x] for x in a] == [[e.key for e in x] for x in b] and a[-2] == []
    assert [e.score for x in a for e in x] == pytest.approx([e.score for x in b for e in x], abs=1e-3)
    whole = a[len(texts) - 1]
    assert len({e.key for e in whole}) == len(whole)  # a span seen by two windows comes back once


def test_a_window_scores_only_spans_it_sees_the_end_of(span_model):
    """Stitched scores of a text of several windows: each start's row comes from the window that owns it, and a span
    ending past that window's last content token is masked (inside the graph), never a guess."""
    tagger = TorchTagger.from_dir(span_model)
    text = fused(long_record(10, seed=4)).text
    encs, (rows,) = tagger.emissions([text])
    enc, width = encs[0], tagger.card.span["max_width"]
    windows = tagger.encoder.windows(len(enc))
    assert len(windows) >= 3
    grid = rows.reshape(len(enc.heads), width, -1)
    masked = grid.max(axis=-1) <= -1e3
    for k, token in enumerate(enc.heads.tolist()):
        owner = next(w for w in windows if w.own_start <= token < w.own_end)
        for w in range(width):
            assert masked[k, w] == (token + w >= owner.end), (k, w, owner)


def test_continue_training_a_span_model_with_a_new_label(span_model, tmp_path):
    from nerwheel.stages.train import train

    recs = [r.with_entities([*r.entities, *(Entity(e.start, e.end - 1, "pos:m", e.text[:-1])
                                            for e in r.entities if e.label == "roadno")])
            for r in make_fused(60, seed=8)]
    cfg = tiny_config(tmp_path, "more", model={**SPAN_MODEL, "init_from": str(span_model)}, training={"epochs": 1})
    card = ModelCard.read(train(cfg, train_records=recs[:50], dev_records=recs[50:]))
    assert "pos:m" in card.span["extensions"] and card.labels[: len(card.span["targets"])] == card.span["targets"]
    assert card.metrics["dev"]["overall"]["strict"]["f1"] >= 0.8  # the old labels kept what they learned
    with pytest.raises(ValueError, match="has a span head"):
        train(tiny_config(tmp_path, "crf", model={"init_from": str(span_model)}, training={"epochs": 1}),
              train_records=recs[:50], dev_records=recs[50:])


def test_span_settings_are_checked():
    from nerwheel.model.config import ConfigError, validate

    with pytest.raises(ConfigError, match="model.span.max_width"):
        validate({"model": {"head": "span", "span": {"max_width": 0}}})
    with pytest.raises(ConfigError, match="model.span.threshold"):
        validate({"model": {"span": {"threshold": 1.5}}})


def test_evaluate_scores_target_labels_and_nested_spans(span_model, fusion_data, tmp_path):
    from nerwheel.stages.evaluate import evaluate
    from nerwheel.stages.predict import load_predictor

    test = fusion_data["test"]
    n_ext = sum(is_extension_label(e.label) for r in test for e in r.entities)
    m = evaluate(span_model, test, tmp_path / "flat", plots=False)
    assert m["extension_spans_ignored"] == {"gold": n_ext, "predicted": 0}
    assert not any(is_extension_label(lab) for lab in m["per_type"])
    nested = evaluate(span_model, test, tmp_path / "nested", plots=False,
                      predictor=load_predictor(span_model, nested=True))
    assert nested["overlapping_spans"]["strict"]["recall"] > m["overlapping_spans"]["strict"]["recall"]
    assert nested["overall"]["strict"]["f1"] > m["overall"]["strict"]["f1"]
    report = (tmp_path / "nested" / "report.txt").read_text(encoding="utf-8")
    assert "overlapping/nested spans only" in report and "extension-label spans left out" in report
    both = evaluate(span_model, test, tmp_path / "ext", plots=False, extensions=True)
    assert {"kb:road", "pos:ns"} <= set(both["per_type"]) and "extension_spans_ignored" not in both


def test_a_tagger_refuses_nested_decoding(tiny_model):
    with pytest.raises(ValueError, match="nested spans need a span head"):
        TorchTagger.from_dir(tiny_model, nested=True)
    assert make_records(1)  # the CRF tagger itself is untouched: extensions=True is a no-op for it
    assert TorchTagger.from_dir(tiny_model, extensions=True).predict(["杭州市西湖区"])[0]
