"""A scripted OpenAI-compatible server for fault injection (the fixtures are in conftest.py).

The scripted server is a plain ``http.server`` in a thread on 127.0.0.1. Each
test hands it a ``script``: a function from (call number, request body) to a
:class:`Reply` (status, headers, body, delay). It counts every call and keeps
every request body, so tests can assert exactly how often the client asked.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any



@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> raw text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def chat(content: str, *, finish: str = "stop", prompt_tokens: int = 10, completion_tokens: int = 5) -> Reply:
    """A well-formed chat completion whose message is ``content``."""
    return Reply(body={
        "id": "x", "object": "chat.completion", "model": "scripted",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })


def address_of(body: dict[str, Any]) -> str:
    """The address at the end of a rendered ner.v1 / pos.v1 prompt."""
    content = body["messages"][-1]["content"]
    last = content.strip().splitlines()[-1]
    return last.split(":", 1)[1].strip() if ":" in last else last


class ScriptedServer:
    def __init__(self) -> None:
        self.script: Callable[[int, dict[str, Any]], Reply] = lambda n, body: chat('{"entities": []}')
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # request headers, per call
        self.answered: list[dict[str, Any]] = []  # bodies whose reply was fully sent
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[float] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, script: Callable[[int, dict[str, Any]], Reply]) -> None:
        """New script and counters, once requests left over from an earlier test have finished."""
        self._wake.set()  # cut short any reply still sleeping out its delay
        deadline = time.monotonic() + 10
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.in_flight:
            raise RuntimeError(f"{self.in_flight} request(s) of an earlier test are still being answered")
        self._wake.clear()
        with self._lock:
            self.script = script
            self.calls = 0
            self.bodies = []
            self.headers = []
            self.answered = []
            self.max_in_flight = 0
            self.started = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.calls += 1
                    n = server.calls
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.started.append(time.monotonic())
                    script = server.script
                done = False

                def finish() -> None:
                    nonlocal done
                    if not done:
                        done = True
                        with server._lock:
                            server.in_flight -= 1

                try:
                    try:
                        reply = script(n, body)
                    except Exception as exc:  # a broken script answers 599 instead of hanging the client
                        reply = Reply(599, {"error": f"script raised {exc!r}"})
                    if reply.delay:
                        server._wake.wait(reply.delay)
                    finish()
                    data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body or {})
                    raw = data.encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(raw)
                    self.wfile.flush()
                    if reply.status == 200:
                        with server._lock:
                            server.answered.append(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    finish()

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


