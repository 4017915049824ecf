"""Optional LoRA adapters (peft) on the encoder, merged back into plain weights whenever the model is saved.

A saved model never depends on peft: :func:`encoder_state` hands the
classifier the merged encoder weights under their ordinary names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nerwheel.errors import ConfigError
from nerwheel.model.config import LoraSettings

__all__ = ["apply_lora", "encoder_state", "unwrap"]


def apply_lora(encoder: nn.Module, settings: LoraSettings) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.named_modules()}
    missing = [t for t in settings.target_modules if t not in names]
    if missing:
        raise ConfigError(
            f"model.lora.target_modules {missing} do not exist in this encoder; linear layers it has include: "
            f"{', '.join(sorted(n for n in names if n and not n.isdigit())[:20])}"
        )
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules))
    return get_peft_model(encoder, config)


def is_peft(module: nn.Module) -> bool:
    return hasattr(module, "get_base_model") and hasattr(module, "merge_adapter")


def unwrap(encoder: Any) -> Any:
    """The transformers model under a peft wrapper (or the encoder itself)."""
    return encoder.get_base_model() if is_peft(encoder) else encoder


def encoder_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's weights under plain transformers names, adapters merged in."""
    if not is_peft(encoder):
        return dict(encoder.state_dict())
    encoder.merge_adapter()  # type: ignore[operator]
    try:
        state = {}
        for k, v in unwrap(encoder).state_dict().items():
            if "lora_" in k:
                continue
            state[k.replace(".base_layer.", ".")] = v.detach().clone()
        return state
    finally:
        encoder.unmerge_adapter()  # type: ignore[operator]
