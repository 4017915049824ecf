"""A gRPC client for a served nerwheel model: plain strings in, entities out.

``Client(url).extract(texts)`` splits the texts into batches of at most
``batch_size`` (the model's ``max_batch_size``), sends each as one ``TEXT``
BYTES tensor, and turns the ``ENTITIES`` JSON back into
:class:`~nerwheel.records.Entity` objects. Transient failures (``UNAVAILABLE``:
server restarting, connection refused) are retried with exponential backoff;
errors about the request itself (empty text, invalid UTF-8, too long) are not,
and surface as :class:`ServingError` with the server's message.

One ``Client`` holds one gRPC channel; use one per thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from nerwheel.errors import NerwheelError
from nerwheel.records import Entity

__all__ = ["Client", "Prediction", "ServingError"]

RETRYABLE = ("StatusCode.UNAVAILABLE",)


class ServingError(NerwheelError, RuntimeError):
    """The server refused or failed a request; ``status`` is the gRPC status name."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Prediction:
    """What the server answered for one text."""

    entities: list[Entity]
    tag_ids: list[int]
    model_version: str
    #: the n best readings ``(P(path | text), entities)``, when asked for (``infer(..., n_best=K)``)
    n_best: list[tuple[float, list[Entity]]] | None = None


def _strip_scheme(url: str) -> str:
    for prefix in ("grpc://", "http://", "triton://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


class Client:
    """Extract entities through Triton over gRPC.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint (``grpc://`` prefix allowed).
        model: the served model name (``deploy --name``).
        timeout: seconds allowed for one request (gRPC deadline).
        retries: extra attempts for a request that failed with ``UNAVAILABLE``.
        batch_size: texts per request; keep it <= the model's ``max_batch_size``.
        version: pin a model version (``""``: whatever the server serves).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = "nerwheel",
        timeout: float = 30.0,
        retries: int = 3,
        batch_size: int = 32,
        version: str | int = "",
        backoff_s: float = 0.2,
    ) -> None:
        import tritonclient.grpc as grpcclient

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.url = _strip_scheme(url)
        self.model, self.timeout, self.retries = model, timeout, retries
        self.batch_size, self.version, self.backoff_s = batch_size, str(version), backoff_s
        self._grpc = grpcclient
        self._client = grpcclient.InferenceServerClient(self.url)

    # -- requests ---------------------------------------------------------------------------------
    def infer_arrays(self, inputs: dict[str, Sequence[str]], outputs: Sequence[str]) -> tuple[object, str]:
        """One request of BYTES inputs (name -> strings, each sent as ``[n, 1]``) with retries on ``UNAVAILABLE``.

        Returns the tritonclient result and the answering model version. Shared by every task's client.
        """
        from tritonclient.utils import InferenceServerException

        tensors = []
        for name, values in inputs.items():
            data = np.array([[v.encode("utf-8") if isinstance(v, str) else bytes(v)] for v in values], dtype=object)
            inp = self._grpc.InferInput(name, list(data.shape), "BYTES")
            inp.set_data_from_numpy(data)
            tensors.append(inp)
        wanted = [self._grpc.InferRequestedOutput(name) for name in outputs]
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                res = self._client.infer(
                    self.model, tensors, model_version=self.version, outputs=wanted, client_timeout=self.timeout
                )
                return res, res.get_response().model_version
            except InferenceServerException as e:
                if e.status() in RETRYABLE and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                message = self._explain(e.message() or "", e.status())
                if "NBEST" in outputs and "NBEST" in (e.message() or ""):
                    message += ("; this model does not offer NBEST (deployed before n-best serving, on either "
                                "layout): deploy it again with this nerwheel")
                raise ServingError(message, e.status()) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _explain(self, message: str, status: str | None) -> str:
        """The server's error, with what to do where the cause is the usual one."""
        if status in RETRYABLE:
            reason = message.rsplit(": ", 1)[-1] if "Connection refused" in message else message
            return (f"cannot reach Triton at {self.url} ({reason}): start it with `nerwheel serve --repository "
                    "REPO --grpc-port PORT`, or give --url the host:port of its gRPC endpoint")
        if "unknown model" in message.lower() or "is not found" in message:
            return (f"{self.url} serves no model {self.model!r} ({message}): give --served-name the name it was "
                    "deployed under (deploy --name)")
        return f"{self.url} model {self.model!r}: {message}"

    def _request(self, texts: Sequence[str], n_best: bool = False, tag_ids: bool = True) -> tuple[
            np.ndarray, np.ndarray | None, str, np.ndarray | None]:
        outputs = ["ENTITIES", *(["TAG_IDS"] if tag_ids else []), *(["NBEST"] if n_best else [])]
        res, version = self.infer_arrays({"TEXT": texts}, outputs)
        return (res.as_numpy("ENTITIES"), res.as_numpy("TAG_IDS") if tag_ids else None,  # type: ignore[attr-defined]
                version, res.as_numpy("NBEST") if n_best else None)  # type: ignore[attr-defined]

    def infer(self, texts: Sequence[str], n_best: int | None = None, *, tag_ids: bool = True) -> list[Prediction]:
        """Entities, raw tag ids and the answering model version for every text, in order.

        ``n_best=K`` also asks for the K best readings of each text (the
        served model lists at most ``ServingOptions.n_best``; asking for more
        is refused, naming that limit). ``tag_ids=False`` does not ask for the
        tag paths (``Prediction.tag_ids`` is then empty): the server skips
        computing them, which :meth:`extract` relies on.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of strings, not one string")
        for i, t in enumerate(texts):
            if isinstance(t, str):
                try:
                    t.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise ServingError(f"texts[{i}] cannot be encoded as UTF-8 ({e.reason} at {e.start})") from None
        out: list[Prediction] = []
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            ents, tags, version, nbest = self._request(chunk, n_best=n_best is not None, tag_ids=tag_ids)
            readings = [None] * len(chunk) if nbest is None else [self._readings(x, n_best) for x in nbest.reshape(-1)]
            rows = tags if tags is not None else [()] * len(chunk)
            for text, e, t, r in zip(chunk, ents.reshape(-1), rows, readings, strict=True):
                entities = [Entity.from_dict(d) for d in json.loads(bytes(e).decode("utf-8"))]
                for ent in [*entities, *(x for _, alt in (r or []) for x in alt)]:
                    if text[ent.start : ent.end] != ent.text:  # the server computed offsets on the string we sent
                        raise ServingError(f"server entity {ent} does not match the text {text!r}")
                out.append(Prediction(entities, [int(x) for x in t if x >= 0], version, r))
        return out

    def _readings(self, raw: Any, n: int | None) -> list[tuple[float, list[Entity]]]:
        listed = json.loads(bytes(raw).decode("utf-8"))
        if n is not None and n > listed["max"]:
            raise ServingError(f"{self.url} model {self.model!r} lists at most {listed['max']} readings per text "
                               f"(ServingOptions.n_best at deploy); asked for {n}")
        return [(r["score"], [Entity.from_dict(d) for d in r["entities"]]) for r in listed["readings"][:n]]

    def n_best(self, texts: Sequence[str], n: int) -> list[list[tuple[float, list[Entity]]]]:
        """The ``n`` best readings of every text, best first: ``(P(path | text), entities)``, as offline taggers give."""
        return [p.n_best or [] for p in self.infer(texts, n_best=n)]

    def extract(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Entities for every text, in order (what ``nerwheel predict --url`` prints); no tag paths asked for."""
        return [p.entities for p in self.infer(texts, tag_ids=False)]

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Alias of :meth:`extract`, so a Client can stand wherever an offline predictor does."""
        return self.extract(texts)

    # -- server state -------------------------------------------------------------------------------
    def ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(self.model, self.version))
        except Exception:  # noqa: BLE001 - unreachable counts as not ready
            return False

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
