"""Serving throughput and latency: N concurrent gRPC clients against a real Triton, vs the model in-process.

Deploys MODEL (a trained model folder, or an export folder) into a fresh local
repository, starts ``tritonserver`` on 127.0.0.1 (or uses ``--triton-url``),
then runs ``--clients`` threads, each with its own gRPC :class:`Client`,
sending ``--batch-size`` texts per request for ``--duration`` seconds. The
same texts then go through the model in-process: PyTorch (``TorchTagger``,
when MODEL is a trained folder) and ONNX Runtime (``OnnxTagger``), single
caller, same batch size, for the ratio.

    .venv/bin/python benchmarks/serving.py --model MODEL_DIR \\
        --texts ../shared/datasets/ccks2021_address/unlabeled.jsonl --clients 4 --duration 20

Prints a markdown table (and ``--json`` writes the numbers). Figures depend on
the machine and its load: run it on a quiet machine and report the command.
"""

from __future__ import annotations

import argparse
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
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_clients(url: str, model: str, texts: list[str], *, clients: int, batch_size: int, duration: float,
                timeout: float) -> dict[str, Any]:
    from nerwheel.serving.client import Client, ServingError

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    done_texts = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline: list[float] = [0.0]

    def worker(k: int) -> None:
        rng = random.Random(k)
        with Client(url, model=model, batch_size=batch_size, timeout=timeout, retries=0) as client:
            client.extract(texts[:batch_size])  # warm the channel
            start.wait()
            while time.perf_counter() < deadline[0]:
                i = rng.randrange(0, max(1, len(texts) - batch_size))
                batch = texts[i : i + batch_size]
                t0 = time.perf_counter()
                try:
                    client.extract(batch)
                except ServingError as e:
                    errors.append(str(e))
                    continue
                latencies[k].append(time.perf_counter() - t0)
                done_texts[k] += len(batch)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + duration
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = [x for per in latencies for x in per]
    return {
        "requests": len(lat), "texts": sum(done_texts), "seconds": round(wall, 2),
        "requests_per_s": round(len(lat) / wall, 1), "texts_per_s": round(sum(done_texts) / wall, 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 2), "p95_ms": round(percentile(lat, 95) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2), "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def run_in_process(predict: Callable[[list[str]], Any], texts: list[str], *, batch_size: int,
                   duration: float) -> dict[str, Any]:
    predict(texts[:batch_size])  # warm-up
    lat, n, i = [], 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < duration:
        batch = texts[i : i + batch_size] or texts[:batch_size]
        i = (i + batch_size) % max(1, len(texts))
        s = time.perf_counter()
        predict(batch)
        lat.append(time.perf_counter() - s)
        n += len(batch)
    wall = time.perf_counter() - t0
    return {"requests": len(lat), "texts": n, "seconds": round(wall, 2), "requests_per_s": round(len(lat) / wall, 1),
            "texts_per_s": round(n / wall, 1), "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p95_ms": round(percentile(lat, 95) * 1000, 2), "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "errors": 0}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="trained model folder or export folder")
    ap.add_argument("--texts", default=None, help="texts to send (any nerwheel format; default: generated)")
    ap.add_argument("--limit", type=int, default=2000, help="texts drawn from --texts")
    ap.add_argument("--clients", type=int, default=4, help="concurrent gRPC clients (threads)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load per measurement")
    ap.add_argument("--batch-size", type=int, default=8, help="texts per request")
    ap.add_argument("--instances", type=int, default=1, help="Triton model instances")
    ap.add_argument("--max-batch-size", type=int, default=32, help="Triton max_batch_size (dynamic batching)")
    ap.add_argument("--queue-delay-us", type=int, default=2000, help="dynamic batching max queue delay")
    ap.add_argument("--triton-url", default=None, help="use this running Triton (model already deployed)")
    ap.add_argument("--name", default="nerwheel", help="model name")
    ap.add_argument("--threads", type=int, default=1, help="threads for in-process PyTorch / ONNX Runtime")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", dest="json_out", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from nerwheel.serving.config import ServingOptions
    from nerwheel.serving.deploy import deploy
    from nerwheel.serving.server import TritonServer

    texts = load_texts(args.texts, args.limit, args.seed)
    results: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "json_out"},
                               "n_texts": len(texts), "mean_chars": round(statistics.mean(map(len, texts)), 1),
                               "cpu_count": os.cpu_count()}
    server = None
    with tempfile.TemporaryDirectory(prefix="nerwheel-bench-") as tmp:
        url = args.triton_url
        if url is None:
            (Path(tmp) / "repo").mkdir()
            server = TritonServer([Path(tmp) / "repo"], exit_timeout_s=5).start()
            url = server.grpc_url
            opts = ServingOptions(max_batch_size=args.max_batch_size, instances=args.instances,
                                  max_queue_delay_us=args.queue_delay_us, intra_op_threads=args.threads)
            report = deploy(args.model, str(Path(tmp) / "repo"), name=args.name, triton_url=url, options=opts,
                            control_key=server.control_key)
            if report.status != "live":
                print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), file=sys.stderr)
                server.stop()
                return 1
        try:
            results["triton_grpc"] = run_clients(url, args.name, texts, clients=args.clients,
                                                 batch_size=args.batch_size, duration=args.duration, timeout=60)
        finally:
            if server is not None:
                server.stop()

    from nerwheel.model.layout import find_export, is_model_dir
    from nerwheel.model.runtime import OnnxTagger, TorchTagger

    model = Path(args.model)
    if is_model_dir(model):
        import torch

        torch.set_num_threads(args.threads)
        torch_tagger = TorchTagger.from_dir(model, device="cpu")
        results["pytorch_in_process"] = run_in_process(torch_tagger.predict, texts, batch_size=args.batch_size,
                                                       duration=args.duration)
    export = find_export(model)
    if export is not None:
        onnx_tagger = OnnxTagger(export, threads=args.threads)
        results["onnx_in_process"] = run_in_process(onnx_tagger.predict, texts, batch_size=args.batch_size,
                                                    duration=args.duration)

    rows = [(k, results[k]) for k in ("triton_grpc", "pytorch_in_process", "onnx_in_process") if k in results]
    print(f"\n{len(texts)} texts (mean {results['mean_chars']} chars), batch {args.batch_size}, "
          f"{args.clients} gRPC clients, {args.duration:.0f} s each, {results['cpu_count']} CPUs\n")
    print("| path | requests/s | texts/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['requests_per_s']} | {r['texts_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['p99_ms']} | {r['errors']} |")
    if "pytorch_in_process" in results:
        ratio = results["triton_grpc"]["texts_per_s"] / max(results["pytorch_in_process"]["texts_per_s"], 1e-9)
        results["triton_over_pytorch_texts_per_s"] = round(ratio, 2)
        print(f"\nTriton / in-process PyTorch (texts/s): {ratio:.2f}x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
