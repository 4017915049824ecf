"""Distil step: the trained model into a smaller, faster student (:func:`nerwheel.stages.distill.distill`).

Optional: with ``student`` empty (the pipeline's default) the trained model
passes through unchanged, so evaluate, gate, export and deploy always read
this step's model and the DAG has one shape. With a student spec the student
learns the trained model's distributions (a tagger's per character, a
classifier's over classes) over the training texts (their merged labels count
as gold), and the student is what is evaluated, gated and served. The NER and
the classifier DAGs share this step: the trained model's ``nerwheel.json``
says which task distils it, and :data:`MERGED_FORMAT` how that task's merge
step wrote the training texts.
"""

__all__ = ["MERGED_FORMAT", "OWN_PARAMETERS", "run"]

#: task -> the format of its merge step's ``records.jsonl`` (NER: character spans; classify: message JSONL).
MERGED_FORMAT = {"ner": "spans", "classify": "jsonl"}

#: Config keys that have their own pipeline parameter (or come from the artifacts); ``overrides`` may not set them.
OWN_PARAMETERS = ("teacher", "student", "texts_file", "gold_file", "dev_file", "format", "out")


def run(*, model_path: str, train_path: str, student: str, overrides: str, student_path: str,
        report_path: str) -> dict[str, float]:
    """Distil the model folder ``model_path`` into the folder ``student_path`` (a copy when ``student`` is empty).

    Returns the scalars the component logs: ``distilled`` (1 or 0) and, for a
    student, its size, the teacher's, and its agreement with the teacher.
    """
    import shutil
    from pathlib import Path

    from nerwheel.components.data import RECORDS_FILE
    from nerwheel.components.report import Report
    from nerwheel.components.steps import flatten_metrics, parameter_hints
    from nerwheel.components.steps.train import parse_override_list
    from nerwheel.configfile import merge_overrides, parse_overrides
    from nerwheel.errors import ConfigError
    from nerwheel.model.distill import load_distill_config
    from nerwheel.stages.distill import distill
    from nerwheel.tasks import task_of

    out = Path(student_path)
    if not student.strip():
        shutil.copytree(model_path, out, dirs_exist_ok=True)
        Report("distill: none").key_values({"distilled": "no (distill_student is empty)", "model": model_path}).items(
            ["the trained model passes on unchanged"]).write(report_path)
        return {"distilled": 0.0}
    with parameter_hints():
        items = parse_override_list(overrides, own=())
        for item in items:
            key = item.partition("=")[0].strip()
            if key in OWN_PARAMETERS:
                raise ConfigError(f"distill override {item!r} sets {key}, which the pipeline sets itself (the "
                                  "trained model, the training data, distill_student); leave it out",
                                  field="distill_overrides")
        fixed = {"teacher": model_path, "student": student.strip(),
                 "texts_file": str(Path(train_path) / RECORDS_FILE),
                 "format": MERGED_FORMAT.get(task_of(model_path), "spans"), "out": str(out)}
        config = load_distill_config(None, merge_overrides(parse_overrides(items), fixed))
        summary = distill(config).summary
    scalars = {"distilled": 1.0, "student_parameters": float(summary["student_parameters"]),
               "teacher_parameters": float(summary["teacher_parameters"]),
               **flatten_metrics({"agreement": summary["agreement_with_teacher"] or {}, "dev": summary["dev"]},
                                 bools=False)}
    Report(f"distill: {summary['student_name']}").table(sorted(scalars.items()), ("figure", "value")).write(
        report_path)
    return scalars
