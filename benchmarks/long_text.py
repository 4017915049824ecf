"""How the knowledge-base annotator's time grows with the length of one text.

    nice -n 10 .venv/bin/python benchmarks/long_text.py [--sizes 2000,4000,8000,16000] [--budget-s 60]

Three kinds of one-line text, each cut to the size, side by side:

- ``traffic``: the bundled sample traffic (``src/nerwheel/data/sample/traffic.txt``)
  glued into one line with no separator;
- ``repeat``: one address repeated (``浙江省杭州市余杭区文三路000号`` ...);
- ``no-address``: Latin letters only, one unlabelled gap the whole length (the
  worst case for anything that rescans the gap before a position).

Each cell is the seconds ``AddressKB.annotate_checked`` takes, then the ratio to
the previous size (about 2 per doubling when the time is linear, 4 when it is
quadratic). A kind stops at the first size that takes over ``--budget-s``, so a
super-linear annotator still finishes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from importlib import resources

from nerwheel.kb.annotator import AddressKB


def _cut(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _traffic(size: int) -> str:
    lines = resources.files("nerwheel.data.sample").joinpath("traffic.txt").read_text(encoding="utf-8").split()
    return _cut("".join(lines), size)


KINDS: dict[str, Callable[[int], str]] = {
    "traffic": _traffic,
    "repeat": lambda n: _cut("浙江省杭州市余杭区文三路000号", n),
    "no-address": lambda n: _cut("abcdefghij", n),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,4000,8000,16000,32000", help="text lengths in characters")
    ap.add_argument("--budget-s", type=float, default=60.0, help="a kind stops once one size takes longer")
    args = ap.parse_args(argv)

    kb = AddressKB()
    kb.annotate_checked("浙江省杭州市余杭区文三路000号")  # warm-up: lazy tables
    print(f"{'chars':>8}" + "".join(f"{k + ' s (x prev)':>24}" for k in KINDS), flush=True)
    prev: dict[str, float | None] = dict.fromkeys(KINDS)
    for size in (int(s) for s in args.sizes.split(",")):
        cells = []
        for kind, make in KINDS.items():
            last = prev[kind]
            if last is not None and last > args.budget_s:
                cells.append("skipped")
                prev[kind] = float("inf")
                continue
            text = make(size)
            t0 = time.perf_counter()
            kb.annotate_checked(text)
            dt = time.perf_counter() - t0
            ratio = f" (x{dt / last:.1f})" if last else ""
            cells.append(f"{dt:.2f}{ratio}")
            prev[kind] = dt
        print(f"{size:>8}" + "".join(f"{c:>24}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
