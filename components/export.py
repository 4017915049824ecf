"""KFP component: export the promoted model to ONNX with a parity check (:func:`nerwheel.stages.export.export`)."""

from kfp import dsl
from kfp.dsl import HTML, Input, Metrics, Model, Output

from nerwheel.components.images import image

__all__ = ["export", "run"]


def run(*, model_path: str, quantize: str, onnx_path: str, report_path: str) -> dict[str, float]:
    """Export ``model_path`` into the folder ``onnx_path``; returns the numeric facts of the export report."""
    from dataclasses import asdict, is_dataclass
    from pathlib import Path

    from nerwheel.components.report import Report
    from nerwheel.stages.export import export

    result = export(Path(model_path), Path(onnx_path), quantize=quantize.strip() or None)
    if hasattr(result, "to_dict"):
        facts = result.to_dict()
    elif is_dataclass(result):
        facts = asdict(result)
    else:
        facts = dict(vars(result))
    numbers = {k: float(v) for k, v in facts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    files = sorted((p.name, p.stat().st_size) for p in Path(onnx_path).iterdir() if p.is_file())
    Report("export: ONNX").key_values({k: v for k, v in facts.items() if not isinstance(v, (dict, list))}).heading(
        "Files").table(files, ("file", "bytes")).write(report_path)
    numbers.update({f"bytes_{name.replace('.', '_')}": float(size) for name, size in files if name.endswith(".onnx")})
    return numbers


@dsl.component(base_image=image("export"), install_kfp_package=False)
def export(
    model: Input[Model],
    quantize: str,
    onnx: Output[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Export the trained model to ONNX and check that ONNX Runtime agrees with PyTorch.

    Args:
        model: the trained model folder.
        quantize: ``""`` for FP32 only, or a quantisation mode the export stage accepts (e.g. ``dynamic``).

    Returns:
        onnx: the export folder (model.onnx, tokenizer.json, nerwheel.json, crf.npz);
        metrics: parity and size figures; report: HTML summary.
    """
    from nerwheel.components.export import run

    values = run(model_path=model.path, quantize=quantize, onnx_path=onnx.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    onnx.metadata["framework"] = "onnx"
