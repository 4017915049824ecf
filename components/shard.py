"""KFP component: plan the shards of the traffic for the fan-out (logic: :mod:`nerwheel.components.steps.shard`)."""

from typing import List

from kfp.dsl import Artifact, Output

from nerwheel.components.images import component

__all__ = ["shard"]


@component("shard")
def shard(texts_uri: str, shards: int, plan: Output[Artifact]) -> List[dict]:  # noqa: UP006 - KFP's type names
    """Cut the traffic into line-aligned byte ranges, one per shard task (one streaming pass over it).

    Args:
        texts_uri: plain-text lines (local path or s3:// URI); empty = the bundled sample traffic.
        shards: how many shards (at most 256; fewer when the file has fewer lines).

    Returns:
        One dict per shard (what ``dsl.ParallelFor`` iterates over: byte range, first line, lines, texts and
        the SHA-256 of its bytes); plan: the same as JSON, for the fan-in to reconcile against.
    """
    from nerwheel.components.steps import task_logging
    from nerwheel.components.steps.shard import run

    task_logging()
    return run(texts_uri=texts_uri, shards=shards, plan_path=plan.path)
