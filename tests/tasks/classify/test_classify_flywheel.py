"""The classifier through the flywheel's shared homes: the gate on macro-F1 with per-class tolerance, merge with
provenance, the feedback diff, `nerwheel classify label` with the model teacher, and the Triton handler's checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.stages.gate import GatePolicy, gate
from nerwheel.tasks import get_task
from nerwheel.tasks.classify.records import Message


def _metrics(macro: float, per_class: dict[str, tuple[float, int]]) -> dict:
    return {"task": "classify", "overall": {"macro": {"f1": macro}, "accuracy": macro}, "n_records": 100,
            "per_class": {k: {"f1": f, "support": s} for k, (f, s) in per_class.items()}}


SCORES = get_task("classify").gate_scores


def test_gate_promotes_on_macro_f1_and_refuses_a_class_that_fell_beyond_its_tolerance():
    prod = _metrics(0.80, {"low_value": (0.85, 60), "normal": (0.80, 30), "interrupt": (0.75, 10)})
    better = _metrics(0.84, {"low_value": (0.88, 60), "normal": (0.85, 30), "interrupt": (0.70, 10)})
    d = gate(better, prod, GatePolicy(), scores=SCORES)
    # interrupt fell 0.05 but has 10 gold messages: 2 / 10 = 0.2 is its noise floor
    assert d.promote and "overall macro-F1 0.8000 -> 0.8400" in d.reasons[0]
    assert d.per_type["interrupt"]["allowed_drop"] == pytest.approx(0.2)
    worse = _metrics(0.84, {"low_value": (0.70, 60), "normal": (0.95, 30), "interrupt": (0.87, 10)})
    d = gate(worse, prod, GatePolicy(), scores=SCORES)
    assert not d.promote and any("class 'low_value' F1 fell 0.8500 -> 0.7000" in r for r in d.reasons)
    first = gate(better, None, GatePolicy(), scores=SCORES, production_source="empty repository")
    assert first.promote and "macro-F1 0.8400" in first.reasons[0]


def test_gate_cli_reads_the_task_from_the_metrics(tmp_path: Path):
    cand, prod = tmp_path / "cand.json", tmp_path / "prod.json"
    cand.write_text(json.dumps(_metrics(0.70, {"a": (0.7, 50), "b": (0.7, 50)})))
    prod.write_text(json.dumps(_metrics(0.80, {"a": (0.8, 50), "b": (0.8, 50)})))
    res = CliRunner().invoke(cli, ["gate", "--candidate", str(cand), "--production", str(prod), "--out",
                                   str(tmp_path / "decision.json")])
    assert res.exit_code == 3 and "REFUSE" in res.output and "macro-F1" in res.output
    record = json.loads((tmp_path / "decision.json").read_text())
    assert record["verdict"] == "refuse" and set(record["per_type"]) == {"a", "b"}


def test_merge_keeps_gold_ranks_sources_and_records_provenance():
    from nerwheel.tasks.classify.feedback import merge

    gold = [Message("g1", "好的", label="low_value")]
    llm = [Message("l1", "好的", label="normal"), Message("l2", "停一下", "你好", label="interrupt")]
    model = [Message("m1", "停一下", "你好", label="normal"), Message("m2", "查订单", label="normal")]
    result = merge([("gold", gold), ("llm", llm), ("model", model)], ["gold", "llm", "model"])
    by_msg = {m.message: m for m in result.records}
    assert by_msg["好的"].label == "low_value" and by_msg["好的"].meta["source"] == "gold"
    assert by_msg["好的"].meta["merge"] == {"gold": "low_value", "llm": "normal"} and by_msg["好的"].score == 0.5
    assert by_msg["停一下"].label == "interrupt" and by_msg["停一下"].meta["source"] == "llm"
    assert by_msg["查订单"].meta["source"] == "model" and by_msg["查订单"].score == 1.0
    assert result.report["conflicts"] == {"gold_kept": 1, "outranked": 1}
    with pytest.raises(ValueError, match="not in the precedence"):
        merge([("kb", gold)], ["gold"])


def test_feedback_diff_against_the_live_model(tiny_classifier: Path):
    from nerwheel.tasks.classify.feedback import feedback
    from nerwheel.tasks.classify.predict import load_classifier
    from nerwheel.tasks.classify.teachers import Answer

    model = load_classifier(tiny_classifier)
    live = [Message("1", "好的"), Message("2", "帮我查一下订单物流"), Message("3", "停停停，换个问题"),
            Message("4", "在吗")]
    predicted = {m.id: p.label for m, p in zip(live, model.predict(live), strict=True)}

    class Opposite:  # a teacher that disagrees with the model on message 2 only
        name = "llm:test"

        def label(self, messages):
            return [Answer(label="interrupt" if m.id == "2" else predicted[m.id]) for m in messages]

    result = feedback(model, [Opposite()], live, holdout=[Message("h", "在吗")])
    assert result.report["holdout_dropped"] == 1 and result.report["kinds"] == {"agree": 2, "disagree": 1}
    (m,) = result.records
    assert m.id == "2" and m.label == "interrupt" and m.meta["feedback"]["model"] == predicted["2"]


def test_classify_label_cli_with_the_model_teacher(tmp_path: Path, tiny_classifier: Path, message_files):
    live = tmp_path / "live.jsonl"
    live.write_text('{"id": "a", "message": "好的"}\n{"id": "b", "message": ""}\n{"id": "c", "message": '
                    '"帮我查一下订单物流", "context": "你好"}\n', encoding="utf-8")
    out = tmp_path / "labelled.jsonl"
    res = CliRunner().invoke(cli, ["classify", "label", str(live), "--out", str(out), "--teacher", "model",
                                   "--teacher-model", str(tiny_classifier), "--threshold", "0.0"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "c"]
    assert rows[0]["meta"]["source"] == f"model:{tiny_classifier.name}" and rows[0]["meta"]["agreement"] == 1.0
    rejects = [json.loads(x) for x in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["kind"]) for r in rejects] == [(2, "empty")]
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["read"] == 2 == report["labelled"]


def test_triton_handler_answers_bad_requests_without_failing_their_neighbours(tiny_classifier_export):
    from nerwheel.serving.backend import Limits, RequestError
    from nerwheel.tasks.classify.runtime import OnnxClassifier
    from nerwheel.tasks.classify.serving import ClassifyHandler

    out, _ = tiny_classifier_export
    handler = ClassifyHandler(OnnxClassifier(out), Limits(max_text_length=20, max_batch_size=4))
    ok = {"MESSAGE": np.array([[b"hello"], ["好的".encode()]], dtype=object)}
    with_ctx = {"MESSAGE": np.array([["停一下".encode()]], dtype=object),
                "CONTEXT": np.array([["你好".encode()]], dtype=object)}
    results = handler.serve([ok, {"MESSAGE": np.array([[b"\xff"]], dtype=object)},
                             {"MESSAGE": np.array([[b"x" * 21]], dtype=object)},
                             {"MESSAGE": np.array([[b"a"]], dtype=object), "CONTEXT": np.array([[b"b"], [b"c"]],
                                                                                              dtype=object)},
                             with_ctx, {}], [set()] * 6)
    assert results[0]["PROBABILITIES"].shape == (2, 3) and results[4]["LABEL"].shape == (1, 1)
    errors = [str(r) for r in results if isinstance(r, RequestError)]
    assert len(errors) == 4
    assert "not valid UTF-8" in errors[0] and "limit is 20" in errors[1] and "CONTEXT has 2 rows" in errors[2]
    assert "MESSAGE is missing" in errors[3]
    offline = OnnxClassifier(out).probabilities([("你好", "停一下")])
    assert np.allclose(results[4]["PROBABILITIES"], offline, atol=1e-6)
    # the client's mistakes are INVALID_ARGUMENT; the model's own failure is INTERNAL (issue 17)
    assert {r.code for r in results if isinstance(r, RequestError)} == {"INVALID_ARG"}

    class Broken:
        labels = handler.classifier.labels

        def probabilities(self, pairs):
            raise MemoryError("out of memory")

    failed = ClassifyHandler(Broken(), Limits(max_text_length=20, max_batch_size=4)).serve([ok, {}], [set()] * 2)
    assert "classification failed: MemoryError" in str(failed[0])
    assert (failed[0].code, failed[1].code) == ("INTERNAL", "INVALID_ARG")
