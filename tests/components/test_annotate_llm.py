"""The annotate step with the LLM teacher, under injected faults (a scripted OpenAI-compatible server).

A real LLM run is covered by tests/llm (real llama.cpp server). Here the server misbehaves on
purpose: one answer invents an entity that is not in the text, the other request is refused. The
step must still account for every text (labelled or failed) and keep each failure in rejects.jsonl.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nerwheel.components.data import REJECTS_FILE, read_artifact

pytest.importorskip("httpx")

GOOD, REFUSED = "浙江省杭州市西湖区文三路90号", "北京市海淀区中关村大街27号"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if REFUSED in prompt.strip().splitlines()[-1]:
            self._send(400, {"error": {"message": "scripted refusal"}})
            return
        answer = {"entities": [{"text": "杭州市", "label": "city"}, {"text": "上海市", "label": "city"}]}
        self._send(200, {"id": "x", "object": "chat.completion", "model": "scripted",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": json.dumps(answer)}}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def scripted_llm() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_llm_teacher_failures_are_counted_and_kept(scripted_llm: str, tmp_path: Path) -> None:
    from nerwheel.components.steps import annotate

    texts = tmp_path / "traffic.txt"
    texts.write_text(f"{GOOD}\n{REFUSED}\n", encoding="utf-8")
    scalars = annotate.run(texts_uri=str(texts), seed_uri="", teacher="llm", llm_endpoint=scripted_llm,
                           llm_model="scripted", llm_max_tokens=64, out_path=str(tmp_path / "ann"),
                           report_path=str(tmp_path / "r.html"))
    assert (scalars["texts"], scalars["labelled"], scalars["failed"]) == (2, 1, 1)
    (record,) = read_artifact(tmp_path / "ann")
    assert record.text == GOOD
    assert [(e.text, e.label) for e in record.entities] == [("杭州市", "city")]
    assert record.entities[0].source.startswith("llm")
    rejects = [json.loads(ln) for ln in (tmp_path / "ann" / REJECTS_FILE).read_text().splitlines()]
    kinds = sorted(r["kind"] for r in rejects)
    assert kinds == ["entity", "record"]  # the same rows `nerwheel annotate --rejects` writes: one reject form
    assert len(rejects) == scalars["failed"] + scalars["entities_rejected"]
    refused = next(r for r in rejects if r["kind"] == "record")
    assert REFUSED in refused["raw"] and refused["reason"] and refused["text"] == REFUSED
    invented = next(r for r in rejects if r["kind"] == "entity")
    assert "上海市" in invented["raw"] and invented["teacher"] == "llm:scripted" and invented["code"]
