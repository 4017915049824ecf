"""The classifier's DAG: compiles with the task (edges, the gate condition, GPU on train, KFP ClassificationMetrics),
and runs locally end to end on the bundled sample messages with the model teacher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from task_dag import assert_task_dag, compile_task

from nerwheel.cli import cli


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any]]:
    return compile_task("classify", tmp_path_factory.mktemp("ir") / "classify.yaml")


def test_dag_compiles_with_the_task(spec) -> None:
    assert_task_dag(spec, name="nerwheel-classify",
                    line=("classify-label", "classify-merge", "classify-train", "distill", "classify-evaluate"),
                    train="classify-train", teacher="classify-label",
                    defaults={"teacher": "model", "model_name": "classifier", "distill_student": ""})
    evaluate = spec[0]["components"]["comp-classify-evaluate"]["outputDefinitions"]["artifacts"]
    assert evaluate["confusion"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"


def test_the_shared_distil_step_sits_between_train_and_evaluate(spec) -> None:
    """NER's distill component: the trained classifier and the merged messages in; what it hands on is evaluated,
    gated and shipped (the trained model itself unless distill_student names a student)."""
    root = spec[0]["root"]["dag"]["tasks"]
    artifacts = root["distill"]["inputs"]["artifacts"]
    assert artifacts["model"]["taskOutputArtifact"] == {"outputArtifactKey": "model", "producerTask": "classify-train"}
    assert artifacts["train_data"]["taskOutputArtifact"]["producerTask"] == "classify-merge"
    assert {k: v["componentInputParameter"] for k, v in root["distill"]["inputs"]["parameters"].items()} == {
        "student": "distill_student", "overrides": "distill_overrides"}
    handed_on = {"outputArtifactKey": "distilled", "producerTask": "distill"}
    assert root["classify-evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"] == handed_on
    assert root["condition-1"]["inputs"]["artifacts"]["pipelinechannel--distill-distilled"]["taskOutputArtifact"] \
        == handed_on
    inner = spec[0]["components"]["comp-condition-1"]["dag"]["tasks"]
    assert inner["export"]["inputs"]["artifacts"]["model"] == {"componentInputArtifact":
                                                                "pipelinechannel--distill-distilled"}
    executor = spec[0]["deploymentSpec"]["executors"]["exec-distill"]["container"]
    assert executor["resources"]["accelerator"]["resourceCount"] == "1"


def test_every_task_has_a_time_limit_and_training_never_retries(spec) -> None:
    """The NER stage doing the same work sets each policy: the label task retries like annotate (LLM, S3)."""
    from pipeline_limits import assert_limits

    assert_limits(spec, {"classify-label": "annotate", "classify-merge": "merge", "classify-train": "train",
                         "distill": "distill", "classify-evaluate": "evaluate", "gate": "gate", "export": "export",
                         "deploy": "deploy"})
    tasks = spec[0]["root"]["dag"]["tasks"]
    assert tasks["classify-label"]["retryPolicy"]["maxRetryCount"] >= 3


def test_list_params_names_the_classifier_parameters() -> None:
    res = CliRunner().invoke(cli, ["compile", "--task", "classify", "--list-params"])
    assert res.exit_code == 0 and "teacher_model_uri" in res.output and "threshold" in res.output
    assert "distill_student" in res.output


@pytest.mark.slow
def test_run_classify_on_the_embedded_default(tmp_path: Path) -> None:
    """`nerwheel run --task classify`: model teacher on the bundled traffic -> ... -> a Triton repository."""
    res = CliRunner().invoke(cli, ["run", "--task", "classify", "--out", str(tmp_path), "--epochs", "3", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["task"] == "classify" and s["verdict"] == "promote"
    assert set(s["tasks"].values()) == {"SUCCESS"}
    assert s["metrics"]["n_records"] == 37 and 0 <= s["strict_f1"] <= 1
    version = tmp_path / "triton-repository" / "classifier" / "1"
    assert {"model.onnx", "nerwheel.json", "tokenizer.json", "model.py"} <= {p.name for p in version.iterdir()}
    cfg = (tmp_path / "triton-repository" / "classifier" / "config.pbtxt").read_text()
    assert "MESSAGE" in cfg and "PROBABILITIES" in cfg and "classifier" in cfg
    run_dir = Path(s["run_dir"])
    labelled = (run_dir / "classify-label" / "labelled" / "records.jsonl").read_text().splitlines()
    first = json.loads(labelled[0])
    assert first["meta"]["source"].startswith("model:") and first["label"] in ("low_value", "normal", "interrupt")


@pytest.mark.slow
def test_run_classify_with_a_student_serves_the_student(tmp_path: Path) -> None:
    """distill_student set: the distil step trains a smaller classifier, and that student is evaluated and shipped."""
    student = "tiny:hidden_size=32,num_layers=1,num_heads=2,intermediate_size=64"
    res = CliRunner().invoke(cli, ["run", "--task", "classify", "--out", str(tmp_path), "--epochs", "3", "--json",
                                   "--set", f"distill_student={student}",
                                   "--set", "distill_overrides=training.epochs=3; training.learning_rate=0.003"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert set(s["tasks"].values()) == {"SUCCESS"} and 0 <= s["strict_f1"] <= 1
    run_dir = Path(s["run_dir"])
    assert Path(s["model_dir"]) == run_dir / "distill" / "distilled"  # the candidate is the student
    card = json.loads((run_dir / "distill" / "distilled" / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["task"] == "classify" and card["distillation"]["student"] == student
    assert card["data"]["gold_texts"] > 0  # the merged labels count as gold
    assert s["verdict"] == "promote"  # no production model yet: the first candidate ships
    served = tmp_path / "triton-repository" / "classifier" / "1" / "nerwheel.json"
    assert json.loads(served.read_text(encoding="utf-8"))["backbone"] == card["backbone"] == "tiny-32x1"
