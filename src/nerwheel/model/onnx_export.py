"""Write the emissions graph to ONNX, check it against PyTorch, quantise it.

Exporter: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript tracer).
With torch 2.13 the default dynamo exporter needs ``onnxscript``, which the
train extra does not carry; the tracer handles BERT and XLM-R encoders from
transformers 5.23 with dynamic batch and sequence axes (checked by
:func:`check_export`, which feeds shapes other than the traced ones).

The graph stops at the emissions: Viterbi and span building run in numpy
(:mod:`nerwheel.decode`) for every runtime, so the CRF never has to be
expressed in ONNX.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nerwheel.model.classifier import TokenClassifier

__all__ = ["OPSET", "Check", "check_export", "quantize_int8", "sample_texts", "write_onnx"]

OPSET = 17


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


def write_onnx(model: TokenClassifier, path: str | Path, *, opset: int = OPSET, pad_id: int = 0) -> Path:
    model = model.eval().cpu()
    names = list(model.input_names)
    out = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes, expected here
        torch.onnx.export(
            _Emissions(model), _example_inputs(model, pad_id), str(out), dynamo=False, opset_version=opset,
            input_names=names, output_names=["emissions"],
            dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in names}, "emissions": {0: "batch", 1: "sequence"}},
            do_constant_folding=True,
        )
    return out


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


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Dynamic int8 quantisation of the weights (activations stay float), ONNX Runtime's own tool."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs one line per tensor (and generic advice) on the *root* logger; keep the CLI readable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return Path(target)
