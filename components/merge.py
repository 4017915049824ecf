"""KFP component: fuse the labelled sources into the training set (logic: :mod:`nerwheel.components.steps.merge`)."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from nerwheel.components.images import component

__all__ = ["merge"]


@component("merge")
def merge(
    seed_uri: str,
    labelled_uri: str,
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
        labelled_uri: the teacher-labelled traffic (the fan-in's Dataset folder, by URI: from the annotate
            shards, or with a production model from the feedback and pseudo-label shards).
        synthetic: synthesised records (Dataset folder).
        teacher: the teacher that labelled the traffic (``kb`` or ``llm``), the source kind of its labels.
        precedence: comma-separated source kinds, best first (e.g. ``gold,kb,llm,synthetic``).
        eval_uri: the eval set; training records with an eval text are dropped. Empty = bundled sample.

    Returns:
        merged: the training set (Dataset folder: records.jsonl, rejects.jsonl for bad gold lines,
        leaked.jsonl for records dropped as eval texts); metrics: counts; report: HTML conflict breakdown.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.merge import run

    task_logging()
    scalars = run(seed_uri=seed_uri, annotated_path=labelled_uri, synthetic_path=synthetic.path,
                  teacher=teacher, precedence=precedence, eval_uri=eval_uri, out_path=merged.path,
                  report_path=report.path)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    merged.metadata["records"] = int(scalars["records"])
