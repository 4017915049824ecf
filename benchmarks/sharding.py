"""The sharded stages' own costs, side by side: planning (one streaming pass), reading a shard, the fan-in, and the
per-shard work of annotate (knowledge base) and feedback (production model on ONNX Runtime + knowledge base).

    nice -n 10 .venv/bin/python benchmarks/sharding.py --texts TEXTS.txt [--lines 1000000] [--shards 8]
        [--model EXPORT_DIR] [--work 2000]

``--texts`` is a plain-text traffic file (one text per line); it is repeated up to ``--lines`` lines into a temporary
file, so the pass over a large day's traffic is measured on this disk. ``--work`` texts go through the per-shard
stages (the KB teacher; with ``--model``, the feedback loop). docs/scale.md turns these figures into a sizing table.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=Path, required=True)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--model", type=Path, default=None, help="a production export: also time the feedback loop")
    ap.add_argument("--work", type=int, default=2000, help="texts through the per-shard stages")
    args = ap.parse_args(argv)

    from nerwheel.shards import ShardPart, plan_shards, read_shard, reconcile
    from nerwheel.stages.annotate import annotate, build_teachers

    source = [ln for ln in args.texts.read_text(encoding="utf-8").splitlines() if ln.strip()]
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="nerwheel-bench-") as tmp:
        big = Path(tmp) / "traffic.txt"
        with big.open("w", encoding="utf-8") as f:
            for line in itertools.islice(itertools.cycle(source), args.lines):
                f.write(line + "\n")
        mb = big.stat().st_size / 1e6

        t0 = time.perf_counter()
        plan = plan_shards(str(big), args.shards)
        t_plan = time.perf_counter() - t0
        rows.append(("plan (one pass)", f"{args.lines / t_plan:,.0f} lines/s", f"{mb / t_plan:,.1f} MB/s, "
                     f"{mb:,.0f} MB, {len(plan)} shards, {t_plan:.1f} s"))

        t0 = time.perf_counter()
        first = read_shard(plan[0])
        t_read = time.perf_counter() - t0
        rows.append(("read one shard", f"{first.read / t_read:,.0f} texts/s", f"{first.read:,} texts in {t_read:.1f} s"))

        parts = [ShardPart.of(s, first if s.index == 0 else read_shard(s)) for s in plan]
        t0 = time.perf_counter()
        reconcile(parts[::-1], plan)
        rows.append(("reconcile", f"{(time.perf_counter() - t0) * 1e3:.1f} ms", f"{len(plan)} parts"))

        work = first.records[: args.work]
        t0 = time.perf_counter()
        teachers = build_teachers(["kb"])
        t_kb_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        annotate(work, teachers)
        t_ann = time.perf_counter() - t0
        rows.append(("annotate (KB)", f"{len(work) / t_ann:,.0f} texts/s", f"{len(work)} texts; KB load {t_kb_load:.1f} s"))

        if args.model:
            from nerwheel.model.runtime import OnnxTagger
            from nerwheel.stages.feedback import feedback

            model = OnnxTagger(args.model)
            t0 = time.perf_counter()
            result = feedback(model, teachers, work)
            t_fb = time.perf_counter() - t0
            rows.append(("feedback (ONNX + KB)", f"{len(work) / t_fb:,.0f} texts/s",
                         f"{result.report.disagreed} of {len(work)} disagree"))

    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'rate':>18}  note")
    for name, rate, note in rows:
        print(f"{name:<{width}}  {rate:>18}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
