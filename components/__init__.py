"""nerwheel.components: one Kubeflow Pipelines component per stage.

Each module holds a plain ``run(...)`` function (paths and URIs in, scalars out:
what tests call) and the ``@dsl.component`` over it, whose body only imports
``run``, calls it, and logs metrics. ``images.py`` names the image each stage
runs in; ``data.py`` and ``report.py`` are the shared input/output and report helpers.

Modules are imported on demand (:func:`load`), so importing a helper such as
:mod:`nerwheel.components.report` never pulls in kfp or a stage's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.components.images import STAGES

__all__ = ["STAGES", "load"]


def load(stage: str) -> Any:
    """The KFP component of ``stage`` (``nerwheel.components.<stage>.<stage>``)."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; the pipeline's stages are: {', '.join(STAGES)}")
    return getattr(importlib.import_module(f"nerwheel.components.{stage}"), stage)
