"""The encoder in Triton: ``TEXT`` (BYTES) -> ``EMBEDDING`` (FP32, L2-normalised), the embedding task's side of serving.

Three pieces, each the encoder's side of a shared home:

- :func:`model_config`: the python-backend ``config.pbtxt`` (built from
  Triton's protobuf schema, :mod:`nerwheel.serving.config`), with the
  model's ``dimension`` and its prompts (``prompt.query``,
  ``prompt.document``) as parameters. The server embeds each text exactly as
  sent; the prompt is the caller's to add, and the parameters tell every
  client which one (:class:`RemoteEncoder` reads them);
- :class:`EmbedHandler`: what the python backend runs (role ``encoder`` in
  :func:`nerwheel.serving.backend.build_handler`): each request's texts are
  checked (:func:`nerwheel.serving.backend.decode_texts`: UTF-8, empty, too
  long, batch size), all valid texts of a dynamic batch go through
  :class:`~nerwheel.tasks.embed.runtime.OnnxEncoder` at once, and a bad
  request gets its error without failing its neighbours;
- :class:`RemoteEncoder` (gRPC, retries from :class:`nerwheel.serving.client.Client`)
  and :data:`SERVING`, the adapter deploy uses to probe a new version:
  served and offline embeddings must agree to cosine >= 0.9999 on every probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_PROBES", "MIN_COSINE", "SERVING", "EmbedHandler", "EmbedServing", "RemoteEncoder",
           "model_config"]

log = logging.getLogger(__name__)

INPUT_TEXT, OUTPUT_EMBEDDING = "TEXT", "EMBEDDING"
ROLE = "encoder"
MIN_COSINE = 0.9999
PROMPT_PARAMS = {"query": "prompt.query", "document": "prompt.document"}

#: Varied texts, with and without e5's prompts: the probe checks served == offline, not quality.
DEFAULT_PROBES: tuple[str, ...] = (
    "query: 绿茶用多少度的水冲泡？",
    "passage: 红茶是全发酵茶，冲泡红茶可以用刚烧开的沸水。",
    "自行车链条多久上一次油",
    "The shop opens at nine in the morning.",
    "茶",
)


def model_config(name: str, version: int | None, options: Any, card: dict[str, Any]) -> Any:
    """TEXT [1] (BYTES) -> EMBEDDING [dimension] (FP32), python backend on CPU, dynamic batching."""
    from tritonclient.grpc import model_config_pb2 as mc

    from nerwheel.serving.config import python_model_config

    prompts = card.get("prompts") or {}
    cfg = python_model_config(name, version, options, ROLE, {
        "dimension": str(card["dimension"]), **{param: prompts.get(kind, "") for kind, param in PROMPT_PARAMS.items()}})
    cfg.input.append(mc.ModelInput(name=INPUT_TEXT, data_type=mc.TYPE_STRING, dims=[1]))
    cfg.output.append(mc.ModelOutput(name=OUTPUT_EMBEDDING, data_type=mc.TYPE_FP32, dims=[int(card["dimension"])]))
    return cfg


class EmbedHandler:
    """Validate, embed and answer one dynamic batch of requests (see the module docstring)."""

    def __init__(self, encoder: Any, limits: Any) -> None:
        self.encoder = encoder
        self.limits = limits

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any]) -> EmbedHandler:
        from nerwheel.serving.backend import Limits, runtime_threads
        from nerwheel.tasks.embed.runtime import OnnxEncoder

        return cls(OnnxEncoder(folder, threads=runtime_threads(config)),
                   Limits.from_model_config(config))

    def serve(self, requests: Sequence[dict[str, np.ndarray]], wanted: Sequence[set[str]]) -> list[Any]:
        from nerwheel.serving.backend import RequestError, decode_texts

        results: list[Any] = [None] * len(requests)
        valid: list[tuple[int, list[str]]] = []
        for i, arrays in enumerate(requests):
            try:
                if INPUT_TEXT not in arrays:
                    raise RequestError("TEXT is missing: send a BYTES tensor of texts, shape [n, 1]")
                valid.append((i, decode_texts(arrays[INPUT_TEXT], self.limits)))
            except RequestError as e:
                results[i] = e
        if not valid:
            return results
        try:
            vectors = self.encoder.encode([t for _, texts in valid for t in texts])
        except Exception as e:  # noqa: BLE001 - a model failure answers these requests, the server stays up
            log.exception("encoding failed")
            for i, _ in valid:
                results[i] = RequestError(f"encoding failed: {type(e).__name__}: {e}")
            return results
        at = 0
        for i, texts in valid:
            results[i] = {OUTPUT_EMBEDDING: vectors[at : at + len(texts)].astype(np.float32)}
            at += len(texts)
        return results


class RemoteEncoder:
    """Embeddings from a served encoder over gRPC; ``encode(texts, kind=...)`` adds the served model's prompt."""

    def __init__(self, url: str, *, model: str = "nerwheel-embed", **options: Any) -> None:
        from nerwheel.serving.client import Client

        self.base = Client(url, model=model, **options)
        self._prompts: dict[str, str] | None = None

    @property
    def prompts(self) -> dict[str, str]:
        """The served model's prompts (its config's ``prompt.query`` / ``prompt.document``)."""
        if self._prompts is None:
            from nerwheel.serving.client import ServingError

            try:
                cfg = self.base._client.get_model_config(self.base.model, self.base.version).config
            except Exception as e:  # noqa: BLE001 - unreachable, unknown model: one clear error
                raise ServingError(f"{self.base.url} model {self.base.model!r}: cannot read its config ({e}); is "
                                   "the server up (`nerwheel serve`) and the model deployed?") from None
            if cfg.parameters.get("nerwheel_role") is None or cfg.parameters["nerwheel_role"].string_value != ROLE:
                raise ServingError(f"{self.base.url} model {self.base.model!r} is not a nerwheel encoder (its "
                                   f"config has no nerwheel_role {ROLE!r})")
            self._prompts = {kind: cfg.parameters[p].string_value for kind, p in PROMPT_PARAMS.items()
                             if p in cfg.parameters and cfg.parameters[p].string_value}
        return self._prompts

    def encode(self, texts: Sequence[str], *, kind: str | None = None) -> np.ndarray:
        """Embeddings ``[len(texts), dim]`` in input order, in requests of at most ``batch_size`` texts."""
        from nerwheel.tasks.embed.runtime import with_prompt

        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        sent = with_prompt(texts, kind, self.prompts) if kind is not None else list(texts)  # type: ignore[arg-type]
        b = self.base
        parts = []
        for i in range(0, len(sent), b.batch_size):
            result, _ = b.infer_arrays({INPUT_TEXT: sent[i : i + b.batch_size]}, [OUTPUT_EMBEDDING])
            parts.append(result.as_numpy(OUTPUT_EMBEDDING))  # type: ignore[attr-defined]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), dtype=np.float32)

    def close(self) -> None:
        self.base.close()

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmbedServing:
    """The encoder's deploy adapter (the interface in :mod:`nerwheel.serving.tasks`)."""

    task = "embed"
    default_name = "nerwheel-embed"
    variants = ("cpu",)

    def probes(self, texts: Sequence[str] | None) -> list[str]:
        return [t for t in (texts if texts is not None else DEFAULT_PROBES) if t.strip()]

    def model_config(self, name: str, version: int, options: Any, export_dir: Path) -> Any:
        import json

        card = json.loads((Path(export_dir) / "nerwheel.json").read_text(encoding="utf-8"))
        return model_config(name, version, options, card)

    def offline(self, export_dir: Path, options: Any) -> Callable[[Sequence[str]], np.ndarray]:
        from nerwheel.tasks.embed.runtime import OnnxEncoder

        return OnnxEncoder(export_dir).encode

    def served(self, url: str, name: str, version: int, batch_size: int, timeout_s: float) -> Any:
        client = RemoteEncoder(url, model=name, version=version, timeout=timeout_s, retries=2, batch_size=batch_size)
        return client, client.encode

    def compare(self, probes: Sequence[str], expected: np.ndarray, got: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for text, e, g in zip(probes, expected, got, strict=True):
            cos = float(np.dot(e, g) / max(float(np.linalg.norm(e) * np.linalg.norm(g)), 1e-12))
            if not cos >= MIN_COSINE:
                out.append({"text": text, "cosine": cos, "threshold": MIN_COSINE})
        return out


SERVING = EmbedServing()
