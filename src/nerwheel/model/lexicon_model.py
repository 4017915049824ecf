"""A token classifier that adds knowledge-base lexicon features to the encoder output (SoftLexicon-style).

``emissions = Linear(Dropout(encoder(x) + W @ lexicon))``: each
``(category, position)`` column of :class:`~nerwheel.kb.lexicon.LexiconFeatures`
gets a learned vector of the encoder's width, and a character's vector is the
sum over the matches covering it (SoftLexicon's pooled B/M/E/S word sets, with
one embedding per match category instead of per word). ``W`` starts small, so
training begins as the plain tagger and learns how far to trust the knowledge
base; it trains at the head's learning rate (it is not an ``encoder.``
parameter).

Saved as the plain token-classification directory (which Hugging Face loads
without the lexicon) plus ``lexicon.safetensors`` (``W``); the card's
``lexicon`` section names the feature columns and the knowledge base they came
from. ONNX graphs of such a model take a third input, ``lexicon``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nerwheel.model.classifier import TokenClassifier
from nerwheel.model.layout import LEXICON_FILE
from nerwheel.model.lexicon import INPUT_NAME
from nerwheel.model.lora import unwrap

__all__ = ["LexiconTokenClassifier"]


class LexiconTokenClassifier(TokenClassifier):
    """:class:`TokenClassifier` with a third input, ``lexicon`` (float ``[batch, seq, width]``)."""

    input_names = ("input_ids", "attention_mask", INPUT_NAME)

    def __init__(self, encoder: nn.Module, tags: Sequence[str], *, width: int, head: str = "crf",
                 dropout: float = 0.1) -> None:
        super().__init__(encoder, tags, head=head, dropout=dropout)  # type: ignore[arg-type]
        self.lexicon = nn.Linear(width, unwrap(encoder).config.hidden_size, bias=False)
        nn.init.normal_(self.lexicon.weight, std=self._init_std)

    @property
    def width(self) -> int:
        return int(self.lexicon.in_features)

    @classmethod
    def from_classifier(cls, model: TokenClassifier, width: int) -> LexiconTokenClassifier:
        """``model`` with lexicon features added (``model`` itself when it already reads ``width`` of them)."""
        if isinstance(model, LexiconTokenClassifier):
            if model.width != width:
                raise ValueError(f"the model reads {model.width} lexicon columns, the features have {width}")
            return model
        out = cls(model.encoder, model.tags, width=width, head=model.head, dropout=model.dropout.p)
        out.classifier, out.crf = model.classifier, model.crf
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,  # type: ignore[override]
                lexicon: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden + self.lexicon(lexicon.to(hidden.dtype))
        return self.classifier(self.dropout(hidden))

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        save_file({"weight": self.lexicon.weight.detach().contiguous().cpu()}, str(Path(directory) / LEXICON_FILE),
                  metadata={"format": "pt"})

    @classmethod
    def load(cls, directory: str | Path, *, head: str, dropout: float | None = None) -> LexiconTokenClassifier:
        path = Path(directory) / LEXICON_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; the card says this model reads lexicon features")
        weight = load_file(str(path))["weight"]
        model = cls.from_classifier(TokenClassifier.load(directory, head=head, dropout=dropout), weight.shape[1])
        model.lexicon.load_state_dict({"weight": weight})
        return model

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "lexicon_columns": self.width}
