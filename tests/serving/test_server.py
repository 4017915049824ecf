"""Triton process plumbing: repository URLs, the stub's environment, the model.py shell's import fallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerwheel.serving.server import SITE_PACKAGES_ENV, TritonServer, find_triton, triton_repository_url

SHELL = Path(__file__).resolve().parents[2] / "serving" / "model_shell.py"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:9000", "s3://http://127.0.0.1:9000/bkt/models"),
        ("https://minio.example.com", "s3://https://minio.example.com:443/bkt/models"),
        ("http://ceph.local/", "s3://http://ceph.local:80/bkt/models"),
    ],
)
def test_triton_s3_repository_url(endpoint: str, expected: str) -> None:
    assert triton_repository_url("s3://bkt/models", endpoint) == expected


def test_local_repository_url_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert triton_repository_url("repo") == str(tmp_path / "repo")


def test_stub_environment_puts_this_python_first(tmp_path: Path) -> None:
    find_triton()  # the serve extra is installed in the test environment
    env = TritonServer([tmp_path]).environment()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    sites = env[SITE_PACKAGES_ENV].split(os.pathsep)
    assert any(Path(s, "nerwheel").exists() or list(Path(s).glob("__editable__*nerwheel*")) for s in sites)


def test_backend_folder_has_the_stub_for_this_python(tmp_path: Path) -> None:
    folder = find_triton().backend_dir(tmp_path / "backends") / "python"
    assert {p.name for p in folder.iterdir()} >= {
        "libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"}
    assert os.access(folder / "triton_python_backend_stub", os.X_OK)


def test_model_shell_finds_nerwheel_through_site_packages_env(tmp_path: Path) -> None:
    """A stub Python without this environment's site-packages still imports nerwheel via NERWHEEL_SITE_PACKAGES."""
    (tmp_path / "triton_python_backend_utils.py").write_text("TritonError = Exception\n")
    (tmp_path / "model.py").write_text(SHELL.read_text())
    probe = "import model; print(model.TritonPythonModel.__name__, model.model_class.__module__)"
    env = {**os.environ, SITE_PACKAGES_ENV: TritonServer([tmp_path]).environment()[SITE_PACKAGES_ENV]}
    env.pop("PYTHONPATH", None)
    # -S: no site module, so site-packages (and the editable install) are invisible until the shell adds them.
    ok = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {probe}"],
                        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["TritonPythonModel", "nerwheel.serving.backend"]
    env.pop(SITE_PACKAGES_ENV)
    bad = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {probe}"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "cannot import nerwheel" in bad.stderr


def test_missing_local_repository_is_named(tmp_path: Path) -> None:
    from nerwheel.serving.server import TritonError

    with pytest.raises(TritonError, match="nowhere is not a folder"):
        TritonServer([tmp_path / "nowhere"]).start()


def test_require_fails_with_the_install_command(require) -> None:
    """A missing part of the test extra fails the test (no silent skip) and says how to install it."""
    import importlib

    assert require("json", lambda: importlib.import_module("json")).dumps([]) == "[]"
    with pytest.raises(pytest.fail.Exception, match=r"no_such_part is missing: install the test extras with "
                       r"`bash scripts/bootstrap.sh` \(ModuleNotFoundError: No module named 'no_such_part'\)"):
        require("no_such_part", lambda: importlib.import_module("no_such_part"))
