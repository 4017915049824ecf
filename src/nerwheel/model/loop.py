"""The optimisation loop every task shares: AdamW steps, dev evaluations, early stopping, checkpoints, tracking.

What differs per task comes in through :class:`Steps`: how an epoch is cut
into batches, the loss of a batch, and the dev evaluation (its score picks the
best model: strict F1 for NER, macro-F1 for the classifier). Everything else
lives here once: gradient accumulation and clipping, mixed precision, the
schedule, evaluation per epoch and every ``logging.eval_steps`` steps,
checkpoints by ``output.save_strategy``, early stopping, ``metrics.jsonl`` /
``steps.jsonl`` and the experiment tracker (``logging.report_to``,
:mod:`nerwheel.model.tracking`).

For NER (:class:`TaggerSteps`) dev evaluation goes through
:class:`~nerwheel.model.runtime.TorchTagger`, the same windows, stitching and
decoder a deployed model uses, so the F1 that picks the best epoch is the F1
users get. The loop knows nothing about files except through the ``save``
callback (a model directory writer) and the JSONL logs.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from nerwheel import metrics as M
from nerwheel.model import distributed
from nerwheel.model.card import ModelCard
from nerwheel.model.classifier import TokenClassifier
from nerwheel.model.config import ConfigError, TrainConfig
from nerwheel.model.curriculum import Curriculum, weighted_loss
from nerwheel.model.data import Feature, batches, collate
from nerwheel.model.encoding import TextEncoder
from nerwheel.model.layout import CHECKPOINTS_DIR, HISTORY_FILE, STEP_HISTORY_FILE
from nerwheel.model.optim import build_optimizer, build_scheduler
from nerwheel.model.runtime import TorchTagger
from nerwheel.progress import progress
from nerwheel.records import Record

__all__ = ["DevResult", "EarlyStopping", "FitResult", "LossFn", "Steps", "TaggerSteps", "evaluate_model", "fit",
           "resolve_device", "seed_everything", "torch_threads"]

log = logging.getLogger(__name__)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: leave as is), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The training device; under ``torchrun`` each process takes the GPU of its ``local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device={name!r} but CUDA is not available; use auto or cpu")
    if dev.type == "cuda" and dev.index is None and local_rank:
        dev = torch.device("cuda", local_rank)
    return dev


#: A training loss: ``(model, emissions [B, S, T], collated batch as tensors) -> scalar``.
LossFn = Callable[[TokenClassifier, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class EarlyStopping:
    """Counts epochs without an improvement of at least ``min_delta``."""

    patience: int
    min_delta: float
    best: float = float("-inf")
    bad_epochs: int = 0

    def update(self, score: float) -> bool:
        """Record an epoch's score; True when it is the new best."""
        if score > self.best + self.min_delta or self.best == float("-inf"):
            self.best = score
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, Any]
    seconds: float
    stopped_early: bool
    checkpoints: list[str] = field(default_factory=list)
    best_step: int = 0


@dataclass
class DevResult:
    """One dev evaluation: the score that picks the best model, a flat summary for the logs, the full metrics."""

    score: float
    summary: dict[str, float]
    metrics: dict[str, Any]


class Steps(Protocol):
    """What a task tells :func:`fit` (see the module docstring)."""

    def plan(self, rng: np.random.Generator) -> list[Any]:
        """One epoch: batch handles in training order."""

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device, autocast: Any) -> torch.Tensor:
        """The mean loss of one batch (this process's slice of it under DDP). Forward through ``model`` (the DDP
        wrapper when there are several processes); its own methods via :func:`distributed.unwrap`."""

    def evaluate(self, model: torch.nn.Module) -> DevResult | None:
        """Dev evaluation; None without dev data (the latest evaluation is then the best)."""


def _dev_summary(m: dict[str, Any]) -> dict[str, float]:
    o = m["overall"]
    return {
        "strict_f1": o["strict"]["f1"], "strict_precision": o["strict"]["precision"],
        "strict_recall": o["strict"]["recall"], "partial_f1": o["partial"]["f1"], "type_f1": o["type"]["f1"],
        "token_accuracy": o["token_accuracy"],
    }


def _amp(config: Any, device: torch.device) -> tuple[Any, torch.amp.GradScaler | None]:
    t = config.training
    if device.type != "cuda":
        if t.fp16 or t.bf16:
            log.warning("fp16/bf16 requested but training runs on %s: using float32", device)
        return nullcontext, None
    if t.bf16:
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None
    if t.fp16:
        return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")
    return nullcontext, None


def evaluate_model(model: TokenClassifier, card: ModelCard, encoder: TextEncoder, records: Sequence[Record],
                   batch_size: int) -> dict[str, Any]:
    tagger = TorchTagger(model, card, encoder, batch_size=batch_size)
    return M.evaluate(records, tagger.predict([r.text for r in records], scores=False))


#: A tagger's training loss: ``(model, emissions [B, S, T], collated batch as tensors) -> scalar``.
LossFn = Callable[[TokenClassifier, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class TaggerSteps:
    """The token classifier's :class:`Steps`: length-bucketed windows, CRF/softmax loss, dev strict F1.

    With a ``curriculum`` (:class:`~nerwheel.model.curriculum.Curriculum`, teacher-labelled traffic beside
    gold) each epoch trains on the windows and loss weights it plans for that epoch; the model's
    ``input_names`` say which batch arrays it reads (``lexicon`` features too).
    ``loss_fn(model, emissions, batch)`` replaces the weighted loss of the model's own
    (CRF NLL or cross-entropy on ``batch["labels"]``): distillation adds the teacher's
    distributions (:class:`nerwheel.model.distill.DistillLoss`).
    """

    train: Sequence[Feature]
    dev: Sequence[Record]
    config: TrainConfig
    encoder: TextEncoder
    card: ModelCard
    curriculum: Curriculum | None = None
    loss_fn: LossFn | None = None
    _windows: Sequence[Feature] | None = field(default=None, init=False, repr=False)

    def start_epoch(self, epoch: int) -> None:
        self._windows = self.curriculum.plan(epoch) if self.curriculum is not None else None

    @property
    def windows(self) -> Sequence[Feature]:
        return self._windows if self._windows is not None else self.train

    def plan(self, rng: np.random.Generator) -> list[list[int]]:
        t = self.config.training
        return batches([len(f.input_ids) for f in self.windows], t.batch_size, rng=rng,
                       bucketing=t.length_bucketing)

    def loss(self, model: Any, batch: list[int], device: torch.device, autocast: Any) -> torch.Tensor:
        windows = self.windows
        arrays = collate([windows[j] for j in batch], self.encoder.pad_id)
        tensors = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        with autocast():
            emissions = model(*(tensors[k] for k in distributed.unwrap(model).input_names))
        em = emissions.float()
        if self.loss_fn is not None:
            return self.loss_fn(distributed.unwrap(model), em, tensors)
        return weighted_loss(distributed.unwrap(model), em, tensors["labels"], tensors["weight"])

    def evaluate(self, model: Any) -> DevResult | None:
        if not self.dev:
            return None
        m = evaluate_model(model, self.card, self.encoder, self.dev, self.config.training.eval_batch_size)
        return DevResult(m["overall"]["strict"]["f1"], _dev_summary(m), m)


@dataclass
class _Checkpoints:
    """Checkpoints under ``run_dir/checkpoints`` as ``output.save_strategy`` says, rotated to ``save_total_limit``.

    The checkpoint written at the best evaluation is never rotated out.
    """

    run_dir: Path
    strategy: str
    every: int | None
    limit: int
    save: Callable[[Path, dict[str, Any]], None]
    written: list[tuple[str, Path]] = field(default_factory=list)
    best: str | None = None

    def after_step(self, step: int, metrics: dict[str, Any], best_now: bool) -> None:
        if self.strategy == "steps" and self.every and step % self.every == 0:
            self._write(f"step-{step}", metrics, best_now)

    def after_evaluation(self, name: str, metrics: dict[str, Any], improved: bool, *, epoch_end: bool) -> None:
        if self.strategy == "best" and improved:
            self._write(name, metrics, True)
        elif self.strategy == "epoch" and epoch_end and (self.limit > 1 or (self.limit == 1 and improved)):
            self._write(name, metrics, improved)  # with room for one, only the best is worth writing

    def _write(self, name: str, metrics: dict[str, Any], best: bool) -> None:
        if self.limit == 0:
            return
        path = self.run_dir / CHECKPOINTS_DIR / name
        self.save(path, metrics)
        self.written.append((name, path))
        if best:
            self.best = name
        _rotate(self.written, self.best, self.limit)


def _append(path: Path, row: dict[str, Any], tracker: Any = None) -> None:
    """One JSON line in ``path``; its numbers (``dev`` ones as ``dev/<name>``) to the tracker too."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    if tracker is not None:
        values = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and k != "step"}
        values.update({f"dev/{k}": v for k, v in (row.get("dev") or {}).items()})
        tracker.log(values, int(row.get("step", 0)))


def fit(
    model: torch.nn.Module,
    steps: Steps,
    *,
    config: Any,
    learning_rate: float,
    run_dir: Path,
    save: Callable[[Path, dict[str, Any]], None],
    encoder_prefix: str = "encoder.",
    tracker: Any = None,
) -> FitResult:
    """Train ``model`` in place; on return it holds the best evaluation's weights.

    ``config`` is a task's training config (its ``training``, ``optimizer``,
    ``scheduler``, ``early_stopping``, ``logging`` and ``output`` sections);
    ``encoder_prefix`` names the encoder's parameters for the optimiser's groups;
    ``tracker`` (:mod:`nerwheel.model.tracking`) receives every logged line.
    A ``steps`` with a ``start_epoch(epoch)`` method (1-based) is told each
    epoch before it plans it: a curriculum changes the windows per epoch.

    Dev is scored after every epoch (one line in ``metrics.jsonl``) and, with
    ``logging.eval_steps``, every that many optimiser steps too (lines in
    ``steps.jsonl``, beside the ``logging.steps`` loss lines); every evaluation
    can become the best and counts for early stopping.
    """
    t, every, out = config.training, config.logging, config.output
    dist = distributed.from_env()
    seed_everything(t.seed)
    device = resolve_device(t.device, dist.local_rank)
    model.to(device)
    net = distributed.wrap(model, dist, device)  # forward through DDP: gradients are averaged over processes
    autocast, scaler = _amp(config, device)
    rng = np.random.default_rng(t.seed)
    start_epoch = getattr(steps, "start_epoch", None)

    def steps_in(epoch: int) -> int:
        if start_epoch is not None:
            start_epoch(epoch)
        return max(1, -(-len(steps.plan(np.random.default_rng(t.seed))) // t.gradient_accumulation_steps))

    total_steps = (sum(steps_in(e) for e in range(1, t.epochs + 1)) if start_epoch is not None
                   else steps_in(1) * t.epochs)
    optimizer = build_optimizer(model, learning_rate=learning_rate, settings=config.optimizer,
                                encoder_prefix=encoder_prefix)
    scheduler = build_scheduler(optimizer, total_steps=total_steps, warmup_ratio=t.warmup_ratio,
                                settings=config.scheduler)
    stopper = EarlyStopping(config.early_stopping.patience, config.early_stopping.min_delta)
    # only rank 0 writes: checkpoints, history lines (the other ranks hold the same weights and scores)
    checkpoints = _Checkpoints(run_dir, out.save_strategy, out.save_steps, out.save_total_limit if dist.main else 0,
                               save)
    append = _append if dist.main else (lambda path, row, tracker=None: None)
    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_step, best_metrics, latest_metrics = 0, 0, {}, {}
    started = time.perf_counter()
    stopped_early = False
    has_dev = False
    step = 0

    def consider(dev: DevResult | None, epoch: int) -> bool:
        """Record an evaluation; keep the weights when it is the best so far (no dev: the latest is the best)."""
        nonlocal best_state, best_epoch, best_step, best_metrics, latest_metrics, has_dev
        has_dev = dev is not None
        metrics = dev.metrics if dev is not None else {}
        latest_metrics = metrics
        improved = stopper.update(dev.score if dev is not None else float(step))
        if improved:
            best_epoch, best_step, best_metrics = epoch, step, metrics
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return improved

    def should_stop() -> bool:
        return bool(config.early_stopping.enabled and has_dev and stopper.should_stop)

    for epoch in range(1, t.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        if start_epoch is not None:
            start_epoch(epoch)
        plan = steps.plan(rng)
        total_loss, n_batches, window_loss, window_batches = 0.0, 0, 0.0, 0
        optimizer.zero_grad(set_to_none=True)
        bar = progress(plan, desc=f"epoch {epoch}/{t.epochs}", unit="batch", leave=False)
        for i, batch in enumerate(bar):
            batch = distributed.split_batch(batch, dist)
            last_micro = (i + 1) % t.gradient_accumulation_steps == 0 or i + 1 == len(plan)
            # accumulation steps keep their gradients local; DDP averages them on the step's last micro-batch
            with (net.no_sync() if dist.enabled and not last_micro else nullcontext()):
                loss = steps.loss(net, batch, device, autocast) / t.gradient_accumulation_steps
                (scaler.scale(loss) if scaler else loss).backward()
            batch_loss = loss.detach().item() * t.gradient_accumulation_steps
            total_loss, window_loss = total_loss + batch_loss, window_loss + batch_loss
            n_batches, window_batches = n_batches + 1, window_batches + 1
            bar.set_postfix(loss=f"{total_loss / n_batches:.4f}")
            if not last_micro:
                continue
            if scaler:
                scaler.unscale_(optimizer)
            if t.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            at = {"step": step, "epoch": round(epoch - 1 + (i + 1) / len(plan), 3)}
            if every.steps and step % every.steps == 0:
                row = {**at, "train_loss": round(distributed.mean(window_loss / window_batches, dist), 6),
                       "learning_rate": scheduler.get_last_lr()[0]}
                append(run_dir / STEP_HISTORY_FILE, row, tracker)
                log.info("step %d/%d (epoch %.2f): loss %.4f lr %.3g (%.0f s)", step, total_steps, at["epoch"],
                         row["train_loss"], row["learning_rate"], time.perf_counter() - started)
                window_loss, window_batches = 0.0, 0
            improved = False
            if every.eval_steps and step % every.eval_steps == 0 and (dev := steps.evaluate(model)) is not None:
                model.train()
                improved = consider(dev, epoch)
                append(run_dir / STEP_HISTORY_FILE, {**at, "dev": dev.summary, "best": improved}, tracker)
                log.info("step %d: dev score %.4f%s", step, dev.score, " (best)" if improved else "")
                checkpoints.after_evaluation(f"step-{step}", dev.metrics, improved, epoch_end=False)
            checkpoints.after_step(step, latest_metrics, improved)
            if should_stop():
                break
        bar.close()
        train_seconds = time.perf_counter() - epoch_start
        if should_stop():  # stopped by a step evaluation: this epoch is not scored again
            stopped_early = True
            log.info("early stop at step %d: no dev score gain > %s for %d evaluations", step,
                     config.early_stopping.min_delta, stopper.patience)
            break

        dev = steps.evaluate(model)
        improved = consider(dev, epoch)
        row = {
            "epoch": epoch, "step": step, "train_loss": round(distributed.mean(total_loss / max(1, n_batches), dist), 6),
            "learning_rate": scheduler.get_last_lr()[0], "train_seconds": round(train_seconds, 2),
            "eval_seconds": round(time.perf_counter() - epoch_start - train_seconds, 2),
            "dev": dev.summary if dev is not None else None, "best": improved,
        }
        history.append(row)
        append(run_dir / HISTORY_FILE, row, tracker)
        log.info("epoch %d: loss %.4f dev score %s%s", epoch, row["train_loss"],
                 f"{dev.score:.4f}" if dev is not None else "-", " (best)" if improved else "")
        checkpoints.after_evaluation(f"epoch-{epoch}", latest_metrics, improved, epoch_end=True)
        if should_stop():
            stopped_early = True
            log.info("early stop after epoch %d: no dev score gain > %s for %d evaluations", epoch,
                     config.early_stopping.min_delta, stopper.patience)
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(history, best_epoch, copy.deepcopy(best_metrics), time.perf_counter() - started, stopped_early,
                     [str(p) for _, p in checkpoints.written], best_step)


def _rotate(checkpoints: list[tuple[str, Path]], best: str | None, limit: int) -> None:
    """Delete the oldest checkpoints beyond ``limit``; the best one is never deleted."""
    while len(checkpoints) > limit:
        victim = next((c for c in checkpoints if c[0] != best), None)
        if victim is None:
            return
        shutil.rmtree(victim[1], ignore_errors=True)
        checkpoints.remove(victim)
