"""Credentials never reach a log line, an error message or a rejects file (they still reach the server)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import Reply, ScriptedServer, address_of, chat

from nerwheel.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("POST http://user:s3cret@host:8000/v1/chat", "POST http://***@host:8000/v1/chat"),
        ("https://token@api.example.com/v1", "https://***@api.example.com/v1"),
        ("s3://bucket/key and http://host/v1", "s3://bucket/key and http://host/v1"),
        ("http://host/v1?api_key=abc123&model=m", "http://host/v1?api_key=***&model=m"),
        ("url=http://h/x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/x", "url=http://h/x?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("Authorization: Bearer sk-live-123", "Authorization: Bearer ***"),
        ("nothing to hide: user@example.com", "nothing to hide: user@example.com"),
    ],
)
def test_redact_table(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_filter_masks_every_handler_s_records_whoever_logs_them() -> None:
    import io
    import logging

    from nerwheel.redact import install

    stream = io.StringIO()
    logger = logging.getLogger("test.redaction")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        install(logger)
        install(logger)  # once is enough
        logger.warning("calling %s with %s", "https://bob:hunter2@example.com/x?token=abc", {"auth": "Bearer xyz123"})
        try:
            raise RuntimeError("http://bob:hunter2@example.com failed")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    assert len(handler.filters) == 1
    text = stream.getvalue()
    assert "hunter2" not in text and "abc" not in text and "xyz123" not in text
    assert "https://***@example.com/x?token=***" in text


def test_llm_url_credentials_are_sent_but_never_logged(scripted: ScriptedServer, tmp_path: Path) -> None:
    """``--llm-url http://user:pass@host/...`` was logged in full by the HTTP client at INFO."""
    texts = ["杭州市西湖区", "宁波市余姚市"]

    def script(n: int, body: dict[str, Any]) -> Reply:
        if address_of(body) == texts[1]:
            return Reply(400, {"error": "bad request"})  # the error message names the URL
        return chat(json.dumps({"entities": [{"text": "杭州市", "label": "city"}]}, ensure_ascii=False))

    scripted.reset(script)
    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    url = scripted.url.replace("http://", "http://alice:s3cret-pw@")
    proc = subprocess.run([sys.executable, "-c", "from nerwheel.cli import main; main()", "-v", "annotate", str(inp),
                           "--out", str(out), "--llm-url", url, "--llm-model", "scripted", "--retries", "0",
                           "--no-kb-correct"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HTTP Request: POST http://127.0.0.1" in proc.stderr  # httpx's INFO line, without the user-info
    rejects = (tmp_path / "out.jsonl.rejects.jsonl").read_text(encoding="utf-8")
    assert "HTTP 400" in rejects
    for where in (proc.stderr, proc.stdout, rejects, out.read_text(encoding="utf-8")):
        assert "s3cret-pw" not in where and "alice" not in where
    auth = {h.get("Authorization") for h in scripted.headers}
    assert auth == {"Basic " + base64.b64encode(b"alice:s3cret-pw").decode()}  # still sent, as HTTP basic auth
