"""Multi-node training as a Training Operator PyTorchJob: the object the train task creates (no cluster here: its
shape, checked against what the operator and torchrun read), and the wait on its status conditions."""

from __future__ import annotations

import itertools

import pytest
import yaml

from nerwheel.components.steps.pytorchjob import JobSpec, job_manifest, job_state, wait
from nerwheel.errors import ConfigError, NerwheelError
from nerwheel.pipelines.flywheel import Platform

REPO_RBAC = "manifests/base/train-rbac.yaml"


def spec(nodes: int = 3, gpus: int = 4) -> JobSpec:
    settings = Platform().job_settings()
    return JobSpec(name="nerwheel-train-abc", namespace="kubeflow-user", image="ghcr.io/nerwheel/nerwheel-train:0.1.0",
                   nodes=nodes, gpus_per_node=gpus, work_uri="s3://b/root/run/train/model.pytorchjob",
                   env={"AWS_ENDPOINT_URL": "http://minio:9000"},
                   secret_env={k: (settings["s3_secret"], k) for k in settings["s3_secret_keys"]},
                   gpu_resource=settings["gpu_type"], node_selector=settings["node_selector"],
                   tolerations=tuple(settings["tolerations"]), timeout=settings["timeout"])


def test_one_master_and_the_other_nodes_as_workers_each_with_its_gpus() -> None:
    job = job_manifest(spec(nodes=3, gpus=4))
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Master": 1, "Worker": 2}
    assert job["spec"]["nprocPerNode"] == "4"  # the operator passes it to torchrun as PET_NPROC_PER_NODE
    for replica in replicas.values():
        assert replica["restartPolicy"] == "Never"
        pod = replica["template"]["spec"]
        (c,) = pod["containers"]
        assert c["name"] == "pytorch"  # the operator finds the container by this name
        assert c["command"] == ["torchrun"] and c["args"] == ["-m", "nerwheel.components.steps.pytorchjob",
                                                              "s3://b/root/run/train/model.pytorchjob"]
        assert c["resources"]["limits"] == {"nvidia.com/gpu": 4}
        assert {e["name"] for e in c["env"] if "valueFrom" in e} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert all(e["valueFrom"]["secretKeyRef"]["name"] == "nerwheel-s3" for e in c["env"] if "valueFrom" in e)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # a failure is final: no restart from scratch behind anyone's back
    assert job["spec"]["runPolicy"]["backoffLimit"] == 0
    assert job["spec"]["runPolicy"]["activeDeadlineSeconds"] == Platform().timeouts["train"]


def test_a_single_node_is_not_a_job() -> None:
    with pytest.raises(ConfigError, match="a PyTorchJob is for 2 or more nodes"):
        job_manifest(spec(nodes=1))


def test_the_pipeline_may_manage_pytorchjobs_and_nothing_else() -> None:
    from pathlib import Path

    role, binding = yaml.safe_load_all((Path(__file__).resolve().parents[2] / REPO_RBAC).read_text())
    (rule, status) = role["rules"]
    assert rule["apiGroups"] == ["kubeflow.org"] and rule["resources"] == ["pytorchjobs"]
    assert set(rule["verbs"]) == {"create", "get", "list", "watch", "delete"}
    assert status["resources"] == ["pytorchjobs/status"] and status["verbs"] == ["get"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert {s["name"] for s in binding["subjects"]} == {"pipeline-runner", "default-editor"}


def cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(("conditions", "state"), [
    ([], "running"),
    ([cond("Created"), cond("Running")], "running"),
    ([cond("Created"), cond("Running", "False"), cond("Succeeded", reason="PyTorchJobSucceeded")], "succeeded"),
    ([cond("Created"), cond("Failed", reason="PyTorchJobFailed", message="worker-1 OOMKilled")], "failed"),
    ([cond("Succeeded", "False"), cond("Restarting")], "running"),
])
def test_job_state_reads_the_operators_conditions(conditions: list[dict], state: str) -> None:
    assert job_state({"status": {"conditions": conditions}})[0] == state


def test_wait_returns_on_success_and_raises_on_failure_or_timeout() -> None:
    answers = iter([{}, {"status": {"conditions": [cond("Running")]}},
                    {"status": {"conditions": [cond("Succeeded", reason="PyTorchJobSucceeded")]}}])
    sleeps: list[float] = []
    assert wait(lambda: next(answers), timeout=100, poll=5, sleep=sleeps.append) == "PyTorchJobSucceeded"
    assert sleeps == [5, 5]
    failed = {"status": {"conditions": [cond("Failed", reason="PyTorchJobFailed", message="worker-1 OOMKilled")]}}
    with pytest.raises(NerwheelError, match="the PyTorchJob failed \\(PyTorchJobFailed: worker-1 OOMKilled\\)"):
        wait(lambda: failed, timeout=100, sleep=lambda s: None)
    clock = itertools.count(0, 30)
    with pytest.raises(NerwheelError, match="did not finish within 60 s"):
        wait(lambda: {"status": {"conditions": [cond("Running")]}}, timeout=60, poll=30,
             clock=lambda: next(clock), sleep=lambda s: None)
