"""A persistent response cache, so a rerun or a resumed run never pays twice.

Keyed by ``sha256(model + canonical request JSON)``: the same prompt sent to
the same model with the same sampling settings is the same question. Each
response is committed the moment it arrives (SQLite in WAL mode, which keeps
readers and the single writer out of each other's way), so a run killed
midway loses at most the requests that were still in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ObjectCache", "ResponseCache", "cache_key", "open_cache"]


def cache_key(model: str, request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{model}\n{canonical}".encode()).hexdigest()


class ResponseCache:
    """``get``/``put`` of response JSON by :func:`cache_key`; safe to share across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, request, response, created) VALUES (?, ?, ?, ?, ?)",
                (key, model, json.dumps(request, ensure_ascii=False), json.dumps(response, ensure_ascii=False),
                 time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObjectCache:
    """:class:`ResponseCache`'s ``get``/``put`` over a folder or an ``s3://`` prefix: one JSON object per answer.

    Why: annotation fans out over many pods (one per shard), and a SQLite file cannot be shared by pods on
    different nodes. The key (:func:`cache_key`) depends only on the model and the request, never on the
    shard, the record id or the run, so a re-run with any number of shards finds every text answered before,
    whichever pod asked. An answer is ``<location>/<key[:2]>/<key>.json``; writes are atomic per object, and
    two pods answering the same text write the same question's answer (last writer wins, either is right).
    """

    def __init__(self, location: str, storage: Any = None) -> None:
        from nerwheel import storage as st

        self.location = str(location).rstrip("/")
        self.storage = storage or st.get_storage()

    def _uri(self, key: str) -> str:
        from nerwheel import storage as st

        return st.join(self.location, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        from nerwheel.storage import StorageNotFound

        try:
            return json.loads(self.storage.read_bytes(self._uri(key)))["response"]
        except StorageNotFound:
            return None

    def put(self, key: str, model: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        doc = {"key": key, "model": model, "request": request, "response": response, "created": time.time()}
        self.storage.write_bytes(self._uri(key), json.dumps(doc, ensure_ascii=False).encode("utf-8"))

    def __len__(self) -> int:
        return sum(1 for u in self.storage.list(self.location) if u.endswith(".json"))

    def close(self) -> None:
        """Nothing to release (each answer is its own object)."""

    def __enter__(self) -> ObjectCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cache(location: str | Path) -> ResponseCache | ObjectCache:
    """A local ``*.sqlite``/``*.db`` file is a :class:`ResponseCache`; a folder or an ``s3://`` prefix (what a
    pipeline's shards share) is an :class:`ObjectCache`."""
    text = str(location)
    if not text.startswith("s3://") and Path(text).suffix.lower() in (".sqlite", ".db", ".sqlite3"):
        return ResponseCache(text)
    return ObjectCache(text)
