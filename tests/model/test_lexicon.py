"""Knowledge-base lexicon features: per-character matches, their alignment to tokens and windows, a model that
reads them, and the same features in the ONNX graph as in PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_synth import long_record
from nerwheel.errors import ConfigError
from nerwheel.kb.lexicon import LexiconFeatures, check_signature
from nerwheel.labels import TagSet
from nerwheel.model.data import build_features, collate
from nerwheel.model.encoding import TextEncoder
from nerwheel.model.lexicon import INPUT_NAME, LexiconInputs
from nerwheel.model.tiny import char_vocab, tiny_tokenizer

TEXT = "浙江省杭州市西湖区文三路100号阳光小区"


@pytest.fixture(scope="module")
def features() -> LexiconFeatures:
    return LexiconFeatures()


def _col(features: LexiconFeatures, name: str) -> int:
    return features.names.index(name)


def test_matrix_marks_each_match_by_position(features):
    m = features.matrix(TEXT)
    assert m.shape == (len(TEXT), features.width) and m.dtype == np.float32
    assert set(np.unique(m).tolist()) <= {0.0, 1.0}
    # 浙江省: the knowledge base's own province, Begin / Middle / End
    assert m[0, _col(features, "kb:prov/B")] == 1 and m[1, _col(features, "kb:prov/M")] == 1
    assert m[2, _col(features, "kb:prov/E")] == 1 and m[3, _col(features, "kb:prov/B")] == 0
    # the gazetteer names every city it finds, the hierarchy check aside
    assert m[3, _col(features, "gaz:city/B")] == 1 and m[5, _col(features, "gaz:city/E")] == 1
    # 路 is a road suffix word of one character: Single
    road = TEXT.index("路")
    assert m[road, _col(features, "suffix:road/S")] == 1
    # no feature on a character nothing covers is a bug-free zero row only where the KB is silent
    assert features.matrix("").shape == (0, features.width)


def test_signature_names_the_columns_and_refuses_other_features(features):
    sig = features.signature
    assert sig["width"] == features.width == len(sig["names"]) and len(sig["sha256"]) == 64
    check_signature(sig, sig, where="m")
    with pytest.raises(ConfigError, match="lexicon version"):
        check_signature({**sig, "sha256": "x", "version": 0}, sig, where="model m")
    with pytest.raises(ConfigError, match="knowledge base"):
        check_signature({**sig, "sha256": "x", "kb": {"sources": ["other"]}}, sig, where="model m")


def _char_encoder(texts, **kw) -> TextEncoder:
    return TextEncoder(tiny_tokenizer(char_vocab(texts)), pad_id=0, **({"sequence_length": 64, "stride": 8} | kw))


def test_one_token_per_character_gets_that_characters_row(features):
    enc = _char_encoder([TEXT])
    lex = LexiconInputs(features, enc)
    e = enc.encode(TEXT)
    rows = lex.token_rows(TEXT, e)
    assert np.array_equal(rows, features.matrix(TEXT))


def test_a_piece_of_several_characters_gets_the_maximum_of_their_rows(features):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "杭州市": 1, **{c: i + 2 for i, c in enumerate(dict.fromkeys(TEXT))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("杭州市", behavior="isolated")
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(single="[UNK] $A [UNK]", special_tokens=[("[UNK]", 0)])
    text = "杭州市"
    enc = TextEncoder(tok, sequence_length=16, stride=0, pad_id=0)
    e = enc.encode(text)
    assert len(e) == 1 and e.spans.tolist() == [[0, 3]]
    rows = LexiconInputs(features, enc).token_rows(text, e)
    assert np.array_equal(rows[0], features.matrix(text).max(axis=0))


def test_window_rows_line_up_with_input_ids_across_sliding_windows(features):
    long = long_record(8, seed=2).text
    enc = _char_encoder([long], sequence_length=24, stride=6)
    lex = LexiconInputs(features, enc)
    tagset = TagSet(["prov", "city", "district", "road", "roadno", "poi"], "BIO")
    from nerwheel.records import Record

    feats, _ = build_features([Record("r", long, ())], enc, tagset, lexicon=lex)
    e = enc.encode(long)
    windows = enc.windows(len(e))
    assert len(windows) >= 3 and len(feats) == len(windows)
    chars = features.matrix(long)
    pre, suf = len(enc.prefix), len(enc.suffix)
    for f, w in zip(feats, windows):
        rows = f.extra[INPUT_NAME]
        assert rows.shape == (len(f.input_ids), features.width)
        assert not rows[:pre].any() and not rows[len(rows) - suf:].any()  # special tokens: zeros
        for p in range(w.end - w.start):  # every content position holds its own character's row
            s, t = e.spans[w.start + p]
            assert np.array_equal(rows[pre + p], chars[s:t].max(axis=0))
    batch = collate(feats, pad_id=0)
    assert batch[INPUT_NAME].shape == (*batch["input_ids"].shape, features.width)
    short = int(np.argmin([len(f.input_ids) for f in feats]))
    n = len(feats[short].input_ids)
    assert not batch[INPUT_NAME][short, n:].any()  # padding: zeros
    assert batch["weight"].tolist() == [1.0] * len(feats)


def test_a_lexicon_model_trains_saves_its_projection_and_signature(lexicon_model, features):
    from nerwheel.model.card import ModelCard
    from nerwheel.model.lexicon_model import LexiconTokenClassifier
    from nerwheel.model.runtime import TorchTagger

    path, test = lexicon_model
    card = ModelCard.read(path)
    assert card.lexicon["sha256"] == features.signature["sha256"]
    assert (path / "lexicon.safetensors").exists()
    tagger = TorchTagger.from_dir(path)
    assert isinstance(tagger.model, LexiconTokenClassifier) and tagger.lexicon is not None
    assert card.metrics["test"]["overall"]["strict"]["f1"] > 0.5
    # a card whose features differ from this knowledge base's is refused before serving
    data = json.loads((path / "nerwheel.json").read_text(encoding="utf-8"))
    data["lexicon"] = {**data["lexicon"], "sha256": "0", "version": 999}
    broken = path.parent / "broken"
    broken.mkdir()
    for p in path.iterdir():
        if p.is_file():
            (broken / p.name).write_bytes(p.read_bytes())
    (broken / "nerwheel.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="lexicon version 999"):
        TorchTagger.from_dir(broken)


def test_onnx_parity_with_lexicon_features(lexicon_model, tmp_path):
    import onnx

    from nerwheel.model.runtime import OnnxTagger, TorchTagger
    from nerwheel.stages.export import export

    path, test = lexicon_model
    report = export(path, tmp_path / "exp", eval_records=test)
    assert report.parity["max_abs_diff"] <= 1e-4 and report.parity["entities_identical"]
    graph = onnx.load(str(tmp_path / "exp" / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", INPUT_NAME]
    texts = [r.text for r in test] + [long_record(6, seed=9).text, ""]
    onnx_tagger, torch_tagger = OnnxTagger(tmp_path / "exp", batch_size=5), TorchTagger.from_dir(path)
    onnx_ents, torch_ents = onnx_tagger.predict(texts), torch_tagger.predict(texts)
    assert [[e.key for e in x] for x in onnx_ents] == [[e.key for e in x] for x in torch_ents]
    # the features matter: zeroing them changes the emissions the graph computes
    e = onnx_tagger.encoder.encode(TEXT)
    w = onnx_tagger.encoder.windows(len(e))[0]
    ids = onnx_tagger.encoder.input_ids(e, w)[None]
    mask = np.ones_like(ids)
    rows = onnx_tagger.lexicon.window_rows(onnx_tagger.lexicon.token_rows(TEXT, e), w)[None]
    with_f = onnx_tagger.run(ids, mask, **{INPUT_NAME: rows})
    without = onnx_tagger.run(ids, mask, **{INPUT_NAME: np.zeros_like(rows)})
    assert np.abs(with_f - without).max() > 1e-3


def test_both_layouts_stage_a_lexicon_model_and_the_gpu_tokenize_step_feeds_its_features(
    lexicon_model, features, tmp_path
):
    import onnx

    from nerwheel.serving.config import gpu_model_configs
    from nerwheel.serving.repository import stage_cpu_version, stage_gpu_versions
    from nerwheel.stages.export import export

    path, test = lexicon_model
    exp = tmp_path / "exp"
    export(path, exp, eval_records=test[:5])
    configs = stage_gpu_versions(exp, tmp_path / "gpu", "m", 1)
    names = lambda tensors: [t.name for t in tensors]  # noqa: E731
    assert names(configs["m_tokenize"].output) == ["input_ids", "attention_mask", INPUT_NAME]
    assert names(configs["m_onnx"].input) == ["input_ids", "attention_mask", INPUT_NAME]
    # the config's shape is the graph's (Triton's onnxruntime backend compares every fixed dimension)
    graph_input = {i.name: i for i in onnx.load(str(exp / "model.onnx")).graph.input}[INPUT_NAME]
    graph_dims = [d.dim_value or -1 for d in graph_input.type.tensor_type.shape.dim]
    assert graph_dims == [-1, *configs["m_onnx"].input[2].dims] == [-1, -1, features.width]
    assert list(configs["m_tokenize"].output[2].dims) == list(configs["m_onnx"].input[2].dims)
    tokenize, onnx_step, *_ = configs["m"].ensemble_scheduling.step
    assert tokenize.output_map[INPUT_NAME] == onnx_step.input_map[INPUT_NAME]
    plain = gpu_model_configs("m", 1)  # a model without lexicon features: no such tensor
    assert INPUT_NAME not in names(plain["m_onnx"].input) + names(plain["m_tokenize"].output)
    version = stage_cpu_version(exp, tmp_path / "cpu" / "m" / "1")
    assert (version / "model.onnx").exists() and (version / "model.py").exists()
