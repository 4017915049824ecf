"""Keeping credentials out of every log line, error message and report nerwheel writes.

Users put credentials where tools accept them: ``http://user:pass@host/v1`` as
``--llm-url``, ``?api_key=...`` in a URL, a presigned S3 URL, a bearer token in
a header dump. The HTTP client logs every request URL at INFO, and error
messages quote URLs; both end up in pod logs, rejects files and CI output.

:func:`redact` masks those shapes (URL user-info, credential query parameters,
``Bearer``/``Basic`` tokens). :func:`install` puts a :class:`RedactingFilter` on
the root logger's handlers, so every record that reaches a handler, from
nerwheel, httpx, botocore or anything else, is masked first. Code that *uses* a
credential keeps it out of the text in the first place
(:func:`split_userinfo` turns URL user-info into HTTP basic auth).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MASK", "RedactingFilter", "install", "redact", "split_userinfo"]

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:[\w.-]*(?:key|token|secret|password|passwd|pwd|signature|credential|auth)[\w.-]*))="
    r"(?P<value>[^&#\s\"']+)", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=-]{4,})")


def redact(text: str) -> str:
    """``text`` with URL user-info, credential query parameters and auth tokens replaced by ``***``."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _SECRET_PARAM.sub(lambda m: f"{m['key']}={MASK}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m['kind']} {MASK}", text)


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``(url without user-info, (user, password))``; the credentials go in a header, not in the URL."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username or ""), unquote(parts.password or ""))


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's final message (arguments merged), in place, for every handler after it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # formatted here, so the handler's formatter uses the masked text
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
