"""Run a tagger over texts: ONNX Runtime (:class:`OnnxTagger`) or PyTorch (:class:`TorchTagger`).

Both share everything but the forward pass (:class:`Tagger`): tokenization and
sliding windows (:mod:`nerwheel.model.encoding`), length-bucketed batches,
stitching window outputs, Viterbi and span building (:mod:`nerwheel.decode`),
or, for a span head (``card.head == "span"``), span selection
(:mod:`nerwheel.decode_span`). So a parity check between them compares exactly
one thing, the emissions.

This module imports neither torch nor transformers at import time: the Triton
python backend and the ONNX serving image import :class:`OnnxTagger` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nerwheel.decode import CrfParams, marginals, tags_to_entities, viterbi
from nerwheel.decode_span import SpanDecoder, SpanLayout
from nerwheel.errors import ConfigError
from nerwheel.model.card import ModelCard
from nerwheel.model.encoding import Encoded, TextEncoder
from nerwheel.model.data import pad_rows
from nerwheel.model.layout import CRF_NPZ, ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE
from nerwheel.model.lexicon import LexiconInputs
from nerwheel.records import Entity

if TYPE_CHECKING:
    from nerwheel.model.classifier import TokenClassifier

__all__ = ["ONNX_FILE", "ONNX_INT8_FILE", "OnnxTagger", "Tagger", "TorchTagger"]


class Tagger:
    """Texts in, character-offset entities out; subclasses supply :meth:`run` (the forward pass).

    ``batch_size`` bounds the windows per forward pass; windows are sorted by
    length first so a batch pads little. Span heads only: ``nested`` returns
    nested target spans (default: the card's ``span.nested``), ``extensions``
    adds the extension labels (``pos:``, ``kb:``...) to the output.
    """

    def __init__(self, card: ModelCard, encoder: TextEncoder, crf: CrfParams | None, *, batch_size: int = 32,
                 nested: bool | None = None, extensions: bool | None = None):
        self.card = card
        self.encoder = encoder
        self.batch_size = batch_size
        self.source = f"model:{card.name}" if card.name else "model"
        # knowledge-base lexicon features, when the model reads them (nerwheel.model.lexicon)
        self.lexicon = LexiconInputs.for_card(card.lexicon, encoder, where=f"model {card.name or '(unnamed)'}")
        self.spans: SpanDecoder | None = None
        if card.head == "span":
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
            extra = {} if lex is None else {lex.name: pad_rows(
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

    def decode(
        self, texts: Sequence[str], encs: Sequence[Encoded], emissions: Sequence[np.ndarray], *, scores: bool = True
    ) -> list[list[Entity]]:
        """Viterbi + spans for stitched emissions, in batches of similar length (span heads: span selection)."""
        if self.spans is not None:
            return self.spans.decode(texts, encs, emissions, scores=scores, source=self.source)
        out: list[list[Entity]] = [[] for _ in texts]
        order = sorted(range(len(texts)), key=lambda i: len(emissions[i]))
        num_tags = len(self.card.tags)
        for b in range(0, len(order), 256):
            idx = order[b : b + 256]
            lengths = np.array([len(emissions[i]) for i in idx])
            batch = np.zeros((len(idx), int(lengths.max(initial=0)), num_tags), dtype=np.float32)
            for r, i in enumerate(idx):
                batch[r, : lengths[r]] = emissions[i]
            paths = viterbi(batch, lengths, self.transitions)
            post = marginals(batch, lengths, self.transitions) if scores else None
            for r, i in enumerate(idx):
                conf = post[r, np.arange(len(paths[r])), paths[r]] if post is not None else None
                out[i] = tags_to_entities(
                    texts[i], paths[r], encs[i].head_spans, self.card.tags, self.card.scheme,
                    confidences=conf, source=self.source,
                )
        return out

    def predict(self, texts: Sequence[str], *, scores: bool = True) -> list[list[Entity]]:
        """Entities of each text, in input order; ``score`` is the mean posterior of the entity's tags."""
        texts = list(texts)
        encs, em = self.emissions(texts)
        return self.decode(texts, encs, em, scores=scores)


def _encoder_for(directory: Path, card: ModelCard) -> TextEncoder:
    return TextEncoder.from_file(
        directory / TOKENIZER_FILE, sequence_length=card.sequence_length, stride=card.stride, pad_id=card.pad_id
    )


class OnnxTagger(Tagger):
    """An export directory (``model.onnx`` + ``crf.npz`` + ``tokenizer.json`` + ``nerwheel.json``) on ONNX Runtime.

    ``int8=True`` runs ``model.int8.onnx``. ``threads`` sets ONNX Runtime's
    intra-op threads (default: its own choice, all cores).
    """

    def __init__(
        self, path: str | Path, *, int8: bool = False, batch_size: int = 32, threads: int | None = None,
        providers: Sequence[str] | None = None, nested: bool | None = None, extensions: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        directory = Path(path)
        card = ModelCard.read(directory)
        model_file = directory / (ONNX_INT8_FILE if int8 else ONNX_FILE)
        if not model_file.exists():
            hint = " (export with quantize='int8')" if int8 else ""
            raise FileNotFoundError(f"{model_file}: missing; not an export directory{hint}")
        crf_file = directory / CRF_NPZ
        crf = None
        if card.head == "crf":
            if not crf_file.exists():
                raise FileNotFoundError(f"{crf_file}: missing; a CRF export must carry its transitions")
            crf = CrfParams.load(str(crf_file))
        super().__init__(card, _encoder_for(directory, card), crf, batch_size=batch_size, nested=nested,
                         extensions=extensions)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_file), opts, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.model_file = model_file

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, **extra: np.ndarray) -> np.ndarray:
        return self.session.run(["emissions"], {"input_ids": input_ids, "attention_mask": attention_mask,
                                                **extra})[0]


class TorchTagger(Tagger):
    """A token or span classifier (:mod:`nerwheel.model.heads`) in PyTorch (a model directory, or one in memory).

    ``dtype="bf16"``/``"fp16"`` autocasts the forward pass (CUDA only; on CPU
    it runs float32).
    """

    def __init__(
        self, model: TokenClassifier, card: ModelCard, encoder: TextEncoder, *, batch_size: int = 32,
        device: Any = None, dtype: str | None = None, nested: bool | None = None, extensions: bool | None = None,
    ) -> None:
        import torch

        crf = None
        if model.crf is not None:
            crf = CrfParams(
                model.crf.transitions.detach().float().cpu().numpy(),
                model.crf.start_transitions.detach().float().cpu().numpy(),
                model.crf.end_transitions.detach().float().cpu().numpy(),
            )
        super().__init__(card, encoder, crf, batch_size=batch_size, nested=nested, extensions=extensions)
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype or "", None)
        if self.device.type != "cuda":
            self.autocast = None

    @classmethod
    def from_dir(cls, path: str | Path, *, device: Any = None, dtype: str | None = None, batch_size: int = 32,
                 nested: bool | None = None, extensions: bool | None = None) -> TorchTagger:
        from nerwheel.model.heads import load_model

        directory = Path(path)
        card = ModelCard.read(directory)
        model = load_model(directory, card).eval()
        if device is not None:
            model.to(device)
        return cls(model, card, _encoder_for(directory, card), batch_size=batch_size, device=device, dtype=dtype,
                   nested=nested, extensions=extensions)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, **extra: np.ndarray) -> np.ndarray:
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                given = {"input_ids": input_ids, "attention_mask": attention_mask, **extra}
                inputs = [torch.from_numpy(given[k]).to(self.device) for k in self.model.input_names]
                if self.autocast is not None:
                    with torch.autocast(self.device.type, dtype=self.autocast):
                        out = self.model(*inputs)
                else:
                    out = self.model(*inputs)
                return out.float().cpu().numpy()
        finally:
            self.model.train(was_training)

