"""Optional LoRA adapters (peft) on the encoder, merged back into plain weights whenever the model is saved.

A saved model never depends on peft: :func:`encoder_state` hands the
classifier the merged encoder weights under their ordinary names.

What trains: the adapters on ``target_modules`` (restricted to the layer
indices in ``layers_to_transform`` when given, e.g. only the deep layers 8-11),
plus ``modules_to_save`` in full: the head (``classifier``, ``crf``) and any
encoder module named there (e.g. the hybrid's ``moe``). Everything else is
frozen, whatever the backbone. A span head's scorer (``span``) has no
pretrained weights to keep, so it always trains in full.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nerwheel.errors import ConfigError
from nerwheel.model.config import LoraSettings

__all__ = ["HEAD_MODULES", "apply_lora", "default_targets", "encoder_state", "unwrap"]

#: Modules of the token classifier around the encoder; ``modules_to_save`` names among them stay trainable.
HEAD_MODULES = ("classifier", "crf")


def default_targets(encoder: nn.Module) -> list[str]:
    """Attention projections by encoder family: Qwen2 layers (the hybrid's deep part) or BERT-style self-attention."""
    from nerwheel.model.hybrid import MODEL_TYPE

    if getattr(getattr(encoder, "config", None), "model_type", "") == MODEL_TYPE:
        return ["q_proj", "k_proj", "v_proj", "o_proj"]
    return ["query", "key", "value"]


def apply_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap ``model.encoder`` (a token classifier's) in adapters as ``settings`` say; freeze the head modules not kept.

    Returns ``model``. Fails naming what exists when a target module or a layer
    index matches nothing.
    """
    from peft import LoraConfig, get_peft_model

    encoder = model.encoder
    targets = list(settings.target_modules or default_targets(encoder))
    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ConfigError(
            f"model.lora.target_modules {missing} do not exist in this encoder; linear layers it has include: "
            f"{', '.join(sorted(n for n in names if n and not n.isdigit())[:20])}"
        )
    unknown = [m for m in settings.modules_to_save if m not in HEAD_MODULES and m not in names]
    if unknown:
        raise ConfigError(f"model.lora.modules_to_save {unknown} name no module of the head "
                          f"({', '.join(HEAD_MODULES)}) or the encoder; name the head modules or encoder modules to "
                          "train in full", field="model.lora.modules_to_save")
    encoder_saved = [m for m in settings.modules_to_save if m not in HEAD_MODULES]
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets,
        layers_to_transform=list(settings.layers_to_transform) if settings.layers_to_transform else None,
        layers_pattern=settings.layers_pattern, modules_to_save=encoder_saved or None,
    )
    try:
        model.encoder = get_peft_model(encoder, config)
    except ValueError as exc:
        raise ConfigError(f"model.lora: {exc} (layers_to_transform={settings.layers_to_transform}, "
                          f"layers_pattern={settings.layers_pattern!r}, target_modules={targets})",
                          field="model.lora.layers_to_transform") from None
    for name in HEAD_MODULES:
        module = getattr(model, name, None)
        if module is not None:
            module.requires_grad_(name in settings.modules_to_save)
    return model


def is_peft(module: nn.Module) -> bool:
    return hasattr(module, "get_base_model") and hasattr(module, "merge_adapter")


def unwrap(encoder: Any) -> Any:
    """The transformers model under a peft wrapper (or the encoder itself)."""
    return encoder.get_base_model() if is_peft(encoder) else encoder


def encoder_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's weights under plain transformers names, adapters merged in, trained module copies in place."""
    if not is_peft(encoder):
        return dict(encoder.state_dict())
    encoder.merge_adapter()  # type: ignore[operator]
    try:
        state = {}
        for k, v in unwrap(encoder).state_dict().items():
            if "lora_" in k or ".original_module." in k:
                continue
            k = k.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")
            state[k] = v.detach().clone()
        return state
    finally:
        encoder.unmerge_adapter()  # type: ignore[operator]
