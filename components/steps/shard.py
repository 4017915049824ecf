"""Shard step: plan the fan-out over the traffic (:func:`nerwheel.shards.plan_shards`), and the shard part files
every sharded step writes beside its output and the fan-in reads back.

The plan goes two ways: as the list the DAG's ``dsl.ParallelFor`` iterates over (one
dict per shard, handed to each shard's task as its ``shard`` parameter), and as a JSON
artifact the fan-in reconciles the parts against. Each sharded step's Dataset folder
holds ``shard.json`` (:class:`nerwheel.shards.ShardPart`): which shard it was and its counts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PART_FILE", "PLAN_FILE", "read_part", "read_plan", "run", "shard_of", "write_part"]

PART_FILE = "shard.json"
PLAN_FILE = "plan.json"


def run(*, texts_uri: str, shards: int, plan_path: str) -> list[dict[str, Any]]:
    """Plan ``shards`` shards of the texts at ``texts_uri`` (empty = bundled sample traffic); write the plan
    artifact (a folder holding ``plan.json``) and return the shards as dicts for the fan-out."""
    from pathlib import Path

    from nerwheel.components.data import resolve_uri, write_json
    from nerwheel.components.steps import parameter_hints
    from nerwheel.shards import plan_shards

    uri = resolve_uri(texts_uri, "texts")
    with parameter_hints():
        plan = plan_shards(uri, shards)
    write_json(Path(plan_path) / PLAN_FILE, {"uri": uri, "requested": shards, "shards": [s.to_dict() for s in plan]})
    return [s.to_dict() for s in plan]


def shard_of(shard: dict[str, Any]) -> Any:
    """The :class:`nerwheel.shards.Shard` a fan-out hands a task (KFP passes its numbers as floats)."""
    from nerwheel.shards import Shard

    ints = ("index", "count", "start", "end", "first_line", "lines", "texts")
    return Shard.from_dict({k: (int(v) if k in ints and isinstance(v, float) and v.is_integer() else v)
                            for k, v in shard.items()})


def read_plan(plan_path: str) -> list[Any]:
    from pathlib import Path

    from nerwheel.components.data import read_json

    return [shard_of(s) for s in read_json(Path(plan_path) / PLAN_FILE)["shards"]]


def write_part(folder: str, part: Any) -> None:
    """``shard.json`` (a :class:`nerwheel.shards.ShardPart`) into a sharded step's output folder."""
    from pathlib import Path

    from nerwheel.components.data import write_json

    write_json(Path(folder) / PART_FILE, part.to_dict())


def read_part(folder: str) -> Any:
    from pathlib import Path

    from nerwheel.components.data import read_json
    from nerwheel.shards import ShardError, ShardPart

    path = Path(folder) / PART_FILE
    if not path.is_file():
        raise ShardError(f"{folder}: no {PART_FILE}; this output was not written by a sharded step")
    return ShardPart.from_dict(read_json(path), where=str(path))
