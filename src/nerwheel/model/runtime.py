"""Run a tagger over texts: ONNX Runtime (:class:`OnnxTagger`) or PyTorch (:class:`TorchTagger`).

Both share everything but the forward pass (:class:`~nerwheel.model.tagger.Tagger`):
tokenization and sliding windows (:mod:`nerwheel.model.encoding`), length-bucketed
batches, stitching window outputs, the path search (Viterbi or beam) and span
building (:mod:`nerwheel.decode`), or a span head's span selection
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

from nerwheel.decode import CrfParams, Decoding
from nerwheel.model.card import ModelCard
from nerwheel.model.encoding import TextEncoder
from nerwheel.model.layout import CRF_NPZ, ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE
from nerwheel.model.ort_session import open_session
from nerwheel.model.tagger import Tagger

if TYPE_CHECKING:
    from nerwheel.model.classifier import TokenClassifier

__all__ = ["ONNX_FILE", "ONNX_INT8_FILE", "OnnxTagger", "Tagger", "TorchTagger", "lexicon_for"]


def lexicon_for(card: ModelCard, encoder: TextEncoder) -> Any:
    """The knowledge-base lexicon inputs the model reads (``None`` when it reads none)."""
    from nerwheel.model.lexicon import LexiconInputs

    return LexiconInputs.for_card(card.lexicon, encoder, where=f"model {card.name or '(unnamed)'}")


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
        providers: Sequence[str] | None = None, decoding: Decoding | None = None, nested: bool | None = None,
        extensions: bool | None = None,
    ) -> None:
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
        encoder = _encoder_for(directory, card)
        super().__init__(card, encoder, crf, batch_size=batch_size, decoding=decoding, nested=nested,
                         extensions=extensions, lexicon=lexicon_for(card, encoder))
        self.session = open_session(model_file, threads=threads, providers=providers)
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
        device: Any = None, dtype: str | None = None, decoding: Decoding | None = None, nested: bool | None = None,
        extensions: bool | None = None,
    ) -> None:
        import torch

        crf = None
        if model.crf is not None:
            crf = CrfParams(
                model.crf.transitions.detach().float().cpu().numpy(),
                model.crf.start_transitions.detach().float().cpu().numpy(),
                model.crf.end_transitions.detach().float().cpu().numpy(),
            )
        super().__init__(card, encoder, crf, batch_size=batch_size, decoding=decoding, nested=nested,
                         extensions=extensions, lexicon=lexicon_for(card, encoder))
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype or "", None)
        if self.device.type != "cuda":
            self.autocast = None

    @classmethod
    def from_dir(cls, path: str | Path, *, device: Any = None, dtype: str | None = None, batch_size: int = 32,
                 decoding: Decoding | None = None, nested: bool | None = None,
                 extensions: bool | None = None) -> TorchTagger:
        from nerwheel.model.heads import load_model

        directory = Path(path)
        card = ModelCard.read(directory)
        model = load_model(directory, card).eval()
        if device is not None:
            model.to(device)
        return cls(model, card, _encoder_for(directory, card), batch_size=batch_size, device=device, dtype=dtype,
                   decoding=decoding, nested=nested, extensions=extensions)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, **extra: np.ndarray) -> np.ndarray:
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                given = {"input_ids": input_ids, "attention_mask": attention_mask, **extra}
                names = getattr(self.model, "input_names", ("input_ids", "attention_mask"))
                inputs = [torch.from_numpy(given[k]).to(self.device) for k in names]
                if self.autocast is not None:
                    with torch.autocast(self.device.type, dtype=self.autocast):
                        out = self.model(*inputs)
                else:
                    out = self.model(*inputs)
                return out.float().cpu().numpy()
        finally:
            self.model.train(was_training)

