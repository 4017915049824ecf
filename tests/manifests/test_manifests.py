"""Manifests: offline schema validation (strict), the built overlays' content, secrets as templates only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

try:  # the test extra installs it; its absence is a failure (below), not a skip
    import kubernetes_validate
except ImportError:  # pragma: no cover - only on an incomplete install
    kubernetes_validate = None

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
K8S_VERSION = "1.32.0"
OVERLAYS = ("dev", "prod")
PLACEHOLDER = re.compile(r"^<[a-z0-9-]+>$")


@pytest.fixture(autouse=True)
def _kubernetes_validate(require) -> None:
    require("kubernetes-validate", lambda: kubernetes_validate.validate)


def validate(doc: dict[str, Any], where: str) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        first = str(e).splitlines()[0]
        pytest.fail(f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {first}")


def resource_files() -> list[Path]:
    """Every full Kubernetes object in the tree: base resources, overlay objects, secret templates."""
    out = []
    for p in sorted(MANIFESTS.rglob("*.yaml")):
        if p.name == "kustomization.yaml":
            continue
        out.append(p)
    return out


def build(overlay: str) -> list[dict[str, Any]]:
    proc = subprocess.run(["kubectl", "kustomize", str(MANIFESTS / "overlays" / overlay)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_object_file_is_strictly_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path} holds no object"
    for doc in docs:
        # Overlay patches are partial objects: validate only what would be a full object on its own.
        if path.parent.name in OVERLAYS and path.name != "kustomization.yaml":
            if doc["kind"] == "Deployment":
                continue
        validate(doc, str(path.relative_to(MANIFESTS)))


def test_strict_validation_catches_an_unknown_field() -> None:
    # The check above must be able to fail: a misspelt field is an error in strict mode.
    doc = yaml.safe_load((MANIFESTS / "base" / "triton-service.yaml").read_text())
    doc["spec"]["port"] = 8000
    with pytest.raises(kubernetes_validate.ValidationError, match="'port' was unexpected"):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_into_valid_objects(overlay: str) -> None:
    docs = build(overlay)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "ConfigMap", "ConfigMap", "Deployment",
                                                "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
                                                "Role", "RoleBinding", "Service"]
    for doc in docs:
        validate(doc, f"kustomize build overlays/{overlay}")
        assert doc["metadata"]["namespace"] == {"dev": "nerwheel-dev", "prod": "nerwheel"}[overlay]
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets must never be part of the build"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_serves_the_s3_repository_with_probes(overlay: str) -> None:
    docs = build(overlay)
    dep = by_kind(docs, "Deployment", "triton")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["tritonserver"]
    assert "--model-repository=$(MODEL_REPOSITORY)" in c["args"]
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(c["args"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True

    # The model ConfigMap the container reads is the generated one, and its repository is on S3.
    model_cm = by_kind(docs, "ConfigMap", "nerwheel-model-")
    assert c["envFrom"] == [{"configMapRef": {"name": model_cm["metadata"]["name"]}}]
    repo = model_cm["data"]["MODEL_REPOSITORY"]
    # Triton's S3 forms: s3://bucket/prefix (AWS) or s3://http(s)://host:port/bucket/prefix (MinIO, Ceph)
    assert re.fullmatch(r"s3://(https?://[\w.\-]+:\d+/)?[a-z0-9.\-]+/[\w./\-]+", repo), repo
    version_file = MANIFESTS / "overlays" / overlay / "model-version.env"
    assert f"MODEL_VERSION={model_cm['data']['MODEL_VERSION']}" in version_file.read_text().splitlines()
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_refs == {"nerwheel-s3", "nerwheel-triton-control"}

    # GitOps decides what is served: before Triton starts, the overlay's MODEL_VERSION is pinned in config.pbtxt.
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert init["image"].startswith("ghcr.io/nerwheel/nerwheel-deploy" + (":" if overlay == "dev" else "@sha256:"))
    assert [*init["command"], *init["args"]] == ["nerwheel", "deploy", "--pin-version", "$(MODEL_VERSION)",
                                                 "--repository", "$(MODEL_REPOSITORY)", "--name", "$(MODEL_NAME)"]
    # same model config, same S3 secret (not the control key: the pin changes files, not the server)
    assert init["envFrom"] == c["envFrom"] and init["env"] == [e for e in c["env"] if e["name"] != "TRITON_CONTROL_KEY"]
    assert init["securityContext"]["runAsNonRoot"] is True
    assert init["securityContext"]["allowPrivilegeEscalation"] is False

    svc = by_kind(docs, "Service", "triton")
    ports = {p["name"]: (p["port"], p.get("appProtocol")) for p in svc["spec"]["ports"]}
    assert ports == {"http": (8000, None), "grpc": (8001, "grpc"), "metrics": (8002, None)}
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]

    hpa = by_kind(docs, "HorizontalPodAutoscaler", "triton")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}
    gpu = c["resources"]["limits"].get("nvidia.com/gpu")
    pod = dep["spec"]["template"]["spec"]
    if overlay == "prod":
        assert gpu == "1" and pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert hpa["spec"]["minReplicas"] == 2
    else:
        assert gpu is None and "nodeSelector" not in pod


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kfp_launcher_points_at_s3_with_the_templated_secret(overlay: str) -> None:
    launcher = by_kind(build(overlay), "ConfigMap", "kfp-launcher")
    assert launcher["metadata"]["name"] == "kfp-launcher"  # the launcher looks it up by this exact name
    assert launcher["data"]["defaultPipelineRoot"].startswith("s3://")
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    assert s3["endpoint"] and s3["region"]
    ref = s3["credentials"]["secretRef"]
    template = yaml.safe_load((MANIFESTS / "secrets" / "s3-credentials.template.yaml").read_text())
    assert ref["secretName"] == template["metadata"]["name"]
    assert {ref["accessKeyKey"], ref["secretKeyKey"]} == set(template["stringData"])


def test_secrets_are_templates_without_values() -> None:
    templates = sorted((MANIFESTS / "secrets").glob("*.yaml"))
    assert templates
    for path in templates:
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "Secret" and "data" not in doc, path
        assert all(PLACEHOLDER.match(v) for v in doc["stringData"].values()), f"{path}: only <placeholders> allowed"
    for path in resource_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Secret":
                assert path.parent.name == "secrets", f"{path}: a Secret outside manifests/secrets/"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay: str) -> None:
    """Read-only root filesystem, RuntimeDefault seccomp, no privilege escalation, no capabilities, non-root;
    the only writable paths are the emptyDirs Triton (S3 copies, shared memory) and the pin need."""
    pod = by_kind(build(overlay), "Deployment", "triton")["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in [*pod["initContainers"], *pod["containers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert sc.get("runAsNonRoot", True) is True
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], c["name"]
        assert all("emptyDir" in volumes[name] for name in mounts.values()), c["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_model_control_needs_the_key_from_the_secret(overlay: str) -> None:
    """The same restriction flags nerwheel serve passes (serving.control), the key from a Secret that only
    Triton and the deploy task read."""
    from nerwheel.serving.control import server_args

    pod = by_kind(build(overlay), "Deployment", "triton")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert set(server_args("$(TRITON_CONTROL_KEY)")) <= set(c["args"])
    (key_env,) = [e for e in c["env"] if e["name"] == "TRITON_CONTROL_KEY"]
    ref = key_env["valueFrom"]["secretKeyRef"]
    template = yaml.safe_load((MANIFESTS / "secrets" / "triton-control.template.yaml").read_text())
    assert ref["name"] == template["metadata"]["name"] and ref["key"] in template["stringData"]
    (init,) = pod["initContainers"]
    assert not [e for e in init["env"] if e["name"] == "TRITON_CONTROL_KEY"]  # the pin needs no server access


def selects_triton(docs: list[dict[str, Any]], kind: str, selector: str) -> dict[str, Any]:
    """The ``kind`` object named triton, checked to select exactly the Triton Deployment's pods."""
    obj = by_kind(docs, kind, "triton")
    assert obj["spec"][selector]["matchLabels"] == by_kind(docs, "Deployment", "triton")["spec"]["selector"]["matchLabels"]
    return obj


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_opens_inference_to_clients_and_control_to_the_deploy_task(overlay: str) -> None:
    docs = build(overlay)
    policy = selects_triton(docs, "NetworkPolicy", "podSelector")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports"), "a rule without from/ports opens the pod to everyone"
        (peer,) = rule["from"]
        labels = tuple(sorted(peer["podSelector"]["matchLabels"].items()))
        rules[labels] = sorted(p["port"] for p in rule["ports"])
    assert rules == {
        (("nerwheel.io/triton-client", "true"),): ["grpc"],  # inference only
        (("nerwheel.io/triton-control", "true"),): ["grpc", "http"],  # the deploy task (with the key)
        (("app.kubernetes.io/name", "prometheus"),): ["metrics"],
    }
    from nerwheel.pipelines.flywheel import Platform

    assert Platform().triton_control_label == ("nerwheel.io/triton-control", "true")


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_disruption_budget_keeps_triton_serving(overlay: str) -> None:
    docs = build(overlay)
    pdb = selects_triton(docs, "PodDisruptionBudget", "selector")
    # a drain takes one serving pod at a time, never blocks on a single replica, and may evict an unready pod
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    hpa = by_kind(docs, "HorizontalPodAutoscaler", "triton")
    if overlay == "prod":  # two replicas at least, at most one down at a time: one always serves
        assert hpa["spec"]["minReplicas"] >= 2


@needs_kubectl
def test_prod_images_are_pinned_by_digest() -> None:
    pod = by_kind(build("prod"), "Deployment", "triton")["spec"]["template"]["spec"]
    for c in [*pod["initContainers"], *pod["containers"]]:
        assert re.fullmatch(r"ghcr\.io/nerwheel/nerwheel-[a-z]+@sha256:[0-9a-f]{64}", c["image"]), c["image"]
