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

from nerwheel.decode import CrfParams, Decoding, best_paths_batch, entities_batch, marginals, n_best, tags_to_entities
from nerwheel.decode_span import SpanDecoder, SpanLayout
from nerwheel.errors import ConfigError
from nerwheel.model.encoding import Encoded, EncodedBatch, TextEncoder, pad_ragged
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

    The hot path has no per-text Python loop: texts are tokenized in one call
    to the Rust tokenizer and read as flat arrays (:meth:`TextEncoder.encode_flat`),
    each forward batch is built by one scatter (:func:`pad_ragged`), each head
    takes its emissions from the window that owns it by one gather, and
    decoding (path search, marginals, spans) runs on padded batches
    (:mod:`nerwheel.decode`). Only the :class:`~nerwheel.records.Entity`
    objects are built one by one.
    """

    #: Texts decoded together (the path search and marginals run on one padded ``[n, L, T]`` batch).
    decode_batch_size = 256

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

    @property
    def labels(self) -> tuple[str, ...]:
        """The entity labels the model predicts (its card): what an evaluation judges gold labels against."""
        return tuple(self.card.labels)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, **extra: np.ndarray) -> np.ndarray:
        """Emissions ``[B, S, T]`` float32 for int64 ``[B, S]`` inputs (``extra``: ``lexicon`` ``[B, S, F]``)."""
        raise NotImplementedError

    # -- the shared pipeline ------------------------------------------------------------------------
    def _plan(self, batch: EncodedBatch) -> tuple[np.ndarray, ...]:
        """Windows of every text as arrays ``(text, start, end, own_start, own_end)``.

        A text that fits one window (nearly all) takes its window without a
        Python call; only longer texts go through :meth:`TextEncoder.windows`.
        Texts without tokens get no window.
        """
        counts = batch.token_counts
        single = np.flatnonzero((counts > 0) & (counts <= self.encoder.content_length))
        cols = [single, np.zeros_like(single), counts[single], np.zeros_like(single), counts[single]]
        long_rows = [(int(t), w) for t in np.flatnonzero(counts > self.encoder.content_length)
                     for w in self.encoder.windows(int(counts[t]))]
        if long_rows:
            extra = np.array([(t, w.start, w.end, w.own_start, w.own_end) for t, w in long_rows], dtype=np.int64)
            cols = [np.concatenate([c, extra[:, k]]) for k, c in enumerate(cols)]
        return tuple(np.asarray(c, dtype=np.int64) for c in cols)

    def forward_flat(self, batch: EncodedBatch, texts: Sequence[str] | None = None) -> np.ndarray:
        """Emissions ``[H, T]`` of every head of every text (windows stitched), in ``batch`` order.

        A model that reads lexicon features needs ``texts`` (the features come
        from the characters): their per-token rows are gathered per window
        like the ids, zeros over the special tokens.
        """
        enc = self.encoder
        text, start, end, own_start, own_end = self._plan(batch)
        heads_out = np.zeros((len(batch.heads), self.card.num_outputs), dtype=np.float32)
        if not len(text):
            return heads_out
        lex = self.lexicon
        lex_flat = None
        if lex is not None:
            if texts is None:
                raise ValueError("forward_flat: a lexicon-feature model needs the texts")
            lex_flat = np.concatenate([lex.token_rows(texts[t], batch[t]) for t in range(len(batch))]) if len(
                batch) else np.zeros((0, lex.width), np.float32)
        # Which window owns each head: own ranges tile each text's tokens, so in global token positions
        # they are sorted intervals and a binary search finds the owner.
        own_global = batch.token_offsets[text] + own_start
        by_own = np.argsort(own_global, kind="stable")
        head_text = np.repeat(np.arange(len(batch)), batch.head_counts)
        head_global = batch.token_offsets[head_text] + batch.heads
        owner = by_own[np.searchsorted(own_global[by_own], head_global, side="right") - 1]
        prefix, suffix = np.asarray(enc.prefix, np.int64), np.asarray(enc.suffix, np.int64)
        n_prefix = len(prefix)
        column = n_prefix + batch.heads - start[owner]
        lengths = end - start
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        chunk_of_head = position[owner] // self.batch_size
        heads_by_chunk = np.argsort(chunk_of_head, kind="stable")
        bounds = np.searchsorted(chunk_of_head[heads_by_chunk], np.arange(0, len(order) // self.batch_size + 2))
        for c, b in enumerate(range(0, len(order), self.batch_size)):
            rows = order[b : b + self.batch_size]
            n = lengths[rows]
            width = n_prefix + int(n.max()) + len(suffix)
            ids = np.empty((len(rows), width), dtype=np.int64)
            ids[:, :n_prefix] = prefix
            ids[:, n_prefix:] = pad_ragged(batch.ids, batch.token_offsets[text[rows]] + start[rows], n,
                                           width - n_prefix, fill=enc.pad_id)
            for k, token in enumerate(suffix):
                ids[np.arange(len(rows)), n_prefix + n + k] = token
            mask = (np.arange(width)[None, :] < (n_prefix + n + len(suffix))[:, None]).astype(np.int64)
            extra = {}
            if lex_flat is not None:
                rows_lex = np.zeros((len(rows), width, lex_flat.shape[1]), dtype=np.float32)
                rows_lex[:, n_prefix:] = pad_ragged(lex_flat, batch.token_offsets[text[rows]] + start[rows], n,
                                                    width - n_prefix)
                extra[lex.name] = rows_lex  # type: ignore[union-attr]
            out = self.run(ids, mask, **extra)
            sel = heads_by_chunk[bounds[c] : bounds[c + 1]]
            heads_out[sel] = out[position[owner[sel]] - b, column[sel]]
        return heads_out

    def window_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens of every window the texts become (special tokens included, no padding): the model's real input."""
        _, start, end, _, _ = self._plan(self.encoder.encode_flat(texts))
        return end - start + len(self.encoder.prefix) + len(self.encoder.suffix)

    def emissions(self, texts: Sequence[str]) -> tuple[list[Encoded], list[np.ndarray]]:
        """Per text: its encoding and its per-head emissions ``[heads, T]`` (windows stitched)."""
        batch = self.encoder.encode_flat(texts)
        flat = self.forward_flat(batch, texts)
        return batch.items(), np.split(flat, batch.head_offsets[1:-1])

    def decode_flat(
        self, texts: Sequence[str], flat: np.ndarray, offsets: np.ndarray, head_spans: np.ndarray, *,
        scores: bool = True,
    ) -> tuple[list[list[Entity]], list[list[int]]]:
        """Entities and tag paths from flat head emissions: text ``i`` owns rows ``offsets[i]:offsets[i + 1]``.

        Texts are decoded in length-sorted padded batches of
        :attr:`decode_batch_size`; ``head_spans`` (flat, like ``flat``) maps
        positions to characters.
        """
        lengths = np.diff(offsets)
        ents: list[list[Entity]] = [[] for _ in texts]
        paths: list[list[int]] = [[] for _ in texts]
        order = np.argsort(lengths, kind="stable")
        for b in range(0, len(order), self.decode_batch_size):
            idx = order[b : b + self.decode_batch_size]
            n = lengths[idx]
            batch = pad_ragged(flat, offsets[idx], n, int(n.max(initial=0)))
            best = best_paths_batch(batch, n, self.transitions, self.decoding)
            conf = None
            if scores:
                post = marginals(batch, n, self.transitions)
                conf = np.take_along_axis(post, np.maximum(best, 0)[:, :, None], axis=2)[:, :, 0]
            found = entities_batch([texts[i] for i in idx], best, head_spans, self.card.tags, self.card.scheme,
                                   offsets=offsets[idx], confidences=conf, source=self.source)
            for r, i in enumerate(idx.tolist()):
                ents[i] = found[r]
                paths[i] = best[r, : n[r]].tolist()
        return ents, paths

    def decode_paths(
        self, texts: Sequence[str], encs: Sequence[Encoded], emissions: Sequence[np.ndarray], *, scores: bool = True
    ) -> tuple[list[list[Entity]], list[list[int]]]:
        """Entities and the tag path (one id per label-bearing position) of each text, by the card's search.

        A span head (overlapping spans have no tag path) selects spans
        (:mod:`nerwheel.decode_span`) and answers with empty paths.
        """
        if self.spans is not None:
            ents = self.spans.decode(texts, encs, emissions, scores=scores, source=self.source)
            # in a record's order (start, end, label), so every caller, the HF pipeline included, lists them alike
            return [sorted(e) for e in ents], [[] for _ in texts]
        num_tags = self.card.num_outputs
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in emissions])]).astype(np.int64)
        flat = np.concatenate([np.asarray(e, np.float32).reshape(-1, num_tags) for e in emissions]) if len(
            emissions) else np.zeros((0, num_tags), np.float32)
        spans = np.concatenate([e.head_spans for e in encs]) if len(encs) else np.zeros((0, 2), np.int64)
        return self.decode_flat(texts, flat, offsets, spans, scores=scores)

    def decode(
        self, texts: Sequence[str], encs: Sequence[Encoded], emissions: Sequence[np.ndarray], *, scores: bool = True
    ) -> list[list[Entity]]:
        """Entities of stitched emissions (see :meth:`decode_paths`)."""
        return self.decode_paths(texts, encs, emissions, scores=scores)[0]

    def predict_paths(self, texts: Sequence[str], *, scores: bool = True) -> tuple[list[list[Entity]], list[list[int]]]:
        """:meth:`predict` plus each text's tag path, without leaving the flat arrays in between."""
        texts = list(texts)
        batch = self.encoder.encode_flat(texts)
        flat = self.forward_flat(batch, texts)
        if self.spans is not None:
            return self.decode_paths(texts, batch.items(), np.split(flat, batch.head_offsets[1:-1]), scores=scores)
        return self.decode_flat(texts, flat, batch.head_offsets, batch.head_spans, scores=scores)

    def predict(self, texts: Sequence[str], *, scores: bool = True) -> list[list[Entity]]:
        """Entities of each text, in input order; ``score`` is the mean posterior of the entity's tags."""
        return self.predict_paths(texts, scores=scores)[0]

    def _batches(self, emissions: Sequence[np.ndarray]) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """Stitched emissions regrouped into padded batches of similar length: (text indices, batch, lengths)
        (the n-best lists; :meth:`decode_flat` is the one-reading hot path)."""
        order = sorted(range(len(emissions)), key=lambda i: len(emissions[i]))
        num_tags = len(self.card.tags)
        out = []
        for b in range(0, len(order), self.decode_batch_size):
            idx = order[b : b + self.decode_batch_size]
            lengths = np.array([len(emissions[i]) for i in idx])
            batch = np.zeros((len(idx), int(lengths.max(initial=0)), num_tags), dtype=np.float32)
            for r, i in enumerate(idx):
                batch[r, : lengths[r]] = emissions[i]
            out.append((idx, batch, lengths))
        return out

    def _entities(self, text: str, enc: Encoded, path: Sequence[int], post: np.ndarray | None) -> list[Entity]:
        conf = post[np.arange(len(path)), list(path)] if post is not None else None
        return tags_to_entities(text, path, enc.head_spans, self.card.tags, self.card.scheme, confidences=conf,
                                source=self.source)

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
