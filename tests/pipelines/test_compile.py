"""The compiled pipeline: DAG edges, the gate condition, GPU and secrets on tasks, reproducible IR, golden file.

Regenerate the golden file after an intended change with
``NERWHEEL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/pipelines/test_compile.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kfp")

from nerwheel.components import STAGES  # noqa: E402
from nerwheel.components.images import image  # noqa: E402
from nerwheel.pipelines.compile import compile_pipeline, normalise  # noqa: E402
from nerwheel.pipelines.flywheel import DISPLAY_NAMES, Platform, Toleration, build_pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden") / "flywheel.yaml"


@pytest.fixture(scope="module")
def ir_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_pipeline(tmp_path_factory.mktemp("ir") / "pipeline.yaml").read_text()


@pytest.fixture(scope="module")
def docs(ir_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pipeline_spec, platform_spec = yaml.safe_load_all(ir_text)
    return pipeline_spec, platform_spec


def dag_tasks(spec: dict[str, Any], component: str | None = None) -> dict[str, Any]:
    dag = spec["root"]["dag"] if component is None else spec["components"][component]["dag"]
    return dag["tasks"]


def all_tasks(spec: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every task of the pipeline by name, in any sub-DAG (condition, loop): name -> (its DAG's component, task)."""
    out = {name: ("root", t) for name, t in dag_tasks(spec).items()}
    for comp, body in spec["components"].items():
        for name, t in body.get("dag", {}).get("tasks", {}).items():
            out[name] = (comp, t)
    return out


def edges(tasks: dict[str, Any]) -> set[tuple[str, str]]:
    return {(dep, name) for name, t in tasks.items() for dep in t.get("dependentTasks", [])}


def sub_dag(spec: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    return dag_tasks(spec, task["componentRef"]["name"])


def test_dag_edges_follow_the_flywheel(docs: tuple[dict, dict]) -> None:
    spec, _ = docs
    root = dag_tasks(spec)
    promoted = next(n for n, t in root.items() if "gate-Output" in t.get("triggerPolicy", {}).get("condition", ""))
    assert set(root) == {"production", "shard", "condition-branches-1", "synthesize", "merge", "train", "distill",
                         "evaluate", "gate", promoted}
    assert edges(root) == {
        # which branch labels the traffic depends on production; both shard the plan
        ("production", "condition-branches-1"), ("shard", "condition-branches-1"),
        ("condition-branches-1", "synthesize"), ("condition-branches-1", "merge"), ("synthesize", "merge"),
        ("merge", "train"),
        # distil: the trained model teaches a student on the merged texts (or passes through); evaluate reads its model
        ("train", "distill"), ("merge", "distill"), ("distill", "evaluate"), ("evaluate", "gate"),
        # the conditional branch consumes the distil step's model and the scores, and waits for the gate
        ("distill", promoted), ("evaluate", promoted), ("gate", promoted),
    }
    # the labelled traffic reaches synthesize and merge from whichever branch ran (dsl.OneOf over the fan-in's URI)
    oneof = {"taskOutputParameter": {"outputParameterKey": "pipelinechannel--condition-branches-1-oneof-1",
                                     "producerTask": "condition-branches-1"}}
    assert root["merge"]["inputs"]["parameters"]["labelled_uri"] == oneof
    assert root["synthesize"]["inputs"]["parameters"]["labelled_uri"] == oneof
    selectors = spec["components"]["comp-condition-branches-1"]["dag"]["outputs"]["parameters"][
        "pipelinechannel--condition-branches-1-oneof-1"]["valueFromOneof"]["parameterSelectors"]
    assert [s["outputParameterKey"] for s in selectors] == ["pipelinechannel--gather-Output",
                                                             "pipelinechannel--gather-2-Output"]
    # artifacts flow along the edges (not just ordering)
    assert root["train"]["inputs"]["artifacts"]["train_data"]["taskOutputArtifact"]["producerTask"] == "merge"
    assert root["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "distilled", "producerTask": "distill"}
    distill_params = {k: v["componentInputParameter"] for k, v in root["distill"]["inputs"]["parameters"].items()}
    assert distill_params == {"student": "distill_student", "overrides": "distill_overrides"}
    assert spec["root"]["inputDefinitions"]["parameters"]["distill_student"]["defaultValue"] == ""  # off by default
    assert root["gate"]["inputs"]["artifacts"]["candidate"]["taskOutputArtifact"] == {
        "outputArtifactKey": "scores", "producerTask": "evaluate"}


def branches(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two branches under condition-branches-1 by their condition: no production model / production model."""
    out = {}
    for t in dag_tasks(spec, "comp-condition-branches-1").values():
        cond = t["triggerPolicy"]["condition"]
        out["first" if not cond.startswith("!") else "loop"] = t
        assert cond.lstrip("!(").rstrip(")") == "inputs.parameter_values['pipelinechannel--production-Output'] == ''"
    return out


@pytest.mark.parametrize("branch, stages, extra", [("first", ["annotate"], None),
                                                   ("loop", ["feedback", "pseudo-label"], "pseudo-label")])
def test_shards_fan_out_with_parallel_for_and_fan_in_in_one_gather(docs: tuple[dict, dict], branch: str,
                                                                   stages: list[str], extra: str | None) -> None:
    spec, _ = docs
    body = sub_dag(spec, branches(spec)[branch])
    (loop_name,) = [n for n in body if n.startswith("for-loop")]
    (gather_name,) = [n for n in body if n.startswith("gather")]
    loop = body[loop_name]
    # fan-out: one iteration (pod) per item of the shard task's plan
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--shard-Output"}
    inner = sub_dag(spec, loop)
    assert sorted(inner) == stages
    item = loop["parameterIterator"]["itemInput"]
    for stage in stages:
        if stage != "pseudo-label":
            assert inner[stage]["inputs"]["parameters"]["shard"] == {"componentInputParameter": item}
    # fan-in: the loop's outputs collected into the gather, reconciled against the same plan
    gather = body[gather_name]
    arts = gather["inputs"]["artifacts"]
    assert arts["parts"]["taskOutputArtifact"]["producerTask"] == loop_name
    assert arts["plan"] == {"componentInputArtifact": "pipelinechannel--shard-plan"}
    assert ("extra" in arts) == (extra is not None)
    if extra:
        assert arts["extra"]["taskOutputArtifact"] == {"outputArtifactKey": "pipelinechannel--pseudo-label-part",
                                                       "producerTask": loop_name}
        assert inner["pseudo-label"]["inputs"]["artifacts"]["feedback"]["taskOutputArtifact"] == {
            "outputArtifactKey": "part", "producerTask": "feedback"}
        assert gather["inputs"]["parameters"]["replay_ratio"] == {"componentInputParameter":
                                                                  "pipelinechannel--replay_ratio"}
    else:
        assert gather["inputs"]["parameters"]["replay_ratio"] == {"runtimeValue": {"constant": 0.0}}
    gather_comp = spec["components"][gather["componentRef"]["name"]]
    assert gather_comp["inputDefinitions"]["artifacts"]["parts"]["isArtifactList"] is True
    assert gather_comp["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "STRING"
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["shards"]["defaultValue"] == 4 and params["shards"]["parameterType"] == "NUMBER_INTEGER"


def test_export_and_deploy_run_only_when_the_gate_promotes(docs: tuple[dict, dict]) -> None:
    spec, _ = docs
    name, cond = next((n, t) for n, t in dag_tasks(spec).items()
                      if "gate-Output" in t.get("triggerPolicy", {}).get("condition", ""))
    assert cond["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--gate-Output'] == true"
    assert cond["inputs"]["parameters"]["pipelinechannel--gate-Output"]["taskOutputParameter"] == {
        "outputParameterKey": "Output", "producerTask": "gate"}
    inner = sub_dag(spec, cond)
    assert set(inner) == {"export", "deploy"}
    assert edges(inner) == {("export", "deploy")}
    assert inner["deploy"]["cachingOptions"] == {}  # caching off: a deploy always happens when asked
    assert spec["components"]["comp-gate"]["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "BOOLEAN"


def test_tasks_that_read_uris_are_never_cached(docs: tuple[dict, dict]) -> None:
    # KFP's cache key holds a URI, not what is behind it: the weekly run (same URIs, new traffic, a newer live
    # model) must re-read its inputs and the live version instead of replaying the first week.
    tasks = all_tasks(docs[0])
    for stage in ("production", "shard", "annotate", "feedback", "pseudo-label", "synthesize", "merge", "evaluate",
                  "deploy"):
        assert tasks[stage][1]["cachingOptions"] == {}, stage
    # fed by artifacts only: new inputs, new run
    for stage in ("gather", "gather-2", "train", "distill", "gate", "export"):
        assert tasks[stage][1]["cachingOptions"] == {"enableCache": True}, stage


def test_every_task_has_a_time_limit_and_network_stages_retry(docs: tuple[dict, dict]) -> None:
    from nerwheel.pipelines.flywheel import RETRIES, TIMEOUTS

    spec, platform = docs
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    tasks = all_tasks(spec)
    for name, (_, task) in tasks.items():
        if "componentRef" not in task or not task["componentRef"]["name"].startswith("comp-") or \
                "dag" in spec["components"][task["componentRef"]["name"]]:
            continue  # a condition or loop, not a task
        stage = re.sub(r"-\d+$", "", name).replace("-", "_")
        executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        assert k8s[executor]["activeDeadlineSeconds"] == str(TIMEOUTS[stage]), name
        retry = task.get("retryPolicy")
        if stage in ("train", "distill", "deploy"):
            assert retry is None, f"{name} must never restart silently"
        else:
            assert retry == {"maxRetryCount": RETRIES[stage].retries, "backoffDuration": "30s", "backoffFactor": 2.0,
                             "backoffMaxDuration": "600s"}, name
    for stage in ("annotate", "feedback", "production", "shard", "gather"):  # LLM and S3 stages
        assert tasks[stage][1]["retryPolicy"]["maxRetryCount"] >= 3, stage


def test_gate_gets_the_whole_policy_and_evaluate_finds_production(docs: tuple[dict, dict]) -> None:
    from nerwheel.stages.gate import GatePolicy

    spec, _ = docs
    root, params = dag_tasks(spec), spec["root"]["inputDefinitions"]["parameters"]
    gate_inputs = {k: v["componentInputParameter"] for k, v in root["gate"]["inputs"]["parameters"].items()}
    assert gate_inputs == {"min_delta": "min_delta", "max_type_drop": "max_type_drop", "noise_spans": "noise_spans",
                           "min_support": "min_support", "metric": "gate_metric"}
    defaults = GatePolicy()  # one set of defaults for `nerwheel gate` and the pipeline
    for param, field in gate_inputs.items():
        assert params[field]["defaultValue"] == getattr(defaults, param), field
    assert params["min_support"]["defaultValue"] == 0  # every type is checked unless a run opts out
    eval_inputs = {k: v["componentInputParameter"] for k, v in root["evaluate"]["inputs"]["parameters"].items()}
    assert eval_inputs == {"eval_uri": "eval_uri", "production_model_uri": "production_model_uri",
                           "repository_uri": "repository_uri", "model_name": "model_name",
                           "production_from_repository": "production_from_repository"}
    assert params["production_model_uri"]["defaultValue"] == ""  # empty: the live version in repository_uri
    assert params["production_from_repository"]["defaultValue"] is True


@pytest.mark.parametrize("executor", ["exec-train", "exec-distill"])
def test_train_and_distill_tasks_ask_for_a_gpu_node(docs: tuple[dict, dict], executor: str) -> None:
    spec, platform = docs
    resources = spec["deploymentSpec"]["executors"][executor]["container"]["resources"]
    if executor == "exec-train":
        # the GPU count per node is a pipeline parameter (one DDP process per GPU)
        assert resources["accelerator"] == {
            "resourceCount": "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}",
            "resourceType": "nvidia.com/gpu", "type": "nvidia.com/gpu"}
        assert dag_tasks(spec)["train"]["inputs"]["parameters"]["pipelinechannel--gpus_per_node"] == {
            "componentInputParameter": "gpus_per_node"}
        params = spec["root"]["inputDefinitions"]["parameters"]
        assert params["gpus_per_node"]["defaultValue"] == 1 and params["nodes"]["defaultValue"] == 1
        assert {k: v["componentInputParameter"] for k, v in dag_tasks(spec)["train"]["inputs"]["parameters"].items()
                if k in ("nodes", "gpus_per_node")} == {"nodes": "nodes", "gpus_per_node": "gpus_per_node"}
    else:  # distillation is one process on one GPU
        assert resources["accelerator"] == {"count": "1", "resourceCount": "1", "resourceType": "nvidia.com/gpu",
                                            "type": "nvidia.com/gpu"}
    assert resources["cpuRequest"] == 4.0 and resources["memoryRequest"] == 16.0
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
    assert k8s["nodeSelector"] == {"labels": {"nvidia.com/gpu.present": "true"}}
    assert k8s["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    for other in ("exec-annotate", "exec-feedback", "exec-merge", "exec-evaluate", "exec-deploy"):
        assert "accelerator" not in spec["deploymentSpec"]["executors"][other]["container"].get("resources", {})
        assert "nodeSelector" not in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][other]


def _secret_env(platform: dict, executor: str) -> dict[str, tuple[str, str, bool]]:
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
    return {e["envVar"]: (s["secretName"], e["secretKey"], s["optional"])
            for s in k8s.get("secretAsEnv", []) for e in s["keyToEnv"]}


def test_credentials_reach_tasks_as_secrets_in_env_never_as_parameters(docs: tuple[dict, dict]) -> None:
    spec, platform = docs
    s3 = {"AWS_ACCESS_KEY_ID": ("nerwheel-s3", "AWS_ACCESS_KEY_ID", False),
          "AWS_SECRET_ACCESS_KEY": ("nerwheel-s3", "AWS_SECRET_ACCESS_KEY", False)}
    for stage in STAGES:
        executor = f"exec-{stage.replace('_', '-')}"
        env = _secret_env(platform, executor)
        assert {k: env[k] for k in s3} == s3, stage
        k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
        assert k8s["configMapAsEnv"][0]["configMapName"] == "nerwheel-storage"
    assert _secret_env(platform, "exec-train") == s3
    for llm_stage in ("exec-annotate", "exec-feedback"):
        assert _secret_env(platform, llm_stage)["NERWHEEL_LLM_API_KEY"] == ("nerwheel-llm", "api-key", True)
    assert _secret_env(platform, "exec-deploy")["NERWHEEL_GIT_TOKEN"] == ("nerwheel-git", "token", True)
    # the Triton control key reaches the deploy task alone, which the NetworkPolicy lets reach model control
    control = ("nerwheel-triton-control", "control-key", True)
    assert _secret_env(platform, "exec-deploy")["NERWHEEL_TRITON_CONTROL_KEY"] == control
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert [e for e in executors if control in _secret_env(platform, e).values()] == ["exec-deploy"]
    assert {"key": "nerwheel.io/triton-control", "value": "true"} in [
        {"key": k, "value": v} for k, v in executors["exec-deploy"]["podMetadata"]["labels"].items()]
    assert not [e for e in executors if e != "exec-deploy" and executors[e].get("podMetadata")]
    for name, k8s in executors.items():  # every task runs as the images' non-root user
        assert k8s["securityContext"] == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}, name
    params = spec["root"]["inputDefinitions"]["parameters"]
    credential = re.compile(r"key|secret|password|credential|(^|_)token($|_)")  # llm_max_tokens is a count
    assert not [p for p in params if credential.search(p.lower())]


def test_secret_and_config_names_match_the_manifests() -> None:
    p = Platform()
    s3_template = yaml.safe_load((REPO / "manifests/secrets/s3-credentials.template.yaml").read_text())
    llm_template = yaml.safe_load((REPO / "manifests/secrets/llm-credentials.template.yaml").read_text())
    git_template = yaml.safe_load((REPO / "manifests/secrets/git-credentials.template.yaml").read_text())
    storage = yaml.safe_load((REPO / "manifests/base/storage-config.yaml").read_text())
    assert git_template["metadata"]["name"] == p.git_secret and p.git_secret_key in git_template["stringData"]
    assert s3_template["metadata"]["name"] == p.s3_secret and set(p.s3_secret_keys) == set(s3_template["stringData"])
    assert llm_template["metadata"]["name"] == p.llm_secret and p.llm_secret_key in llm_template["stringData"]
    control = yaml.safe_load((REPO / "manifests/secrets/triton-control.template.yaml").read_text())
    assert control["metadata"]["name"] == p.triton_control_secret and p.triton_control_secret_key in control["stringData"]
    assert storage["metadata"]["name"] == p.storage_config_map and set(p.storage_config_keys) == set(storage["data"])


def env_file(path: Path) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln and not ln.startswith("#"))


def test_pipeline_defaults_point_at_the_manifests(docs: tuple[dict, dict]) -> None:
    pytest.importorskip("tritonclient")
    from nerwheel.serving.server import triton_repository_url

    params = docs[0]["root"]["inputDefinitions"]["parameters"]
    gitops_file = REPO / params["gitops_path"]["defaultValue"]
    assert gitops_file.is_file() and "MODEL_VERSION=" in gitops_file.read_text()
    model_env = env_file(REPO / "manifests/base/model.env")
    assert model_env["MODEL_NAME"] == params["model_name"]["defaultValue"]  # Triton loads what deploy writes
    # ... from where deploy writes it: the tasks reach S3 through the nerwheel-storage endpoint, Triton through
    # its own s3://http://host:port/bucket/prefix form of the same place.
    storage = yaml.safe_load((REPO / "manifests/base/storage-config.yaml").read_text())["data"]
    repository = params["repository_uri"]["defaultValue"]
    assert triton_repository_url(repository, storage["AWS_ENDPOINT_URL"]) == model_env["MODEL_REPOSITORY"]
    # and the overlay whose version the deploy commits serves that repository (does not point Triton elsewhere)
    for overlay_env in gitops_file.parent.glob("*.env"):
        assert "MODEL_REPOSITORY" not in env_file(overlay_env), overlay_env


def test_every_task_has_its_display_name_and_stage_image(docs: tuple[dict, dict]) -> None:
    spec, _ = docs
    tasks = all_tasks(spec)
    for stage in STAGES:
        assert tasks[stage.replace("_", "-")][1]["taskInfo"]["name"] == DISPLAY_NAMES[stage]
    assert tasks["gather-2"][1]["taskInfo"]["name"] == DISPLAY_NAMES["gather"]
    for stage in STAGES:
        container = spec["deploymentSpec"]["executors"][f"exec-{stage.replace('_', '-')}"]["container"]
        assert container["image"] == image(stage)
        assert "pip install" not in " ".join(container["command"])  # the image has kfp and nerwheel already


def test_parameters_are_typed_with_the_embedded_default(docs: tuple[dict, dict]) -> None:
    spec, _ = docs
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["teacher"]["defaultValue"] == "kb" and params["backbone"]["defaultValue"] == "tiny"
    assert params["seed_uri"]["defaultValue"] == "" and params["eval_uri"]["defaultValue"] == ""
    assert params["min_delta"]["parameterType"] == "NUMBER_DOUBLE"
    assert params["epochs"]["parameterType"] == "NUMBER_INTEGER"
    wanted = {"seed_uri", "texts_uri", "eval_uri", "teacher", "llm_endpoint", "llm_model", "backbone", "epochs",
              "min_delta", "max_type_drop", "noise_spans", "min_support", "gate_metric", "production_model_uri",
              "production_from_repository", "triton_url", "repository_uri"}
    assert wanted <= set(params)
    assert all(p.get("description") for p in params.values()), "every parameter is described for the UI"


def test_tail_args_describes_the_tail_parameters_and_refuses_gaps() -> None:
    """Every task's DAG gets the Args lines of its gate/export/deploy parameters from one place; a gate
    parameter without the task's words, or words for a parameter that is not there, is refused."""
    from nerwheel.pipelines.flywheel import TAIL_ARGS, tail_args

    def turn(min_delta: float = 0.0, quantize: str = "", seed_uri: str = "") -> None:
        """One turn.

        Args:
            seed_uri: Gold records.
        """

    described = tail_args(min_delta="Gate: required rise of accuracy.")(turn)
    assert described.__doc__.endswith(
        "            seed_uri: Gold records.\n            min_delta: Gate: required rise of accuracy.\n"
        f"            quantize: {TAIL_ARGS['quantize']}\n        ")
    with pytest.raises(TypeError, match=r"no words for \['min_delta'\]"):
        tail_args()(lambda min_delta=0.0: None)
    with pytest.raises(TypeError, match="not gate, export or deploy parameters"):
        tail_args(seed_uri="x")
    with pytest.raises(TypeError, match="does not have"):
        tail_args(min_delta="Gate: rise.", gate_metric="Gate: which F1.")(lambda min_delta=0.0: None)


def test_platform_settings_are_configurable_at_compile_time(tmp_path: Path) -> None:
    custom = build_pipeline(Platform(gpu_type="nvidia.com/mig-1g.10gb",
                                     gpu_node_selector=("cloud.google.com/gke-accelerator", "nvidia-h100-80gb"),
                                     gpu_tolerations=(Toleration("dedicated", "Equal", "NoSchedule", "gpu"),)))
    spec, platform = yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", custom).read_text())
    acc = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"]
    assert acc["type"] == "nvidia.com/mig-1g.10gb"  # the count is the gpus_per_node parameter
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert k8s["nodeSelector"] == {"labels": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}}
    assert k8s["tolerations"] == [{"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "gpu"}]


def test_compiling_twice_gives_the_same_bytes_in_separate_processes(tmp_path: Path, ir_text: str) -> None:
    # A fresh interpreter, so nothing cached in this process can make the two outputs agree by accident.
    out = tmp_path / "again.yaml"
    subprocess.run([sys.executable, "-c", "from nerwheel.cli import main; main()", "compile", "--out", str(out)],
                   check=True,
                   capture_output=True, env={k: v for k, v in os.environ.items() if not k.startswith("NERWHEEL_IMAGE")})
    assert out.read_bytes() == ir_text.encode()


def test_matches_the_golden_file_with_the_sdk_version_stripped(ir_text: str) -> None:
    current = normalise(ir_text)
    assert "sdkVersion" not in current and ir_text.count("sdkVersion: kfp-") == 1
    if os.environ.get("NERWHEEL_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(current)
    assert GOLDEN.exists(), f"no golden file; create it with NERWHEEL_UPDATE_GOLDEN=1 pytest {__file__}"
    assert current == GOLDEN.read_text(), (
        "the compiled pipeline changed; if intended, regenerate the golden file with NERWHEEL_UPDATE_GOLDEN=1")
