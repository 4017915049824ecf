"""Compile the flywheel to Kubeflow Pipelines IR YAML, reproducibly.

The KFP compiler already writes keys in a stable order; what can differ between two
compiles is only what the environment puts in (image registry and tag,
:mod:`nerwheel.components.images`). :func:`normalise` removes the one line that
names the SDK version, for comparisons across SDK releases (the golden test).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["SDK_VERSION_LINE", "compile_pipeline", "normalise"]

SDK_VERSION_LINE = re.compile(r"^sdkVersion: .*\n", re.MULTILINE)


def compile_pipeline(out: str | Path, pipeline: Any = None) -> Path:
    """Write the pipeline's IR YAML to ``out``; returns the path."""
    from kfp import compiler

    if pipeline is None:
        from nerwheel.pipelines.flywheel import flywheel as pipeline
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
    return path


def normalise(ir_yaml: str) -> str:
    """The IR text without its ``sdkVersion`` line (the only part that names the compiler release)."""
    return SDK_VERSION_LINE.sub("", ir_yaml)
