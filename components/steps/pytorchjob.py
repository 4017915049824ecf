"""Multi-node training: a Kubeflow Training Operator ``PyTorchJob`` that the train task creates and waits for.

Why a PyTorchJob and not pods of our own: the operator already knows how to start N
pods of one image, give each its rank and the master's address (``PET_NNODES``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR``, ... which ``torchrun`` reads), and report
success or failure; the train task only describes the job and waits. The job's pods
run this module's :func:`worker` under ``torchrun`` (``nodes`` x ``gpus_per_node`` DDP
processes, :mod:`nerwheel.model.distributed`): each fetches the resolved config and the
training data from S3, trains its share of every batch, and rank 0 uploads the model
folder; the task then copies it into its KFP output.

Failures are not retried (``backoffLimit: 0``, ``restartPolicy: Never``): a restart
would train from scratch, silently. A job that fails, or outlives ``timeout``, fails the
task with the operator's reason, and the job is deleted either way.

Needs: the operator installed in the cluster, the RBAC of ``manifests/base/train-rbac.yaml``
(the pipeline's service account may create, read and delete PyTorchJobs), the
``kubernetes`` client (the kfp extra brings it) and an ``s3://`` pipeline root.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GROUP", "JobSpec", "PLURAL", "VERSION", "job_manifest", "job_state", "train_on_cluster", "wait",
           "worker"]

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
#: The container name the operator requires in a PyTorchJob's pod template.
CONTAINER = "pytorch"
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class JobSpec:
    """What the job runs, where its files are, and what each pod asks for."""

    name: str
    namespace: str
    image: str
    nodes: int
    gpus_per_node: int
    work_uri: str  # s3:// prefix: train.yaml and the data in, model/ out
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)  # env name -> (secret, key)
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "4"
    memory: str = "16G"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    timeout: int = 24 * 3600


def job_manifest(spec: JobSpec) -> dict[str, Any]:
    """The PyTorchJob object (``kubeflow.org/v1``): one Master and ``nodes - 1`` Workers of the train image."""
    from nerwheel.errors import ConfigError

    if spec.nodes < 2:
        raise ConfigError(f"a PyTorchJob is for 2 or more nodes, got nodes={spec.nodes}; one node trains in the "
                          "task's own pod", field="nodes")
    procs = max(1, spec.gpus_per_node)
    resources: dict[str, Any] = {"requests": {"cpu": spec.cpu, "memory": spec.memory}}
    if spec.gpus_per_node > 0:
        resources["limits"] = {spec.gpu_resource: spec.gpus_per_node}
    env = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key, "optional": False}}}
            for k, (s, key) in sorted(spec.secret_env.items())]
    container = {
        "name": CONTAINER,
        "image": spec.image,
        # torchrun reads --nnodes, --node-rank, --master-addr/port and --nproc-per-node from the operator's PET_*
        "command": ["torchrun"],
        "args": ["-m", "nerwheel.components.steps.pytorchjob", spec.work_uri],
        "env": env,
        "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        # DDP's collectives share tensors through /dev/shm; the default 64 MiB is too small
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
    }
    pod: dict[str, Any] = {
        "metadata": {"labels": {"app.kubernetes.io/part-of": "nerwheel", "app.kubernetes.io/component": "train"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
            "containers": [container],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
        },
    }
    if spec.node_selector:
        pod["spec"]["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["spec"]["tolerations"] = [dict(t) for t in spec.tolerations]
    replica = {"restartPolicy": "Never", "template": pod}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PyTorchJob",
        "metadata": {"name": spec.name, "namespace": spec.namespace,
                     "labels": {"app.kubernetes.io/part-of": "nerwheel", "app.kubernetes.io/component": "train"}},
        "spec": {
            "nprocPerNode": str(procs),
            "runPolicy": {"backoffLimit": 0, "activeDeadlineSeconds": spec.timeout, "cleanPodPolicy": "Running",
                          "ttlSecondsAfterFinished": 3600},
            "pytorchReplicaSpecs": {"Master": {"replicas": 1, **replica},
                                    "Worker": {"replicas": spec.nodes - 1, **replica}},
        },
    }


def job_state(obj: dict[str, Any]) -> tuple[str, str]:
    """``("succeeded" | "failed" | "running", reason)`` from a PyTorchJob's status conditions (the operator's
    last true condition of Succeeded or Failed decides; anything else is still running)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    for cond in reversed(conditions):
        if cond.get("status") == "True" and cond.get("type") in ("Succeeded", "Failed"):
            reason = f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
            return cond["type"].lower(), reason
    return "running", (conditions[-1].get("type", "") if conditions else "created")


def wait(get: Callable[[], dict[str, Any]], *, timeout: float, poll: float = 15.0,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll ``get()`` (the job object) until it succeeds (returns the reason) or fails or times out (raises)."""
    from nerwheel.errors import NerwheelError

    deadline = clock() + timeout
    while True:
        state, reason = job_state(get())
        if state == "succeeded":
            return reason
        if state == "failed":
            raise NerwheelError(f"the PyTorchJob failed ({reason}); its pods' logs say why")
        if clock() >= deadline:
            raise NerwheelError(f"the PyTorchJob did not finish within {timeout:.0f} s (last state: {reason})")
        sleep(poll)


def _namespace() -> str:
    from pathlib import Path

    from nerwheel.errors import ConfigError

    path = Path(NAMESPACE_FILE)
    if not path.is_file():
        raise ConfigError("nodes > 1 trains as a PyTorchJob, which needs the task to run in a Kubernetes pod "
                          f"(no {NAMESPACE_FILE}); on one machine use nodes=1 and gpus_per_node", field="nodes")
    return path.read_text(encoding="utf-8").strip()


def train_on_cluster(config: Any, *, nodes: int, gpus_per_node: int, train_uri: str, model_uri: str,
                     model_path: str, cluster: dict[str, Any], image: str | None = None) -> None:
    """Create the PyTorchJob for ``config``, wait for it, and copy the model rank 0 wrote into ``model_path``.

    ``cluster``: the compile-time platform settings the job's pods need (``Platform.job_settings()`` in
    :mod:`nerwheel.pipelines.flywheel`: S3 secret, GPU resource, node selector, tolerations, CPU, memory, time).
    """
    import os
    import tempfile
    from pathlib import Path

    import yaml

    from nerwheel import storage
    from nerwheel.components.data import RECORDS_FILE
    from nerwheel.components.images import image as stage_image
    from nerwheel.errors import ConfigError

    if not storage.is_s3(model_uri) or not storage.is_s3(train_uri):
        raise ConfigError(f"nodes > 1 needs an s3:// pipeline root (the job's pods read the data and write the "
                          f"model there); got {model_uri}", field="nodes")
    from kubernetes import client, config as kube_config

    kube_config.load_incluster_config()
    api = client.CustomObjectsApi()
    work = f"{model_uri.rstrip('/')}.pytorchjob"
    store = storage.get_storage()
    store.upload_file(Path(config.data.train_file), storage.join(work, "data", RECORDS_FILE))
    store.write_text(storage.join(work, "train.yaml"),
                     yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False))
    name = "nerwheel-train-" + hashlib.sha256(model_uri.encode()).hexdigest()[:10]
    passthrough = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "NERWHEEL_S3_ENDPOINT")
                   if os.environ.get(k)}
    spec = JobSpec(name=name, namespace=_namespace(), image=image or stage_image("train"), nodes=nodes,
                   gpus_per_node=gpus_per_node, work_uri=work, env=passthrough,
                   secret_env={k: (cluster["s3_secret"], k) for k in cluster["s3_secret_keys"]},
                   gpu_resource=cluster["gpu_type"], cpu=cluster["cpu"], memory=cluster["memory"],
                   node_selector=dict(cluster["node_selector"]), tolerations=tuple(cluster["tolerations"]),
                   timeout=int(cluster["timeout"]))
    body = job_manifest(spec)
    api.create_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, body)
    try:
        wait(lambda: api.get_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, name),
             timeout=spec.timeout)
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, name)
    with tempfile.TemporaryDirectory(prefix="nerwheel-job-") as tmp:
        store.download_dir(storage.join(work, "model"), tmp)
        Path(model_path).mkdir(parents=True, exist_ok=True)
        for f in Path(tmp).rglob("*"):
            if f.is_file():
                dest = Path(model_path) / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                f.replace(dest)


def worker(work_uri: str) -> int:
    """One process of the job (every rank): fetch config and data, train, and (rank 0) upload the model."""
    import logging
    import tempfile
    from pathlib import Path

    import yaml

    from nerwheel import storage
    from nerwheel.components.data import RECORDS_FILE
    from nerwheel.model.config import validate
    from nerwheel.model.distributed import from_env
    from nerwheel.stages.train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = storage.get_storage()
    with tempfile.TemporaryDirectory(prefix="nerwheel-worker-") as tmp:
        data = store.download_file(storage.join(work_uri, "data", RECORDS_FILE), Path(tmp) / RECORDS_FILE)
        raw = yaml.safe_load(store.read_text(storage.join(work_uri, "train.yaml")))
        raw["data"]["train_file"] = str(data)
        raw["output"] = {**raw["output"], "output_dir": tmp, "model_name": "model", "timestamp": False}
        model_dir = train(validate(raw))
        if from_env().main:
            store.upload_dir(model_dir, storage.join(work_uri, "model"))
    return 0


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        print("usage: torchrun ... -m nerwheel.components.steps.pytorchjob s3://WORK_PREFIX", file=sys.stderr)
        sys.exit(2)
    sys.exit(worker(sys.argv[1]))
