"""The model-control key: the server flags, where the key comes from, the key file's mode."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nerwheel.serving import control
from nerwheel.serving.control import CONTROL_KEY_ENV, ensure_key_file, resolve_key, server_args
from nerwheel.serving.server import TritonServer, find_triton


def test_the_bundled_tritonserver_has_the_restriction_flags() -> None:
    inst = find_triton()
    env = {**os.environ, "LD_LIBRARY_PATH": str(inst.lib_dir or "")}
    out = subprocess.run([str(inst.binary), "--help"], capture_output=True, text=True, env=env, timeout=60)
    text = out.stdout + out.stderr
    assert "--grpc-restricted-protocol" in text and "--http-restricted-api" in text
    assert all(p in text for p in control.RESTRICTED)  # every protocol nerwheel restricts is one Triton knows


def test_every_server_restricts_model_control_and_never_logs_the_key(tmp_path: Path) -> None:
    args = server_args("k3y")
    assert args == [f"--grpc-restricted-protocol={','.join(control.RESTRICTED)}:nerwheel-control-key=k3y",
                     f"--http-restricted-api={','.join(control.RESTRICTED)}:nerwheel-control-key=k3y"]
    cmd = TritonServer([tmp_path], control_key="k3y", grpc_port=1, http_port=2, metrics_port=3).command(tmp_path)
    assert set(args) <= set(cmd) and "--grpc-address=127.0.0.1" in cmd and "--http-address=127.0.0.1" in cmd
    for bad in ("", "a:b", "a=b", "a,b", "a b"):
        with pytest.raises(ValueError, match="control key"):
            server_args(bad)


def test_the_key_comes_from_what_was_named_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "DEFAULT_KEY_FILE", tmp_path / "default")
    monkeypatch.delenv(CONTROL_KEY_ENV, raising=False)
    assert resolve_key() is None
    key, path = ensure_key_file(tmp_path / "sub" / "key")
    assert (path.stat().st_mode & 0o777) == 0o600 and len(key) >= 32
    assert ensure_key_file(path) == (key, path)  # made once, then read
    monkeypatch.setenv(CONTROL_KEY_ENV, "from-env")
    assert resolve_key() == "from-env"
    assert resolve_key(key_file=path) == key  # a named file beats the inherited environment
    assert resolve_key("explicit", key_file=path) == "explicit"
    with pytest.raises(FileNotFoundError, match="no such control key file"):
        resolve_key(key_file=tmp_path / "missing")
    monkeypatch.delenv(CONTROL_KEY_ENV)
    (tmp_path / "default").write_text("from-default-file\n")
    assert resolve_key() == "from-default-file"
