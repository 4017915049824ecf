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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError, NerwheelError
from nerwheel.records import Record

__all__ = ["QUANTIZE_MODES", "ExportCheckError", "ExportReport", "check_request", "export", "export_folder"]

#: Quantised exports ``export`` can add beside the FP32 model (``quantize``); none = FP32 only.
QUANTIZE_MODES: tuple[str, ...] = ("int8",)

log = logging.getLogger(__name__)


class ExportCheckError(NerwheelError, RuntimeError):
    """The ONNX graph does not reproduce the PyTorch model; ``failures`` names each failed check."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        super().__init__("export refused, the ONNX model failed its checks:\n  - " + "\n  - ".join(self.failures))


@dataclass
class ExportReport:
    """What the export checked and measured.

    ``fp32`` (only with gold records): ``{"gold_records", "gold_f1"}``, strict
    F1 of the ONNX fp32 model against gold. ``int8`` (only when quantised):
    always ``sample_texts`` and ``agreement_f1_vs_fp32`` (strict F1 of int8
    predictions against fp32 predictions on the parity sample: agreement, not
    accuracy) and ``max_abs_diff_vs_fp32``; with gold records also ``gold_f1``
    and ``gold_f1_change`` (int8 minus fp32); without, ``gold_records`` is 0 and
    ``note`` says that no F1 change could be measured.
    """

    out_dir: Path
    files: list[str]
    parity: dict[str, Any]
    int8: dict[str, Any] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    fp32: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "files": self.files, "parity": self.parity, "fp32": self.fp32,
                "int8": self.int8, "seconds": round(self.seconds, 2), "notes": self.notes}


def check_request(quantize: str | None, out_dir: str | Path, overwrite: bool) -> Path:
    """The checks every task's export makes before any work: a known quantisation, a free target folder."""
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ConfigError(f"Invalid quantize: {quantize!r}. Allowed values are: {', '.join(QUANTIZE_MODES)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty; choose a new folder or pass overwrite")
    return out


@contextmanager
def export_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to assemble an export in: it replaces ``out`` when the block succeeds
    and is removed when anything fails, so a refused export leaves nothing behind (shared by every task)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: Largest drop of gold strict F1 (int8 minus fp32) an int8 export may show (0.005 = half an F1 point).
INT8_MAX_F1_DROP = 0.005

NO_GOLD_NOTE = ("no gold records given (eval_records), so no F1 change is reported: agreement_f1_vs_fp32 is the "
                "int8 model's strict F1 against the fp32 model's predictions on the parity sample")


def _gold_f1(tagger: Any, gold: Sequence[Record]) -> float:
    """Strict F1 of target labels (extension labels a tagger was trained on are not scored)."""
    from nerwheel import metrics as M

    predicted = [r.with_entities(e) for r, e in zip(gold, tagger.predict([r.text for r in gold], scores=False),
                                                    strict=True)]
    return M.evaluate(gold, [r.entities for r in M.target_records(predicted)[0]])["overall"]["strict"]["f1"]


def export(
    model_dir: str | Path,
    out_dir: str | Path,
    quantize: str | None = None,
    *,
    eval_records: Sequence[Record] | None = None,
    texts: Sequence[str] | None = None,
    atol: float = 1e-3,
    overwrite: bool = False,
    graph: str = "plain",
    per_channel: bool = True,
    int8_max_f1_drop: float = INT8_MAX_F1_DROP,
) -> ExportReport:
    """Export ``model_dir`` to ``out_dir``; ``quantize="int8"`` adds ``model.int8.onnx``.

    ``graph`` is ``plain`` (the traced graph) or ``fused`` (ONNX Runtime's
    transformer fusions, see :mod:`nerwheel.model.onnx_export`); either must
    pass the same parity checks. ``per_channel`` sets int8 weight scales per
    output channel. With gold ``eval_records``, an int8 model whose strict F1
    falls more than ``int8_max_f1_drop`` below fp32's is refused
    (:class:`ExportCheckError`): a quantised model must be measured to be
    nearly as good, not assumed to be.

    Parity is checked on ``texts`` (default: the first 64 ``eval_records``
    texts plus seeded random texts over the tokenizer's characters, some longer
    than one window). With ``eval_records`` (gold) the report gives the gold
    strict F1 of fp32 and, quantised, of int8 and the change; without gold, only
    the int8 model's agreement with fp32, which says how much quantisation
    changed the output but not whether it got better or worse (see
    :class:`ExportReport`).
    """
    import numpy as np
    import onnxruntime
    import torch

    from nerwheel import metrics as M
    from nerwheel.decode import CrfParams
    from nerwheel.model.card import ModelCard
    from nerwheel.model.classifier import TokenClassifier
    from nerwheel.model.onnx_export import (
        GRAPHS,
        OPSET,
        check_export,
        fuse_transformer,
        graph_ops,
        quantize_int8,
        sample_texts,
        write_onnx,
    )
    from nerwheel.model.layout import CRF_NPZ, ONNX_FILE, ONNX_INT8_FILE, TOKENIZER_FILE
    from nerwheel.model.runtime import OnnxTagger, TorchTagger

    out = check_request(quantize, out_dir, overwrite)
    if graph not in GRAPHS:
        raise ConfigError(f"Invalid graph: {graph!r}. Allowed values are: {', '.join(GRAPHS)}")
    started = time.perf_counter()
    src = Path(model_dir)
    card = ModelCard.read(src)
    reference = TorchTagger.from_dir(src, device="cpu")
    model: TokenClassifier = reference.model
    if texts is None:
        vocab = list(reference.encoder.tokenizer.get_vocab())
        texts = [r.text for r in (eval_records or [])[:64]] + sample_texts(
            vocab, max_len=int(reference.encoder.content_length * 2.5), seed=0
        )
    texts = list(texts)

    with export_folder(out) as tmp:
        fused = None
        if graph == "fused":
            write_onnx(model, tmp / "traced.onnx", opset=OPSET, pad_id=card.pad_id, attention="eager")
            fused = fuse_transformer(tmp / "traced.onnx", tmp / ONNX_FILE, model.encoder.config)
            (tmp / "traced.onnx").unlink()
        else:
            write_onnx(model, tmp / ONNX_FILE, opset=OPSET, pad_id=card.pad_id)
        shutil.copy2(src / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        if model.crf is not None:
            CrfParams(*(p.detach().float().numpy() for p in (
                model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions))).save(str(tmp / CRF_NPZ))
        card.write(tmp)  # provisional, for the tagger; rewritten with the export section below
        candidate = OnnxTagger(tmp, batch_size=reference.batch_size)
        check = check_export(reference, candidate, texts, atol=atol, num_tags=card.num_outputs)
        if check.failures:
            raise ExportCheckError(check.failures)
        log.info("parity: max |emission diff| %.2g over %d texts, %d entities identical", check.max_abs_diff,
                 check.texts, check.entities)

        gold = M.target_records(eval_records or [])[0]  # target-label F1, as training and evaluate report
        fp32_report = None
        if gold:
            f32 = _gold_f1(candidate, gold)
            fp32_report = {"gold_records": len(gold), "gold_f1": f32}
        int8_report = None
        if quantize == "int8":
            quantization = quantize_int8(tmp / ONNX_FILE, tmp / ONNX_INT8_FILE, per_channel=per_channel)
            int8 = OnnxTagger(tmp, int8=True)
            agree = M.span_scores(candidate.predict(texts, scores=False), int8.predict(texts, scores=False))[0]
            int8_report = {"gold_records": len(gold), "sample_texts": len(texts),
                           "agreement_f1_vs_fp32": agree["strict"]["f1"], "quantization": quantization,
                           "max_f1_drop": int8_max_f1_drop}
            if gold:
                i8 = _gold_f1(int8, gold)
                int8_report.update(gold_f1=i8, gold_f1_change=round(i8 - f32, 6))
            else:
                int8_report["note"] = NO_GOLD_NOTE
            _, em32 = candidate.emissions(texts)
            _, em8 = int8.emissions(texts)
            int8_report["max_abs_diff_vs_fp32"] = max(float(np.abs(a - b).max()) for a, b in zip(em32, em8) if a.size)
            log.info("int8: %s", int8_report)
            if gold and int8_report["gold_f1_change"] < -int8_max_f1_drop:
                raise ExportCheckError([
                    f"int8: gold strict F1 {int8_report['gold_f1']:.4f} is {-int8_report['gold_f1_change']:.4f} "
                    f"below fp32's {f32:.4f} on {len(gold)} records, more than the tolerance {int8_max_f1_drop:g}; "
                    "export without quantize, or with per_channel weights"])

        card.export = {
            "source": str(src), "opset": OPSET, "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "graph": graph, "fused_ops": fused, "ops": graph_ops(tmp / ONNX_FILE),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "atol": atol,
            "parity": check.to_dict(), "fp32": fp32_report, "int8": int8_report,
        }
        card.write(tmp)
    files = sorted(p.name for p in out.iterdir())
    notes = [f"parity: max |emission diff| {check.max_abs_diff:.2g} (tolerance {atol:g}) on {check.texts} texts; "
             f"{check.entities} entities identical in ONNX Runtime and PyTorch"]
    if fp32_report:
        notes.append(f"fp32: gold strict F1 {fp32_report['gold_f1']:.4f} on {fp32_report['gold_records']} records")
    if int8_report and "gold_f1" in int8_report:
        notes.append(f"int8: gold strict F1 {int8_report['gold_f1']:.4f} vs fp32 {fp32_report['gold_f1']:.4f} "
                     f"(change {int8_report['gold_f1_change']:+.4f}) on {int8_report['gold_records']} gold records; "
                     f"agreement with fp32 {int8_report['agreement_f1_vs_fp32']:.4f} on {len(texts)} parity texts")
    elif int8_report:
        notes.append(f"int8: {NO_GOLD_NOTE} ({int8_report['agreement_f1_vs_fp32']:.4f} on {len(texts)} texts); "
                     "give gold eval_records to measure the F1 change")
    return ExportReport(out, files, check.to_dict(), int8_report, time.perf_counter() - started, notes, fp32_report)
