"""The ``bert-moe-qwen2`` encoder: BERT -> mixture of experts -> Qwen2 layers, as one Hugging Face model.

``hidden = Qwen2(project(MoE(BERT(text))))``: a BERT encoder reads the
characters (any Hugging Face BERT directory, or the data-made ``tiny`` BERT), a
:class:`~nerwheel.model.moe.MoEBlock` routes each position to its top-k
experts, a linear map widens the result to the Qwen2 width, and Qwen2 decoder
layers (``Qwen2Model``, from a user's Qwen2 directory or built from a config)
refine it. The token classifier puts its linear head and CRF on top, exactly as
for any other encoder.

Qwen2 layers are causal language-model layers; here they read the whole
window (``bidirectional=True``, the default, passes a padding-only attention
mask), as an encoder must. Their token embeddings are never used (BERT reads
the text), so the saved Qwen2 config keeps a one-row embedding table instead
of a 150k-row one.

Registered with ``AutoConfig``/``AutoModel`` under :data:`MODEL_TYPE`, so
:class:`~nerwheel.model.classifier.TokenClassifier` saves and loads it like a
BERT. Imports torch, transformers and :mod:`nerwheel.model.moe` only: this
file travels into Hugging Face model folders (:mod:`nerwheel.hf`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, PreTrainedConfig, PreTrainedModel, Qwen2Config, \
    Qwen2Model
from transformers.modeling_outputs import BaseModelOutput

from nerwheel.errors import ConfigError
from nerwheel.model.moe import MoEBlock

__all__ = ["MODEL_TYPE", "BertMoeQwen2Config", "BertMoeQwen2Model", "shrink_qwen2"]

MODEL_TYPE = "nerwheel-bert-moe-qwen2"


class BertMoeQwen2Config(PreTrainedConfig):
    """Sizes of the three parts; ``bert_config`` and ``qwen2_config`` are the parts' own configs."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {"bert_config": BertConfig, "qwen2_config": Qwen2Config}

    bert_config: dict | PreTrainedConfig | None = None
    qwen2_config: dict | PreTrainedConfig | None = None
    num_experts: int = 4
    top_k: int = 2
    expert_size: int | None = None
    moe_dropout: float = 0.1
    router_aux_loss_coef: float = 0.01
    freeze_moe: bool = False
    bidirectional: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k={self.top_k} must be between 1 and num_experts={self.num_experts}")

    # What the token classifier and the window checks read from any encoder's config.
    @property
    def hidden_size(self) -> int:
        return int(self.qwen2_config.hidden_size)

    @property
    def max_position_embeddings(self) -> int:
        return int(self.bert_config.max_position_embeddings)

    @property
    def initializer_range(self) -> float:
        return float(self.bert_config.initializer_range)


def shrink_qwen2(model: Qwen2Model, layers: int | None = None) -> Qwen2Model:
    """Keep the first ``layers`` decoder layers and a one-row token embedding (the hybrid never reads it)."""
    config = model.config
    if layers is not None:
        if not 1 <= layers <= len(model.layers):
            raise ConfigError(f"model.hybrid.qwen2_layers={layers} but the Qwen2 model has {len(model.layers)} "
                              "layers", field="model.hybrid.qwen2_layers")
        model.layers = model.layers[:layers]
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None):
            config.layer_types = list(config.layer_types[:layers])
    model.embed_tokens = nn.Embedding(1, config.hidden_size)
    config.vocab_size = 1
    return model


class BertMoeQwen2Model(PreTrainedModel):
    """The hybrid encoder: ``last_hidden_state [B, S, qwen2 width]``; ``aux_loss`` after a training forward."""

    config_class = BertMoeQwen2Config
    base_model_prefix = "hybrid"
    _supports_sdpa = True

    def __init__(self, config: BertMoeQwen2Config, *, bert: BertModel | None = None, qwen2: Qwen2Model | None = None):
        super().__init__(config)
        bert_width = config.bert_config.hidden_size
        self.bert = bert if bert is not None else BertModel(config.bert_config, add_pooling_layer=False)
        self.moe = MoEBlock(bert_width, num_experts=config.num_experts, top_k=config.top_k,
                            expert_size=config.expert_size or 2 * bert_width, dropout=config.moe_dropout,
                            layer_norm_eps=config.bert_config.layer_norm_eps)
        self.project = nn.Linear(bert_width, config.hidden_size)
        self.qwen2 = qwen2 if qwen2 is not None else shrink_qwen2(Qwen2Model(config.qwen2_config))
        if config.freeze_moe:
            self.moe.requires_grad_(False)
        self.post_init()
        # transformers picks the attention kernel for the composite config but leaves its parts' unset
        for part in (config.bert_config, config.qwen2_config):
            if part._attn_implementation is None:
                part._attn_implementation = config._attn_implementation or "sdpa"

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, MoEBlock):
            module.reset_parameters(std)
        elif module is getattr(self, "project", None):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)

    @property
    def aux_loss(self) -> torch.Tensor | None:
        """The load-balancing loss of the last training forward pass, times ``router_aux_loss_coef``."""
        aux = self.moe.aux_loss
        return None if aux is None or self.config.freeze_moe else aux * self.config.router_aux_loss_coef

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.project(self.moe(hidden, attention_mask))
        if self.config.bidirectional:  # additive [B, 1, 1, S] mask: every position sees every real position
            mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        else:  # the Qwen2 model builds its own causal + padding mask
            mask = attention_mask
        out = self.qwen2(inputs_embeds=hidden, attention_mask=mask, use_cache=False)
        return BaseModelOutput(last_hidden_state=out.last_hidden_state)


AutoConfig.register(MODEL_TYPE, BertMoeQwen2Config, exist_ok=True)
AutoModel.register(BertMoeQwen2Config, BertMoeQwen2Model, exist_ok=True)
