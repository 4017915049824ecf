"""Texts in, character-offset entities out, around any forward pass: the one tagging pipeline.

:class:`Tagger` owns everything but the forward pass: tokenization and sliding
windows (:mod:`nerwheel.model.encoding`), length-sorted batches, stitching
window outputs, the tag-path search the model's card asks for (Viterbi or beam,
:mod:`nerwheel.decode`) and span building, or, for a span head
(``card.head == "span"``), span selection (:mod:`nerwheel.decode_span`).
PyTorch and ONNX Runtime
(:mod:`nerwheel.model.runtime`), the Triton python backend and the Hugging Face
pipeline written into every model folder (:mod:`nerwheel.hf`) subclass it and
supply only :meth:`Tagger.run`, so they cannot disagree on anything else.

Imports only numpy, ``tokenizers`` and the numpy-only nerwheel modules: the
Hugging Face pipeline ships a copy of this file inside the model folder, where
nerwheel itself may not be installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from nerwheel.decode import CrfParams, Decoding, best_paths, marginals, n_best, tags_to_entities
from nerwheel.decode_span import SpanDecoder, SpanLayout
from nerwheel.errors import ConfigError
from nerwheel.model.encoding import Encoded, TextEncoder
from nerwheel.records import Entity

__all__ = ["Alternative", "Tagger", "TaggerCard"]

#: One of the n best readings of a text: ``(P(path | text), entities)``.
Alternative = tuple[float, list[Entity]]


class TaggerCard(Protocol):
    """What a tagger reads from a model's card (``nerwheel.json`` or the Hugging Face config)."""

    tags: list[str]
    scheme: str
    name: str
    decode: dict[str, Any]
    head: str  # crf | softmax | span
    labels: list[str]  # span heads: their outputs (targets, then extension labels)
    span: dict[str, Any]  # span heads: max_width, threshold, nested

    @property
    def num_outputs(self) -> int: ...


class Tagger:
    """Texts in, character-offset entities out; subclasses supply :meth:`run` (the forward pass).

    ``batch_size`` bounds the windows per forward pass; windows are sorted by
    length first so a batch pads little. ``decoding`` overrides the card's
    ``decode`` section (method and beam size) of a CRF or softmax head. Span
    heads only: ``nested`` returns nested target spans (default: the card's
    ``span.nested``), ``extensions`` adds the extension labels (``pos:``,
    ``kb:``...) to the output.
    """

    def __init__(self, card: TaggerCard, encoder: TextEncoder, crf: CrfParams | None, *, batch_size: int = 32,
                 decoding: Decoding | None = None, nested: bool | None = None, extensions: bool | None = None,
                 lexicon: Any = None):
        self.card = card
        self.encoder = encoder
        self.batch_size = batch_size
        self.source = f"model:{card.name}" if card.name else "model"
        # knowledge-base lexicon features, when the model reads them (nerwheel.model.lexicon.LexiconInputs,
        # given by the runtimes; not imported here, so the Hugging Face copy of this file needs no KB)
        self.lexicon = lexicon
        self.spans: SpanDecoder | None = None
        if card.head == "span":
            if decoding is not None:
                raise ConfigError(f"decode {decoding.method}: a span head selects spans, it has no tag path to "
                                  "search (drop --decode/--beam-size)", field="decode")
            self.spans = SpanDecoder(
                SpanLayout(tuple(card.labels), int(card.span["max_width"])),
                threshold=float(card.span.get("threshold", 0.5)),
                nested=bool(card.span.get("nested", False)) if nested is None else nested, extensions=bool(extensions),
            )
            return
        if nested:  # extensions: a tagger returns every label it was trained on anyway
            raise ConfigError(f"nested spans need a span head; this model has a {card.head} head (train with "
                              "model.head: span)", field="nested")
        self.transitions = (crf or CrfParams.zeros(len(card.tags))).constrained(card.tags, card.scheme)
        self.decoding = decoding or Decoding.from_dict(getattr(card, "decode", None))

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, **extra: np.ndarray) -> np.ndarray:
        """Emissions ``[B, S, T]`` float32 for int64 ``[B, S]`` inputs (``extra``: ``lexicon`` ``[B, S, F]``)."""
        raise NotImplementedError

    # -- the shared pipeline ------------------------------------------------------------------------
    def emissions(self, texts: Sequence[str]) -> tuple[list[Encoded], list[np.ndarray]]:
        """Per text: its encoding and its per-head emissions ``[heads, T]`` (windows stitched)."""
        encs = self.encoder.encode_batch(texts)
        plans = [self.encoder.windows(len(e)) for e in encs]
        items: list[tuple[int, int, np.ndarray]] = [
            (ti, wi, self.encoder.input_ids(encs[ti], w)) for ti, ws in enumerate(plans) for wi, w in enumerate(ws)
        ]
        items.sort(key=lambda it: len(it[2]))
        lex = self.lexicon
        lex_rows = {ti: lex.token_rows(texts[ti], encs[ti]) for ti in range(len(texts))} if lex else {}
        outputs: dict[tuple[int, int], np.ndarray] = {}
        for b in range(0, len(items), self.batch_size):
            chunk = items[b : b + self.batch_size]
            width = max(len(ids) for _, _, ids in chunk)
            ids = np.full((len(chunk), width), self.encoder.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for r, (_, _, row) in enumerate(chunk):
                ids[r, : len(row)] = row
                mask[r, : len(row)] = 1
            extra = {} if lex is None else {lex.name: lex.pad(
                [lex.window_rows(lex_rows[ti], plans[ti][wi]) for ti, wi, _ in chunk], width)}
            out = self.run(ids, mask, **extra)
            for r, (ti, wi, row) in enumerate(chunk):
                outputs[(ti, wi)] = out[r, : len(row)]
        stitched = [
            self.encoder.stitch(e, ws, [outputs[(ti, wi)] for wi in range(len(ws))])
            if len(e) else np.zeros((0, self.card.num_outputs), dtype=np.float32)
            for ti, (e, ws) in enumerate(zip(encs, plans, strict=True))
        ]
        return encs, stitched

    def _batches(self, emissions: Sequence[np.ndarray]) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """Stitched emissions regrouped into padded batches of similar length: (text indices, batch, lengths)."""
        order = sorted(range(len(emissions)), key=lambda i: len(emissions[i]))
        num_tags = len(self.card.tags)
        out = []
        for b in range(0, len(order), 256):
            idx = order[b : b + 256]
            lengths = np.array([len(emissions[i]) for i in idx])
            batch = np.zeros((len(idx), int(lengths.max(initial=0)), num_tags), dtype=np.float32)
            for r, i in enumerate(idx):
                batch[r, : lengths[r]] = emissions[i]
            out.append((idx, batch, lengths))
        return out

    def decode_paths(
        self, texts: Sequence[str], encs: Sequence[Encoded], emissions: Sequence[np.ndarray], *, scores: bool = True
    ) -> tuple[list[list[Entity]], list[list[int]]]:
        """Entities and the tag path (one id per label-bearing position) of each text, by the card's search.

        A span head (overlapping spans have no tag path) gives empty paths.
        """
        if self.spans is not None:
            ents = self.spans.decode(texts, encs, emissions, scores=scores, source=self.source)
            # in a record's order (start, end, label), so every caller, the HF pipeline included, lists them alike
            return [sorted(e) for e in ents], [[] for _ in texts]
        ents: list[list[Entity]] = [[] for _ in texts]
        paths: list[list[int]] = [[] for _ in texts]
        for idx, batch, lengths in self._batches(emissions):
            found = best_paths(batch, lengths, self.transitions, self.decoding)
            post = marginals(batch, lengths, self.transitions) if scores else None
            for r, i in enumerate(idx):
                paths[i] = found[r]
                ents[i] = self._entities(texts[i], encs[i], found[r], post[r] if post is not None else None)
        return ents, paths

    def decode(
        self, texts: Sequence[str], encs: Sequence[Encoded], emissions: Sequence[np.ndarray], *, scores: bool = True
    ) -> list[list[Entity]]:
        """Entities of stitched emissions (see :meth:`decode_paths`)."""
        return self.decode_paths(texts, encs, emissions, scores=scores)[0]

    def _entities(self, text: str, enc: Encoded, path: Sequence[int], post: np.ndarray | None) -> list[Entity]:
        conf = post[np.arange(len(path)), list(path)] if post is not None else None
        return tags_to_entities(text, path, enc.head_spans, self.card.tags, self.card.scheme, confidences=conf,
                                source=self.source)

    def predict(self, texts: Sequence[str], *, scores: bool = True) -> list[list[Entity]]:
        """Entities of each text, in input order; ``score`` is the mean posterior of the entity's tags."""
        texts = list(texts)
        encs, em = self.emissions(texts)
        return self.decode(texts, encs, em, scores=scores)

    def n_best(self, texts: Sequence[str], n: int) -> list[list[Alternative]]:
        """Up to ``n`` readings of each text, best first, each with ``P(path | text)`` and its entities.

        The first reading is what :meth:`predict` returns (same search); with
        ``decode: beam`` the readings are the best paths through the beams.
        """
        texts = list(texts)
        encs, em = self.emissions(texts)
        return self.decode_n_best(texts, encs, em, n)

    def decode_n_best(
        self, texts: Sequence[str], encs: Sequence[Encoded], emissions: Sequence[np.ndarray], n: int
    ) -> list[list[Alternative]]:
        """:meth:`n_best` over stitched emissions (see :meth:`decode_paths`); CRF and softmax heads only."""
        if self.spans is not None:
            raise ConfigError("n-best readings are tag paths of a CRF or softmax head; a span head scores each span "
                              "on its own (its entities' scores are their probabilities): drop --n-best", field="n_best")
        out: list[list[Alternative]] = [[] for _ in texts]
        for idx, batch, lengths in self._batches(emissions):
            rows = n_best(batch, lengths, self.transitions, n, self.decoding)
            post = marginals(batch, lengths, self.transitions)
            for r, i in enumerate(idx):
                out[i] = [(round(p, 6), self._entities(texts[i], encs[i], path, post[r])) for path, p in rows[r]]
        return out
