"""KFP component: export to ONNX with a parity check (logic: :mod:`nerwheel.components.steps.export`)."""

from kfp.dsl import HTML, Input, Metrics, Model, Output

from nerwheel.components.images import component

__all__ = ["export"]


@component("export")
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
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.export import run

    task_logging()
    values = run(model_path=model.path, quantize=quantize, onnx_path=onnx.path, report_path=report.path)
    for name, value in values.items():
        metrics.log_metric(name, value)
    onnx.metadata["framework"] = "onnx"
