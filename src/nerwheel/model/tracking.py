"""Experiment tracking for every task's training loop: ``logging.report_to`` (``--report-to``).

One small interface, ``log(values, step)`` and ``close()``, over the trackers
users already run: TensorBoard (event files under ``<run>/tensorboard``),
Weights & Biases (offline by default, files under ``<run>/wandb``; set
``WANDB_MODE=online`` and log in to sync) and MLflow (a file store under
``<run>/mlruns`` unless ``MLFLOW_TRACKING_URI`` names a server). The loop in
:mod:`nerwheel.model.loop` calls it; nothing else in nerwheel knows which
tracker runs. Each tracker's package is optional (the ``track`` extra); asking
for one that is not installed fails before training starts, naming the install
command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from nerwheel.errors import ConfigError
__all__ = ["Tracker", "TrackingError", "open_tracker"]


class TrackingError(ConfigError):
    """The tracker named in ``logging.report_to`` cannot be used here (not installed)."""


class Tracker(Protocol):
    def log(self, values: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _need(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TrackingError(f"logging.report_to={what} needs the {what} package ({exc}); install it with "
                            f"pip install 'nerwheel[track]', or use --report-to none") from None


class _TensorBoard:
    def __init__(self, run_dir: Path) -> None:
        _need("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, values: Mapping[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run_dir: Path, project: str, config: Mapping[str, Any]) -> None:
        wandb = _need("wandb", "wandb")
        self.run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir), config=dict(config),
                              mode=os.environ.get("WANDB_MODE") or "offline", reinit="finish_previous")

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, run_dir: Path, project: str, config: Mapping[str, Any]) -> None:
        self.mlflow = _need("mlflow", "mlflow")
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a file store in the run folder: MLflow 3 keeps it working only when asked explicitly
            uri = (run_dir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.mlflow.set_tracking_uri(uri)
        self.mlflow.set_experiment(project)
        self.run = self.mlflow.start_run(run_name=run_dir.name)
        self.mlflow.log_params({k: str(v)[:500] for k, v in config.items()})

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): float(v) for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


@contextmanager
def open_tracker(config: Any, run_dir: Path) -> Iterator[Tracker | None]:
    """The tracker ``config.logging.report_to`` names (None for ``none``), closed on exit."""
    kind = config.logging.report_to or "none"
    params = _flat(config.model_dump(mode="json"))
    tracker: Tracker | None
    if kind == "none":
        tracker = None
    elif kind == "tensorboard":
        tracker = _TensorBoard(run_dir)
    elif kind == "wandb":
        tracker = _WandB(run_dir, config.logging.project, params)
    elif kind == "mlflow":
        tracker = _MLflow(run_dir, config.logging.project, params)
    else:  # the config's Literal makes this unreachable; kept for callers that build configs by hand
        raise TrackingError(f"unknown logging.report_to {kind!r}; choose none, tensorboard, wandb or mlflow")
    try:
        yield tracker
    finally:
        if tracker is not None:
            tracker.close()
