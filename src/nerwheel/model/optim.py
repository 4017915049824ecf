"""AdamW with parameter groups, and the warm-up + decay learning-rate schedule.

Groups: the encoder at ``learning_rate``; the randomly initialised linear head
and CRF at ``head_learning_rate`` (a CRF's transitions barely move at a
pretrained encoder's 5e-5). Biases and LayerNorm weights get no weight decay.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nerwheel.model.config import OptimizerSettings, SchedulerSettings

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


def build_optimizer(model: nn.Module, *, learning_rate: float, settings: OptimizerSettings,
                    encoder_prefix: str = "encoder.") -> torch.optim.AdamW:
    """``encoder_prefix``: parameters under it are the encoder (``bert.`` in a Hugging Face classifier)."""
    head_lr = settings.head_learning_rate or max(learning_rate, 1e-3)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = not name.startswith(encoder_prefix)
        no_decay = p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name or name.startswith("crf.")
        groups.setdefault((is_head, no_decay), []).append(p)
    param_groups = [
        {"params": ps, "lr": head_lr if is_head else learning_rate, "weight_decay": 0.0 if no_decay else settings.weight_decay}
        for (is_head, no_decay), ps in sorted(groups.items())
    ]
    return torch.optim.AdamW(
        param_groups, lr=learning_rate, eps=settings.adam_epsilon, betas=(settings.adam_beta1, settings.adam_beta2)
    )


def lr_factor(step: int, *, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_ratio: float, settings: SchedulerSettings
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = settings.warmup_steps if settings.warmup_steps is not None else int(round(total_steps * warmup_ratio))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total=total_steps, warmup=warmup, kind=settings.type)
    )
