"""Texts per second, latency, F1 and arithmetic rate: PyTorch vs ONNX Runtime fp32 vs int8, one or more models.

Usage:
    python benchmarks/model_speed.py --model TEACHER --model STUDENT ... --data FILE [--eval GOLD] [--n 2000]
        [--batch-size 32] [--threads 2] [--repeat 3] [--graph plain|fused|both] [--beam 4] [--json OUT]

Every ``--model`` (a trained model directory) is measured on the same first
``--n`` texts of ``FILE`` (any records file ``nerwheel data`` reads, e.g.
``../shared/datasets/ccks2021_address/train.jsonl``), in one run, and printed
in one table: teacher, students and baselines side by side. A model's
``onnx/`` export is used when it holds ``model.int8.onnx``; otherwise it is
exported (fp32 + int8, ``--graph``) into a temporary folder first.

Columns:
- ``texts/s``: all texts through ``predict`` in batches of ``--batch-size``
  (windows sorted by length, as in production), the fastest of ``--repeat``
  passes (a shared machine disturbs some passes);
- ``cpu texts/s``: texts per second of process CPU time in that pass (all
  threads). On a loaded machine it is much closer to what an idle machine
  gives than the wall-clock figure; on an idle one the two differ by the
  thread count at most;
- ``p50/p99 ms``: ``--latency-n`` texts sent one call each;
- ``agree``: strict F1 of the row's entities against the model's PyTorch row;
- ``F1``: strict F1 against the gold labels of ``--eval`` (e.g. the CCKS
  10% carve), computed by that very runtime;
- ``GFLOP/text``: arithmetic per text from the model config and the real
  window lengths (:mod:`nerwheel.model.flops`); ``GFLOP/s``: that over the
  measured time (``GFLOP/cpu-s``: over the CPU time). The header gives a plain float32 matrix product's GFLOP/s on
  the same threads, the CPU's practical limit.

Several ``--model`` compare, e.g., a BERT+CRF and the ``bert-moe-qwen2`` hybrid on
the same BERT: the extra cost of one over the other is read off one table.
``--beam B`` adds, per model, the search alone over the same emissions:
Viterbi vs beam search with B tags per position (and n-best 3, entities
included), in CPU milliseconds per 1,000 texts.

When CUDA is present, PyTorch bf16 / fp16 / fp32 rows on the GPU with
``--gpu-batch-size`` windows per batch are added (addresses/s at large
batches). The machine's load average is printed with the table: report it
with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
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


def matmul_gflops(threads: int, n: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of a float32 ``n x n`` matrix product in torch on ``threads`` threads (best of ``repeat``)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best / 1e9


def measure(name: str, predict: Callable[[list[str]], Any], texts: list[str], latency_texts: list[str], *,
            reference: list | None, gold: Any, flops: float | None, repeat: int) -> dict[str, Any]:
    """One row: throughput (best of ``repeat`` passes, wall and CPU), latency, agreement, gold F1, GFLOP/s."""
    from nerwheel import metrics as M

    predict(texts[:8])  # warm-up: allocations, lazy initialisation
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(max(1, repeat)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = predict(texts)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if w < wall:
            wall, cpu = w, c
    lat = []
    for t in latency_texts:
        s = time.perf_counter()
        predict([t])
        lat.append((time.perf_counter() - s) * 1000)
    row = {"runtime": name, "texts_per_s": len(texts) / wall, "cpu_texts_per_s": len(texts) / max(cpu, 1e-9),
           "p50_ms": statistics.median(lat), "p99_ms": _percentile(lat, 99),
           "agree": M.span_scores(reference, out)[0]["strict"]["f1"] if reference is not None else 1.0,
           "gflop_per_text": flops / len(texts) / 1e9 if flops else None,
           "gflop_per_s": flops / wall / 1e9 if flops else None,
           "gflop_per_cpu_s": flops / max(cpu, 1e-9) / 1e9 if flops else None, "entities": out}
    if gold is not None:
        row["f1"] = M.evaluate(gold, predict([r.text for r in gold]))["overall"]["strict"]["f1"]
    return row


def decode_rows(tagger: Any, texts: list[str], beam: int, repeat: int = 1) -> list[tuple[str, float]]:
    """CPU milliseconds per 1,000 texts of the path search alone (emissions computed once, outside the timing)."""
    from nerwheel.decode import Decoding

    encs, emissions = tagger.emissions(texts)
    rows = []
    for label, decoding, n in (("viterbi", Decoding("viterbi"), None), (f"beam {beam}", Decoding("beam", beam), None),
                               ("n-best 3 (viterbi)", Decoding("viterbi"), 3)):
        saved, tagger.decoding = tagger.decoding, decoding
        best = float("inf")
        for _ in range(max(1, repeat)):
            started = time.process_time()  # CPU time: the search is single-threaded numpy
            if n is None:
                tagger.decode(texts, encs, emissions, scores=False)
            else:
                tagger.decode_n_best(texts, encs, emissions, n)
            best = min(best, time.process_time() - started)
        rows.append((label, best * 1000 / len(texts) * 1000))
        tagger.decoding = saved
    return rows


def exports_of(model: Path, graphs: Sequence[str], tmp: Path) -> dict[str, Path]:
    """The export folder per graph form: the model's own ``onnx/`` where it fits, else a fresh one in ``tmp``."""
    from nerwheel.model.card import ModelCard
    from nerwheel.model.layout import EXPORT_SUBDIR, ONNX_INT8_FILE
    from nerwheel.stages.export import export

    out = {}
    own = model / EXPORT_SUBDIR
    own_graph = ModelCard.read(own).export.get("graph", "plain") if (own / ONNX_INT8_FILE).is_file() else None
    for graph in graphs:
        if graph == own_graph:
            out[graph] = own
            continue
        target = tmp / f"{model.name}-{graph}"
        print(f"exporting {model} ({graph} graph, fp32 + int8) to {target} ...", file=sys.stderr)
        export(model, target, quantize="int8", graph=graph)
        out[graph] = target
    return out


def model_rows(model: Path, args: argparse.Namespace, texts: list[str], latency_texts: list[str], gold: Any,
               tmp: Path) -> dict[str, Any]:
    """Every runtime's row for one model, with its size and arithmetic per text."""
    import torch

    from nerwheel.model.card import ModelCard
    from nerwheel.model.flops import EncoderSize, window_flops
    from nerwheel.model.runtime import OnnxTagger, TorchTagger

    graphs = ["plain", "fused"] if args.graph == "both" else [args.graph]
    exports = exports_of(model, graphs, tmp)
    card = ModelCard.read(model)
    torch_cpu = TorchTagger.from_dir(model, device="cpu", batch_size=args.batch_size)
    size = EncoderSize.from_config(torch_cpu.model.encoder.config, len(card.tags))
    flops = window_flops(size, torch_cpu.window_lengths(texts)) if size else None
    kw = {"gold": gold, "flops": flops, "repeat": args.repeat}
    rows = [measure("pytorch fp32", torch_cpu.predict, texts, latency_texts, reference=None, **kw)]
    reference = rows[0]["entities"]
    threads = args.threads or None
    for graph, folder in exports.items():
        suffix = "" if graph == "plain" else f" ({graph})"
        for label, int8 in (("fp32", False), ("int8", True)):
            tagger = OnnxTagger(folder, int8=int8, batch_size=args.batch_size, threads=threads)
            rows.append(measure(f"onnx {label}{suffix}", tagger.predict, texts, latency_texts, reference=reference,
                                **kw))
    if torch.cuda.is_available():
        for dtype in ("bf16", "fp16", None):
            gpu = TorchTagger.from_dir(model, device="cuda", dtype=dtype, batch_size=args.gpu_batch_size)
            rows.append(measure(f"pytorch {dtype or 'fp32'} cuda bs={args.gpu_batch_size}", gpu.predict, texts,
                                latency_texts, reference=reference, **kw))
    return {"model": str(model), "name": model.name, "backbone": card.backbone, "decode": card.decode,
            "parameters": sum(p.numel() for p in torch_cpu.model.parameters()), "rows": rows,
            "decode_rows": decode_rows(torch_cpu, texts, args.beam, args.repeat) if args.beam else []}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, action="append",
                    help="trained model directory (repeat: teacher, students and baselines in one table)")
    ap.add_argument("--data", required=True, help="records file (any format nerwheel reads): the timed texts")
    ap.add_argument("--eval", dest="eval_path", help="gold records for the F1 column (e.g. the CCKS carve)")
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput run")
    ap.add_argument("--latency-n", type=int, default=200, help="texts sent one at a time for latency")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--gpu-batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime (0: default)")
    ap.add_argument("--beam", type=int, default=0, help="also time the search alone: Viterbi vs beam of this size")
    ap.add_argument("--repeat", type=int, default=1, help="throughput passes per runtime; the fastest is reported")
    ap.add_argument("--graph", choices=["plain", "fused", "both"], default="plain",
                    help="ONNX graph form(s) to measure (see nerwheel export --graph)")
    ap.add_argument("--json", dest="json_out", help="write every figure here")
    args = ap.parse_args(argv)

    import torch

    from nerwheel.formats import read_records

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = [r.text for r in read_records(args.data).records[: args.n]]
    gold = read_records(args.eval_path).records if args.eval_path else None
    latency_texts = texts[: args.latency_n]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nerwheel-bench-") as tmp:
        results = [model_rows(m, args, texts, latency_texts, gold, Path(tmp)) for m in args.model]
    threads = args.threads or torch.get_num_threads()
    limit = matmul_gflops(threads)
    load_after = os.getloadavg()

    print(f"texts {len(texts)} (mean {sum(map(len, texts)) / len(texts):.1f} chars)  batch {args.batch_size}  "
          f"threads {threads}  torch {torch.__version__}  fp32 2048^3 matmul: {limit:.0f} GFLOP/s  "
          f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    if gold is not None:
        print(f"F1: strict, against {args.eval_path} ({len(gold)} records)")
    print("| model | params | runtime | texts/s | cpu texts/s | p50 ms | p99 ms | agree | F1 | GFLOP/text | GFLOP/s "
          "| GFLOP/cpu-s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        for r in res["rows"]:
            f1 = f"{r['f1']:.4f}" if "f1" in r else "-"
            gpt = f"{r['gflop_per_text']:.3f}" if r["gflop_per_text"] else "-"
            gps = f"{r['gflop_per_s']:.0f}" if r["gflop_per_s"] else "-"
            gpc = f"{r['gflop_per_cpu_s']:.0f}" if r["gflop_per_cpu_s"] else "-"
            print(f"| {res['backbone']} ({res['name']}) | {res['parameters'] / 1e6:.1f}M | {r['runtime']} | "
                  f"{r['texts_per_s']:.0f} | {r['cpu_texts_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['agree']:.4f} | {f1} | {gpt} | {gps} | {gpc} |")
    if args.beam:
        print("\n| model | search | cpu ms / 1000 texts |")
        print("|---|---|---:|")
        for res in results:
            for label, ms in res["decode_rows"]:
                print(f"| {res['backbone']} ({res['name']}) | {label} | {ms:.1f} |")
    if args.json_out:
        for res in results:
            for r in res["rows"]:
                r.pop("entities", None)
        Path(args.json_out).write_text(json.dumps({"texts": len(texts), "threads": threads, "matmul_gflops": limit,
                                                   "load": [load_before, load_after], "models": results}, indent=2),
                                       encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
