"""Token classifier: a Hugging Face encoder, dropout, a linear head, and optionally a CRF.

Saved as a *standard* token-classification checkpoint: ``config.json`` names
the family's ``...ForTokenClassification`` architecture with ``id2label``,
``model.safetensors`` holds ``<base_model_prefix>.*`` encoder weights,
``classifier.weight``/``classifier.bias`` and the CRF's ``crf.*``. So
``AutoModelForTokenClassification.from_pretrained(dir)`` rebuilds the encoder
and head (its logits are our emissions; the stock class reports the ``crf.*``
keys as unused), and with ``trust_remote_code=True`` the model folder's own
class (:mod:`nerwheel.hf`) adds the CRF and the constrained decode. The CRF
also sits alone in ``crf.safetensors``, where nerwheel has always read it.

The ``bert-moe-qwen2`` encoder (:mod:`nerwheel.model.hybrid`) is registered
with ``AutoModel`` on import, so it saves and loads like any other; its
load-balancing loss joins the training loss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

from nerwheel.model.crf import CRF, IGNORE, tagging_loss
from nerwheel.model.encoders import build_encoder  # importing it registers the bert-moe-qwen2 encoder
from nerwheel.model.layout import CRF_FILE, WEIGHTS_FILE
from nerwheel.model.lora import encoder_state, unwrap

__all__ = ["CRF_FILE", "IGNORE", "REMOTE_ARCHITECTURE", "WEIGHTS_FILE", "TokenClassifier", "build_encoder"]

log = logging.getLogger(__name__)
#: The architecture named in config.json when transformers has no stock class for the encoder (the hybrid).
REMOTE_ARCHITECTURE = "NerwheelForTokenClassification"


class TokenClassifier(nn.Module):
    """``emissions = Linear(Dropout(encoder(x)))``; the loss is the CRF NLL or cross-entropy.

    Only *head* positions (labels != -100) enter the loss
    (:func:`nerwheel.model.crf.tagging_loss`); an encoder with an ``aux_loss``
    (the hybrid's expert balancing) adds it.
    ``input_names`` are the forward arguments, as batches, ONNX graphs and runtimes name them.
    """

    input_names: tuple[str, ...] = ("input_ids", "attention_mask")

    def __init__(self, encoder: PreTrainedModel, tags: Sequence[str], *, head: str = "crf", dropout: float = 0.1):
        super().__init__()
        if head not in ("crf", "softmax"):
            raise ConfigError(f"Invalid head: {head!r}. Allowed heads are: crf, softmax")
        self.encoder = encoder
        self.tags = list(tags)
        self.head = head
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, len(self.tags))
        nn.init.normal_(self.classifier.weight, std=self._init_std)
        nn.init.zeros_(self.classifier.bias)
        self.crf = CRF(len(self.tags)) if head == "crf" else None

    @property
    def _init_std(self) -> float:
        return float(getattr(unwrap(self.encoder).config, "initializer_range", 0.02))

    @property
    def num_tags(self) -> int:
        return len(self.tags)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classifier(self.dropout(hidden))

    def loss(self, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Tagging loss of the last forward pass's ``emissions``, plus the encoder's auxiliary loss if it has one."""
        loss = tagging_loss(emissions, labels, self.crf)
        aux = getattr(unwrap(self.encoder), "aux_loss", None)
        return loss if aux is None else loss + aux

    # -- persistence ------------------------------------------------------------------------------
    def hf_config(self) -> PretrainedConfig:
        config = unwrap(self.encoder).config
        config.architectures = [MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES.get(config.model_type, REMOTE_ARCHITECTURE)]
        config.id2label = dict(enumerate(self.tags))
        config.label2id = {t: i for i, t in enumerate(self.tags)}
        config.classifier_dropout = self.dropout.p
        return config

    def state_for_hf(self) -> dict[str, torch.Tensor]:
        prefix = unwrap(self.encoder).base_model_prefix
        state = {f"{prefix}.{k}": v for k, v in encoder_state(self.encoder).items()}
        state["classifier.weight"] = self.classifier.weight
        state["classifier.bias"] = self.classifier.bias
        if self.crf is not None:  # read by the model folder's own class (trust_remote_code), ignored by stock ones
            state.update({f"crf.{k}": v for k, v in self.crf.state_dict().items()})
        return {k: v.detach().contiguous().cpu() for k, v in state.items()}

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.hf_config().save_pretrained(d)
        save_file(self.state_for_hf(), str(d / WEIGHTS_FILE), metadata={"format": "pt"})
        if self.crf is not None:
            crf = {k: v.detach().contiguous().cpu() for k, v in self.crf.state_dict().items()}
            save_file(crf, str(d / CRF_FILE), metadata={"format": "pt"})

    @classmethod
    def load(cls, directory: str | Path, *, head: str, dropout: float | None = None) -> TokenClassifier:
        d = Path(directory)
        config = AutoConfig.from_pretrained(d)
        tags = [config.id2label[i] for i in range(len(config.id2label))]
        model = cls(build_encoder(config), tags, head=head,
                    dropout=dropout if dropout is not None else (config.classifier_dropout or 0.1))
        state = load_file(str(d / WEIGHTS_FILE))
        prefix = model.encoder.base_model_prefix + "."
        enc_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        model.encoder.load_state_dict(enc_state, strict=True)
        model.classifier.load_state_dict({"weight": state["classifier.weight"], "bias": state["classifier.bias"]})
        if model.crf is not None:
            path = d / CRF_FILE
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing; a CRF model directory must hold its transitions")
            model.crf.load_state_dict(load_file(str(path)))
        return model

    def retag(self, tags: Sequence[str]) -> None:
        """Switch to a new tag inventory, keeping the head (and CRF) rows of tags that stay.

        Continuing training on data with new labels: old tags keep what they
        learned, new tags start fresh.
        """
        old = {t: i for i, t in enumerate(self.tags)}
        keep = [(j, old[t]) for j, t in enumerate(tags) if t in old]
        new_to, old_from = (torch.tensor(x) for x in zip(*keep, strict=True)) if keep else (torch.tensor([]),) * 2
        lin = nn.Linear(self.classifier.in_features, len(tags)).to(self.classifier.weight.device)
        nn.init.normal_(lin.weight, std=self._init_std)
        nn.init.zeros_(lin.bias)
        with torch.no_grad():
            if keep:
                lin.weight[new_to] = self.classifier.weight[old_from]
                lin.bias[new_to] = self.classifier.bias[old_from]
        self.classifier = lin
        if self.crf is not None:
            crf = CRF(len(tags)).to(lin.weight.device)
            with torch.no_grad():
                if keep:
                    crf.transitions[new_to[:, None], new_to[None, :]] = self.crf.transitions[old_from[:, None], old_from[None, :]]
                    crf.start_transitions[new_to] = self.crf.start_transitions[old_from]
                    crf.end_transitions[new_to] = self.crf.end_transitions[old_from]
            self.crf = crf
        self.tags = list(tags)

    def describe(self) -> dict[str, Any]:
        n = sum(p.numel() for p in self.parameters())
        return {"parameters": n, "model_type": unwrap(self.encoder).config.model_type, "head": self.head}
