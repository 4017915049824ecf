"""Write the emissions graph to ONNX, check it against PyTorch, quantise it.

Exporter: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript tracer).
With torch 2.13 the default dynamo exporter needs ``onnxscript``, which the
train extra does not carry; the tracer handles BERT and XLM-R encoders from
transformers 5.23 with dynamic batch and sequence axes (checked by
:func:`check_export`, which feeds shapes other than the traced ones).

The graph stops at the emissions: Viterbi and span building run in numpy
(:mod:`nerwheel.decode`) for every runtime, so the CRF never has to be
expressed in ONNX.

Two graph forms (``graph``), both checked the same way:

- ``plain``: the traced graph; ONNX Runtime applies its own online
  optimisations when a session opens (LayerNorm, GELU and MatMul fusions).
- ``fused``: traced with eager attention (the scaled-dot-product attention
  the tracer writes by default hides the pattern) and rewritten offline by
  ONNX Runtime's transformer optimizer (:func:`fuse_transformer`): one
  ``Attention`` op per layer, ``SkipLayerNormalization``,
  ``EmbedLayerNormalization``, ``BiasGelu``. BERT and XLM-R share the
  ``bert`` fusion rules.

int8 (:func:`quantize_int8`) is *dynamic* quantisation in the QOperator form:
weights int8 (per output channel by default), activations quantised per batch
at run time, so ``MatMul`` becomes ``DynamicQuantizeMatMul`` (VNNI or AVX2
``u8s8`` kernels) and, in a fused graph, ``Attention`` becomes ``QAttention``.
What stays float is recorded (:func:`graph_ops`). Measured on this project's
2-core AVX-512-VNNI machines (``benchmarks/int8.py``): the plain graph is the
faster one for address-length inputs, static QDQ quantisation brings no
speed-up (ONNX Runtime's CPU provider runs most of it as DequantizeLinear +
float MatMul) and loses accuracy, and per-channel weights cost nothing and
halve the emission error of per-tensor ones.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nerwheel.model.classifier import TokenClassifier
from nerwheel.model.lora import unwrap

__all__ = ["FLOAT_HEAVY_OPS", "GRAPHS", "INT8_OPS", "OPSET", "Check", "check_export", "fuse_transformer", "graph_ops",
           "quantize_int8", "quiet", "sample_texts", "write_onnx"]

OPSET = 17
#: Graph forms an export can take (see the module docstring).
GRAPHS = ("plain", "fused")


class _Emissions(nn.Module):
    """The exported function: ``(input_ids, attention_mask[, lexicon]) -> emissions`` (the model's ``input_names``)."""

    def __init__(self, model: TokenClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs)


def _example_inputs(model: TokenClassifier, pad_id: int) -> tuple[torch.Tensor, ...]:
    """Traced inputs: two windows of 9 positions, the second padded after 6; lexicon rows (if any) one-hot."""
    ids = torch.full((2, 9), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = pad_id
    given = {"input_ids": ids, "attention_mask": mask}
    if "lexicon" in model.input_names:
        lexicon = torch.zeros((2, 9, model.lexicon.in_features))
        lexicon[:, 1:5, 0] = 1.0
        given["lexicon"] = lexicon
    return tuple(given[k] for k in model.input_names)


def write_onnx(model: TokenClassifier, path: str | Path, *, opset: int = OPSET, pad_id: int = 0,
               attention: str | None = None) -> Path:
    """Trace ``model`` to ONNX; ``attention="eager"`` writes attention as plain ops (for :func:`fuse_transformer`)."""
    model = model.eval().cpu()
    names = list(model.input_names)
    out = Path(path)
    encoder = unwrap(model.encoder)
    before = getattr(encoder.config, "_attn_implementation", None)
    if attention is not None:
        encoder.set_attn_implementation(attention)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes, expected here
            torch.onnx.export(
                _Emissions(model), _example_inputs(model, pad_id), str(out), dynamo=False, opset_version=opset,
                input_names=names, output_names=["emissions"],
                dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in names},
                              "emissions": {0: "batch", 1: "sequence"}},
                do_constant_folding=True,
            )
    finally:
        if attention is not None and before is not None:
            encoder.set_attn_implementation(before)
    return out


def fuse_transformer(source: str | Path, target: str | Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer over an eager-attention export; returns the fused ops and counts.

    ``config`` is the encoder's Hugging Face config (heads and width). XLM-R
    (e5-small) is a BERT graph with other position ids, so both use the
    ``bert`` rules. Raises :class:`ValueError` when nothing was fused (an
    architecture whose graph the rules do not recognise).
    """
    from onnxruntime.transformers.optimizer import optimize_model

    with quiet():
        optimized = optimize_model(str(source), model_type="bert", num_heads=int(config.num_attention_heads),
                                   hidden_size=int(config.hidden_size), opt_level=0)
        fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(target))
    if not fused.get("Attention") and not fused.get("SkipLayerNormalization"):
        raise ValueError(f"{source}: the transformer optimizer fused nothing ({config.model_type!r}); export with "
                         "graph='plain'")
    return fused


def graph_ops(path: str | Path) -> dict[str, int]:
    """Operator counts of an ONNX file, most frequent first (what stays float after quantisation, and so on)."""
    import onnx

    counts = Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)
    return dict(counts.most_common())


def sample_texts(vocab: Sequence[str], *, n: int = 24, max_len: int, seed: int = 0) -> list[str]:
    """Seeded random texts over the tokenizer's own characters, lengths 1..``max_len`` (long ones force windows)."""
    chars = sorted({t.removeprefix("##").removeprefix("\u2581") for t in vocab} - {""})
    chars = [c for c in chars if len(c) == 1 and not c.isspace() and not (c.startswith("[") or c.startswith("<"))]
    rng = random.Random(seed)
    lengths = [1, 2, max_len] + [rng.randint(3, max_len) for _ in range(max(0, n - 3))]
    return ["".join(rng.choice(chars) for _ in range(k)) for k in lengths[:n]]


@dataclass
class Check:
    """Outcome of the export checks; ``failures`` empty means the export may be written."""

    failures: list[str] = field(default_factory=list)
    max_abs_diff: float = 0.0
    texts: int = 0
    entities: int = 0
    entities_identical: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"max_abs_diff": self.max_abs_diff, "texts": self.texts, "entities": self.entities,
                "entities_identical": self.entities_identical, "failures": list(self.failures)}


def check_export(reference: Any, candidate: Any, texts: Sequence[str], *, atol: float, num_tags: int) -> Check:
    """Run every check, collect every failure (nothing is raised here).

    ``reference``/``candidate`` are :class:`~nerwheel.model.runtime.Tagger`\\ s
    (PyTorch and ONNX Runtime). Checks: the ONNX graph is valid; emissions have
    ``num_tags`` columns; max |emission difference| <= ``atol``; the decoded
    entities are identical; batch size 1 gives what a full batch gives.
    """
    import onnx

    check = Check(texts=len(texts))
    try:
        onnx.checker.check_model(str(candidate.model_file), full_check=True)
    except Exception as exc:  # noqa: BLE001 - any checker complaint is a failure to report
        check.failures.append(f"onnx.checker: {exc}")
    try:
        encs, ref_em = reference.emissions(texts)
        _, cand_em = candidate.emissions(texts)
    except Exception as exc:  # noqa: BLE001
        check.failures.append(f"ONNX Runtime could not run the graph: {type(exc).__name__}: {exc}")
        return check
    widths = {e.shape[-1] for e in cand_em if e.size}
    if widths and widths != {num_tags}:
        check.failures.append(f"emissions have {sorted(widths)} tag columns, the card has {num_tags} tags")
        return check
    diffs = [float(np.abs(a - b).max()) for a, b in zip(ref_em, cand_em, strict=True) if a.size]
    check.max_abs_diff = max(diffs, default=0.0)
    if not check.max_abs_diff <= atol:
        check.failures.append(f"emissions: max |onnx - torch| = {check.max_abs_diff:.3g} > tolerance {atol:g}")
    ref_ents = reference.decode(texts, encs, ref_em, scores=False)
    cand_ents = candidate.decode(texts, encs, cand_em, scores=False)
    check.entities = sum(len(e) for e in ref_ents)
    differing = [i for i, (a, b) in enumerate(zip(ref_ents, cand_ents, strict=True)) if a != b]
    if differing:
        check.entities_identical = False
        check.failures.append(f"entities: {len(differing)} of {len(texts)} sample texts decode differently "
                              f"(first: text {differing[0]})")
    single = texts[: min(4, len(texts))]
    saved = candidate.batch_size
    candidate.batch_size = 1
    try:
        _, one_by_one = candidate.emissions(single)
    finally:
        candidate.batch_size = saved
    batch_diff = max((float(np.abs(a - b).max()) for a, b in zip(one_by_one, cand_em, strict=False) if a.size),
                     default=0.0)
    if not batch_diff <= atol:
        check.failures.append(f"batch size 1 vs batched emissions differ by {batch_diff:.3g} > {atol:g} "
                              "(padding or dynamic axes broken)")
    return check


@contextmanager
def quiet() -> Iterator[None]:
    """The optimizer and quantizer log one line per tensor on the *root* logger; keep the CLI readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


#: Operators that do integer arithmetic after :func:`quantize_int8` (and ONNX Runtime's fusions at load).
INT8_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "QLinearMatMul",
            "QGemm", "QEmbedLayerNormalization")
#: Float operators that carry the bulk of the arithmetic; any left after quantisation is named in the report.
FLOAT_HEAVY_OPS = ("MatMul", "Gemm", "Attention", "MultiHeadAttention")


def quantize_int8(source: str | Path, target: str | Path, *, per_channel: bool = True,
                  reduce_range: bool = False) -> dict[str, Any]:
    """Dynamic int8 quantisation (QOperator form) of every weight matrix; returns the settings and what stayed float.

    ``per_channel`` gives each output column of a weight its own scale (same
    kernels, same speed, smaller error); ``reduce_range`` (7-bit weights) is
    for AVX2 machines without VNNI, where the ``u8s8`` kernel can saturate.
    Activations are quantised per batch at run time, so no calibration set
    is needed; attention score products (activation x activation) stay float
    in a plain graph, and become part of ``QAttention`` in a fused one.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel,
                         reduce_range=reduce_range, extra_options={"DefaultTensorType": 1})  # 1: FLOAT
    ops = graph_ops(target)
    return {
        "method": "dynamic", "format": "QOperator", "weights": "int8", "activations": "uint8 (per batch, at run time)",
        "per_channel": per_channel, "reduce_range": reduce_range,
        "int8_ops": {k: v for k, v in ops.items() if k in INT8_OPS},
        "float_ops": {k: v for k, v in ops.items() if k in FLOAT_HEAVY_OPS},
    }
