"""Training on several processes: PyTorch DDP under ``torchrun``, one process per GPU (or, on CPU, gloo).

Why DDP and not a trainer framework: the loop (:mod:`nerwheel.model.loop`) already
carries the CRF loss, packed windows, checkpoints and early stopping; DDP adds
gradient averaging to it without changing what it computes. The pieces:

* **Who am I.** :func:`from_env` reads ``torchrun``'s ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
  (the Kubeflow Training Operator sets the same for a PyTorchJob); without them there
  is one process and everything here is a no-op.
* **Same batches, split.** Every rank draws the same batch plan (same seed) and takes
  its slice of each global batch (:func:`split_batch`), so ``training.batch_size``
  stays the global batch, the number of optimiser steps and the schedule are those
  of a single-process run, and DDP's gradient average is the mean over the global
  batch: the same optimisation, spread over processes.
* **Same decisions, one writer.** Replicas hold the same weights after every step,
  so each rank scores dev itself and reaches the same best epoch and early stop
  without talking; only rank 0 writes files (history, checkpoints, the model) and
  logs (:func:`quiet_unless_main`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Dist", "from_env", "launch_local", "main", "main_first", "mean", "process_group", "quiet_unless_main",
           "split_batch", "unwrap", "wrap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def from_env(env: dict[str, str] | None = None) -> Dist:
    """The process's place from ``torchrun``'s environment; a plain process is rank 0 of 1."""
    e = os.environ if env is None else env
    try:
        return Dist(int(e.get("RANK", 0)), int(e.get("WORLD_SIZE", 1)), int(e.get("LOCAL_RANK", 0)))
    except ValueError as err:
        from nerwheel.errors import ConfigError

        raise ConfigError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers (torchrun sets them): {err}") from None


@contextlib.contextmanager
def process_group(device_type: str = "cpu") -> Iterator[Dist]:
    """Join the process group when started by ``torchrun`` (NCCL on CUDA, gloo on CPU); leave it afterwards.

    Nested use (a group already joined) and single-process runs do nothing.
    """
    import torch.distributed as tdist

    dist = from_env()
    if not dist.enabled or tdist.is_initialized():
        yield dist
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        import torch

        torch.cuda.set_device(dist.local_rank)
    tdist.init_process_group(backend=backend)
    try:
        with quiet_unless_main(dist):
            yield dist
    finally:
        tdist.destroy_process_group()


@contextlib.contextmanager
def quiet_unless_main(dist: Dist) -> Iterator[None]:
    """On ranks other than 0, nerwheel logs only errors and progress bars are off: one log, from rank 0."""
    if dist.main:
        yield
        return
    from nerwheel import progress

    logger = logging.getLogger("nerwheel")
    level = logger.level
    logger.setLevel(logging.ERROR)
    progress.set_mode(False)
    try:
        yield
    finally:
        logger.setLevel(level)
        progress.set_mode(None)


@contextlib.contextmanager
def main_first(dist: Dist) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. converting a backbone into a shared cache), the others after it."""
    import torch.distributed as tdist

    if dist.enabled and not dist.main:
        tdist.barrier()
    yield
    if dist.enabled and dist.main:
        tdist.barrier()


def wrap(model: Any, dist: Dist, device: Any) -> Any:
    """``model`` in DDP when there are several processes (gradients averaged in backward), else itself."""
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: Any) -> Any:
    """The model itself from its DDP wrapper (for its own methods and attributes: ``loss``, ``config``); forward
    calls go through the wrapper, so gradients are averaged."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def split_batch(idx: np.ndarray, dist: Dist) -> np.ndarray:
    """This rank's slice of one global batch (contiguous, sizes differing by at most one).

    A batch smaller than the world is repeated until every rank has a row, so no rank waits for
    gradients another never sends.
    """
    if not dist.enabled:
        return idx
    if len(idx) < dist.world:
        idx = np.resize(idx, dist.world)
    return np.array_split(idx, dist.world)[dist.rank]


def mean(value: float, dist: Dist) -> float:
    """The mean of ``value`` over all ranks (a loss to log)."""
    if not dist.enabled:
        return value
    import torch
    import torch.distributed as tdist

    t = torch.tensor([value], dtype=torch.float64)
    tdist.all_reduce(t)
    return float(t.item()) / dist.world


def launch_local(config: Any, nproc: int) -> Path:
    """Train ``config`` with ``nproc`` DDP processes on this machine (``torchrun --standalone``); returns the
    model folder rank 0 wrote. The resolved config travels as a YAML file; the workers run :func:`main`."""
    import yaml

    from nerwheel.errors import NerwheelError

    with tempfile.TemporaryDirectory(prefix="nerwheel-ddp-") as tmp:
        path = Path(tmp) / "train.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                "-m", "nerwheel.model.distributed", str(path)]
        log.info("training with %d processes: %s", nproc, " ".join(argv))
        code = subprocess.run(argv).returncode
    if code != 0:
        raise NerwheelError(f"distributed training ({nproc} processes) failed with exit code {code}; "
                            "the workers' errors are above")
    return config.run_dir()


def main(argv: list[str] | None = None) -> int:
    """A ``torchrun`` worker: train the config file named by the one argument (every rank runs this)."""
    from nerwheel.model.config import load_config
    from nerwheel.stages.train import train

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: torchrun ... -m nerwheel.model.distributed TRAIN_CONFIG.yaml", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train(load_config(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
