"""Strict span P/R/F1 per type of the knowledge-base teacher on a labelled address file it never saw.

    nice -n 10 .venv/bin/python benchmarks/kb_teacher.py ../shared/datasets/ccks2021_address/train.jsonl
    [--limit N] [--errors FILE]

The KB is rules + gazetteer; nothing is fitted to the file, so any labelled
address set is a fair test. ``--errors`` writes mismatches (gold vs KB) as JSONL
for error analysis.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nerwheel.formats import read_records
from nerwheel.kb.annotator import AddressKB
from nerwheel.metrics import span_scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--errors", type=Path, default=None)
    args = ap.parse_args(argv)

    result = read_records(args.data)
    records = result.records[: args.limit] if args.limit else result.records
    t0 = time.perf_counter()
    kb = AddressKB()
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = [kb.annotate_text(r.text) for r in records]
    t_run = time.perf_counter() - t0
    overall, per_type = span_scores([r.entities for r in records], pred)

    print(f"{args.data}: {len(records)} records ({len(result.rejects)} rejected on read); "
          f"KB load {t_load:.1f}s, annotate {t_run:.1f}s ({len(records) / max(t_run, 1e-9):.0f} texts/s)")
    print(f"{'type':<14}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}{'pred':>7}")
    for label, m in sorted(per_type.items(), key=lambda kv: -kv[1]["strict"]["support"]):
        s = m["strict"]
        n_pred = sum(1 for p in pred for e in p if e.label == label)
        print(f"{label:<14}{s['precision']:>8.3f}{s['recall']:>8.3f}{s['f1']:>8.3f}{s['support']:>9}{n_pred:>7}")
    s = overall["strict"]
    print(f"{'overall':<14}{s['precision']:>8.3f}{s['recall']:>8.3f}{s['f1']:>8.3f}{overall['support']:>9}"
          f"{overall['predicted']:>7}")
    if args.errors:
        with args.errors.open("w", encoding="utf-8") as f:
            for r, p in zip(records, pred, strict=True):
                g, q = r.spans(), {e.key for e in p}
                if g != q:
                    f.write(json.dumps({
                        "text": r.text,
                        "missed": [f"{r.text[a:b]}/{lab}" for a, b, lab in sorted(g - q)],
                        "wrong": [f"{r.text[a:b]}/{lab}" for a, b, lab in sorted(q - g)],
                    }, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
