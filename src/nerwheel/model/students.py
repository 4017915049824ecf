"""Students for distillation: what a ``--student`` spec means, and building that model from its teacher.

Two kinds, so a user picks a point on the speed/F1 curve:

- ``tiny[:key=value,...]``: the ``tiny`` BERT trained from scratch, sized by
  :class:`~nerwheel.model.config.TinySettings` keys
  (``tiny:hidden_size=128,num_layers=2,num_heads=2,intermediate_size=512``),
  with a character vocabulary made from the distillation texts;
- ``shallow:K[,vocab=pruned|full]``: the teacher itself cut to its first ``K``
  encoder layers (embeddings, those layers, the classifier head), its
  vocabulary pruned (:func:`prune_tokenizer`) to the pieces the distillation
  texts use plus the single-character pieces of every character they contain.
  Pruning keeps the tokenisation of those texts exactly the teacher's
  (checked) and shrinks the embedding matrix; it does not change the
  arithmetic per text, the layer count does.

Tagger students start from the teacher's CRF transitions (they encode the
scheme's grammar, which does not depend on the encoder). Each student is a
normal :class:`~nerwheel.model.classifier.TokenClassifier` with its own
tokenizer: it trains, exports and serves like any other model.

The spec and the shallow cut are task-neutral: :func:`shallow_student` cuts
any model whose encoder is a BERT-family module (``encoder.layer``), so the
classifier's students (:mod:`nerwheel.tasks.classify.distill`) are cut here
too; only the ``tiny`` build is the task's own.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from tokenizers import Tokenizer

from nerwheel.errors import ConfigError
from nerwheel.model.backbones import Backbone, load_backbone
from nerwheel.model.classifier import TokenClassifier
from nerwheel.model.config import ModelSettings, TinySettings

__all__ = ["StudentSpec", "build_student", "parse_student", "prune_tokenizer", "shallow_student", "vocabulary_for"]

log = logging.getLogger(__name__)

#: Special tokens of the BERT and XLM-R families: kept by every pruned vocabulary.
SPECIAL_SPELLINGS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>")
FORMS = "tiny, tiny:hidden_size=H,num_layers=L,num_heads=A,intermediate_size=F, shallow:K, shallow:K,vocab=full"


@dataclass(frozen=True)
class StudentSpec:
    """A parsed ``--student`` value."""

    kind: str  # "tiny" or "shallow"
    layers: int | None = None
    tiny: TinySettings = field(default_factory=TinySettings)
    prune_vocabulary: bool = True

    @property
    def name(self) -> str:
        if self.kind == "shallow":
            return f"shallow-{self.layers}"
        t = self.tiny
        return f"tiny-{t.hidden_size}x{t.num_layers}"

    @property
    def learning_rate(self) -> float:
        """The default student learning rate: a fresh ``tiny`` learns fast, a cut pretrained encoder is fine-tuned."""
        return 1e-3 if self.kind == "tiny" else 1e-4


def _pairs(text: str, spec: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ConfigError(f"student {spec!r}: {item!r} is not key=value; allowed forms: {FORMS}",
                              field="student")
        out[key.strip()] = value.strip()
    return out


def parse_student(spec: str) -> StudentSpec:
    """``tiny``, ``tiny:k=v,...`` or ``shallow:K[,vocab=pruned|full]`` -> :class:`StudentSpec` (or a ConfigError)."""
    kind, _, rest = spec.strip().partition(":")
    if kind == "tiny":
        try:
            return StudentSpec("tiny", tiny=TinySettings(**_pairs(rest, spec)))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'tiny'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"student {spec!r}: {problems} (keys: {', '.join(TinySettings.model_fields)})",
                              field="student") from None
    if kind == "shallow":
        head, _, options = rest.partition(",")
        if not head.strip().isdigit() or int(head) < 1:
            raise ConfigError(f"student {spec!r}: shallow needs a layer count K >= 1 (shallow:4); allowed forms: "
                              f"{FORMS}", field="student")
        extra = _pairs(options, spec)
        vocab = extra.pop("vocab", "pruned")
        if extra or vocab not in ("pruned", "full"):
            raise ConfigError(f"student {spec!r}: shallow takes only vocab=pruned|full; allowed forms: {FORMS}",
                              field="student")
        return StudentSpec("shallow", layers=int(head), prune_vocabulary=vocab == "pruned")
    raise ConfigError(f"Invalid student: {spec!r}. Allowed forms are: {FORMS}", field="student")


# -- vocabulary pruning -----------------------------------------------------------------------------------
def vocabulary_for(tok: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Ids a pruned vocabulary keeps (ascending): special tokens, every id ``texts`` produce, single characters.

    Single-character pieces (``c``, ``▁c``, ``##c``) of every character in the
    texts are kept too, so a character seen only inside a longer piece still
    has a piece of its own.
    """
    vocab = tok.get_vocab()
    keep = set(tok.get_added_tokens_decoder()) | {vocab[t] for t in SPECIAL_SPELLINGS if t in vocab}
    keep.update(tok.encode("a", add_special_tokens=True).ids)  # what the post-processor adds around a text
    for start in range(0, len(texts), 4096):
        for enc in tok.encode_batch(list(texts[start : start + 4096]), add_special_tokens=False):
            keep.update(enc.ids)
    chars = {c for t in texts for c in t if not c.isspace()}
    for c in chars:
        for form in (c, "\u2581" + c, "##" + c):
            if form in vocab:
                keep.add(vocab[form])
    return np.array(sorted(keep), dtype=np.int64)


def _remap_processor(node: Any, new_id: dict[int, int]) -> None:
    """Special-token ids inside a post-processor spec (Template, Roberta/Bert, Sequence), in place."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "TemplateProcessing":
            for special in node.get("special_tokens", {}).values():
                special["ids"] = [new_id[i] for i in special["ids"]]
        elif kind in ("RobertaProcessing", "BertProcessing"):
            for key in ("sep", "cls"):
                node[key] = [node[key][0], new_id[node[key][1]]]
        for sub in node.get("processors", []) or []:
            _remap_processor(sub, new_id)


def prune_tokenizer(tok: Tokenizer, keep: np.ndarray) -> Tokenizer:
    """A copy of ``tok`` holding only the ids in ``keep`` (ascending), renumbered in order.

    Works on the tokenizer's own JSON (Unigram and WordPiece models): the
    normaliser, pre-tokeniser and decoder stay as they are; special-token ids
    in ``added_tokens`` and the post-processor are renumbered. Removing pieces
    a text never used cannot change how that text is cut (Unigram's best path
    and WordPiece's longest match only ever used kept pieces).
    """
    spec = json.loads(tok.to_str())
    new_id = {int(old): i for i, old in enumerate(keep.tolist())}
    model = spec["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][i] for i in keep.tolist()]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
    elif model["type"] == "WordPiece":
        by_id = {i: t for t, i in model["vocab"].items()}
        model["vocab"] = {by_id[old]: i for old, i in new_id.items()}
    else:
        raise ConfigError(f"cannot prune a {model['type']} vocabulary (Unigram and WordPiece only); "
                          "use shallow:K,vocab=full", field="student")
    for added in spec.get("added_tokens", []):
        added["id"] = new_id[added["id"]]
    _remap_processor(spec.get("post_processor"), new_id)
    return Tokenizer.from_str(json.dumps(spec))


# -- building a student -----------------------------------------------------------------------------------
def _layers(encoder: Any) -> torch.nn.ModuleList:
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ConfigError(f"a shallow student needs a BERT-family teacher (encoder.layer); "
                          f"{type(encoder).__name__} has none: use a tiny student", field="student")
    return layers


def shallow_student(spec: StudentSpec, teacher: torch.nn.Module, teacher_tok: Tokenizer, teacher_pad_id: int,
                    texts: Sequence[str], *, encoder_of: Callable[[Any], Any] = lambda m: m.encoder
                    ) -> tuple[Any, Backbone]:
    """A copy of ``teacher`` cut to its first ``spec.layers`` encoder layers (vocabulary pruned to ``texts``).

    ``encoder_of`` finds the BERT-family encoder inside the model (a tagger's
    ``.encoder``; a Hugging Face sequence classifier's ``.base_model``); the
    rest of the model (its head) is copied as it is. Returns the student and
    the backbone (pruned tokenizer, special tokens, pad id, sizes) it is saved
    with.
    """
    student = copy.deepcopy(teacher)
    encoder = encoder_of(student)
    layers = _layers(encoder)
    if spec.layers is None or spec.layers > len(layers):
        raise ConfigError(f"student shallow:{spec.layers}: the teacher has {len(layers)} encoder layers; "
                          f"choose K from 1 to {len(layers)}", field="student")
    encoder.encoder.layer = torch.nn.ModuleList(list(layers)[: spec.layers])
    encoder.config.num_hidden_layers = spec.layers
    info: dict[str, Any] = {"teacher_layers": len(layers), "layers": spec.layers,
                            "teacher_vocab_size": teacher_tok.get_vocab_size()}
    tokenizer = teacher_tok
    if spec.prune_vocabulary:
        keep = vocabulary_for(teacher_tok, texts)
        tokenizer = prune_tokenizer(teacher_tok, keep)
        emb = encoder.get_input_embeddings()
        pruned = torch.nn.Embedding(len(keep), emb.embedding_dim, padding_idx=None)
        with torch.no_grad():
            pruned.weight.copy_(emb.weight[torch.from_numpy(keep)])
        encoder.set_input_embeddings(pruned)
        encoder.config.vocab_size = len(keep)
        old_pad = encoder.config.pad_token_id
        if old_pad is not None:
            encoder.config.pad_token_id = int(np.searchsorted(keep, old_pad))
        _check_same_cut(teacher_tok, tokenizer, keep, texts)
        info["vocab_size"] = len(keep)
    specials = {f"{k}_token": v for k, v in _specials(tokenizer).items()}
    pad_id = int(encoder.config.pad_token_id if encoder.config.pad_token_id is not None else teacher_pad_id)
    return student, Backbone(name=spec.name, tokenizer=tokenizer, special_tokens=specials, pad_id=pad_id, info=info)


def _check_same_cut(teacher: Tokenizer, student: Tokenizer, keep: np.ndarray, texts: Sequence[str]) -> None:
    """The pruned tokenizer must cut the distillation texts exactly as the teacher's (ids mapped)."""
    sample = list(texts[:2000])
    for t, s, text in zip(teacher.encode_batch(sample, add_special_tokens=False),
                          student.encode_batch(sample, add_special_tokens=False), sample, strict=True):
        if keep[np.asarray(s.ids, dtype=np.int64)].tolist() != t.ids:
            raise AssertionError(f"the pruned vocabulary cuts {text!r} differently from the teacher's")


def build_student(spec: StudentSpec, teacher: TokenClassifier, teacher_tok: Tokenizer, teacher_pad_id: int,
                  texts: Sequence[str], *, sequence_length: int, dropout: float = 0.1) -> tuple[TokenClassifier, Backbone]:
    """The untrained student for ``spec`` and the backbone (tokenizer, special tokens, pad id) it is saved with."""
    info: dict[str, Any] = {"student": spec.name}
    if spec.kind == "tiny":
        settings = ModelSettings(model_id="tiny", head=teacher.head, dropout=dropout, tiny=spec.tiny)
        backbone = load_backbone(settings, texts=texts, sequence_length=sequence_length)
        student = TokenClassifier(backbone.encoder, teacher.tags, head=teacher.head, dropout=dropout)  # type: ignore[arg-type]
    else:
        student, backbone = shallow_student(spec, teacher, teacher_tok, teacher_pad_id, texts)
    if teacher.crf is not None and student.crf is not None:
        student.crf.load_state_dict(teacher.crf.state_dict())
    backbone.name = spec.name
    backbone.info.update(info)
    return student, backbone


def _specials(tok: Tokenizer) -> dict[str, str]:
    """Hugging Face special-token roles of a tokenizer's special tokens, by their usual spellings."""
    roles = {"pad": ("<pad>", "[PAD]"), "unk": ("<unk>", "[UNK]"), "cls": ("<s>", "[CLS]"), "sep": ("</s>", "[SEP]"),
             "mask": ("<mask>", "[MASK]"), "bos": ("<s>",), "eos": ("</s>",)}
    added = set(tok.get_vocab()) & set(SPECIAL_SPELLINGS)
    return {role: next(s for s in spellings if s in added) for role, spellings in roles.items()
            if any(s in added for s in spellings)}
