"""ONNX export of the classifier: probabilities output, parity with PyTorch, int8, fused graph, max length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from nerwheel.tasks.classify.formats import read_messages
from nerwheel.tasks.classify.runtime import OnnxClassifier, TorchClassifier


def test_export_has_probabilities_and_reproduces_pytorch(tiny_classifier_export, tiny_classifier, message_files):
    out, report = tiny_classifier_export
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "labels.json", "nerwheel.json"} <= set(report.files)
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits", "probabilities"]
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert report.parity["failures"] == [] and report.parity["max_abs_diff"] <= 1e-4
    messages = read_messages(message_files["eval"]).records
    torch_preds = TorchClassifier.from_dir(tiny_classifier).predict(messages)
    onnx_runtime = OnnxClassifier(out)
    onnx_preds = onnx_runtime.predict(messages)
    assert onnx_runtime.session.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
    assert [p.label for p in torch_preds] == [p.label for p in onnx_preds]
    for a, b in zip(torch_preds, onnx_preds, strict=True):
        assert np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
    assert report.int8["gold_records"] == 40 and 0 <= report.int8["agreement_vs_fp32"] <= 1
    assert "macro_f1_change" in report.int8


def test_optimize_and_max_length(tmp_path: Path, tiny_classifier):
    from nerwheel.tasks.classify.card import ClassifierCard
    from nerwheel.tasks.classify.export import export

    report = export(tiny_classifier, tmp_path / "fused", optimize=True, max_length=16)
    assert report.parity["optimized"] and not report.parity["failures"]
    assert ClassifierCard.read(tmp_path / "fused").max_length == 16
    ops = {n.op_type for n in onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.node}
    assert ops & {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "MultiHeadAttention"}


def test_failed_parity_writes_nothing(tmp_path: Path, tiny_classifier):
    from nerwheel.stages.export import ExportCheckError
    from nerwheel.tasks.classify.export import export

    with pytest.raises(ExportCheckError, match="max \\|onnx - torch\\|"):
        export(tiny_classifier, tmp_path / "x", atol=-1.0)
    assert not (tmp_path / "x").exists()
