"""The token-classification pipeline a nerwheel model folder gives ``transformers`` (``custom_pipelines``).

``pipeline("token-classification", model=folder, trust_remote_code=True)``
returns :class:`NerwheelTokenClassificationPipeline`. It runs nerwheel's own
tagging pipeline (:class:`nerwheel.model.tagger.Tagger`: the same tokenizer,
sliding windows of ``sequence_length`` tokens overlapping by ``stride``,
stitching, CRF + scheme constraints, Viterbi or beam search, character-offset
spans) around the folder's model class (:mod:`nerwheel.hf.modeling_nerwheel`),
so its entities are ``nerwheel predict``'s, texts of any length included.

Each text gives a list of ``{"start", "end", "label", "text", "source", "score"}``
(``end`` exclusive, character offsets, ``score`` the mean posterior of the
entity's tags), exactly nerwheel's span JSONL entities. ``n_best=K`` gives
instead the K best readings, ``[{"score": P(path | text), "entities": [...]}, ...]``.

A span-head folder decodes with the span decoder (:mod:`nerwheel.decode_span`,
``score`` the span's probability): flat target spans by default,
``nested=True`` for nested ones, ``extensions=True`` to add the extension
labels, as ``nerwheel predict --nested --extensions``; it has no n-best.

Copied into every model folder with the modules it imports; nerwheel itself
need not be installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import Pipeline

from nerwheel.decode import Decoding
from nerwheel.hf.whole_batch import WholeBatchPipeline
from nerwheel.model.encoding import TextEncoder
from nerwheel.model.tagger import Tagger

__all__ = ["NerwheelTokenClassificationPipeline"]


@dataclass
class _Card:
    """The part of a nerwheel card a tagger reads, from ``config.json`` (``id2label`` + the ``nerwheel`` section)."""

    tags: list[str]
    scheme: str
    name: str
    decode: dict[str, Any] = field(default_factory=dict)
    head: str = "crf"
    labels: list[str] = field(default_factory=list)
    span: dict[str, Any] = field(default_factory=dict)

    @property
    def num_outputs(self) -> int:
        return int(self.span["max_width"]) * len(self.labels) if self.head == "span" else len(self.tags)


class _ModelTagger(Tagger):
    """nerwheel's tagger with the folder's PyTorch model as the forward pass."""

    def __init__(self, pipe: Pipeline, card: _Card, encoder: TextEncoder, batch_size: int, **span: Any) -> None:
        super().__init__(card, encoder, None, batch_size=batch_size, **span)
        if card.head != "span":
            self.transitions = pipe.model.crf_params()
        self.pipe = pipe

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        device = self.pipe.device
        with torch.inference_mode():
            out = self.pipe.model(input_ids=torch.from_numpy(input_ids).to(device),
                                  attention_mask=torch.from_numpy(attention_mask).to(device))
        return out.logits.float().cpu().numpy()


class NerwheelTokenClassificationPipeline(WholeBatchPipeline):
    """Texts in, nerwheel's character-offset entities out (see the module docstring); a list runs as one batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = getattr(self.model.config, "nerwheel", None) or {}
        if settings.get("lexicon"):
            folder = getattr(self.model, "name_or_path", "") or "THIS_FOLDER"
            raise ValueError(f"{folder}: this model was trained with knowledge-base lexicon features (model.lexicon), "
                             "an input only nerwheel computes, so this pipeline cannot run it: predict with "
                             f"`nerwheel predict --model {folder} TEXTS.txt`, or train it without model.lexicon "
                             "for a folder that transformers alone runs")
        head = settings.get("head", "crf")
        names = self.model.tags  # id2label: tags of a tagger, labels of a span head
        card = _Card(tags=[] if head == "span" else names, scheme=settings.get("scheme", "BIO"),
                     name=settings.get("name", ""), decode=settings.get("decode") or {}, head=head,
                     labels=names if head == "span" else [], span=settings.get("span") or {})
        backend = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        self._encoder = TextEncoder(backend, sequence_length=int(settings["sequence_length"]),
                                    stride=int(settings["stride"]), pad_id=int(settings.get("pad_id", 0)))
        self._card = card
        self._batch_size = int(settings.get("batch_size", 32))
        self.tagger = self._tagger()
        self.model.eval()

    def _tagger(self, **span: Any) -> _ModelTagger:
        return _ModelTagger(self, self._card, self._encoder, self._batch_size, **span)

    def _sanitize_parameters(self, n_best: int | None = None, decode: str | None = None, beam_size: int | None = None,
                             nested: bool | None = None, extensions: bool | None = None,
                             **_: Any) -> tuple[dict, dict, dict]:
        options: dict[str, Any] = {}
        if n_best is not None:
            options["n_best"] = int(n_best)
        if decode is not None or beam_size is not None:
            if self._card.head == "span":
                raise ValueError("decode/beam_size choose a tag-path search; a span head has none")
            current = self.tagger.decoding
            options["decoding"] = Decoding(decode or current.method, int(beam_size or current.beam_size))
        if nested is not None or extensions is not None:
            options["span"] = {"nested": nested, "extensions": extensions}
        return {}, options, {}

    def _run(self, texts: list[str], n_best: int | None = None, decoding: Decoding | None = None,
             span: dict[str, Any] | None = None) -> list[Any]:
        tagger = self.tagger
        if decoding is not None or span is not None:  # a tagger of its own for this call's options
            tagger = self._tagger(decoding=decoding, **(span or {}))
        if n_best is None:
            return [[e.to_dict() for e in ents] for ents in tagger.predict(texts)]
        return [[{"score": p, "entities": [e.to_dict() for e in ents]} for p, ents in readings]
                for readings in tagger.n_best(texts, n_best)]
