"""nerwheel.serving: Triton model repositories, deploy with verification and rollback, the gRPC client.

``from nerwheel.serving import Client`` is all a caller needs to query a served
model; the rest (``repository``, ``config``, ``deploy``, ``server``,
``backend``) is imported on first use, so importing this package stays cheap
and does not need tritonclient.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Client", "DeployReport", "ServingError", "TritonServer", "deploy"]

_LAZY = {
    "Client": "nerwheel.serving.client",
    "ServingError": "nerwheel.serving.client",
    "deploy": "nerwheel.serving.deploy",
    "DeployReport": "nerwheel.serving.deploy",
    "TritonServer": "nerwheel.serving.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nerwheel.serving' has no attribute {name!r}")
