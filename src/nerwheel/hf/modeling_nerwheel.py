"""The model class a nerwheel model folder gives ``transformers`` (``auto_map``, ``trust_remote_code=True``).

``AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True)``
returns :class:`NerwheelForTokenClassification`: the same encoder
(:func:`nerwheel.model.encoders.build_encoder`), linear head and CRF as the
model nerwheel trained, read from the same ``model.safetensors`` keys. Its
``logits`` are nerwheel's emissions; :meth:`NerwheelForTokenClassification.decode`
adds the CRF transitions and the tagging scheme's hard constraints and searches
the tag path as the model's card says (Viterbi or beam,
:mod:`nerwheel.decode`). With ``labels`` it returns the training loss
(CRF negative log-likelihood or cross-entropy, :func:`nerwheel.model.crf.tagging_loss`).

A span-head folder (``nerwheel.head == "span"``) gets the same class with the
span scorer (:class:`nerwheel.model.span_scorer.SpanScorer`, weights
``span.*``) in place of the linear head and CRF: its ``logits`` are the span
emissions ``[batch, tokens, max_width * labels]``, which the pipeline decodes
with :mod:`nerwheel.decode_span`; it has no tag path (:meth:`decode` refuses)
and no training loss here (train with nerwheel).

Texts in, entities out (tokenization, sliding windows, character offsets) is
the pipeline's job: :mod:`nerwheel.hf.pipeline_nerwheel`.

This file is copied into every model folder by :func:`nerwheel.hf.folder.write_hf_files`
together with the nerwheel modules it imports, so it runs where nerwheel is not
installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

from nerwheel.decode import CrfParams, Decoding, best_paths
from nerwheel.model.crf import CRF, tagging_loss
from nerwheel.model.encoders import build_encoder
from nerwheel.model.hybrid import BertMoeQwen2Config
from nerwheel.model.span_scorer import CONFIG_KEY as SPAN_CONFIG_KEY
from nerwheel.model.span_scorer import SpanScorer

__all__ = ["CONFIG_KEY", "NerwheelForTokenClassification", "NerwheelHybridForTokenClassification"]

#: The ``config.json`` section with what decoding needs beyond ``id2label``: scheme, head, windows, decode.
CONFIG_KEY = "nerwheel"


def nerwheel_settings(config: PreTrainedConfig) -> dict[str, Any]:
    settings = getattr(config, CONFIG_KEY, None)
    if not isinstance(settings, dict):
        raise ValueError(f"config.json has no {CONFIG_KEY!r} section: this is not a folder written by nerwheel")
    return settings


class NerwheelForTokenClassification(PreTrainedModel):
    """Encoder -> dropout -> linear (-> CRF): a nerwheel token classifier, loadable with ``AutoModelForTokenClassification``.

    The encoder sits under the attribute its family names (``bert``,
    ``roberta``, ``hybrid``, ...), so the weight names are those of the stock
    ``...ForTokenClassification`` class plus ``crf.*``.
    """

    config_class = PreTrainedConfig
    base_model_prefix = "encoder"  # replaced per instance by the encoder family's own prefix

    def __init__(self, config: PreTrainedConfig) -> None:
        super().__init__(config)
        settings = nerwheel_settings(config)
        encoder = build_encoder(config)
        self.base_model_prefix = encoder.base_model_prefix
        setattr(self, self.base_model_prefix, encoder)
        self.head = settings.get("head", "crf")
        self.crf: CRF | None = None
        if self.head == "span":
            shape = getattr(config, SPAN_CONFIG_KEY)
            self.dropout = nn.Dropout(shape["dropout"])
            self.span = SpanScorer(config.hidden_size, config.num_labels, max_width=int(shape["max_width"]),
                                   size=int(shape["size"]), suffix_tokens=int(shape["suffix_tokens"]))
        else:
            self.dropout = nn.Dropout(getattr(config, "classifier_dropout", None) or 0.1)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.crf = CRF(config.num_labels) if self.head == "crf" else None
        self.post_init()

    @property
    def tags(self) -> list[str]:
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> TokenClassifierOutput:
        encoder = getattr(self, self.base_model_prefix)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.head == "span":
            if labels is not None:
                raise ValueError("a span head trains with nerwheel (`nerwheel train --head span`); this class "
                                 "gives its span emissions only")
            return TokenClassifierOutput(logits=self.span(self.dropout(hidden), attention_mask).flatten(2))
        logits = self.classifier(self.dropout(hidden))
        loss = tagging_loss(logits, labels, self.crf) if labels is not None else None
        return TokenClassifierOutput(loss=loss, logits=logits)

    def crf_params(self) -> CrfParams:
        """The transitions (zeros for a softmax head) with the scheme's forbidden moves, as every runtime decodes."""
        settings = nerwheel_settings(self.config)
        if self.crf is None:
            crf = CrfParams.zeros(self.config.num_labels)
        else:
            crf = CrfParams(*(p.detach().float().cpu().numpy() for p in (
                self.crf.transitions, self.crf.start_transitions, self.crf.end_transitions)))
        return crf.constrained(self.tags, settings.get("scheme", "BIO"))

    def decoding(self) -> Decoding:
        return Decoding.from_dict(nerwheel_settings(self.config).get("decode"))

    @torch.no_grad()
    def decode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               heads: torch.Tensor | None = None) -> list[list[str]]:
        """Tag names of the label-bearing positions of each row, under the CRF and the scheme's constraints.

        ``heads`` (bool ``[B, S]``) marks those positions: the first sub-token of
        each character span. By default every real token but the special ones
        around it (``[CLS]``/``[SEP]``), which is right for character-level
        tokenizers; the pipeline passes the exact heads.
        """
        if self.head == "span":
            raise ValueError("a span head has no tag path: its spans (overlapping and nested ones included) come from "
                             "the pipeline, pipeline('token-classification', model=FOLDER, trust_remote_code=True)")
        logits = self(input_ids=input_ids, attention_mask=attention_mask).logits.float().cpu().numpy()
        mask = attention_mask.bool().cpu().numpy()
        if heads is None:
            lengths = mask.sum(axis=1)
            heads_np = mask.copy()
            heads_np[:, 0] = False
            heads_np[np.arange(len(mask)), np.maximum(lengths - 1, 0)] = False
        else:
            heads_np = heads.bool().cpu().numpy() & mask
        lengths = heads_np.sum(axis=1)
        packed = np.zeros((len(logits), int(lengths.max(initial=0)), logits.shape[-1]), dtype=np.float32)
        for b in range(len(logits)):
            packed[b, : lengths[b]] = logits[b, heads_np[b]]
        tags = self.tags
        return [[tags[i] for i in path] for path in best_paths(packed, lengths, self.crf_params(), self.decoding())]


class NerwheelHybridForTokenClassification(NerwheelForTokenClassification):
    """The same classifier on the ``bert-moe-qwen2`` encoder, whose config class transformers learns from the folder."""

    config_class = BertMoeQwen2Config
