"""KFP component: fuse gold, teacher-annotated and synthetic records (:func:`nerwheel.stages.merge.merge`).

The merged set is also cleared of eval texts (:func:`nerwheel.stages.split.drop_leaks`):
a teacher or the synthesiser can produce a text that is in the fixed eval set, and
training on it would inflate the very score the gate decides on.
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from nerwheel.components.images import image

__all__ = ["merge"]


@dsl.component(base_image=image("merge"), install_kfp_package=False)
def merge(
    seed_uri: str,
    annotated: Input[Dataset],
    synthetic: Input[Dataset],
    teacher: str,
    precedence: str,
    eval_uri: str,
    merged: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> None:
    """Fuse gold seed records with teacher-annotated and synthetic records into one training set.

    Args:
        seed_uri: gold records (local path or s3:// URI, any format nerwheel reads); empty means the
            bundled sample seed set.
        annotated: records labelled by the teacher (Dataset folder).
        synthetic: synthesised records (Dataset folder).
        teacher: the teacher that labelled ``annotated`` (``kb`` or ``llm``), the source kind of its labels.
        precedence: comma-separated source kinds, best first (e.g. ``gold,kb,llm,synthetic``).
        eval_uri: the eval set; training records with an eval text are dropped. Empty = bundled sample.

    Returns:
        merged: the training set (Dataset folder: records.jsonl, rejects.jsonl for bad gold lines,
        leaked.jsonl for records dropped as eval texts); metrics: counts; report: HTML conflict breakdown.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.merge import run

    task_logging()
    scalars = run(seed_uri=seed_uri, annotated_path=annotated.path, synthetic_path=synthetic.path,
                  teacher=teacher, precedence=precedence, eval_uri=eval_uri, out_path=merged.path,
                  report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    merged.metadata["records"] = int(scalars["records"])
