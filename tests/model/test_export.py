"""ONNX export: parity with PyTorch, a broken graph is refused, int8 reports its gold F1 change, runtimes agree."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from model_synth import long_record
from nerwheel import metrics as M
from nerwheel.model import onnx_export
from nerwheel.model.runtime import OnnxTagger, TorchTagger
from nerwheel.stages.export import ExportCheckError, export


def test_export_directory_and_parity(tiny_export):
    out, report = tiny_export
    assert {p.name for p in out.iterdir()} == {"model.onnx", "model.int8.onnx", "crf.npz", "tokenizer.json",
                                                "nerwheel.json"}
    assert report.parity["max_abs_diff"] <= 1e-4 and report.parity["entities_identical"]
    assert report.parity["texts"] > 64 and report.parity["entities"] > 100
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["export"]["opset"] >= 17 and card["export"]["parity"]["failures"] == []
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"] and graph.output[0].name == "emissions"
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]  # dynamic axes


def test_int8_with_gold_reports_both_gold_f1s_and_the_change(tiny_export, address_data):
    out, report = tiny_export
    fp32, i8 = report.fp32, report.int8
    assert fp32["gold_records"] == i8["gold_records"] == len(address_data["test"])
    assert i8["gold_f1_change"] == pytest.approx(i8["gold_f1"] - fp32["gold_f1"], abs=1e-6)
    assert i8["gold_f1"] >= 0.9 and fp32["gold_f1"] >= 0.9
    assert 0.9 <= i8["agreement_f1_vs_fp32"] <= 1.0 and i8["sample_texts"] == report.parity["texts"]
    assert "note" not in i8 and any("change" in n and "gold" in n for n in report.notes)
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["export"]["int8"] == i8 and card["export"]["fp32"] == fp32


def test_onnx_and_torch_runtimes_give_the_same_entities(tiny_model, tiny_export, address_data):
    out, _ = tiny_export
    long = long_record(10, seed=4)
    texts = [r.text for r in address_data["test"]] + [long.text, "", "  ", "未见过的字符ＡＢＣ"]
    onnx_ents = OnnxTagger(out, batch_size=7).predict(texts)
    torch_ents = TorchTagger.from_dir(tiny_model, batch_size=16).predict(texts)
    assert [[e.key for e in x] for x in onnx_ents] == [[e.key for e in x] for x in torch_ents]
    for a, b in zip(onnx_ents, torch_ents):
        assert [e.score for e in a] == pytest.approx([e.score for e in b], abs=1e-3)
    assert onnx_ents[-3] == [] and onnx_ents[-2] == []


def test_long_text_through_windows(tiny_export):
    """A text of ten addresses (several 64-token windows) is still tagged well, without overlapping spans.

    The exact border arithmetic is proven with an oracle in test_encoding.py; this runs the real model. (The
    tiny model was trained on texts of one to three addresses, so some errors come from the long context.)
    """
    out, _ = tiny_export
    tagger = OnnxTagger(out)
    long = long_record(10, seed=4)
    assert len(tagger.encoder.windows(len(tagger.encoder.encode(long.text)))) >= 3
    (whole,) = tagger.predict([long.text])
    assert all(not a.overlaps(b) for a, b in zip(whole, whole[1:]))
    assert M.span_scores([long.entities], [whole])[0]["strict"]["f1"] >= 0.8


def test_broken_export_is_refused_and_nothing_written(tiny_model, tmp_path, monkeypatch):
    real = onnx_export.write_onnx

    def broken(model, path, **kw):
        out = real(model, path, **kw)
        m = onnx.load(str(out))
        for init in m.graph.initializer:
            if init.name.endswith("classifier.bias"):
                arr = numpy_helper.to_array(init).copy()
                arr[1:] += 3.0  # every entity tag made far more likely
                init.CopyFrom(numpy_helper.from_array(arr, init.name))
        onnx.save(m, str(out))
        return out

    monkeypatch.setattr(onnx_export, "write_onnx", broken)
    target = tmp_path / "broken"
    with pytest.raises(ExportCheckError) as err:
        export(tiny_model, target)
    failures = err.value.failures
    assert any(f.startswith("emissions: max |onnx - torch|") for f in failures)
    assert any(f.startswith("entities:") for f in failures)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_export_refuses_to_overwrite(tiny_model, tiny_export):
    out, _ = tiny_export
    with pytest.raises(FileExistsError):
        export(tiny_model, out)


def test_sample_texts_cover_long_windows():
    texts = onnx_export.sample_texts(["[PAD]", "浙", "##1", "\u2581江", "ab"], max_len=50, n=10)
    assert len(texts) == 10 and max(map(len, texts)) == 50 and set("".join(texts)) <= {"浙", "1", "江"}
    np.testing.assert_equal(texts, onnx_export.sample_texts(["浙", "##1", "\u2581江"], max_len=50, n=10))
