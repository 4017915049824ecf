"""Who may change what Triton serves: model control needs a key, inference does not.

Triton's model-repository API loads a model from files sent in the request
(``load_model(name, files={"1/model.py": ...})``): whoever reaches the gRPC or
HTTP port of an open server can run code in it, or unload what it serves. So
every server nerwheel starts (``nerwheel serve``, the test fixtures, the
Kubernetes Deployment) restricts these protocols to requests carrying a header
with the control key (Triton's ``--grpc-restricted-protocol`` and
``--http-restricted-api``); inference, health and metadata stay open.

The key comes from ``NERWHEEL_TRITON_CONTROL_KEY`` (in the cluster: the
``nerwheel-triton-control`` Secret, given to Triton and to the deploy task
alone), else from a key file (``nerwheel serve`` makes one, mode 0600, and
``nerwheel deploy`` reads the same file). :class:`ModelControl` is the only
client that sends it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError, NerwheelError

__all__ = [
    "CONTROL_HEADER",
    "CONTROL_KEY_ENV",
    "DEFAULT_KEY_FILE",
    "RESTRICTED",
    "ModelControl",
    "ModelControlRefused",
    "ensure_key_file",
    "new_key",
    "resolve_key",
    "server_args",
]

#: Header name (gRPC metadata keys are lower case; Triton prefixes it with ``triton-grpc-protocol-`` there).
CONTROL_HEADER = "nerwheel-control-key"
CONTROL_KEY_ENV = "NERWHEEL_TRITON_CONTROL_KEY"
#: What needs the key: loading/unloading (model-repository) and what changes or watches the server (shared
#: memory, statistics, trace, logging). Reading a model's config stays open like its metadata: a client
#: reads what it calls there (the classifier's class names, in its ``labels`` parameter).
RESTRICTED = ("model-repository", "shared-memory", "statistics", "trace", "logging")


def _default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nerwheel" / "triton-control-key"


DEFAULT_KEY_FILE = _default_key_file()


class ModelControlRefused(NerwheelError, RuntimeError):
    """The server refused a model-control request: the key is missing or wrong."""


def new_key() -> str:
    return secrets.token_urlsafe(32)


def server_args(key: str) -> list[str]:
    """The tritonserver flags that put :data:`RESTRICTED` behind the key."""
    if not key or any(c in key for c in ",:= \t\n"):
        raise ConfigError("the Triton control key must be a non-empty token without ',', ':', '=' or spaces")
    spec = f"{','.join(RESTRICTED)}:{CONTROL_HEADER}={key}"
    return [f"--grpc-restricted-protocol={spec}", f"--http-restricted-api={spec}"]


def grpc_headers(key: str) -> dict[str, str]:
    return {f"triton-grpc-protocol-{CONTROL_HEADER}": key}


def ensure_key_file(path: str | os.PathLike[str] | None = None) -> tuple[str, Path]:
    """The key in ``path`` (default :data:`DEFAULT_KEY_FILE`), made (random, mode 0600) when missing."""
    p = Path(path) if path is not None else DEFAULT_KEY_FILE
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_key() + "\n")
    return p.read_text(encoding="utf-8").strip(), p


def resolve_key(explicit: str | None = None, key_file: str | os.PathLike[str] | None = None) -> str | None:
    """The control key to send: ``explicit``, else ``key_file``, else ``$NERWHEEL_TRITON_CONTROL_KEY``, else
    :data:`DEFAULT_KEY_FILE` when it exists (what was named beats what was inherited)."""
    if explicit:
        return explicit
    if key_file is not None:
        p = Path(key_file)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such control key file (nerwheel serve writes it)")
        return p.read_text(encoding="utf-8").strip() or None
    if os.environ.get(CONTROL_KEY_ENV):
        return os.environ[CONTROL_KEY_ENV]
    if DEFAULT_KEY_FILE.is_file():
        return DEFAULT_KEY_FILE.read_text(encoding="utf-8").strip() or None
    return None


def _refused(url: str, key: str | None, exc: Exception) -> ModelControlRefused:
    how = "a wrong key was sent" if key else "no key was sent"
    return ModelControlRefused(
        f"Triton at {url} refused model control ({how}): set {CONTROL_KEY_ENV} to the server's control key "
        f"(the nerwheel-triton-control Secret in the cluster; locally the file nerwheel serve names, "
        f"default {DEFAULT_KEY_FILE}, or --control-key-file) [{exc}]"
    )


class ModelControl:
    """Load, unload and check models through gRPC, sending the control key with every restricted request."""

    def __init__(self, url: str, key: str | None = None) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url.removeprefix("grpc://")
        self.key = key if key is not None else resolve_key()
        self._client = grpcclient.InferenceServerClient(self.url)
        self._headers = grpc_headers(self.key) if self.key else None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return getattr(self._client, method)(*args, headers=self._headers, **kwargs)
        except InferenceServerException as e:
            if "restricted" in (e.message() or ""):
                raise _refused(self.url, self.key, e) from None
            raise

    def check(self) -> None:
        """Raise :class:`ModelControlRefused` now, before anything changes, if the key is not accepted."""
        self._call("get_model_repository_index")

    def load_model(self, name: str, config: str | None = None, files: dict[str, bytes] | None = None,
                   client_timeout: float | None = None) -> None:
        """Load (or reload) ``name``: from the repository, or from ``config`` and ``files`` sent in the request."""
        self._call("load_model", name, config=config, files=files, client_timeout=client_timeout)

    def unload_model(self, name: str) -> None:
        self._call("unload_model", name)

    def repository_index(self) -> list[dict[str, Any]]:
        return list(self._call("get_model_repository_index", as_json=True).get("models", []))

    def is_model_ready(self, name: str, version: str = "") -> bool:
        return bool(self._client.is_model_ready(name, version))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ModelControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
