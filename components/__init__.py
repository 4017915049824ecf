"""nerwheel.components: one Kubeflow Pipelines component per stage (the top-level ``components/`` folder).

Two layers per stage: ``steps/<stage>.py`` holds the plain ``run(...)`` function
(paths and URIs in, artifacts written, scalars out; no kfp: what tests call),
and ``<stage>.py`` the ``@component`` over it, whose body only imports ``run``,
calls it and logs the scalars. ``images.py`` is the one table of the image each
stage runs in; ``data.py`` and ``report.py`` are the shared input/output and
report helpers. Domain decisions live below this layer (which model is in
production: :mod:`nerwheel.serving.production`).

Modules are imported on demand (:func:`load`), so importing a helper such as
:mod:`nerwheel.components.report` never pulls in kfp or a stage's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from nerwheel.errors import ConfigError

__all__ = ["STAGES", "load"]


def __getattr__(name: str) -> Any:
    # STAGES lives in images.py; read on first use, so `python -m nerwheel.components.images` runs that module fresh
    if name == "STAGES":
        return importlib.import_module("nerwheel.components.images").STAGES
    raise AttributeError(f"module 'nerwheel.components' has no attribute {name!r}")


def load(stage: str) -> Any:
    """The KFP component of ``stage`` (``nerwheel.components.<stage>.<stage>``)."""
    from nerwheel.components.images import STAGES

    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; the pipeline's stages are: {', '.join(STAGES)}")
    return getattr(importlib.import_module(f"nerwheel.components.{stage}"), stage)
