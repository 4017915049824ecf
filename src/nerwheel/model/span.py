"""Span head: an encoder, then a biaffine score with width features for every candidate span and every label.

Why a span head beside the tagger: a BIO tag sequence holds one label per
character, so overlapping spans (a ``pos:ns`` span over a ``city``) and nested
ones (a ``company`` inside a ``book``) cannot both be learned; a span head
scores each (span, label) pair independently (multi-label), so they train
together. Following Yu et al. 2020 ("Named Entity Recognition as Dependency
Parsing"), each token gets a start and an end representation, the end one
shifted by a learned embedding of the span's width, and a span ``(s, e)``
scores, per label ``l``::

    end'_(s,e) = end_e + width(e - s)
    score = start_s^T U_l end'_(s,e) + w_l . [start_s; end'_(s,e)] + width_l[e - s] + b_l

(the width inside the bilinear term lets each label weigh start and end
content by span length: on CCKS addresses, 1000 training records, the tiny
encoder, 8 epochs, it lifted test strict F1 from 0.64 to 0.72, past the CRF
head's 0.65).

Only spans of at most ``max_width`` tokens are returned, as a band
``[batch, tokens, max_width, labels]`` (the content term is one large
``tokens x tokens`` product per label, cut to the band), and
spans that would end on a special token or padding are set to a large
negative score inside the graph, so a window never proposes a span it cannot
see the end of. The output is flattened to ``emissions [batch, tokens,
max_width * labels]``: the same export contract, windows and stitching as the
tagger (decoding: :mod:`nerwheel.decode_span`).

The loss is the multi-label categorical cross-entropy of GlobalPointer (Su et
al. 2022), per text and label, over the valid candidates only::

    log(1 + sum_{negatives} exp(s)) + log(1 + sum_{positives} exp(-s))

which puts the decision boundary at 0 without a flood of easy negatives
drowning the few positives. Extension labels (``pos:``, ``kb:``) are auxiliary
outputs: their terms are weighted by ``extension_weight``, and the loss is
normalised by the number of target labels, so adding extension labels adds
signal without shrinking the targets' share.

Saved as a Hugging Face model directory that ``AutoModel`` loads (the
encoder's own ``config.json`` with ``id2label`` = the span labels and a
``nerwheel_span`` entry for the head's shape; ``model.safetensors`` with
``<base_model_prefix>.*`` encoder weights and ``span.*`` head weights). Like
every model folder it also carries its own ``transformers`` code
(:mod:`nerwheel.hf`): ``AutoModelForTokenClassification`` with
``trust_remote_code=True`` gives these emissions, the folder's pipeline the
span decoder's entities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from nerwheel.decode_span import SpanLayout
from nerwheel.errors import DataError
from nerwheel.labels import is_extension_label
from nerwheel.model.encoders import build_encoder
from nerwheel.model.layout import HF_CONFIG_FILE, WEIGHTS_FILE
from nerwheel.model.lora import encoder_state, unwrap
from nerwheel.model.span_scorer import CONFIG_KEY, SpanScorer

__all__ = ["CONFIG_KEY", "SpanClassifier", "multilabel_loss"]

IGNORE = -100


def multilabel_loss(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, n_targets: int) -> torch.Tensor:
    """GlobalPointer's multi-label cross-entropy (module docstring); ``scores``/``labels`` ``[B, N, L]``."""
    valid = labels != IGNORE
    positive = labels == 1
    s = scores.float().transpose(1, 2)  # [B, L, N]
    neg_inf = torch.tensor(float("-inf"), device=s.device)
    neg = torch.where((valid & ~positive).transpose(1, 2), s, neg_inf)
    pos = torch.where(positive.transpose(1, 2), -s, neg_inf)
    zero = s.new_zeros(s.shape[0], s.shape[1], 1)
    per_label = torch.logsumexp(torch.cat([zero, neg], -1), -1) + torch.logsumexp(torch.cat([zero, pos], -1), -1)
    return ((per_label * weights[None, :]).sum(-1) / max(1, n_targets)).mean()


class SpanClassifier(nn.Module):
    """``emissions = SpanScorer(Dropout(encoder(x)))`` flattened to ``[B, S, max_width * labels]``.

    ``labels``: targets first, then extension labels (:class:`~nerwheel.decode_span.SpanLayout`).
    ``suffix_tokens``: how many special tokens the tokenizer puts after a
    window (spans must not end on them).
    """

    crf = None  # the runtime and the export ask every head for CRF transitions: a span head has none
    head = "span"
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")

    def __init__(self, encoder: PreTrainedModel, labels: Sequence[str], *, max_width: int = 16, size: int = 64,
                 suffix_tokens: int = 1, dropout: float = 0.1, extension_weight: float = 0.5) -> None:
        super().__init__()
        self.encoder = encoder
        self.labels = list(labels)
        self.layout = SpanLayout(tuple(self.labels), max_width)
        self.dropout = nn.Dropout(dropout)
        self.span = SpanScorer(encoder.config.hidden_size, len(self.labels), max_width=max_width, size=size,
                               suffix_tokens=suffix_tokens, init_std=self._init_std)
        self.extension_weight = extension_weight

    @property
    def _init_std(self) -> float:
        return float(getattr(unwrap(self.encoder).config, "initializer_range", 0.02))

    @property
    def max_width(self) -> int:
        return self.span.max_width

    def label_weights(self, device: torch.device) -> torch.Tensor:
        return torch.tensor([self.extension_weight if is_extension_label(lab) else 1.0 for lab in self.labels],
                            device=device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.span(self.dropout(hidden), attention_mask).flatten(2)

    def loss(self, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``labels`` ``[B, S, max_width, labels]``: 1 gold, 0 not, -100 no candidate (:mod:`nerwheel.model.span_data`)."""
        bsz, seq = emissions.shape[:2]
        n = len(self.labels)
        return multilabel_loss(emissions.reshape(bsz, seq * self.max_width, n),
                               labels.reshape(bsz, seq * self.max_width, n), self.label_weights(emissions.device),
                               len(self.layout.targets))

    # -- persistence ------------------------------------------------------------------------------
    def hf_config(self) -> PretrainedConfig:
        config = unwrap(self.encoder).config
        config.architectures = [type(unwrap(self.encoder)).__name__]
        config.id2label = dict(enumerate(self.labels))
        config.label2id = {t: i for i, t in enumerate(self.labels)}
        setattr(config, CONFIG_KEY, {"max_width": self.max_width, "size": self.span.size,
                                     "suffix_tokens": self.span.suffix_tokens, "dropout": self.dropout.p})
        return config

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.hf_config().save_pretrained(d)
        prefix = unwrap(self.encoder).base_model_prefix
        state = {f"{prefix}.{k}": v for k, v in encoder_state(self.encoder).items()}
        state.update({f"span.{k}": v for k, v in self.span.state_dict().items()})
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(d / WEIGHTS_FILE),
                  metadata={"format": "pt"})

    @classmethod
    def load(cls, directory: str | Path, *, dropout: float | None = None) -> SpanClassifier:
        d = Path(directory)
        config = AutoConfig.from_pretrained(d)
        shape: dict[str, Any] | None = getattr(config, CONFIG_KEY, None)
        if not shape:
            raise DataError(f"{d / HF_CONFIG_FILE}: no {CONFIG_KEY!r} entry; not a span-head model directory")
        labels = [config.id2label[i] for i in range(len(config.id2label))]
        model = cls(build_encoder(config), labels, max_width=shape["max_width"], size=shape["size"],
                    suffix_tokens=shape["suffix_tokens"], dropout=shape["dropout"] if dropout is None else dropout)
        state = load_file(str(d / WEIGHTS_FILE))
        prefix = model.encoder.base_model_prefix + "."
        model.encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                      strict=True)
        model.span.load_state_dict({k[len("span."):]: v for k, v in state.items() if k.startswith("span.")},
                                   strict=True)
        return model

    def retag(self, labels: Sequence[str]) -> None:
        """Continue training with a new label inventory: labels that stay keep what they learned."""
        old = {lab: i for i, lab in enumerate(self.labels)}
        keep = [(j, old[lab]) for j, lab in enumerate(labels) if lab in old]
        self.span.retarget(keep, len(labels), self._init_std)
        self.labels = list(labels)
        self.layout = SpanLayout(tuple(self.labels), self.max_width)

    def describe(self) -> dict[str, Any]:
        n = sum(p.numel() for p in self.parameters())
        return {"parameters": n, "model_type": unwrap(self.encoder).config.model_type, "head": self.head,
                "max_width": self.max_width}
