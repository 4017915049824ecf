"""`nerwheel deploy --pin-version`: GitOps' MODEL_VERSION decides which existing version is live.

Local and S3 (moto) repositories, the CPU model and the GPU ensemble, the CLI,
and a pin back to version 1 in the real Triton.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.serving.client import Client
from nerwheel.serving.config import parse_config
from nerwheel.serving.deploy import deploy, pin_version
from nerwheel.serving.repository import ModelRepository, RepositoryError, live_version, resolve_repository
from nerwheel.stages.predict import load_predictor
from nerwheel.storage import Storage
from serving_exports import TEXTS


def config_text(repo: str, name: str, storage: Storage | None = None) -> str:
    return (storage or Storage()).read_text(f"{repo}/{name}/config.pbtxt")


@pytest.fixture(scope="module")
def two_versions(export_v1: Path, export_v2: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local repository with versions 1 and 2 of `addr` (2 live), as two offline deploys leave it."""
    root = str(tmp_path_factory.mktemp("pin") / "repo")
    assert [deploy(e, root, name="addr").version for e in (export_v1, export_v2)] == [1, 2]
    return root


def test_pin_rewrites_version_policy_in_a_local_repository(two_versions: str) -> None:
    pin_version(two_versions, 2, name="addr")  # the module's tests share the repository: start from 2
    report = pin_version(two_versions, 1, name="addr")
    assert (report.action, report.status, report.previous_versions, report.live_versions) == ("pin", "written",
                                                                                              [2], [1])
    assert list(parse_config(config_text(two_versions, "addr")).version_policy.specific.versions) == [1]
    assert live_version(two_versions, "addr") == 1
    assert pin_version(two_versions, 2, name="addr").live_versions == [2]
    assert live_version(two_versions, "addr") == 2
    assert live_version(two_versions, "never-deployed") is None


def test_pinning_a_missing_version_fails_and_changes_nothing(two_versions: str) -> None:
    before = config_text(two_versions, "addr")
    with pytest.raises(RepositoryError, match=r"addr/5 does not exist \(versions of addr there: \[1, 2\]\)"):
        pin_version(two_versions, 5, name="addr")
    with pytest.raises(RepositoryError, match="there is no model 'other'.*models there: addr"):
        pin_version(two_versions, 1, name="other")
    assert config_text(two_versions, "addr") == before


def test_pin_switches_every_step_of_the_gpu_ensemble(export_v1: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "gpu")
    for _ in range(2):
        assert deploy(export_v1, root, name="addr", variant="gpu").status == "written"
    models = ["addr_tokenize", "addr_onnx", "addr_decode", "addr"]
    assert pin_version(root, 1, name="addr").variant == "gpu"
    repo = ModelRepository(root)
    assert {m: repo.live_versions(m) for m in models} == {m: [1] for m in models}
    ensemble = repo.read_config("addr")
    assert [(s.model_name, s.model_version) for s in ensemble.ensemble_scheduling.step] == [
        ("addr_tokenize", 1), ("addr_onnx", 1), ("addr_decode", 1), ("addr_decode", 1)]  # the second: NBEST

    # One step's folder is gone: the pin names it and leaves all four configs as they were.
    Storage().delete(f"{root}/addr_onnx/2", recursive=True)
    before = {m: config_text(root, m) for m in models}
    with pytest.raises(RepositoryError, match="addr_onnx/2 does not exist"):
        pin_version(root, 2, name="addr")
    assert {m: config_text(root, m) for m in models} == before


@pytest.mark.server
def test_pin_on_s3_in_tritons_repository_form(s3_server: str, s3_bucket: str, export_v1: Path, export_v2: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage(s3_server)
    repo = f"{s3_bucket}/triton"
    for export in (export_v1, export_v2):
        assert deploy(export, repo, name="addr", endpoint_url=s3_server).status == "written"
    # What the Kubernetes initContainer passes: Triton's form, endpoint inside, no endpoint in the environment.
    monkeypatch.delenv("NERWHEEL_S3_ENDPOINT")
    triton_form = f"s3://{s3_server}/{s3_bucket.removeprefix('s3://')}/triton"
    assert live_version(triton_form, "addr") == 2
    report = pin_version(triton_form, 1, name="addr")
    assert (report.status, report.live_versions) == ("written", [1])
    assert list(parse_config(config_text(repo, "addr", storage)).version_policy.specific.versions) == [1]
    before = config_text(repo, "addr", storage)
    with pytest.raises(RepositoryError, match="addr/3 does not exist"):
        pin_version(triton_form, 3, name="addr")
    assert config_text(repo, "addr", storage) == before
    assert live_version(repo, "addr", endpoint_url=s3_server) == 1


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://http://minio.kubeflow:9000/bkt/models", ("s3://bkt/models", "http://minio.kubeflow:9000")),
        ("s3://https://ceph.local:443/bkt/a/b", ("s3://bkt/a/b", "https://ceph.local:443")),
        ("s3://minio:9000/bkt/models", ("s3://bkt/models", "http://minio:9000")),  # Triton: http by default
        ("s3://bkt/models", ("s3://bkt/models", None)),
        ("/srv/models", ("/srv/models", None)),
    ],
)
def test_resolve_repository_reads_tritons_s3_form(uri: str, expected: tuple[str, str | None]) -> None:
    assert resolve_repository(uri) == expected


def test_resolve_repository_refuses_contradicting_endpoints() -> None:
    with pytest.raises(RepositoryError, match="names the S3 endpoint http://a:9000, but the endpoint"):
        resolve_repository("s3://http://a:9000/bkt/x", "http://b:9000")
    with pytest.raises(RepositoryError, match="no bucket"):
        resolve_repository("s3://http://a:9000/")


def test_pin_command(two_versions: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["deploy", "--pin-version", "1", "-r", two_versions, "-n", "addr"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["live_versions"] == [1] and live_version(two_versions, "addr") == 1
    missing = runner.invoke(cli, ["deploy", "--pin-version", "9", "-r", two_versions, "-n", "addr"])
    assert missing.exit_code == 1 and "addr/9 does not exist" in missing.output
    both = runner.invoke(cli, ["deploy", "--pin-version", "1", "-m", two_versions, "-r", two_versions])
    assert both.exit_code == 2 and "exactly one of --model" in both.output
    neither = runner.invoke(cli, ["deploy", "-r", two_versions])
    assert neither.exit_code == 2 and "exactly one of --model" in neither.output
    shaped = runner.invoke(cli, ["deploy", "--pin-version", "1", "-r", two_versions, "--keep", "1"])
    assert shaped.exit_code == 2 and "--keep shape(s) a new version" in shaped.output
    assert live_version(two_versions, "addr") == 1


@pytest.mark.server
def test_pin_back_to_version_1_in_triton(triton, export_v1: Path, export_v2: Path, model_name: str) -> None:
    for export, version in ((export_v1, 1), (export_v2, 2)):
        report = deploy(export, str(triton.local_repo), name=model_name, triton_url=triton.url)
        assert (report.status, report.version) == ("live", version), report.error
    result = CliRunner().invoke(cli, ["deploy", "--pin-version", "1", "-r", str(triton.local_repo), "-n", model_name,
                                      "--triton-url", triton.url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["verified"], report["live_versions"]) == ("live", True, [1])
    with Client(triton.url, model=model_name) as client:
        served = client.infer(list(TEXTS))
    assert {p.model_version for p in served} == {"1"}
    assert [p.entities for p in served] == load_predictor(export_v1).predict(list(TEXTS))
    assert live_version(str(triton.local_repo), model_name) == 1


@pytest.mark.parametrize("damage", ["file missing", "file changed", "file added", "no manifest"])
def test_pin_refuses_a_version_whose_files_do_not_match_its_checksums(export_v1: Path, tmp_path: Path,
                                                                      damage: str) -> None:
    """`--pin-version N` (the Kubernetes init container) used to accept a half-uploaded version folder."""
    root = str(tmp_path / "repo")
    assert [deploy(export_v1, root, name="addr").version for _ in range(2)] == [1, 2]
    folder = Path(root) / "addr" / "1"
    if damage == "file missing":
        (folder / "crf.npz").unlink()
    elif damage == "file changed":
        (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes()[:-1] + b"\0")
    elif damage == "file added":
        (folder / "stray.bin").write_bytes(b"?")
    else:
        (Path(root) / "addr" / "1.manifest.json").unlink()
    before = config_text(root, "addr")
    reason = {"file missing": "missing: crf.npz", "file changed": "model.onnx: sha256",
              "file added": "not in the manifest: stray.bin", "no manifest": "has no manifest"}[damage]
    with pytest.raises(RepositoryError, match=f"cannot pin addr to version 1: .*{reason}"):
        pin_version(root, 1, name="addr")
    assert config_text(root, "addr") == before
    result = CliRunner().invoke(cli, ["deploy", "--pin-version", "1", "--repository", root, "--name", "addr"])
    assert result.exit_code == 1 and reason in result.output and "Traceback" not in result.output
    assert pin_version(root, 2, name="addr").status == "written"  # an intact version still pins


def test_a_missing_s3_bucket_is_one_clear_line(s3_server: str, export_v1: Path) -> None:
    """`deploy` to an s3:// repository whose bucket does not exist gave a botocore traceback."""
    for args in (["deploy", "-m", str(export_v1)], ["deploy", "--pin-version", "1"]):
        result = CliRunner().invoke(cli, [*args, "-r", "s3://no-such-bucket-17/triton", "--s3-endpoint", s3_server])
        assert result.exit_code == 1, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert "bucket 'no-such-bucket-17' does not exist" in lines[0] and s3_server in lines[0]
        assert "create it" in lines[0]
