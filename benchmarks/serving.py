"""Serving latency under load: a real Triton and the same model in-process, side by side, at 1-16 clients.

    .venv/bin/python benchmarks/serving.py --model MODEL \\
        --texts ../shared/datasets/ccks2021_address/unlabeled.jsonl [--levels 1,2,4,8,16] [--duration 10] \\
        [--png serving.png] [--json serving.json]

Deploys MODEL (a trained model folder or an export folder) into a fresh local
repository with the generated ``config.pbtxt`` (:class:`ServingOptions`
defaults unless ``--instances``/``--threads``/``--queue-delay-us``/
``--preferred``/``--int8`` say otherwise), starts ``tritonserver`` on
127.0.0.1, and at each concurrency level runs that many client threads, each
with its own gRPC :class:`Client`, for ``--duration`` seconds:

1. **online**: one text per request (what a web service sends);
2. **bulk**: ``--bulk-batch`` texts per request (second table).

Each level also runs *in-process*: the same number of threads calling one
:class:`OnnxTagger` (``--inprocess-threads`` ONNX Runtime threads; 0 = all
cores) directly, back to back with the Triton run of that level and mirrored
(Triton, in-process, in-process, Triton, each half of ``--duration``), so a
machine whose speed drifts over minutes cannot make the ratio. Each table row gives throughput (texts/s),
p50/p95/p99 latency per request and failed requests for both paths and their
throughput ratio; ``--png`` draws the curves (throughput and p99 against
clients, both paths, both request sizes). Offered load decides latency
(Little's law: texts in flight = throughput x latency), so targets are stated
per level.

``--sweep`` instead measures the online levels for every combination of
``--sweep-instances``, ``--sweep-threads``, ``--sweep-delays`` and
``--sweep-preferred`` and prints them side by side with the best one: the
highest online throughput summed over the levels among configurations
whose p99 at 8 clients is under ``--p99-target-ms`` with no failed request.
That is how :class:`~nerwheel.serving.options.ServingOptions`' defaults were
chosen (its docstring has the figures): sweeps of three models on 2 idle
cores (2026-12-02, 5-6 s per level, int8, CCKS traffic), e5-small and a
``tiny`` tagger with

    --sweep --sweep-instances 1,2 --sweep-threads 1,2 --sweep-delays 0,500,2000 --int8 --duration 5

and the shallow:4 student of e5-small with ``--sweep-threads 1``. A queue
delay of 0 us was best everywhere; 1 instance x 2 threads best for tiny,
2 x 1 for e5-small and the student. The defaults are 1 x 2 threads, 0 us;
``nerwheel deploy --instances 2 --threads 1`` gives a large model the other.
The tiny tagger and the student met p99 < 50 ms at 8 clients in every
configuration that does not oversubscribe the cores; e5-small in none (58 ms
at best). Sweep your own model before changing them. Client threads
share the machine with the server, as they would on a 2-core box; report the
load average printed with the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def load_texts(path: str | None, limit: int, seed: int) -> list[str]:
    if path:
        from nerwheel.formats import read_records

        texts = [r.text for r in read_records(path).records if r.text.strip()]
    else:  # generated addresses: enough to exercise the server, not a quality claim
        rng = random.Random(seed)
        parts = (["浙江省", "江苏省", "广东省", "四川省"], ["杭州市", "南京市", "广州市", "成都市"],
                 ["西湖区", "鼓楼区", "天河区", "武侯区"], ["文三路", "中山路", "人民路", "建设路"])
        texts = ["".join(rng.choice(p) for p in parts) + f"{rng.randint(1, 999)}号" for _ in range(limit)]
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def drive(make_call: Callable[[], Callable[[list[str]], Any]], texts: list[str], *, clients: int, batch: int,
          duration: float) -> dict[str, Any]:
    """``clients`` threads, each with its own ``make_call()``, sending ``batch`` texts per call for ``duration`` s."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    done = [0] * clients
    start = threading.Barrier(clients + 1)
    go = threading.Event()
    deadline = [0.0]

    def worker(k: int) -> None:
        rng = random.Random(k)
        call = make_call()
        call(texts[:batch])  # warm the channel / caches
        start.wait()
        go.wait()
        while time.perf_counter() < deadline[0]:
            i = rng.randrange(0, max(1, len(texts) - batch))
            chunk = texts[i : i + batch]
            t0 = time.perf_counter()
            try:
                call(chunk)
            except Exception as e:  # noqa: BLE001 - every failed request is counted and the first one shown
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies[k].append(time.perf_counter() - t0)
            done[k] += len(chunk)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()  # every client is warm
    t0 = time.perf_counter()
    deadline[0] = t0 + duration
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return summary([x for per in latencies for x in per], sum(done), wall, errors, clients=clients, batch=batch)


def summary(lat: list[float], texts: int, wall: float, errors: list[str], **head: int) -> dict[str, Any]:
    """One table row from raw request latencies (s), texts done, wall seconds and errors (``lat`` kept for merging)."""
    return {**head, "requests": len(lat), "texts": texts, "seconds": round(wall, 2),
            "texts_per_s": round(texts / wall, 1), "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p95_ms": round(percentile(lat, 95) * 1000, 2), "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "errors": len(errors), "first_error": errors[0] if errors else None, "latencies": lat,
            "error_texts": errors}


def paired(a: Callable[[float], dict[str, Any]], b: Callable[[float], dict[str, Any]], duration: float) -> tuple[
        dict[str, Any], dict[str, Any]]:
    """Run ``a`` and ``b`` for ``duration`` s each as a, b, b, a halves, and merge each side's halves.

    A shared 2-core machine drifts in speed by tens of per cent over minutes;
    measured back to back and mirrored, both sides see the same stretch of it,
    so their ratio is not a ratio of two different minutes.
    """
    first_a, first_b = a(duration / 2), b(duration / 2)
    second_b, second_a = b(duration / 2), a(duration / 2)
    return merged(first_a, second_a), merged(first_b, second_b)


def merged(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    return summary(x["latencies"] + y["latencies"], x["texts"] + y["texts"], x["seconds"] + y["seconds"],
                   x["error_texts"] + y["error_texts"], clients=x["clients"], batch=x["batch"])


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A row without the raw latencies (for the JSON report)."""
    return {k: v for k, v in row.items() if k not in ("latencies", "error_texts")}


def triton_caller(url: str, name: str, batch: int) -> Callable[[], Callable[[list[str]], Any]]:
    from nerwheel.serving.client import Client

    def make() -> Callable[[list[str]], Any]:
        client = Client(url, model=name, batch_size=batch, timeout=60, retries=0)
        return client.extract

    return make


def options_from(args: argparse.Namespace, **override: Any) -> Any:
    """:class:`ServingOptions` from the defaults, the flags given, then ``override``."""
    from nerwheel.serving.config import ServingOptions

    given = {"instances": args.instances, "intra_op_threads": args.threads, "max_queue_delay_us": args.queue_delay_us,
             "preferred_batch_sizes": tuple(args.preferred) if args.preferred is not None else None,
             "int8": args.int8 or None, "max_batch_size": args.max_batch_size}
    values = {k: v for k, v in given.items() if v is not None} | override
    return ServingOptions(**values)


class Served:
    """A Triton server with MODEL deployed under ``options`` (context manager: stops the server)."""

    def __init__(self, model: str, options: Any, name: str) -> None:
        from nerwheel.serving.deploy import deploy
        from nerwheel.serving.server import TritonServer

        self.tmp = tempfile.TemporaryDirectory(prefix="nerwheel-bench-")
        repo = Path(self.tmp.name) / "repo"
        repo.mkdir()
        self.server = TritonServer([repo], exit_timeout_s=5).start()
        self.url = self.server.grpc_url
        try:
            report = deploy(model, str(repo), name=name, triton_url=self.url, options=options,
                            control_key=self.server.control_key)
        except BaseException:
            self.close()
            raise
        if report.status != "live":
            self.close()
            raise RuntimeError(f"deploy failed: {json.dumps(report.to_dict(), ensure_ascii=False)}")

    def close(self) -> None:
        self.server.stop()
        self.tmp.cleanup()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(options: Any) -> str:
    pref = ",".join(map(str, options.preferred_batch_sizes)) or "-"
    return (f"instances {options.instances} x {options.intra_op_threads} thread(s), queue delay "
            f"{options.max_queue_delay_us} us, preferred {pref}, {'int8' if options.int8 else 'fp32'}")


def sweep(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Online levels for every option combination; the best one by the rule in the module docstring."""
    combos = list(itertools.product(args.sweep_instances, args.sweep_threads, args.sweep_delays,
                                    args.sweep_preferred))
    results = []
    for instances, threads, delay, preferred in combos:
        opts = options_from(args, instances=instances, intra_op_threads=threads, max_queue_delay_us=delay,
                            preferred_batch_sizes=tuple(int(x) for x in preferred.split(",") if x))
        print(f"sweep: {describe(opts)} ...", file=sys.stderr)
        with Served(args.model, opts, args.name) as served:
            levels = [public(drive(triton_caller(served.url, args.name, 1), texts, clients=c, batch=1,
                                   duration=args.duration)) for c in args.levels]
        results.append({"options": describe(opts), "settings": {"instances": instances, "intra_op_threads": threads,
                                                                 "max_queue_delay_us": delay,
                                                                 "preferred_batch_sizes": preferred},
                        "levels": levels})
    at8 = {r["options"]: next((lv for lv in r["levels"] if lv["clients"] == 8), r["levels"][-1]) for r in results}
    ok = [r for r in results if at8[r["options"]]["p99_ms"] < args.p99_target_ms
          and not any(lv["errors"] for lv in r["levels"])]
    best = max(ok or results, key=lambda r: sum(lv["texts_per_s"] for lv in r["levels"]))
    header = " | ".join(f"{c} cl texts/s (p99 ms)" for c in args.levels)
    print(f"\nsweep, online (1 text per request), {args.duration:.0f} s per level, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print(f"| configuration | {header} | meets p99 < {args.p99_target_ms:g} ms at 8 |")
    print("|---|" + "---:|" * len(args.levels) + "---|")
    for r in results:
        cells = " | ".join(f"{lv['texts_per_s']} ({lv['p99_ms']})" for lv in r["levels"])
        mark = "yes" if r in ok else "no"
        print(f"| {r['options']}{' **best**' if r is best else ''} | {cells} | {mark} |")
    return {"sweep": results, "best": best}


def side_by_side(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Both tables: Triton and in-process at every level, one text and ``--bulk-batch`` texts per request."""
    from nerwheel.model.layout import find_export
    from nerwheel.model.runtime import OnnxTagger

    opts = options_from(args)
    out: dict[str, Any] = {"options": describe(opts), "online": [], "bulk": []}
    modes = (("online", 1), ("bulk", args.bulk_batch))
    export = find_export(Path(args.model))
    if export is None:
        raise SystemExit(f"{args.model}: no ONNX export for the in-process rows; run nerwheel export first")
    tagger = OnnxTagger(export, int8=opts.int8, threads=args.inprocess_threads or None)
    with Served(args.model, opts, args.name) as served:  # idle between its own turns: no CPU taken from in-process
        for mode, batch in modes:
            for c in args.levels:
                def on_triton(seconds: float, c: int = c, batch: int = batch) -> dict[str, Any]:
                    return drive(triton_caller(served.url, args.name, batch), texts, clients=c, batch=batch,
                                 duration=seconds)

                def in_process(seconds: float, c: int = c, batch: int = batch) -> dict[str, Any]:
                    return drive(lambda: tagger.predict, texts, clients=c, batch=batch, duration=seconds)

                t, p = paired(on_triton, in_process, args.duration)
                out[mode].append({"triton": public(t), "in_process": public(p)})
    load = os.getloadavg()[0]
    for mode, batch in modes:
        print(f"\n{mode}: {batch} text(s) per request, {args.duration:.0f} s per level; Triton: {describe(opts)}; "
              f"in-process: one OnnxTagger, {args.inprocess_threads or 'all'} ORT threads; load average {load:.1f} "
              f"on {os.cpu_count()} CPUs\n")
        print("| clients | Triton texts/s | p50 ms | p95 ms | p99 ms | failed | in-process texts/s | p50 ms | p95 ms "
              "| p99 ms | Triton / in-process |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in out[mode]:
            t, p = row["triton"], row["in_process"]
            row["ratio"] = round(t["texts_per_s"] / max(p["texts_per_s"], 1e-9), 2)
            print(f"| {t['clients']} | {t['texts_per_s']} | {t['p50_ms']} | {t['p95_ms']} | {t['p99_ms']} | "
                  f"{t['errors']} | {p['texts_per_s']} | {p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | "
                  f"{row['ratio']} |")
    if args.png:
        plot(out, args.png)
        print(f"\ncurves: {args.png}")
    return out


def plot(out: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, style in (("online", "-"), ("bulk", "--")):
        rows = out[mode]
        clients = [r["triton"]["clients"] for r in rows]
        for side, colour in (("triton", "tab:blue"), ("in_process", "tab:orange")):
            label = f"{'Triton' if side == 'triton' else 'in-process'}, {mode}"
            axes[0].plot(clients, [r[side]["texts_per_s"] for r in rows], style, color=colour, marker="o", label=label)
            axes[1].plot(clients, [r[side]["p99_ms"] for r in rows], style, color=colour, marker="o", label=label)
    for ax, title, unit in ((axes[0], "throughput", "texts/s"), (axes[1], "p99 latency per request", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(out["options"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="trained model folder (with its onnx/ export) or export folder")
    ap.add_argument("--texts", default=None, help="texts to send (any nerwheel format; default: generated)")
    ap.add_argument("--limit", type=int, default=2000, help="texts drawn from --texts")
    ap.add_argument("--levels", default="1,2,4,8,16", help="concurrent clients per level")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load per level")
    ap.add_argument("--bulk-batch", type=int, default=8, help="texts per request in the bulk table")
    ap.add_argument("--instances", type=int, default=None, help="Triton model instances [ServingOptions]")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per instance [ServingOptions]")
    ap.add_argument("--queue-delay-us", type=int, default=None, help="dynamic batching delay [ServingOptions]")
    ap.add_argument("--preferred", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                    help="preferred batch sizes, e.g. 4,8 ('' for none) [ServingOptions]")
    ap.add_argument("--max-batch-size", type=int, default=None, help="Triton max_batch_size [ServingOptions]")
    ap.add_argument("--int8", action="store_true", help="serve model.int8.onnx (and in-process int8 too)")
    ap.add_argument("--inprocess-threads", type=int, default=0, help="ONNX Runtime threads in-process (0: all)")
    ap.add_argument("--name", default="nerwheel", help="model name")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png", default=None, help="write the curves here")
    ap.add_argument("--json", dest="json_out", default=None, help="write every figure here")
    ap.add_argument("--sweep", action="store_true", help="sweep Triton settings instead (online levels only)")
    ap.add_argument("--sweep-instances", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--sweep-threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--sweep-delays", type=lambda s: [int(x) for x in s.split(",")], default=[0, 500, 2000])
    ap.add_argument("--sweep-preferred", type=lambda s: s.split(";"), default=[""],
                    help="preferred batch size lists separated by ';', e.g. ';4,8'")
    ap.add_argument("--p99-target-ms", type=float, default=50.0)
    args = ap.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",")]

    texts = load_texts(args.texts, args.limit, args.seed)
    head = {"model": args.model, "n_texts": len(texts), "mean_chars": round(statistics.mean(map(len, texts)), 1),
            "cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    result = sweep(args, texts) if args.sweep else side_by_side(args, texts)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({**head, **result, "load_after": os.getloadavg()},
                                                  ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
