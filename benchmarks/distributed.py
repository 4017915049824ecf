"""One process against N DDP processes (torchrun; gloo on CPU, NCCL on GPUs) on the same data and config, side by
side: dev strict F1, best epoch, optimiser steps and wall time.

    nice -n 10 .venv/bin/python benchmarks/distributed.py --train TRAIN.jsonl --dev DEV.jsonl [--nproc 2]
        [--epochs 5] [--backbone tiny] [--set section.key=value ...] --out DIR

``training.batch_size`` is the global batch in both runs (each of N processes takes 1/N of every batch), so both
take the same number of optimiser steps; on one CPU machine the N processes share its cores, so the time column
says what DDP costs there, not what N GPUs gain.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--dev", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args(argv)

    from nerwheel.model.config import load_config, merge_overrides, parse_overrides
    from nerwheel.model.distributed import launch_local
    from nerwheel.stages.train import train

    rows = []
    for name, nproc in (("single", 1), (f"ddp-{args.nproc}", args.nproc)):
        fixed = {"model": {"model_id": args.backbone},
                 "training": {"epochs": args.epochs, "threads": 1 if nproc > 1 else 0},
                 "data": {"train_file": str(args.train), "dev_file": str(args.dev)},
                 "output": {"output_dir": str(args.out), "model_name": name, "timestamp": False, "plots": False,
                            "save_total_limit": 0}}
        config = load_config(None, overrides=merge_overrides(parse_overrides(args.sets), fixed))
        t0 = time.perf_counter()
        model_dir = train(config) if nproc == 1 else launch_local(config, nproc)
        seconds = time.perf_counter() - t0
        card = json.loads((Path(model_dir) / "nerwheel.json").read_text(encoding="utf-8"))
        history = [json.loads(line) for line in (Path(model_dir) / "metrics.jsonl").read_text().splitlines()]
        rows.append((name, card["metrics"]["dev"]["overall"]["strict"]["f1"], card["metrics"]["best_epoch"],
                     history[-1]["step"], seconds))
    print(f"{'run':<10}{'dev strict F1':>15}{'best epoch':>12}{'steps':>8}{'seconds':>10}")
    for name, f1, best, steps, seconds in rows:
        print(f"{name:<10}{f1:>15.4f}{best:>12}{steps:>8}{seconds:>10.1f}")
    print(f"F1 difference (ddp - single): {rows[1][1] - rows[0][1]:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
