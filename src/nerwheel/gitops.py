"""The deploy stage's GitOps step: record the promoted model version in a kustomize overlay.

The cluster's desired state lives in a git repository (Argo CD / Flux watch it), so
a deploy does not talk to the cluster: it changes the one line ``MODEL_VERSION=N``
in an overlay's ``model-version.env``, commits, and pushes. The overlay's
``configMapGenerator`` turns that file into a ConfigMap whose name hash changes with
the version, so the Triton Deployment rolls. Each new pod's initContainer runs
``nerwheel deploy --pin-version $(MODEL_VERSION)`` before Triton starts, which makes
the repository's ``config.pbtxt`` name that version: the line in git is what is
served, and reverting the commit rolls the model back.

The change is checked before it is pushed: the commit must touch exactly that file,
one line out and one line in. Anything else (a missing key, the key twice) is an error
that names the file and what to fix, and nothing is pushed.

Credentials never go in the URL or in a parameter: git uses its own configuration
(SSH keys, credential helpers), or, for ``https://`` URLs, the token in the
``NERWHEEL_GIT_TOKEN`` environment variable (a Kubernetes secret in the deploy task).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nerwheel.errors import NerwheelError

__all__ = ["DEFAULT_OVERLAY_FILE", "GitOpsError", "GitOpsResult", "set_env_value", "update_model_version"]

log = logging.getLogger(__name__)

#: The file the step edits, relative to the GitOps repository's root.
DEFAULT_OVERLAY_FILE = "manifests/overlays/dev/model-version.env"  # the pipeline default too; dev serves repository_uri
TOKEN_ENV = "NERWHEEL_GIT_TOKEN"
USERNAME_ENV = "NERWHEEL_GIT_USERNAME"


class GitOpsError(NerwheelError, RuntimeError):
    """The overlay could not be updated (bad file, git failure, push rejected)."""


@dataclass(frozen=True, slots=True)
class GitOpsResult:
    """What the step did. ``commit`` is None when the overlay already had the version."""

    repo_url: str
    path: str
    key: str
    old_value: str
    new_value: str
    commit: str | None
    branch: str

    @property
    def changed(self) -> bool:
        return self.commit is not None

    def record(self) -> dict[str, str | None]:
        """The deployment record's ``gitops`` entry (pipeline deploy step and ``nerwheel deploy --gitops-repo``)."""
        return {"repo_url": self.repo_url, "path": self.path, "old": self.old_value, "new": self.new_value,
                "commit": self.commit, "branch": self.branch}

    def summary(self) -> str:
        done = f"commit {self.commit[:12]}" if self.commit else "already set, nothing to commit"
        return f"GitOps: {self.path} {self.key} {self.old_value} -> {self.new_value} ({done} on {self.branch})"


def set_env_value(text: str, key: str, value: str, *, source: str = "<text>") -> tuple[str, str]:
    """Replace the value of ``KEY=...`` in an env-file text; return (new text, old value).

    Only that line changes (its line ending included), so the diff is exactly one line.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise GitOpsError(f"{key!r} is not a valid env-file key (letters, digits and '_', not starting with a digit)")
    if "\n" in value or "\r" in value:
        raise GitOpsError(f"the new value for {key} must be one line, got {value!r}")
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if re.match(rf"\s*{re.escape(key)}\s*=", line)]
    if not hits:
        raise GitOpsError(f"{source}: no line sets {key}; add a line '{key}=<value>' to the file first")
    if len(hits) > 1:
        where = ", ".join(str(i + 1) for i in hits)
        raise GitOpsError(f"{source}: {key} is set on several lines ({where}); keep exactly one")
    i = hits[0]
    line = lines[i]
    body = line.rstrip("\r\n")
    ending = line[len(body):]
    old = body.split("=", 1)[1].strip()
    lines[i] = f"{key}={value}{ending}"
    return "".join(lines), old


def update_model_version(
    repo_url: str,
    version: int | str,
    *,
    path: str = DEFAULT_OVERLAY_FILE,
    key: str = "MODEL_VERSION",
    branch: str | None = None,
    message: str | None = None,
    author: tuple[str, str] = ("nerwheel deploy", "nerwheel-deploy@localhost"),
    retries: int = 3,
) -> GitOpsResult:
    """Clone ``repo_url``, set ``key`` to ``version`` in ``path``, commit, and push.

    Args:
        repo_url: any URL git can push to (``https://``, ``ssh://``, ``git@host:...``, a local bare repository).
        version: the model version Triton should serve.
        path: the overlay's env file, relative to the repository root.
        key: the line to change.
        branch: branch to update; the remote's default branch when None.
        message: commit message (default: "deploy: <key>=<version> in <path>").
        author: (name, email) of the commit.
        retries: how many times to start over (fresh clone) when the push is rejected because
            someone else pushed first.

    Returns:
        :class:`GitOpsResult` with the new commit's hash (None if the version was already set).
    """
    new_value = str(version)
    last_error: GitOpsError | None = None
    for attempt in range(1, max(1, retries) + 1):
        with tempfile.TemporaryDirectory(prefix="nerwheel-gitops-") as tmp:
            try:
                return _update_once(repo_url, new_value, Path(tmp), path=path, key=key, branch=branch,
                                    message=message, author=author)
            except _PushRejected as e:
                last_error = GitOpsError(f"push to {repo_url} was rejected {attempt} time(s): {e}")
                log.warning("gitops push rejected (attempt %d/%d), starting over", attempt, retries)
    assert last_error is not None
    raise last_error


class _PushRejected(Exception):
    pass


def _update_once(repo_url: str, new_value: str, tmp: Path, *, path: str, key: str, branch: str | None,
                 message: str | None, author: tuple[str, str]) -> GitOpsResult:
    env = _git_env(tmp)
    work = tmp / "repo"
    clone = ["clone", "--quiet", "--depth", "1"] + (["--branch", branch] if branch else []) + [repo_url, str(work)]
    _git(clone, cwd=tmp, env=env)
    branch = branch or _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=work, env=env).strip()

    target = (work / path).resolve()
    if work.resolve() not in target.parents:
        raise GitOpsError(f"overlay path {path!r} points outside the repository")
    if not target.is_file():
        raise GitOpsError(f"{repo_url}: {path} does not exist on branch {branch}; "
                          f"pass the overlay's env file (e.g. {DEFAULT_OVERLAY_FILE})")
    text = target.read_bytes().decode("utf-8")
    new_text, old_value = set_env_value(text, key, new_value, source=f"{repo_url}:{path}")
    if old_value == new_value:
        log.info("gitops: %s already has %s=%s, nothing to commit", path, key, new_value)
        return GitOpsResult(repo_url, path, key, old_value, new_value, None, branch)
    target.write_bytes(new_text.encode("utf-8"))

    numstat = _git(["diff", "--numstat"], cwd=work, env=env).strip()
    if numstat != f"1\t1\t{path}":
        raise GitOpsError(f"refusing to commit: the change should be one line in {path}, git reports {numstat!r}")

    name, email = author
    msg = message or f"deploy: {key}={new_value} in {path}"
    _git(["-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "--quiet", "-m", msg, "--", path],
         cwd=work, env=env)
    commit = _git(["rev-parse", "HEAD"], cwd=work, env=env).strip()
    try:
        _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], cwd=work, env=env)
    except GitOpsError as e:
        if "rejected" in str(e) or "fetch first" in str(e) or "non-fast-forward" in str(e):
            raise _PushRejected(str(e)) from e
        raise
    log.info("gitops: %s %s=%s -> %s (was %s), pushed %s to %s", path, key, new_value, branch, old_value,
             commit[:12], repo_url)
    return GitOpsResult(repo_url, path, key, old_value, new_value, commit, branch)


def _git_env(tmp: Path) -> dict[str, str]:
    """git's environment: never prompt; answer https auth from NERWHEEL_GIT_TOKEN when it is set."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if os.environ.get(TOKEN_ENV):
        askpass = tmp / "askpass.sh"
        user = shlex.quote(os.environ.get(USERNAME_ENV, "x-access-token"))
        askpass.write_text(
            "#!/bin/sh\n"
            f'case "$1" in Username*) echo {user} ;; *) printf "%s\\n" "${TOKEN_ENV}" ;; esac\n'
        )
        askpass.chmod(stat.S_IRWXU)
        env["GIT_ASKPASS"] = str(askpass)
    return env


def _git(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shown = " ".join(a for a in args if not a.startswith("user."))
        raise GitOpsError(f"git {shown} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
