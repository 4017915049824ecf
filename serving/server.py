"""Run the real ``tritonserver`` as a child process, without Docker.

The ``nvidia-pytriton`` wheel carries the Triton server binary, its shared
libraries and the python backend (with one stub per Python version). This
module finds them, assembles a backend folder, picks free ports on 127.0.0.1
and starts, waits for and stops the server. ``nerwheel serve``, ``deploy``
tests, the benchmark and the test fixtures all use it. Every server it starts
binds 127.0.0.1 and restricts model control to a key
(:mod:`nerwheel.serving.control`).

How the python-backend stub finds ``nerwheel``: Triton starts one
``triton_python_backend_stub`` process per model instance, with the server's
environment. The stub embeds CPython and locates its ``sys.prefix`` by looking
for ``python3`` on ``PATH``; a ``pyvenv.cfg`` next to it turns on that
virtual environment's site-packages (``.pth`` files and editable installs
included). So we put the running interpreter's ``bin`` folder first on
``PATH`` and, as a second line of defence, export ``NERWHEEL_SITE_PACKAGES``
(this interpreter's site folders), which the served ``model.py`` adds with
``site.addsitedir`` when ``import nerwheel`` fails. In a Triton container,
``pip install nerwheel`` into the image's Python is enough.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from nerwheel.errors import NerwheelError
from nerwheel.serving.control import new_key, server_args

log = logging.getLogger(__name__)

__all__ = [
    "TritonError",
    "TritonInstall",
    "TritonServer",
    "find_triton",
    "free_port",
    "serve_forever",
    "triton_repository_url",
]

SITE_PACKAGES_ENV = "NERWHEEL_SITE_PACKAGES"
LOCALHOST = "127.0.0.1"


class TritonError(NerwheelError, RuntimeError):
    """Triton could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of a Triton installation are."""

    binary: Path
    lib_dir: Path | None
    python_backend: Path  # folder with libtriton_python.so and triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub built for this Python version

    def backend_dir(self, into: Path) -> Path:
        """Assemble ``into/python/`` (what ``--backend-directory`` expects) and return ``into``."""
        target = into / "python"
        target.mkdir(parents=True, exist_ok=True)
        for f in self.python_backend.iterdir():
            if f.is_file():
                shutil.copy2(f, target / f.name)
        shutil.copy2(self.stub, target / self.stub.name)
        return into


def find_triton() -> TritonInstall:
    """Locate ``tritonserver`` and the python backend: ``$TRITON_HOME``, then the nvidia-pytriton wheel."""
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    home = os.environ.get("TRITON_HOME")
    if home:  # a Triton container or tarball: /opt/tritonserver
        root = Path(home)
        stub = root / "backends" / "python" / "triton_python_backend_stub"
        inst = TritonInstall(root / "bin" / "tritonserver", root / "lib", root / "backends" / "python", stub)
    else:
        try:
            import pytriton
        except ImportError as e:
            raise TritonError(
                "tritonserver not found: install the serve extra (pip install 'nerwheel[serve]', which brings "
                "nvidia-pytriton) or set TRITON_HOME to a Triton installation"
            ) from e
        root = Path(pytriton.__file__).parent / "tritonserver"
        libs = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
        inst = TritonInstall(
            root / "bin" / "tritonserver",
            libs if libs.is_dir() else None,
            root / "backends" / "python",
            root / "python_backend_stubs" / pyver / "triton_python_backend_stub",
        )
    for p in (inst.binary, inst.python_backend, inst.stub):
        if not p.exists():
            raise TritonError(f"incomplete Triton installation: {p} is missing (Python {pyver})")
    return inst


def triton_repository_url(repository: str | os.PathLike[str], endpoint_url: str | None = None) -> str:
    """The ``--model-repository`` value Triton understands for a local path or ``s3://bucket/prefix``.

    Triton addresses non-AWS S3 endpoints as ``s3://host:port/bucket/prefix``;
    for ``http://`` endpoints we keep the scheme so Triton does not try TLS.
    """
    repository = str(repository)
    if not repository.startswith("s3://"):
        return str(Path(repository).resolve())
    from nerwheel.storage import resolve_endpoint

    endpoint = resolve_endpoint(endpoint_url)
    if not endpoint:
        return repository  # AWS itself: Triton resolves the bucket's region
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    port = parts.port or (443 if parts.scheme == "https" else 80)  # Triton's S3 path needs an explicit port
    return f"s3://{parts.scheme}://{parts.hostname}:{port}/{repository[len('s3://'):]}"


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send the child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``).

    Triton runs in its own session, so nothing else stops it when its parent is killed with SIGKILL:
    it would keep serving (and hold its ports) with nobody left to stop it. SIGTERM lets it drain and
    stop its python-backend stubs. The kernel ties this to the *thread* that forked, hence the caveat on
    :attr:`TritonServer.die_with_parent`. ``None`` where prctl does not exist (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def tie() -> None:  # runs in the child between fork and exec: no logging, no allocation-heavy work
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the tie was made
            os._exit(1)

    return tie


@dataclass
class TritonServer:
    """One ``tritonserver`` child process bound to 127.0.0.1.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Ports
    default to free ones. ``repositories`` may mix local folders and
    ``s3://`` URIs (S3 credentials come from the environment).
    """

    repositories: Sequence[str | os.PathLike[str]]
    grpc_port: int | None = None
    http_port: int | None = None
    metrics_port: int | None = None
    model_control: str = "explicit"
    load_models: Sequence[str] = ()  # "*" loads every model found (explicit mode)
    s3_endpoint: str | None = None
    exit_timeout_s: int = 30
    log_verbose: int = 0
    log_file: Path | None = None
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: Model control (load/unload, config, statistics...) needs this key in a header (``serving.control``);
    #: ``None``: a random one is made at start. There is no unrestricted server.
    control_key: str | None = None
    install: TritonInstall | None = None
    #: Linux: the server gets SIGTERM when the thread that started it ends (see :func:`_die_with_parent`).
    #: Start it from a thread that lives as long as the server (the main thread), or turn this off.
    die_with_parent: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def grpc_url(self) -> str:
        return f"{LOCALHOST}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{LOCALHOST}:{self.http_port}"

    def command(self, backend_dir: Path) -> list[str]:
        inst = self.install or find_triton()
        args = [str(inst.binary)]
        args += [f"--model-repository={triton_repository_url(r, self.s3_endpoint)}" for r in self.repositories]
        args += [
            f"--backend-directory={backend_dir}",
            f"--model-control-mode={self.model_control}",
            f"--grpc-address={LOCALHOST}", f"--grpc-port={self.grpc_port}",
            f"--http-address={LOCALHOST}", f"--http-port={self.http_port}",
            f"--metrics-address={LOCALHOST}", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            "--strict-readiness=true",
        ]
        args += [f"--load-model={m}" for m in self.load_models]
        args += server_args(self.control_key or "")
        return args + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        """The child's environment: this interpreter's ``bin`` first on PATH, Triton's libraries, site folders."""
        import site

        env = dict(os.environ)
        env.update(self.env)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        inst = self.install or find_triton()
        if inst.lib_dir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(inst.lib_dir), env.get("LD_LIBRARY_PATH")]))
        sites = [*site.getsitepackages(), site.getusersitepackages()]
        env[SITE_PACKAGES_ENV] = os.pathsep.join(p for p in sites if os.path.isdir(p))
        return env

    def start(self, timeout_s: float = 60.0) -> TritonServer:
        if self.process is not None:
            raise TritonError("this TritonServer is already started")
        inst = self.install = self.install or find_triton()
        for repo in self.repositories:
            if not str(repo).startswith("s3://") and not Path(repo).is_dir():
                raise TritonError(f"model repository {repo} is not a folder (create it, or deploy a model into it)")
        self.control_key = self.control_key or new_key()
        self.grpc_port = self.grpc_port or free_port()
        self.http_port = self.http_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self._workdir = tempfile.TemporaryDirectory(prefix="nerwheel-triton-")
        backend_dir = inst.backend_dir(Path(self._workdir.name) / "backends")
        if self.log_file is None:
            self.log_file = Path(self._workdir.name) / "tritonserver.log"
        cmd = self.command(backend_dir)
        log.info("starting %s", " ".join(a.replace(self.control_key, "***") for a in cmd))
        with open(self.log_file, "ab") as out:
            # Own session: a Ctrl-C in the terminal reaches us, and we decide how Triton stops. Tied to our
            # life: the session would otherwise outlive a parent killed with SIGKILL (an orphan server holding
            # its ports and models, e.g. `nerwheel serve` killed -9, or a test run cut off).
            self.process = subprocess.Popen(
                cmd, env=self.environment(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()) if self.die_with_parent else None,
            )
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the server answers ``is_server_live`` over gRPC (models may still be loading)."""
        import tritonclient.grpc as grpcclient

        deadline = time.monotonic() + timeout_s
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise TritonError(
                        f"tritonserver exited with code {self.returncode} during start:\n{self.log_tail()}"
                    )
                try:
                    if client.is_server_live():
                        return
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                time.sleep(0.2)
        finally:
            client.close()
        raise TritonError(f"tritonserver did not come up within {timeout_s:.0f}s:\n{self.log_tail()}")

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, n: int = 40) -> str:
        if not self.log_file or not Path(self.log_file).exists():
            return ""
        return "\n".join(Path(self.log_file).read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (Triton drains in-flight requests for ``exit_timeout_s``), then SIGKILL if it hangs."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s if timeout_s is not None else self.exit_timeout_s + 15)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not exit after SIGTERM; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        code = proc.returncode if proc is not None else None
        if self._workdir is not None:
            in_workdir = self.log_file and Path(self.log_file).is_relative_to(self._workdir.name)
            if in_workdir and code not in (0, None):  # a failed server's log outlives the work folder
                kept = Path(tempfile.gettempdir()) / f"nerwheel-triton-{self.grpc_port}.log"
                shutil.copy2(self.log_file, kept)
                self.log_file = kept
            self._workdir.cleanup()
            self._workdir = None
        return code

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def serve_forever(server: TritonServer, *, on_ready: Callable[[TritonServer], None] | None = None,
                  start_timeout_s: float = 120.0) -> int:
    """Start ``server`` and block until SIGTERM/SIGINT (then stop it cleanly) or until Triton exits.

    Returns 0 after a requested stop, else Triton's own exit code.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: stopping tritonserver", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start(timeout_s=start_timeout_s)
        if on_ready is not None:
            on_ready(server)
        while not stop.is_set():
            if server.returncode is not None:
                log.error("tritonserver exited on its own with code %s:\n%s", server.returncode, server.log_tail())
                return int(server.returncode) or 1
            stop.wait(0.5)
        code = server.stop()
        log.info("tritonserver stopped (exit code %s)", code)
        return 0
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
