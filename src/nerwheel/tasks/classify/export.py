"""The classifier's export: a model directory -> ONNX with ``probabilities``, written only if it passes every check.

Graph: inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64
``[batch, seq]``), outputs ``logits`` and ``probabilities`` (float32
``[batch, classes]``, the softmax inside the graph, so a Triton or a raw
ONNX Runtime user gets probabilities without our code). Beside it:
``tokenizer.json``, ``labels.json`` and ``nerwheel.json`` (the card plus an
``export`` section with the check results).

Checks (all run, every failure listed, nothing written on failure; the shared
:class:`~nerwheel.stages.export.ExportCheckError`): the graph is valid; max
|probability difference| to PyTorch <= ``atol`` on the parity sample; the
predicted class identical for every sample pair; batch size 1 gives what a
full batch gives. ``optimize`` runs ONNX Runtime's transformer graph fusion
(``onnxruntime.transformers.optimizer``, as the users' export script does) and
re-checks the fused graph; ``quantize="int8"`` adds ``model.int8.onnx``
(dynamic int8) with its agreement with fp32 and, given gold messages, the
accuracy and macro-F1 change. ``max_length`` caps the pair length the export
tokenises to (default: the training length).
"""

from __future__ import annotations

import logging
import random
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.errors import ConfigError
from nerwheel.tasks.classify.records import Message

__all__ = ["export", "sample_pairs"]

log = logging.getLogger(__name__)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def sample_pairs(vocab: Sequence[str], *, n: int = 24, max_len: int, seed: int = 0) -> list[tuple[str, str]]:
    """Seeded random (context, message) pairs over the tokenizer's characters; some contexts empty, some long."""
    from nerwheel.model.onnx_export import sample_texts

    texts = sample_texts(vocab, n=2 * n, max_len=max_len, seed=seed)
    rng = random.Random(seed)
    return [("" if rng.random() < 0.3 else texts[2 * i], texts[2 * i + 1]) for i in range(n)]


def _write_onnx(model: Any, path: Path, *, opset: int, pad_id: int, with_types: bool) -> None:
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            kwargs = {"token_type_ids": token_type_ids} if with_types else {}
            logits = self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits
            return logits, torch.softmax(logits, dim=-1)

    model = model.eval().cpu()
    ids = torch.full((2, 9), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = pad_id
    types = torch.zeros_like(ids)
    types[:, 4:] = 1 if with_types else 0
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Probabilities(model), (ids, mask, types), str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUTS), output_names=["logits", "probabilities"],
                          dynamic_axes={**axes, "logits": {0: "batch"}, "probabilities": {0: "batch"}},
                          do_constant_folding=True)


def _optimize(path: Path, config: Any) -> None:
    """ONNX Runtime's transformer fusion (attention, LayerNorm, GELU) in place."""
    from onnxruntime.transformers.optimizer import optimize_model

    root = logging.getLogger()  # the optimiser logs every fusion at INFO on its own loggers; keep the CLI readable
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        # "bert" fusion covers BERT and XLM-R encoders (same attention / LayerNorm / GELU subgraphs)
        fused = optimize_model(str(path), model_type="bert", num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size), opt_level=1)
        fused.save_model_to_file(str(path))
    finally:
        root.setLevel(level)


def _check(reference: Any, candidate: Any, pairs: Sequence[tuple[str, str]], atol: float) -> dict[str, Any]:
    import onnx

    failures: list[str] = []
    try:
        onnx.checker.check_model(str(candidate.model_file), full_check=True)
    except Exception as exc:  # noqa: BLE001 - any checker complaint is a failure to report
        failures.append(f"onnx.checker: {exc}")
    out: dict[str, Any] = {"pairs": len(pairs), "failures": failures}
    try:
        ref = reference.probabilities(pairs)
        got = candidate.probabilities(pairs)
    except Exception as exc:  # noqa: BLE001
        failures.append(f"ONNX Runtime could not run the graph: {type(exc).__name__}: {exc}")
        return out
    diff = float(np.abs(ref - got).max()) if len(pairs) else 0.0
    out["max_abs_diff"] = diff
    if not diff <= atol:
        failures.append(f"probabilities: max |onnx - torch| = {diff:.3g} > tolerance {atol:g}")
    differ = int((ref.argmax(1) != got.argmax(1)).sum())
    out["labels_identical"] = differ == 0
    if differ:
        failures.append(f"predicted class: {differ} of {len(pairs)} sample pairs differ between ONNX and PyTorch")
    saved = candidate.batch_size
    candidate.batch_size = 1
    try:
        one = candidate.probabilities(pairs[:4])
    finally:
        candidate.batch_size = saved
    batch_diff = float(np.abs(one - got[:4]).max()) if len(pairs) else 0.0
    if not batch_diff <= atol:
        failures.append(f"batch size 1 vs batched probabilities differ by {batch_diff:.3g} > {atol:g} "
                        "(padding or dynamic axes broken)")
    return out


def _gold(clf: Any, gold: Sequence[Message]) -> dict[str, float]:
    from nerwheel.tasks.classify.metrics import classification_metrics

    probs = clf.probabilities([(m.context, m.message) for m in gold])
    pred = [clf.labels[int(i)] for i in probs.argmax(1)]
    o = classification_metrics([m.label for m in gold], pred, clf.labels, probs)["overall"]
    return {"accuracy": o["accuracy"], "macro_f1": o["macro"]["f1"]}


def export(model_dir: str | Path, out_dir: str | Path, quantize: str | None = None, *,
           eval_records: Sequence[Message] | None = None, pairs: Sequence[tuple[str, str]] | None = None,
           atol: float = 1e-4, overwrite: bool = False, optimize: bool = False,
           max_length: int | None = None) -> Any:
    """Export ``model_dir`` to ``out_dir`` (checks in the module docstring); returns an ExportReport."""
    import onnxruntime
    import torch

    from nerwheel.model.onnx_export import OPSET, quantize_int8
    from nerwheel.stages.export import ExportCheckError, ExportReport, check_request, export_folder
    from nerwheel.tasks.classify.card import ClassifierCard
    from nerwheel.tasks.classify.records import LABELS_FILE
    from nerwheel.tasks.classify.runtime import ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE, OnnxClassifier, \
        TorchClassifier

    out = check_request(quantize, out_dir, overwrite)
    started = time.perf_counter()
    src = Path(model_dir)
    card = ClassifierCard.read(src)
    if max_length is not None:
        if max_length < 8:
            raise ConfigError(f"max_length={max_length} is too short; use 8 or more")
        card = card.model_copy(update={"max_length": max_length})
    reference = TorchClassifier.from_dir(src, device="cpu")
    if max_length is not None:
        from nerwheel.tasks.classify.encoding import PairEncoder

        reference.encoder = PairEncoder(reference.encoder.tokenizer, max_length=max_length, pad_id=card.pad_id)
    gold = [m for m in (eval_records or []) if m.label is not None]
    if pairs is None:
        vocab = list(reference.encoder.tokenizer.get_vocab())
        pairs = [(m.context, m.message) for m in gold[:64]] + sample_pairs(vocab, max_len=card.max_length)
    pairs = list(pairs)
    with export_folder(out) as tmp:
        _write_onnx(reference.model, tmp / ONNX_FILE, opset=OPSET, pad_id=card.pad_id,
                    with_types=reference.uses_types)
        for name in (TOKENIZER_FILE, LABELS_FILE):
            shutil.copy2(src / name, tmp / name)
        card.write(tmp)
        candidate = OnnxClassifier(tmp, batch_size=reference.batch_size)
        parity = _check(reference, candidate, pairs, atol)
        if quantize == "int8" and not parity["failures"]:  # from the unfused graph: the quantiser cannot type fused ops
            quantize_int8(tmp / ONNX_FILE, tmp / ONNX_INT8_FILE)
        if optimize and not parity["failures"]:
            _optimize(tmp / ONNX_FILE, reference.model.config)
            candidate = OnnxClassifier(tmp, batch_size=reference.batch_size)
            parity = _check(reference, candidate, pairs, atol)
            parity["optimized"] = True
        if parity["failures"]:
            raise ExportCheckError(parity["failures"])
        fp32 = {"gold_records": len(gold), **_gold(candidate, gold)} if gold else None
        int8_report = None
        if quantize == "int8":
            int8 = OnnxClassifier(tmp, int8=True)
            p32, p8 = candidate.probabilities(pairs), int8.probabilities(pairs)
            int8_report = {"sample_pairs": len(pairs), "agreement_vs_fp32": float((p32.argmax(1) == p8.argmax(1)).mean()),
                           "max_abs_diff_vs_fp32": float(np.abs(p32 - p8).max()), "gold_records": len(gold)}
            if gold:
                g8 = _gold(int8, gold)
                int8_report.update(g8, accuracy_change=round(g8["accuracy"] - fp32["accuracy"], 6),
                                   macro_f1_change=round(g8["macro_f1"] - fp32["macro_f1"], 6))
        card.export = {"source": str(src), "opset": OPSET, "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
                       "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "atol": atol,
                       "optimized": optimize, "max_length": card.max_length, "parity": parity, "fp32": fp32,
                       "int8": int8_report, "outputs": ["logits", "probabilities"]}
        card.write(tmp)
    notes = [f"parity: max |probability diff| {parity['max_abs_diff']:.2g} (tolerance {atol:g}) on {len(pairs)} "
             "pairs; predicted class identical in ONNX Runtime and PyTorch" + (" (fused graph)" if optimize else "")]
    if fp32:
        notes.append(f"fp32: accuracy {fp32['accuracy']:.4f}, macro-F1 {fp32['macro_f1']:.4f} on {len(gold)} gold "
                     "messages")
    if int8_report:
        change = (f"; accuracy change {int8_report['accuracy_change']:+.4f}, macro-F1 change "
                  f"{int8_report['macro_f1_change']:+.4f}" if gold else "; pass gold messages to measure the change")
        notes.append(f"int8: same class as fp32 on {int8_report['agreement_vs_fp32']:.1%} of {len(pairs)} pairs{change}")
    return ExportReport(out, sorted(p.name for p in out.iterdir()), parity, int8_report,
                        time.perf_counter() - started, notes, fp32)
