"""What every task's compiled DAG shows, checked one way for each task (classify, embed; NER's has test_compile):
its tasks in one line, the gate, behind it the shared export and deploy, one GPU for train, the teacher's key
and the S3 credentials as secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from nerwheel.cli import cli

Spec = tuple[dict[str, Any], dict[str, Any]]


def compile_task(task: str, out: Path) -> Spec:
    """``nerwheel compile --task TASK --out OUT``: the pipeline spec and the platform spec of the IR it wrote."""
    res = CliRunner().invoke(cli, ["compile", "--task", task, "--out", str(out)])
    assert res.exit_code == 0, res.output
    pipeline_spec, platform_spec = yaml.safe_load_all(out.read_text())
    return pipeline_spec, platform_spec


def assert_task_dag(spec: Spec, *, name: str, line: tuple[str, ...], train: str, teacher: str,
                    defaults: dict[str, Any]) -> None:
    """The DAG named ``name`` runs ``line`` one after another, then the gate and (promoted) export -> deploy;
    ``train`` asks for one GPU, ``teacher`` gets secrets as env; ``defaults``: parameters' default values."""
    pipeline_spec, platform_spec = spec
    assert pipeline_spec["pipelineInfo"]["name"] == name
    root = pipeline_spec["root"]["dag"]["tasks"]
    chain = (*line, "gate", "condition-1")
    assert set(root) == set(chain)
    edges = {(d, n) for n, t in root.items() for d in t.get("dependentTasks", [])}
    assert set(zip(chain, chain[1:])) <= edges
    inner = pipeline_spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"export", "deploy"}  # the shared components, behind the gate
    params = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert {key: params[key]["defaultValue"] for key in defaults} == defaults
    assert all(p.get("description") for p in params.values()), "every parameter is described for the UI"
    container = pipeline_spec["deploymentSpec"]["executors"][f"exec-{train}"]["container"]
    assert container["resources"]["accelerator"]["resourceCount"] == "1"
    k8s = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s[f"exec-{teacher}"]["secretAsEnv"]  # the LLM key and S3 credentials as secrets, never parameters
