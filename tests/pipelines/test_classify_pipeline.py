"""The classifier's DAG: compiles with the task (edges, the gate condition, GPU on train, KFP ClassificationMetrics),
and runs locally end to end on the bundled sample messages with the model teacher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from nerwheel.cli import cli


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("ir") / "classify.yaml"
    res = CliRunner().invoke(cli, ["compile", "--task", "classify", "--out", str(out)])
    assert res.exit_code == 0, res.output
    pipeline_spec, platform_spec = yaml.safe_load_all(out.read_text())
    return pipeline_spec, platform_spec


def test_dag_compiles_with_the_task(spec) -> None:
    pipeline_spec, platform_spec = spec
    assert pipeline_spec["pipelineInfo"]["name"] == "nerwheel-classify"
    root = pipeline_spec["root"]["dag"]["tasks"]
    assert set(root) == {"classify-label", "classify-merge", "classify-train", "classify-evaluate", "gate",
                         "condition-1"}
    edges = {(d, n) for n, t in root.items() for d in t.get("dependentTasks", [])}
    assert {("classify-label", "classify-merge"), ("classify-merge", "classify-train"),
            ("classify-train", "classify-evaluate"), ("classify-evaluate", "gate"), ("gate", "condition-1")} <= edges
    inner = pipeline_spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"export", "deploy"}  # the shared components, behind the gate
    evaluate = pipeline_spec["components"]["comp-classify-evaluate"]["outputDefinitions"]["artifacts"]
    assert evaluate["confusion"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"
    params = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert params["teacher"]["defaultValue"] == "model" and params["model_name"]["defaultValue"] == "classifier"
    executors = pipeline_spec["deploymentSpec"]["executors"]
    train = executors["exec-classify-train"]["container"]
    assert train["resources"]["accelerator"]["resourceCount"] == "1"
    k8s = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-classify-label"]["secretAsEnv"]  # LLM key and S3 credentials as secrets, never parameters


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
