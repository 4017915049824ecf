"""Backbones by ``model_id``: ``tiny``, ``e5-small``, ``bert-moe-qwen2``, a Hugging Face directory or hub id, or a nerwheel model.

Whatever the source, the result is the same pair: an encoder and a fast
tokenizer that isolates every CJK character (:func:`nerwheel.model.encoding.ensure_char_split`).
A nerwheel model directory (it holds ``nerwheel.json``) is the "continue
training" case: its whole classifier, head and CRF included, is the start.

``bert-moe-qwen2`` (:mod:`nerwheel.model.hybrid`) puts the ``tiny`` BERT or a
BERT directory, a mixture of experts and Qwen2 layers (a Qwen2 directory, or
built from ``model.hybrid`` sizes) into one encoder.

A hub id is fetched only when the hub answers: without a network, a model not
in the Hugging Face cache fails at once, in one line naming the offline
choices, instead of after a minute of retries (:mod:`nerwheel.model.hub`, which the CLI asks first).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer

from nerwheel.errors import ConfigError
from nerwheel.labels import TagSet
from nerwheel.model.card import ModelCard
from nerwheel.model.classifier import TokenClassifier, build_encoder
from nerwheel.model.config import ModelSettings
from nerwheel.model.encoding import ensure_char_split, special_ids
from nerwheel.model.hub import HYBRID, require_local_or_reachable
from nerwheel.model.layout import CARD_FILE, PRETRAIN_REPORT, TOKENIZER_FILE
from nerwheel.model.tiny import SPECIAL_TOKENS, char_vocab, tiny_config, tiny_tokenizer

__all__ = ["Backbone", "adapted_from", "check_positions", "is_nerwheel_model", "load_backbone", "save_tokenizer"]

if TYPE_CHECKING:
    from nerwheel.model.span import SpanClassifier

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """An encoder (or a whole previous classifier) and its tokenizer, ready to be fine-tuned."""

    name: str
    tokenizer: Tokenizer
    special_tokens: dict[str, str]
    pad_id: int
    encoder: object | None = None  # a transformers PreTrainedModel for fresh backbones
    previous: Any = None  # the model being continued: a TokenClassifier or a SpanClassifier
    previous_card: ModelCard | None = None
    info: dict[str, object] = field(default_factory=dict)

    def classifier(self, tagset: TagSet, settings: ModelSettings) -> TokenClassifier:
        """The model to train: a fresh head on the encoder, or the previous model with its tags extended."""
        if self.previous is not None:
            card = self.previous_card
            assert card is not None
            if card.head != settings.head:
                raise ConfigError(
                    f"the model being continued has a {card.head} head but the config asks for {settings.head}; "
                    f"set model.head: {card.head}"
                )
            if card.scheme != tagset.scheme:
                raise ConfigError(f"the model being continued uses scheme {card.scheme}; set model.scheme: {card.scheme}")
            self.previous.retag(tagset.tags)
            self.previous.dropout.p = settings.dropout
            return self.previous
        return TokenClassifier(self.encoder, tagset.tags, head=settings.head, dropout=settings.dropout)  # type: ignore[arg-type]

    def span_classifier(self, labels: Sequence[str], settings: ModelSettings) -> SpanClassifier:
        """The span head to train (:mod:`nerwheel.model.span`): fresh on the encoder, or the previous one relabelled."""
        from nerwheel.model.span import SpanClassifier

        span = settings.span
        if self.previous is not None:
            if not isinstance(self.previous, SpanClassifier):
                raise ConfigError(f"the model being continued has a {self.previous.head} head but the config asks "
                                  f"for span; set model.head: {self.previous.head}", field="model.head")
            if self.previous.max_width != span.max_width:
                raise ConfigError(f"the model being continued has model.span.max_width={self.previous.max_width}; "
                                  f"set model.span.max_width: {self.previous.max_width}", field="model.span.max_width")
            self.previous.retag(labels)
            self.previous.dropout.p = settings.dropout
            self.previous.extension_weight = span.extension_weight
            return self.previous
        _, suffix = special_ids(self.tokenizer)
        return SpanClassifier(self.encoder, labels, max_width=span.max_width, size=span.size,  # type: ignore[arg-type]
                              suffix_tokens=len(suffix), dropout=settings.dropout,
                              extension_weight=span.extension_weight)


def is_nerwheel_model(path: str | Path) -> bool:
    return (Path(path) / CARD_FILE).is_file()


def load_backbone(settings: ModelSettings, *, texts: Sequence[str], sequence_length: int) -> Backbone:
    """Resolve ``settings.init_from`` or ``settings.model_id``; ``texts`` feed data-made vocabularies."""
    source = settings.init_from or settings.model_id
    if is_nerwheel_model(source):
        backbone = _from_nerwheel(Path(source))
        assert backbone.previous is not None
        check_positions(backbone.previous.encoder.config, sequence_length, source)
        return backbone
    if settings.init_from:
        raise FileNotFoundError(f"model.init_from={source!r} is not a nerwheel model directory (no {CARD_FILE})")
    if source == "tiny":
        return _per_char(_tiny(settings, texts, sequence_length), settings)
    if source == HYBRID:
        backbone = _hybrid(settings, texts, sequence_length)
        check_positions(backbone.encoder.config, sequence_length, source)  # type: ignore[attr-defined]
        return _per_char(backbone, settings)
    if source == "e5-small":
        from nerwheel.model import e5small

        # Pruned to the pieces the training texts need, plus every single-character piece: this model
        # reads Chinese one character at a time, and unseen test characters should not all become <unk>.
        directory = e5small.ensure_model_dir(
            Path(settings.cache_dir) if settings.cache_dir else None, corpus=list(texts), all_single_chars=True
        )
        backbone = _from_hf(str(directory))
        backbone.name = "e5-small"
        backbone.info["converted_dir"] = str(directory)
    else:
        backbone = _from_hf(source)
        base = adapted_from(source)
        if base:
            backbone.info["adapted_from"] = base
    check_positions(backbone.encoder.config, sequence_length, source)  # type: ignore[attr-defined]
    return _per_char(backbone, settings)


def adapted_from(source: str) -> str | None:
    """The backbone a ``nerwheel pretrain`` folder continued (its ``pretrain.json``), else None.

    Domain-adaptive pretraining changes the weights, not the architecture or the fine-tuning regime, so such a
    folder trains with its base's measured schedule (``e5-small``: lr 2e-4, 6 epochs) instead of the generic
    values an unknown Hugging Face directory gets.
    """
    report = Path(source) / PRETRAIN_REPORT
    if not report.is_file():
        return None
    try:
        base = json.loads(report.read_text(encoding="utf-8")).get("backbone")
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("%s: unreadable (%s); the folder trains with the generic defaults", report, exc)
        return None
    return base if isinstance(base, str) and base else None


def _per_char(backbone: Backbone, settings: ModelSettings) -> Backbone:
    """``model.tokenization: chars``: one piece per character (the tokenizer is saved with the model, so every
    runtime reads texts the same way)."""
    if settings.tokenization == "chars":
        backbone.tokenizer = ensure_char_split(backbone.tokenizer, every_char=True)
        backbone.info["tokenization"] = "chars"
    return backbone


def check_positions(config: object, sequence_length: int, source: str) -> None:
    """A window longer than the encoder's position table fails deep inside torch; say so up front, with the fix.

    RoBERTa-style encoders (XLM-R, e5-small) number positions from ``pad_token_id + 1``.
    """
    rows = getattr(config, "max_position_embeddings", None)
    if not isinstance(rows, int):
        return
    model_type = str(getattr(config, "model_type", ""))
    roberta_style = "roberta" in model_type or model_type == "camembert"
    offset = (getattr(config, "pad_token_id", 0) or 0) + 1 if roberta_style else 0
    limit = rows - offset
    if sequence_length > limit:
        raise ConfigError(
            f"training.sequence_length={sequence_length} is longer than the {limit} positions backbone {source} "
            f"can read; set training.sequence_length to {limit} or less (long texts are read in sliding windows)"
        )


def _tiny(settings: ModelSettings, texts: Sequence[str], sequence_length: int) -> Backbone:
    t = settings.tiny
    tokenizer = tiny_tokenizer(char_vocab(texts, min_count=t.min_char_count))
    config = tiny_config(
        tokenizer.get_vocab_size(), hidden_size=t.hidden_size, num_layers=t.num_layers, num_heads=t.num_heads,
        intermediate_size=t.intermediate_size, max_positions=max(sequence_length, 512),
    )
    return Backbone(
        name="tiny", tokenizer=tokenizer, special_tokens=dict(SPECIAL_TOKENS),
        pad_id=tokenizer.token_to_id(SPECIAL_TOKENS["pad_token"]), encoder=build_encoder(config),
        info={"vocab_size": tokenizer.get_vocab_size(), "pretrained": False},
    )


def _hybrid(settings: ModelSettings, texts: Sequence[str], sequence_length: int) -> Backbone:
    """BERT (``tiny`` or a directory) -> mixture of experts -> Qwen2 layers (a directory, or built from config)."""
    from transformers import Qwen2Config, Qwen2Model

    from nerwheel.model.hybrid import BertMoeQwen2Config, BertMoeQwen2Model, shrink_qwen2

    h = settings.hybrid
    bert_part = _tiny(settings, texts, sequence_length) if h.bert == "tiny" else _from_hf(h.bert)
    bert = bert_part.encoder
    if bert.config.model_type != "bert":  # type: ignore[attr-defined]
        raise ConfigError(f"model.hybrid.bert={h.bert!r} is a {bert.config.model_type} model; "  # type: ignore[attr-defined]
                          "bert-moe-qwen2 takes `tiny` or a BERT directory", field="model.hybrid.bert")
    if h.qwen2:
        require_local_or_reachable(h.qwen2)
        qwen2 = shrink_qwen2(Qwen2Model.from_pretrained(h.qwen2), h.qwen2_layers)
    else:
        if h.qwen2_hidden_size % h.qwen2_num_heads or h.qwen2_num_heads % h.qwen2_num_kv_heads:
            raise ConfigError(f"model.hybrid: qwen2_num_heads={h.qwen2_num_heads} must divide qwen2_hidden_size="
                              f"{h.qwen2_hidden_size} and be a multiple of qwen2_num_kv_heads={h.qwen2_num_kv_heads}",
                              field="model.hybrid.qwen2_num_heads")
        qwen2 = shrink_qwen2(Qwen2Model(Qwen2Config(
            vocab_size=1, hidden_size=h.qwen2_hidden_size, intermediate_size=h.qwen2_intermediate_size,
            num_hidden_layers=h.qwen2_num_layers, num_attention_heads=h.qwen2_num_heads,
            num_key_value_heads=h.qwen2_num_kv_heads, max_position_embeddings=max(sequence_length, 512),
        )))
    config = BertMoeQwen2Config(
        bert_config=bert.config, qwen2_config=qwen2.config, num_experts=h.num_experts, top_k=h.top_k,  # type: ignore[attr-defined]
        expert_size=h.expert_size, router_aux_loss_coef=h.router_aux_loss_coef, freeze_moe=h.freeze_moe,
        bidirectional=h.bidirectional, pad_token_id=bert_part.pad_id,
    )
    bert_part.encoder = BertMoeQwen2Model(config, bert=bert, qwen2=qwen2)  # type: ignore[arg-type]
    bert_part.name = HYBRID
    bert_part.info.update(bert=h.bert, qwen2=h.qwen2 or "config",
                          pretrained=bool(bert_part.info.get("pretrained")) or bool(h.qwen2))
    return bert_part


def _from_hf(model_id: str) -> Backbone:
    from transformers import AutoModel, AutoTokenizer

    require_local_or_reachable(model_id)
    hf_tok = AutoTokenizer.from_pretrained(model_id)
    backend = getattr(hf_tok, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(
            f"{model_id}: its tokenizer is not a fast (Rust) tokenizer; character offsets need one "
            "(save it with tokenizer.json)"
        )
    try:
        encoder = AutoModel.from_pretrained(model_id, add_pooling_layer=False)
    except TypeError:
        encoder = AutoModel.from_pretrained(model_id)
    specials = {k: str(v) for k, v in hf_tok.special_tokens_map.items() if isinstance(v, str)}
    pad_id = hf_tok.pad_token_id if hf_tok.pad_token_id is not None else 0
    return Backbone(
        name=model_id, tokenizer=ensure_char_split(Tokenizer.from_str(backend.to_str())),
        special_tokens=specials, pad_id=int(pad_id), encoder=encoder, info={"pretrained": True},
    )


def _from_nerwheel(directory: Path) -> Backbone:
    from nerwheel.model.heads import load_model

    card = ModelCard.read(directory)
    model = load_model(directory, card)
    tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
    from transformers import AutoTokenizer

    specials = {k: str(v) for k, v in AutoTokenizer.from_pretrained(directory).special_tokens_map.items()
                if isinstance(v, str)}
    return Backbone(
        name=card.backbone, tokenizer=tokenizer, special_tokens=specials, pad_id=card.pad_id,
        previous=model, previous_card=card,
        info={"continued_from": str(directory), "pretrained": bool(card.training.get("pretrained", True))},
    )


def save_tokenizer(tokenizer: Tokenizer, special_tokens: dict[str, str], directory: str | Path, max_length: int) -> None:
    """Save as a Hugging Face fast tokenizer (``tokenizer.json`` + config) that ``AutoTokenizer`` loads as is."""
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, **special_tokens).save_pretrained(
        str(directory)
    )
