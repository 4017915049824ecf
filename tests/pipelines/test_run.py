"""`nerwheel run` end to end with Kubeflow's local runner: the S3 path against a real moto server, then the next
turn on the same S3 repository, gated against the version the first deployed and refused (export and deploy skipped).

Each run is the real command in a fresh interpreter on a tiny data set, with tiny training settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nerwheel.components import STAGES

pytest.importorskip("kfp")
pytest.importorskip("torch")

from pipeline_data import TINY_TRAIN, write_tiny_dataset  # noqa: E402

pytestmark = [pytest.mark.slow]

BUCKET, PREFIX = "nerwheel-e2e", "turn-1"
REPO = Path(__file__).resolve().parents[2]
GITOPS_FILE = "manifests/overlays/dev/model-version.env"  # the pipeline's default gitops_path


def nerwheel(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", "from nerwheel.cli import main; main()", *args, "--json"],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    assert proc.returncode == 0, f"nerwheel {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def data_args(paths: dict[str, Path]) -> list[str]:
    return ["--set", f"seed_uri={paths['seed']}", "--set", f"texts_uri={paths['texts']}",
            "--set", f"eval_uri={paths['eval']}", "--set", "synth_short=20", "--set", "synth_long=20",
            "--set", f"train_overrides={TINY_TRAIN}", "--epochs", "2"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def gitops_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare GitOps repository with this project's manifests, production still at MODEL_VERSION=0."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    tmp = tmp_path_factory.mktemp("gitops")
    bare, seed = tmp / "gitops.git", tmp / "seed"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp)
    git("clone", "--quiet", str(bare), str(seed), cwd=tmp)
    shutil.copytree(REPO / "manifests", seed / "manifests")
    (seed / GITOPS_FILE).write_text("MODEL_VERSION=0\n")
    git("add", "manifests", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=seed)
    return bare


@pytest.fixture(scope="module")
def s3_run(s3_server: str, data: dict[str, Path], gitops_repo: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("s3-run")
    return nerwheel("run", "--out", str(out), "--s3-endpoint", s3_server, "--s3-bucket", BUCKET,
                    "--s3-prefix", PREFIX, "--set", f"gitops_repo_url={gitops_repo}", *data_args(data))


@pytest.fixture(scope="module")
def store(s3_server: str) -> Any:
    from nerwheel.storage import Storage

    return Storage(s3_server)


@pytest.mark.server
def test_s3_run_completes_and_promotes_the_first_model(s3_run: dict[str, Any]) -> None:
    assert s3_run["tasks"] == {s: "SKIPPED" if s in ("feedback", "pseudo_label") else "SUCCESS" for s in STAGES}
    assert s3_run["verdict"] == "promote" and s3_run["production"] is None
    assert s3_run["reasons"][0].startswith(f"no production model (s3://{BUCKET}/{PREFIX}/triton-repository has no "
                                           "live version of 'nerwheel'): the first candidate is promoted")
    assert 0.0 <= s3_run["strict_f1"] <= 1.0 and s3_run["metrics"]["n_records"] == 12
    assert s3_run["repository"] == f"s3://{BUCKET}/{PREFIX}/triton-repository"
    assert (s3_run["model_name"], s3_run["version"], s3_run["deploy_status"]) == ("nerwheel", 1, "written")


@pytest.mark.server
def test_artifacts_are_where_the_summary_says(s3_run: dict[str, Any]) -> None:
    model, onnx, run_dir = Path(s3_run["model_dir"]), Path(s3_run["export_dir"]), Path(s3_run["run_dir"])
    assert model.parent.parent == run_dir and onnx.parent.parent == run_dir
    assert {"config.json", "model.safetensors", "nerwheel.json", "tokenizer.json"} <= {p.name for p in model.iterdir()}
    assert {"model.onnx", "nerwheel.json", "tokenizer.json"} <= {p.name for p in onnx.iterdir()}
    assert Path(s3_run["log"]).is_file() and "finished with status" in Path(s3_run["log"]).read_text()
    scores = json.loads((run_dir / "evaluate" / "scores").read_text())
    assert scores["overall"]["strict"]["f1"] == s3_run["strict_f1"]
    assert json.loads((run_dir / "gate" / "decision").read_text())["verdict"] == "promote"
    # a task inside a ParallelFor lives under its iteration's folder (annotate: one per shard)
    for stage in ("for-loop-*/annotate", "gather", "synthesize", "merge", "train", "distill", "evaluate", "export"):
        (report_path, *more) = sorted(run_dir.glob(f"{stage}/report"))
        report = report_path.read_text()
        assert report.startswith("<!DOCTYPE html>") and ("<svg" in report or "<table>" in report), stage
    assert "**promote**" in (run_dir / "gate" / "report").read_text()


@pytest.mark.server
def test_every_artifact_landed_in_s3_with_its_checksum(s3_run: dict[str, Any], store: Any) -> None:
    run_dir, uri = Path(s3_run["run_dir"]), s3_run["s3_run_uri"]
    assert uri == f"s3://{BUCKET}/{PREFIX}/pipeline-root/{run_dir.name}"
    local = {p.relative_to(run_dir).as_posix(): p for p in run_dir.rglob("*") if p.is_file()}
    remote = {u[len(uri) + 1:] for u in store.list(uri)}
    assert remote == set(local) | {"artifacts.json"}
    assert s3_run["s3_objects"] == len(local)
    manifest = json.loads(Path(s3_run["manifest"]).read_text())
    assert set(manifest["objects"]) == set(local)
    for rel, path in local.items():
        digest = sha256(path)
        assert manifest["objects"][rel]["sha256"] == digest, rel
        info = store.verify(f"{uri}/{rel}")  # re-reads the object and checks it against its recorded sha256
        assert (info.sha256, info.size) == (digest, path.stat().st_size), rel


@pytest.mark.server
def test_inputs_were_read_from_s3_and_the_triton_repository_is_there(s3_run: dict[str, Any], store: Any,
                                                                      data: dict[str, Path]) -> None:
    base = f"s3://{BUCKET}/{PREFIX}"
    for path in data.values():
        assert store.verify(f"{base}/data/{path.name}").sha256 == sha256(path)
    merge_report = (Path(s3_run["run_dir"]) / "merge" / "report").read_text()
    assert f"{base}/data/seed.jsonl" in merge_report  # the merge task read the gold set from S3
    deployment = json.loads((Path(s3_run["run_dir"]) / "deploy" / "deployment" / "deployment.json").read_text())
    files = deployment["deploy"]["files"]
    assert "nerwheel/1/model.onnx" in files
    for rel, digest in files.items():
        assert store.verify(f"{base}/triton-repository/{rel}").sha256 == digest
    assert store.exists(f"{base}/triton-repository/nerwheel/config.pbtxt")
    exported = Path(s3_run["export_dir"]) / "model.onnx"
    assert files["nerwheel/1/model.onnx"] == sha256(exported)  # the served bytes are the exported bytes


@pytest.mark.server
def test_deploy_committed_the_new_version_to_the_gitops_repository(s3_run: dict[str, Any], gitops_repo: Path,
                                                                    tmp_path: Path) -> None:
    clone = tmp_path / "check"
    git("clone", "--quiet", str(gitops_repo), str(clone), cwd=tmp_path)
    assert git("diff", "--numstat", "HEAD~1", "HEAD", cwd=clone).strip() == f"1\t1\t{GITOPS_FILE}"
    assert (clone / GITOPS_FILE).read_text() == f"MODEL_VERSION={s3_run['version']}\n"
    deployment = json.loads((Path(s3_run["run_dir"]) / "deploy" / "deployment" / "deployment.json").read_text())
    assert deployment["gitops"]["commit"] == git("rev-parse", "HEAD", cwd=clone).strip()
    assert (deployment["gitops"]["old"], deployment["gitops"]["new"]) == ("0", "1")


@pytest.mark.server
def test_the_next_turn_is_gated_against_the_live_version_and_refused(
        s3_server: str, s3_run: dict[str, Any], data: dict[str, Path], store: Any,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # The weekly turn of a cluster: nobody passes production_model_uri; the version live in the repository the
    # first run deployed to is production. A gate asking for +1.0 F1 cannot be met, so nothing is deployed.
    out = tmp_path_factory.mktemp("second-turn")
    summary = nerwheel("run", "--out", str(out), "--s3-endpoint", s3_server, "--s3-bucket", BUCKET,
                       "--s3-prefix", PREFIX, *data_args(data), "--set", "min_delta=1.0")
    live = f"s3://{BUCKET}/{PREFIX}/triton-repository/nerwheel/{s3_run['version']}"
    assert summary["verdict"] == "refuse" and summary["production"] == live
    assert summary["reasons"][0] == (f"production: version {s3_run['version']} of 'nerwheel', live in "
                                     f"s3://{BUCKET}/{PREFIX}/triton-repository")
    assert any("below min_delta 1.0" in r for r in summary["reasons"])
    assert summary["tasks"]["export"] == summary["tasks"]["deploy"] == "SKIPPED"
    # the wheel's own loop: with a live model the shards diff it against the teacher instead of labelling all
    assert summary["tasks"]["annotate"] == "SKIPPED"
    assert summary["tasks"]["feedback"] == summary["tasks"]["pseudo_label"] == "SUCCESS"
    (gathered,) = Path(summary["run_dir"]).glob("gather*/dataset/shards.json")
    shards = json.loads(gathered.read_text())
    texts = [t for t in data["texts"].read_text(encoding="utf-8").splitlines() if t.strip()]
    assert shards["totals"]["read"] == len(texts) == shards["totals"]["accepted"] + shards["totals"]["rejected"]
    assert shards["totals"]["counts"]["disagreed"] + shards["totals"]["counts"]["agreed"] + \
        shards["totals"]["counts"]["teacher_failed"] + shards["totals"]["counts"]["holdout_dropped"] == len(texts)
    assert summary["repository"] is None and summary["export_dir"] is None
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == out / "pipeline-root" and not (run_dir / "export").exists()
    # no version 2, not even claimed
    model_folder = store.children(f"s3://{BUCKET}/{PREFIX}/triton-repository/nerwheel")
    assert model_folder == ["1", "1.claim", "1.manifest.json", "config.pbtxt"]
    production = json.loads((run_dir / "evaluate" / "production_scores").read_text())
    assert (production["uri"], production["how"]) == (live, "live") and production["metrics"]["model"] == live
    # both scored on the same eval records, production from the served export (model.onnx in the version folder)
    assert production["metrics"]["n_records"] == summary["metrics"]["n_records"]
    decision = json.loads((run_dir / "gate" / "decision").read_text())
    assert decision["verdict"] == "refuse" and decision["production_model"]["uri"] == live
    assert decision["overall"]["production"] == production["metrics"]["overall"]["strict"]["f1"]


def test_a_failing_task_is_named_with_its_log(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from nerwheel.cli import main; main()", "run", "--out",
                           str(tmp_path), "--set", f"texts_uri={tmp_path / 'missing.txt'}", "-q"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "Traceback (most recent call last)" not in proc.stderr.splitlines()[0]
    # the shard task is the first that reads the traffic
    assert "'shard'" in proc.stderr and f"full log: {tmp_path / 'run.log'}" in proc.stderr
    assert "missing.txt: no such file" in proc.stderr  # the task's own error, from the log tail


@pytest.mark.server
def test_deploy_step_without_a_repository_writes_into_its_own_artifact(s3_run: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    from nerwheel.components.steps import deploy

    scores = Path(s3_run["run_dir"]) / "evaluate" / "scores"
    common = dict(export_dir=s3_run["export_dir"], scores_path=str(scores), model_name="nerwheel",
                  gitops_repo_url="", gitops_path=GITOPS_FILE, deployment_path=str(tmp_path / "deployment"),
                  report_path=str(tmp_path / "report.md"), deployment_uri="s3://root/run/deploy/deployment")
    with pytest.raises(ValueError, match="triton_url is set but repository_uri is empty"):
        deploy.run(repository_uri="", triton_url="127.0.0.1:8001", **common)
    record = deploy.run(repository_uri="", triton_url="", **common)
    assert record["repository"] == "s3://root/run/deploy/deployment/repository"  # where the launcher puts it
    assert (tmp_path / "deployment" / "repository" / "nerwheel" / "1" / "model.onnx").is_file()
    assert record["deploy"]["status"] == "written" and record["gitops"] is None
    assert "version 1 is **written**" in (tmp_path / "report.md").read_text()
