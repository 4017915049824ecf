"""Texts per second and per-text latency of one model: PyTorch eager vs ONNX Runtime fp32 vs int8, same inputs.

Usage:
    python benchmarks/model_speed.py --model MODEL_DIR --data FILE [--n 2000] [--batch-size 32] [--threads 1]

``MODEL_DIR`` is a trained model directory; its ``onnx/`` export is used when
present (with ``model.int8.onnx``), otherwise it is exported (fp32 + int8)
into a temporary folder first. ``FILE`` is any records file ``nerwheel data``
reads (e.g. ``../shared/datasets/ccks2021_address/train.jsonl``); the first
``--n`` texts are used, in a fixed order, by every runtime.

Throughput: all texts through ``predict`` in batches of ``--batch-size``
(windows sorted by length, as in production). Latency: ``--latency-n`` texts
one call each, p50 and p99. "agree" is the strict F1 of each runtime's entities
against PyTorch fp32 on the same texts (1.0 = identical). When CUDA is present,
rows for PyTorch bf16 and fp32 on the GPU with large batches are added.
One run, printed side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def measure(name: str, predict: Callable[[list[str]], Any], texts: list[str], latency_texts: list[str],
            reference: list | None) -> dict[str, Any]:
    from nerwheel import metrics as M

    predict(texts[:8])  # warm-up: allocations, lazy initialisation
    started = time.perf_counter()
    out = predict(texts)
    seconds = time.perf_counter() - started
    lat = []
    for t in latency_texts:
        s = time.perf_counter()
        predict([t])
        lat.append((time.perf_counter() - s) * 1000)
    agree = M.span_scores(reference, out)[0]["strict"]["f1"] if reference is not None else 1.0
    return {"runtime": name, "texts_per_s": len(texts) / seconds, "p50_ms": statistics.median(lat),
            "p99_ms": _percentile(lat, 99), "agree": agree, "entities": out}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="trained model directory")
    ap.add_argument("--data", required=True, help="records file (any format nerwheel reads)")
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput run")
    ap.add_argument("--latency-n", type=int, default=200, help="texts sent one at a time for latency")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--gpu-batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime (0: default)")
    args = ap.parse_args(argv)

    import torch

    from nerwheel.formats import read_records
    from nerwheel.model.layout import EXPORT_SUBDIR, ONNX_INT8_FILE
    from nerwheel.model.runtime import OnnxTagger, TorchTagger
    from nerwheel.stages.export import export

    if args.threads:
        torch.set_num_threads(args.threads)
    records = read_records(args.data).records[: args.n]
    texts = [r.text for r in records]
    latency_texts = texts[: args.latency_n]
    export_dir = args.model / EXPORT_SUBDIR
    tmp = None
    if not (export_dir / ONNX_INT8_FILE).is_file():
        tmp = tempfile.TemporaryDirectory(prefix="nerwheel-bench-")
        export_dir = Path(tmp.name) / "export"
        print(f"exporting {args.model} (fp32 + int8) to {export_dir} ...", file=sys.stderr)
        export(args.model, export_dir, quantize="int8")

    threads = args.threads or None
    torch_cpu = TorchTagger.from_dir(args.model, device="cpu", batch_size=args.batch_size)
    rows = [measure("pytorch fp32 cpu", torch_cpu.predict, texts, latency_texts, None)]
    reference = rows[0]["entities"]
    for name, int8 in (("onnxruntime fp32", False), ("onnxruntime int8", True)):
        tagger = OnnxTagger(export_dir, int8=int8, batch_size=args.batch_size, threads=threads)
        rows.append(measure(name, tagger.predict, texts, latency_texts, reference))
    if torch.cuda.is_available():
        for dtype in ("bf16", None):
            gpu = TorchTagger.from_dir(args.model, device="cuda", dtype=dtype, batch_size=args.gpu_batch_size)
            label = f"pytorch {dtype or 'fp32'} cuda bs={args.gpu_batch_size}"
            rows.append(measure(label, gpu.predict, texts, latency_texts, reference))

    print(f"model {args.model}  texts {len(texts)} (mean {sum(map(len, texts)) / len(texts):.1f} chars)  "
          f"batch {args.batch_size}  threads {args.threads or torch.get_num_threads()}  "
          f"torch {torch.__version__}")
    print(f"{'runtime':<32}{'texts/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'agree F1':>10}")
    for r in rows:
        print(f"{r['runtime']:<32}{r['texts_per_s']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['agree']:>10.4f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
