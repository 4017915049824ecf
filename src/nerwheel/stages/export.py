"""The export stage: a model directory -> an ONNX export directory, written only if it passes every check.

Layout (docs/architecture.md, "Export directory"): ``model.onnx`` (inputs
``input_ids``, ``attention_mask``; output ``emissions``), ``model.int8.onnx``
when quantised, ``crf.npz`` (CRF heads), ``tokenizer.json``, ``nerwheel.json``
(the model's card plus an ``export`` section with the check results).

The export is assembled in a temporary folder beside ``out_dir``; all checks
run (:func:`nerwheel.model.onnx_export.check_export`), and only a clean result
is moved into place. A failing export raises :class:`ExportCheckError` listing
every failure, and nothing is written.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.records import Record

__all__ = ["ExportCheckError", "ExportReport", "export"]

log = logging.getLogger(__name__)


class ExportCheckError(RuntimeError):
    """The ONNX graph does not reproduce the PyTorch model; ``failures`` names each failed check."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        super().__init__("export refused, the ONNX model failed its checks:\n  - " + "\n  - ".join(self.failures))


@dataclass
class ExportReport:
    out_dir: Path
    files: list[str]
    parity: dict[str, Any]
    int8: dict[str, Any] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "files": self.files, "parity": self.parity, "int8": self.int8,
                "seconds": round(self.seconds, 2)}


def export(
    model_dir: str | Path,
    out_dir: str | Path,
    quantize: str | None = None,
    *,
    eval_records: Sequence[Record] | None = None,
    texts: Sequence[str] | None = None,
    atol: float = 1e-3,
    overwrite: bool = False,
) -> ExportReport:
    """Export ``model_dir`` to ``out_dir``; ``quantize="int8"`` adds ``model.int8.onnx`` and its F1 change.

    Parity is checked on ``texts`` (default: the first 64 ``eval_records``
    texts plus seeded random texts over the tokenizer's characters, some longer
    than one window). With ``eval_records`` the int8 report gives strict F1 of
    fp32 and int8 on them; without, the int8 model's agreement with fp32.
    """
    import numpy as np
    import onnxruntime
    import torch

    from nerwheel import metrics as M
    from nerwheel.decode import CrfParams
    from nerwheel.model.card import ModelCard
    from nerwheel.model.classifier import TokenClassifier
    from nerwheel.model.onnx_export import OPSET, check_export, quantize_int8, sample_texts, write_onnx
    from nerwheel.model.runtime import CRF_NPZ, ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE, OnnxTagger, TorchTagger

    if quantize not in (None, "int8"):
        raise ValueError(f"Invalid quantize: {quantize!r}. Allowed values are: int8")
    started = time.perf_counter()
    src, out = Path(model_dir), Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty; choose a new folder or pass overwrite")
    card = ModelCard.read(src)
    reference = TorchTagger.from_dir(src, device="cpu")
    model: TokenClassifier = reference.model
    if texts is None:
        vocab = list(reference.encoder.tokenizer.get_vocab())
        texts = [r.text for r in (eval_records or [])[:64]] + sample_texts(
            vocab, max_len=int(reference.encoder.content_length * 2.5), seed=0
        )
    texts = list(texts)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_onnx(model, tmp / ONNX_FILE, opset=OPSET, pad_id=card.pad_id)
        shutil.copy2(src / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        if model.crf is not None:
            CrfParams(*(p.detach().float().numpy() for p in (
                model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions))).save(str(tmp / CRF_NPZ))
        card.write(tmp)  # provisional, for the tagger; rewritten with the export section below
        candidate = OnnxTagger(tmp, batch_size=reference.batch_size)
        check = check_export(reference, candidate, texts, atol=atol, num_tags=len(card.tags))
        if check.failures:
            raise ExportCheckError(check.failures)
        log.info("parity: max |emission diff| %.2g over %d texts, %d entities identical", check.max_abs_diff,
                 check.texts, check.entities)

        int8_report = None
        if quantize == "int8":
            quantize_int8(tmp / ONNX_FILE, tmp / ONNX_INT8_FILE)
            int8 = OnnxTagger(tmp, int8=True)
            if eval_records:
                gold = list(eval_records)
                eval_texts = [r.text for r in gold]
                f32 = M.evaluate(gold, candidate.predict(eval_texts, scores=False))["overall"]["strict"]["f1"]
                i8 = M.evaluate(gold, int8.predict(eval_texts, scores=False))["overall"]["strict"]["f1"]
                int8_report = {"on": "eval_records", "records": len(gold), "strict_f1_fp32": f32,
                               "strict_f1_int8": i8, "f1_change": round(i8 - f32, 6)}
            else:
                ref = candidate.predict(texts, scores=False)
                agree = M.span_scores(ref, int8.predict(texts, scores=False))[0]["strict"]["f1"]
                int8_report = {"on": "sample_texts", "texts": len(texts), "strict_f1_vs_fp32": agree}
            _, em32 = candidate.emissions(texts)
            _, em8 = int8.emissions(texts)
            int8_report["max_abs_diff_vs_fp32"] = max(float(np.abs(a - b).max()) for a, b in zip(em32, em8) if a.size)
            log.info("int8: %s", int8_report)

        card.export = {
            "source": str(src), "opset": OPSET, "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "atol": atol,
            "parity": check.to_dict(), "int8": int8_report,
        }
        card.write(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.iterdir())
    notes = [f"parity: max |emission diff| {check.max_abs_diff:.2g} (tolerance {atol:g}) on {check.texts} texts; "
             f"{check.entities} entities identical in ONNX Runtime and PyTorch"]
    if int8_report and "f1_change" in int8_report:
        notes.append(f"int8: strict F1 {int8_report['strict_f1_int8']:.4f} vs fp32 {int8_report['strict_f1_fp32']:.4f} "
                     f"({int8_report['f1_change']:+.4f}) on {int8_report['records']} records")
    elif int8_report:
        notes.append(f"int8: agreement with fp32 (strict F1) {int8_report['strict_f1_vs_fp32']:.4f} on sample texts")
    return ExportReport(out, files, check.to_dict(), int8_report, time.perf_counter() - started, notes)
