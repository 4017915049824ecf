"""Export step: the promoted model to ONNX with a parity check (:func:`nerwheel.stages.export.export`)."""

__all__ = ["run"]


def run(*, model_path: str, quantize: str, onnx_path: str, report_path: str) -> dict[str, float]:
    """Export ``model_path`` into the folder ``onnx_path``; returns the numeric facts of the export report."""
    from pathlib import Path

    from nerwheel.components.report import Report
    from nerwheel.stages.export import export

    result = export(Path(model_path), Path(onnx_path), quantize=quantize.strip() or None)
    facts = result.to_dict()
    numbers = _numbers({"parity": facts["parity"], "int8": facts["int8"] or {}, "seconds": facts["seconds"]})
    files = sorted((p.name, p.stat().st_size) for p in Path(onnx_path).iterdir() if p.is_file())
    numbers.update({f"bytes_{name.replace('.', '_')}": float(size) for name, size in files if name.endswith(".onnx")})
    Report("export: ONNX").table(sorted(numbers.items()), ("check / figure", "value")).heading("Files").table(
        files, ("file", "bytes")).heading("Notes").items(result.notes or ["none"]).write(report_path)
    return numbers


def _numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict, named by path (``parity.max_abs_diff`` -> ``parity_max_abs_diff``)."""
    out: dict[str, float] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            out[name] = 1.0 if v else 0.0
        elif isinstance(v, (int, float)):
            out[name] = float(v)
        elif isinstance(v, dict):
            out.update(_numbers(v, f"{name}_"))
    return out
