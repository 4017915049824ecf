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
                    line=("classify-label", "classify-merge", "classify-train", "classify-evaluate"),
                    train="classify-train", teacher="classify-label",
                    defaults={"teacher": "model", "model_name": "classifier"})
    evaluate = spec[0]["components"]["comp-classify-evaluate"]["outputDefinitions"]["artifacts"]
    assert evaluate["confusion"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"


def test_every_task_has_a_time_limit_and_training_never_retries(spec) -> None:
    """The NER stage doing the same work sets each policy: the label task retries like annotate (LLM, S3)."""
    from pipeline_limits import assert_limits

    assert_limits(spec, {"classify-label": "annotate", "classify-merge": "merge", "classify-train": "train",
                         "classify-evaluate": "evaluate", "gate": "gate", "export": "export", "deploy": "deploy"})
    tasks = spec[0]["root"]["dag"]["tasks"]
    assert tasks["classify-label"]["retryPolicy"]["maxRetryCount"] >= 3


def test_list_params_names_the_classifier_parameters() -> None:
    res = CliRunner().invoke(cli, ["compile", "--task", "classify", "--list-params"])
    assert res.exit_code == 0 and "teacher_model_uri" in res.output and "threshold" in res.output


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
