"""Export step: the promoted model to ONNX with a parity check (the model's task's export: NER
:func:`nerwheel.stages.export.export`, classifier :func:`nerwheel.tasks.classify.export.export`)."""

__all__ = ["run"]


def run(*, model_path: str, quantize: str, onnx_path: str, report_path: str) -> dict[str, float]:
    """Export ``model_path`` into the folder ``onnx_path``; returns the numeric facts of the export report."""
    from pathlib import Path

    from nerwheel.components.report import Report
    from nerwheel.components.steps import flatten_metrics
    from nerwheel.tasks import get_task, task_of

    # the model's nerwheel.json names its task: the same step exports a tagger or a classifier
    result = get_task(task_of(model_path)).export(Path(model_path), Path(onnx_path), quantize=quantize.strip() or None)
    facts = result.to_dict()
    numbers = flatten_metrics({"parity": facts["parity"], "int8": facts["int8"] or {}, "seconds": facts["seconds"]})
    files = sorted((p.name, p.stat().st_size) for p in Path(onnx_path).iterdir() if p.is_file())
    numbers.update({f"bytes_{name.replace('.', '_')}": float(size) for name, size in files if name.endswith(".onnx")})
    Report("export: ONNX").table(sorted(numbers.items()), ("check / figure", "value")).heading("Files").table(
        files, ("file", "bytes")).heading("Notes").items(result.notes or ["none"]).write(report_path)
    return numbers
