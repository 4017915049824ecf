"""The encoder for a Hugging Face config: any family transformers knows, and nerwheel's ``bert-moe-qwen2``.

Shared by the token classifier nerwheel trains and the model class written into
every model folder (:mod:`nerwheel.hf.modeling_nerwheel`), so both build the
very same module tree. Imports torch, transformers and the hybrid only: it
travels into model folders.
"""

from __future__ import annotations

from transformers import AutoModel, PreTrainedConfig, PreTrainedModel

from nerwheel.model.hybrid import MODEL_TYPE, BertMoeQwen2Model

__all__ = ["build_encoder"]


def build_encoder(config: PreTrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder for ``config``, without the pooler a token classifier never uses."""
    if config.model_type == MODEL_TYPE:
        return BertMoeQwen2Model(config)
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # families without a pooler do not take the argument
        return AutoModel.from_config(config)
