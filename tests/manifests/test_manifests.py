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
                                                "HorizontalPodAutoscaler", "Service"]
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
    assert secret_refs == {"nerwheel-s3"}

    # GitOps decides what is served: before Triton starts, the overlay's MODEL_VERSION is pinned in config.pbtxt.
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert init["image"].startswith("ghcr.io/nerwheel/nerwheel-deploy:")
    assert [*init["command"], *init["args"]] == ["nerwheel", "deploy", "--pin-version", "$(MODEL_VERSION)",
                                                 "--repository", "$(MODEL_REPOSITORY)", "--name", "$(MODEL_NAME)"]
    assert init["envFrom"] == c["envFrom"] and init["env"] == c["env"]  # same model config, same S3 secret
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
