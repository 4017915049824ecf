"""KFP component: the fan-in of a sharded stage (logic: :mod:`nerwheel.components.steps.gather`)."""

from typing import List

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from nerwheel.components.images import component

__all__ = ["gather"]


@component("gather")
def gather(
    parts: Input[List[Dataset]],  # noqa: UP006 - KFP's type names
    plan: Input[Artifact],
    replay_ratio: float,
    seed: int,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    extra: Input[List[Dataset]] = None,  # noqa: UP006
) -> str:
    """Concatenate the shards' outputs in input order and check they add up to the input.

    Args:
        parts: the shards' Dataset folders (``dsl.Collected``), in any order; each holds shard.json.
        plan: the shard step's plan.
        replay_ratio: replay records per record of the parts, sampled from their ``agreed`` side set (0: none).
        seed: seed of the replay sample.
        extra: more shard outputs appended after the parts and the replay (pseudo-labels), in shard order.

    Returns:
        The URI of ``dataset`` (downstream tasks take it from whichever branch ran, ``dsl.OneOf``);
        dataset: records.jsonl, rejects.jsonl, side sets and shards.json (the reconciled counts);
        metrics: read = accepted + rejected and the shards' summed counts; report: per-shard table.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.gather import run

    task_logging()
    scalars = run(part_paths=[p.path for p in parts], plan_path=plan.path, out_path=dataset.path,
                  report_path=report.path, extra_paths=[p.path for p in (extra or [])], replay_ratio=replay_ratio,
                  seed=seed)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    dataset.metadata["records"] = int(scalars["records"])
    return dataset.uri
