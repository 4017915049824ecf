"""Gather step: the fan-in of a sharded stage. Puts the shards' outputs back together in input order and checks
that they add up (:func:`nerwheel.shards.reconcile`).

KFP hands the fan-in the shards' Dataset folders (``dsl.Collected``) in whatever order
it collected them; each carries ``shard.json``, so the order is taken from the plan,
never from the collection. Every JSONL file of the parts (``records.jsonl``,
``rejects.jsonl``, side sets) is concatenated line by line in shard order, so the
output equals what one task would have written for the whole input. With
``replay_ratio`` > 0 (the feedback branch), a seeded replay sample drawn from the
``agreed`` side set of all shards joins the records, sized on the disagreements of all
shards, so it does not depend on the number of shards. ``extra`` parts (pseudo-labels)
follow, in shard order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SUMMARY_FILE", "run"]

SUMMARY_FILE = "shards.json"


def _concat(folders: Sequence[str], out: Path, skip: Sequence[str] = ()) -> dict[str, int]:
    """Append every ``*.jsonl`` of ``folders`` (in that order) to the same name in ``out``; lines per name."""
    names = sorted({p.name for f in folders for p in Path(f).glob("*.jsonl")} - set(skip))
    lines: dict[str, int] = {}
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        n = 0
        with open(out / name, "ab") as dst:
            for folder in folders:
                src = Path(folder) / name
                if src.is_file():
                    data = src.read_bytes()
                    if data and not data.endswith(b"\n"):
                        data += b"\n"
                    dst.write(data)
                    n += data.count(b"\n")
        lines[name] = n
    return lines


def run(*, part_paths: Sequence[str], plan_path: str, out_path: str, report_path: str,
        extra_paths: Sequence[str] = (), replay_ratio: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Concatenate the parts at ``part_paths`` (and ``extra_paths``) in plan order into the Dataset folder
    ``out_path``; returns the scalars the component logs (reconciled totals and the stage's summed counts)."""
    from nerwheel.components.data import RECORDS_FILE, read_artifact, write_json
    from nerwheel.components.report import Report
    from nerwheel.components.steps.shard import read_part, read_plan
    from nerwheel.formats import write_records
    from nerwheel.shards import ShardError, reconcile
    from nerwheel.stages.feedback import sample_replay

    plan = read_plan(plan_path)
    parts = [read_part(p) for p in part_paths]
    totals = reconcile(parts, plan)
    ordered = [part_paths[i] for i in totals.order]
    extra_totals, extra_ordered = None, []
    if extra_paths:
        extra_totals = reconcile([read_part(p) for p in extra_paths], plan, whole_shards=False)
        extra_ordered = [extra_paths[i] for i in extra_totals.order]

    out = Path(out_path)
    if out.exists() and any(out.iterdir()):
        raise ShardError(f"{out}: the fan-in's output folder is not empty")
    lines = _concat(ordered, out)
    for path, part in zip(ordered, (parts[i] for i in totals.order)):
        expected = part.counts.get("records")
        got = sum(1 for line in (Path(path) / RECORDS_FILE).read_bytes().splitlines() if line.strip()) \
            if (Path(path) / RECORDS_FILE).is_file() else 0
        if expected is not None and got != int(expected):
            raise ShardError(f"{path}: {got} records, but its shard.json says {int(expected)}")

    replayed = []
    if replay_ratio > 0:
        records = read_artifact(out)
        pool = read_artifact(out, "agreed.jsonl")
        replayed = sample_replay(pool, round(replay_ratio * len(records)), seed=seed,
                                 exclude_texts=[r.text for r in records])
    extra_lines = 0
    if replayed or extra_ordered:
        # records.jsonl so far holds the parts' records; append the replay sample, then the extra parts' records
        tmp = out / ".replay.jsonl"
        write_records(replayed, tmp, format="spans")
        with open(out / RECORDS_FILE, "ab") as dst:
            dst.write(tmp.read_bytes())
            for folder in extra_ordered:
                src = Path(folder) / RECORDS_FILE
                if src.is_file():
                    data = src.read_bytes()
                    extra_lines += data.count(b"\n")
                    dst.write(data)
        tmp.unlink()

    summary = {"totals": totals.to_dict(), "extra": extra_totals.to_dict() if extra_totals else None,
               "replay": len(replayed), "lines": lines,
               "records": lines.get(RECORDS_FILE, 0) + len(replayed) + extra_lines,
               "shards": [{"index": s.index, "first_line": s.first_line, "lines": s.lines, "texts": s.texts,
                           "bytes": s.end - s.start} for s in plan]}
    write_json(out / SUMMARY_FILE, summary)
    scalars: dict[str, Any] = {"shards": float(totals.shards), "read": float(totals.read),
                               "accepted": float(totals.accepted), "rejected": float(totals.rejected),
                               "records": float(summary["records"]), "replay": float(len(replayed))}
    scalars.update({f"sum_{k}": float(v) for k, v in sorted(totals.counts.items())})
    if extra_totals is not None:
        scalars.update({f"extra_{k}": float(v) for k, v in sorted(extra_totals.counts.items())})
    rows = [(s.index, s.first_line, s.lines, s.texts, parts[totals.order[i]].accepted,
             parts[totals.order[i]].rejected) for i, s in enumerate(plan)]
    Report(f"gather: {totals.shards} shard(s) in input order").paragraph(
        f"read {totals.read} = accepted {totals.accepted} + rejected {totals.rejected}; "
        f"{summary['records']} records out ({len(replayed)} replayed)").table(
        rows, ("shard", "first line", "lines", "texts", "accepted", "rejected")).write(report_path)
    return scalars
