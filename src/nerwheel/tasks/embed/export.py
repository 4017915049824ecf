"""``embed export``: a sentence-transformers model -> ONNX with pooling and L2 normalisation in the graph.

The graph is the whole embedding function, ``(input_ids, attention_mask) ->
embedding``: the encoder, mean (or CLS) pooling over the attention mask, and
L2 normalisation. A server, a browser or another language then needs only a
tokenizer and ONNX Runtime, never sentence-transformers' Python modules.

Checks (all run, every failure reported, nothing written unless all pass;
:class:`~nerwheel.stages.export.ExportCheckError`):

* ``onnx.checker`` accepts the graph;
* **parity**: on sample texts (passages and queries given, else seeded texts
  over the tokenizer's pieces, some longer than ``max_seq_length``), each
  with the query and with the document prompt, the cosine between the ONNX
  embedding and sentence-transformers' own ``encode`` is at least
  ``min_cosine`` (0.9999) for *every* text;
* a batch of one gives what the full batch gives (padding and dynamic axes).

With ``quantize="int8"`` the weights are quantised dynamically
(:func:`nerwheel.model.onnx_export.quantize_int8`) and the report gives the
int8 model's cosine to fp32 (mean and minimum): how far quantisation moved
the embeddings, which the benchmark turns into retrieval quality.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nerwheel.errors import ConfigError

if TYPE_CHECKING:
    from nerwheel.stages.export import ExportReport

__all__ = ["MIN_COSINE", "export_encoder"]

log = logging.getLogger(__name__)

MIN_COSINE = 0.9999
OPSET = 17


def _pooling_mode(model: Any) -> str:
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    kinds = [type(m).__name__ for m in model]
    pool = model[1] if len(model) > 1 else None
    extra = [m for m in list(model)[2:] if not isinstance(m, Normalize)]
    if not isinstance(pool, Pooling) or extra:
        raise ConfigError(f"cannot export modules {kinds}: the export supports Transformer -> Pooling "
                               "(mean or cls) [-> Normalize]", field="model")
    mode = pool.pooling_mode
    if mode not in ("mean", "cls"):
        raise ConfigError(f"cannot export pooling {mode!r}: mean or cls only", field="model")
    if not getattr(pool, "include_prompt", True):
        raise ConfigError("cannot export a Pooling with include_prompt=False (the prompt tokens would have to "
                               "be masked in the graph); save the model with include_prompt=True", field="model")
    return mode


def _graph(model: Any, mode: str) -> Any:
    import torch
    from torch import nn

    class Embedding(nn.Module):
        """(input_ids, attention_mask) -> L2-normalised pooled embedding."""

        def __init__(self, encoder: nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if mode == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Embedding(model[0].auto_model).eval()


def _write_onnx(graph: Any, path: Path, pad_id: int) -> None:
    import warnings

    import torch

    ids = torch.full((2, 7), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    ids[1, 5:], mask[1, 5:] = pad_id, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes
        torch.onnx.export(graph, (ids, mask), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"}, "embedding": {0: "batch"}},
                          do_constant_folding=True)


def _sample_texts(tokenizer: Any, max_tokens: int, n: int = 16, seed: int = 0) -> list[str]:
    """Seeded texts glued from the tokenizer's own pieces; the last ones run past ``max_tokens`` (truncation)."""
    rng = np.random.default_rng(seed)
    vocab = [p.replace("\u2581", " ").replace("##", "") for p in tokenizer.get_vocab()]
    vocab = [p for p in vocab if p.strip() and not (p.startswith("<") or p.startswith("["))]
    lengths = [1, 3, 8, 16, 32, max_tokens + 16][: n] + list(rng.integers(2, 64, size=max(0, n - 6)))
    return ["".join(rng.choice(vocab, size=int(k))).strip() or "x" for k in lengths]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(axis=1)


def export_encoder(model_dir: str | Path, out_dir: str | Path, quantize: str | None = None, *,
                   texts: Sequence[str] | None = None, min_cosine: float = MIN_COSINE,
                   overwrite: bool = False) -> ExportReport:
    """Export the sentence-transformers model at ``model_dir`` to ``out_dir`` (see the module docstring)."""
    import onnx
    import onnxruntime
    import torch

    from nerwheel.model.layout import CARD_FILE, ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE
    from nerwheel.model.onnx_export import quantize_int8
    from nerwheel.stages.export import ExportCheckError, ExportReport, check_request, export_folder
    from nerwheel.storage import write_json
    from nerwheel.tasks.embed.model import load_encoder
    from nerwheel.tasks.embed.runtime import OnnxEncoder

    out = check_request(quantize, out_dir, overwrite)
    t0 = time.perf_counter()
    src = Path(model_dir)
    model = load_encoder(str(src), device="cpu")
    mode = _pooling_mode(model)
    tokenizer = model.tokenizer
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    prompts = dict(model.prompts or {})
    base = list(texts) if texts else _sample_texts(tokenizer, model.max_seq_length)
    sample = [p + t for t in base for p in ("", *prompts.values())]
    src_card = json.loads((src / CARD_FILE).read_text(encoding="utf-8")) if (src / CARD_FILE).is_file() else {}
    card = {"task": "embed", "name": src_card.get("name") or src.name, "base": src_card.get("base"),
            "dimension": int(model.get_embedding_dimension() or 0),
            "max_seq_length": int(model.max_seq_length), "prompts": prompts, "pad_id": pad_id, "pooling": mode,
            "normalize": True, "source": str(src), "metrics": src_card.get("metrics")}

    with export_folder(out) as tmp:
        _write_onnx(_graph(model, mode), tmp / ONNX_FILE, pad_id)
        (tmp / TOKENIZER_FILE).write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
        write_json(tmp / CARD_FILE, card)
        failures: list[str] = []
        try:
            onnx.checker.check_model(str(tmp / ONNX_FILE), full_check=True)
        except Exception as exc:  # noqa: BLE001 - any checker complaint is a failure to report
            failures.append(f"onnx.checker: {exc}")
        candidate = OnnxEncoder(tmp)
        reference = np.asarray(model.encode(sample, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False))
        got = candidate.encode(sample)
        cos = _cosines(reference, got)
        worst = int(np.argmin(cos))
        if not float(cos.min()) >= min_cosine:
            failures.append(f"parity: cosine(onnx, torch) {float(cos.min()):.6f} < {min_cosine} on text {worst} "
                            f"({sample[worst][:40]!r})")
        one = np.stack([candidate.encode([t])[0] for t in sample[:4]])
        batch_cos = float(_cosines(one, got[:4]).min())
        if not batch_cos >= min_cosine:
            failures.append(f"batch size 1 vs batched: cosine {batch_cos:.6f} < {min_cosine} (padding or dynamic "
                            "axes broken)")
        parity = {"texts": len(sample), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
                  "threshold": min_cosine, "batch1_min_cosine": batch_cos,
                  "max_abs_diff": float(np.abs(reference - got).max()), "failures": failures}
        if failures:
            raise ExportCheckError(failures)
        int8 = None
        if quantize == "int8":
            quantize_int8(tmp / ONNX_FILE, tmp / ONNX_INT8_FILE)
            q = OnnxEncoder(tmp, int8=True).encode(sample)
            qc = _cosines(got, q)
            int8 = {"texts": len(sample), "cosine_vs_fp32_mean": float(qc.mean()),
                    "cosine_vs_fp32_min": float(qc.min()),
                    "note": "int8 is not held to the parity threshold; its effect on retrieval is measured by "
                            "`nerwheel embed evaluate` / benchmarks/embed.py"}
        card["export"] = {"opset": OPSET, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                          "parity": parity, "int8": int8}
        write_json(tmp / CARD_FILE, card)
    notes = [f"parity: min cosine {parity['min_cosine']:.6f} (threshold {min_cosine}) over {len(sample)} texts "
             "with and without prompts"]
    if int8:
        notes.append(f"int8: cosine to fp32 mean {int8['cosine_vs_fp32_mean']:.4f}, min "
                     f"{int8['cosine_vs_fp32_min']:.4f}")
    return ExportReport(out, sorted(p.name for p in out.iterdir()), parity, int8, time.perf_counter() - t0, notes)
