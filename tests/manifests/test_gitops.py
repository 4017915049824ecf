"""The GitOps step against a real local bare repository: one-line diff, idempotence, errors, push races."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.gitops import DEFAULT_OVERLAY_FILE, GitOpsError, set_env_value, update_model_version

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def gitops_repo(tmp_path: Path) -> Path:
    """A bare repository holding a copy of this project's manifests/ on branch main."""
    bare = tmp_path / "gitops.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(bare), str(seed), cwd=tmp_path)
    shutil.copytree(REPO_ROOT / "manifests", seed / "manifests")
    git("add", "manifests", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=seed)
    return bare


def fresh_clone(bare: Path, dest: Path) -> Path:
    git("clone", "--quiet", str(bare), str(dest), cwd=dest.parent)
    return dest


def test_update_is_a_one_line_commit(gitops_repo: Path, tmp_path: Path) -> None:
    result = update_model_version(str(gitops_repo), 7)
    assert result.changed and result.old_value == "1" and result.new_value == "7" and result.branch == "main"

    clone = fresh_clone(gitops_repo, tmp_path / "check")
    assert git("rev-parse", "HEAD", cwd=clone).strip() == result.commit
    assert git("diff", "--numstat", "HEAD~1", "HEAD", cwd=clone).strip() == f"1\t1\t{DEFAULT_OVERLAY_FILE}"
    patch = git("diff", "--unified=0", "HEAD~1", "HEAD", cwd=clone)
    assert [ln for ln in patch.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")] == [
        "-MODEL_VERSION=1",
        "+MODEL_VERSION=7",
    ]
    if shutil.which("kubectl"):
        overlay = clone / Path(DEFAULT_OVERLAY_FILE).parent  # the overlay the default env file belongs to
        built = subprocess.run(["kubectl", "kustomize", str(overlay)], check=True,
                               capture_output=True, text=True).stdout
        assert 'MODEL_VERSION: "7"' in built


def test_same_version_twice_commits_nothing(gitops_repo: Path, tmp_path: Path) -> None:
    first = update_model_version(str(gitops_repo), 3, path="manifests/overlays/dev/model-version.env")
    again = update_model_version(str(gitops_repo), 3, path="manifests/overlays/dev/model-version.env")
    assert first.changed and not again.changed and again.old_value == "3"
    clone = fresh_clone(gitops_repo, tmp_path / "check")
    assert git("rev-list", "--count", "HEAD", cwd=clone).strip() == "2"


def test_push_rejected_once_is_retried_from_a_fresh_clone(gitops_repo: Path, tmp_path: Path) -> None:
    # A pre-receive hook that refuses the first push: the step must start over and succeed.
    marker = tmp_path / "refused-once"
    hook = gitops_repo / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}; echo busy >&2; exit 1; fi\nexit 0\n")
    hook.chmod(0o755)
    result = update_model_version(str(gitops_repo), 9, retries=2)
    assert marker.exists() and result.changed
    clone = fresh_clone(gitops_repo, tmp_path / "check")
    assert "MODEL_VERSION=9" in (clone / DEFAULT_OVERLAY_FILE).read_text()


def test_missing_file_is_reported_and_nothing_is_pushed(gitops_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(GitOpsError, match="does not exist on branch main"):
        update_model_version(str(gitops_repo), 2, path="manifests/overlays/staging/model-version.env")
    clone = fresh_clone(gitops_repo, tmp_path / "check")
    assert git("rev-list", "--count", "HEAD", cwd=clone).strip() == "1"


@pytest.mark.parametrize(
    ("text", "expected", "old"),
    [
        ("MODEL_VERSION=1\n", "MODEL_VERSION=12\n", "1"),
        ("A=x\nMODEL_VERSION = 4\nB=y\n", "A=x\nMODEL_VERSION=12\nB=y\n", "4"),
        ("MODEL_VERSION=1\r\nB=y\r\n", "MODEL_VERSION=12\r\nB=y\r\n", "1"),
        ("# comment\nMODEL_VERSION=1", "# comment\nMODEL_VERSION=12", "1"),
    ],
)
def test_set_env_value_changes_only_that_line(text: str, expected: str, old: str) -> None:
    assert set_env_value(text, "MODEL_VERSION", "12") == (expected, old)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("OTHER=1\n", r"f\.env: no line sets MODEL_VERSION; add a line 'MODEL_VERSION=<value>'"),
        ("MODEL_VERSION=1\nMODEL_VERSION=2\n", r"f\.env: MODEL_VERSION is set on several lines \(1, 2\)"),
    ],
)
def test_set_env_value_errors_name_the_file_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(GitOpsError, match=message):
        set_env_value(text, "MODEL_VERSION", "2", source="f.env")


def test_https_token_comes_from_env_through_askpass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nerwheel.gitops import _git_env

    monkeypatch.setenv("NERWHEEL_GIT_TOKEN", "tok-123")
    env = _git_env(tmp_path)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    ask = env["GIT_ASKPASS"]

    def answer(prompt: str) -> str:
        return subprocess.run([ask, prompt], env=env, check=True, capture_output=True, text=True).stdout.strip()

    assert answer("Username for 'https://git.example': ") == "x-access-token"
    assert answer("Password for 'https://x-access-token@git.example': ") == "tok-123"
    assert "tok-123" not in Path(ask).read_text()  # the token is read at run time, never written to disk


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def pin_init_container(manifests: Path, env: dict[str, str]) -> list[str]:
    """The Triton pod's initContainer command line, with Kubernetes' ``$(VAR)`` expansion applied."""
    dep = yaml.safe_load((manifests / "base" / "triton-deployment.yaml").read_text())
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)
            for arg in [*init["command"], *init["args"]]]


@pytest.mark.server
def test_git_revert_rolls_back_what_a_new_pod_serves(gitops_repo: Path, tmp_path: Path, s3_server: str,
                                                     s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deploy commits MODEL_VERSION=2; `git revert` of that commit makes the next pod serve version 1 again."""
    from nerwheel.serving.config import cpu_model_config, to_pbtxt
    from nerwheel.serving.repository import ModelRepository, live_version
    from nerwheel.serving.server import triton_repository_url
    from nerwheel.storage import Storage

    # An S3 model repository as two deploys leave it: folders 1 and 2 with their manifests, config.pbtxt naming 2.
    storage = Storage(s3_server)
    repo = f"{s3_bucket}/triton-repository"
    for v in (1, 2):
        (tmp_path / "stage" / str(v)).mkdir(parents=True)
        (tmp_path / "stage" / str(v) / "model.py").write_text(f"# version {v}\n")
        ModelRepository(repo, storage).write_version("nerwheel", v, tmp_path / "stage" / str(v))
    storage.write_text(f"{repo}/nerwheel/config.pbtxt", to_pbtxt(cpu_model_config("nerwheel", 2)))
    # model.env names a MinIO repository in Triton's form; the pin must find the endpoint in it, not in env.
    triton_form = triton_repository_url(repo, s3_server)
    monkeypatch.delenv("NERWHEEL_S3_ENDPOINT")

    def roll_out(tag: str) -> int | None:
        """What a new Triton pod does before tritonserver starts, with the ConfigMap built from this commit."""
        clone = fresh_clone(gitops_repo, tmp_path / tag)
        env = {**read_env(clone / "manifests/base/model.env"), **read_env(clone / DEFAULT_OVERLAY_FILE),
               "MODEL_REPOSITORY": triton_form}
        argv = pin_init_container(clone / "manifests", env)
        assert argv[:2] == ["nerwheel", "deploy"]
        result = CliRunner().invoke(cli, argv[1:])
        assert result.exit_code == 0, result.output
        return live_version(triton_form, env["MODEL_NAME"])

    assert update_model_version(str(gitops_repo), 2).changed
    assert roll_out("after-deploy") == 2
    work = fresh_clone(gitops_repo, tmp_path / "revert")
    git("-c", "user.name=t", "-c", "user.email=t@t", "revert", "--no-edit", "HEAD", cwd=work)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
    assert roll_out("after-revert") == 1
    assert "versions: 1" in storage.read_text(f"{repo}/nerwheel/config.pbtxt")

    # A version whose folder is gone (pruned) stops the pod before Triton starts: it never serves something else.
    assert update_model_version(str(gitops_repo), 7).changed
    clone = fresh_clone(gitops_repo, tmp_path / "missing")
    env = {**read_env(clone / "manifests/base/model.env"), **read_env(clone / DEFAULT_OVERLAY_FILE),
           "MODEL_REPOSITORY": triton_form}
    result = CliRunner().invoke(cli, pin_init_container(clone / "manifests", env)[1:])
    assert result.exit_code == 1 and "nerwheel/7 does not exist" in result.output
    assert live_version(triton_form, "nerwheel") == 1
