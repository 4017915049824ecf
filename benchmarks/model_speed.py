"""Texts per second and per-text latency: PyTorch eager vs ONNX Runtime fp32 vs int8, same inputs, one or more models.

Usage:
    python benchmarks/model_speed.py --model MODEL_DIR [--model MODEL_DIR2 ...] --data FILE [--n 2000]
        [--batch-size 32] [--threads 1] [--beam 4] [--repeat 3]

``MODEL_DIR`` is a trained model directory; its ``onnx/`` export is used when
present (with ``model.int8.onnx``), otherwise it is exported (fp32 + int8)
into a temporary folder first. Several ``--model`` (e.g. a BERT+CRF and the
``bert-moe-qwen2`` hybrid on the same BERT) are measured in one run and
printed side by side, each model's rows with its parameter count, so the
extra cost of one over the other is read off one table. ``--beam B`` adds,
per model, the search alone over the same emissions: Viterbi vs beam search
with B tags per position (and n-best 3, entities included), in CPU milliseconds
per 1,000 texts. ``--repeat R`` reports the fastest of R passes (a shared machine
disturbs some passes; the fastest is the closest to the machine's own speed).
"cpu ms/text" is the process's CPU time per text in the throughput pass: on a
machine other jobs share, wall-clock figures move with their load, CPU time
much less, so compare models by it there (with ``--threads 1``). ``FILE`` is any records file ``nerwheel data``
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
            reference: list | None, repeat: int = 1) -> dict[str, Any]:
    """Throughput (the best of ``repeat`` passes: on a shared machine the fastest pass is the least disturbed),
    per-text latency percentiles, and agreement with ``reference``."""
    from nerwheel import metrics as M

    predict(texts[:8])  # warm-up: allocations, lazy initialisation
    seconds = cpu = float("inf")
    for _ in range(max(1, repeat)):
        started, cpu_started = time.perf_counter(), time.process_time()
        out = predict(texts)
        seconds = min(seconds, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    lat = []
    for t in latency_texts:
        s = time.perf_counter()
        predict([t])
        lat.append((time.perf_counter() - s) * 1000)
    agree = M.span_scores(reference, out)[0]["strict"]["f1"] if reference is not None else 1.0
    return {"runtime": name, "texts_per_s": len(texts) / seconds, "cpu_ms_per_text": cpu * 1000 / len(texts),
            "p50_ms": statistics.median(lat),
            "p99_ms": _percentile(lat, 99), "agree": agree, "entities": out}


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


def model_rows(model: Path, args: argparse.Namespace, texts: list[str], latency_texts: list[str]) -> dict[str, Any]:
    """Every runtime's row for one model, plus its size and (with --beam) the search alone."""
    import torch

    from nerwheel.model.card import ModelCard
    from nerwheel.model.layout import EXPORT_SUBDIR, ONNX_INT8_FILE
    from nerwheel.model.runtime import OnnxTagger, TorchTagger
    from nerwheel.stages.export import export

    export_dir = model / EXPORT_SUBDIR
    tmp = None
    if not (export_dir / ONNX_INT8_FILE).is_file():
        tmp = tempfile.TemporaryDirectory(prefix="nerwheel-bench-")
        export_dir = Path(tmp.name) / "export"
        print(f"exporting {model} (fp32 + int8) to {export_dir} ...", file=sys.stderr)
        export(model, export_dir, quantize="int8")
    threads = args.threads or None
    torch_cpu = TorchTagger.from_dir(model, device="cpu", batch_size=args.batch_size)
    rows = [measure("pytorch fp32 cpu", torch_cpu.predict, texts, latency_texts, None, args.repeat)]
    reference = rows[0]["entities"]
    for name, int8 in (("onnxruntime fp32", False), ("onnxruntime int8", True)):
        tagger = OnnxTagger(export_dir, int8=int8, batch_size=args.batch_size, threads=threads)
        rows.append(measure(name, tagger.predict, texts, latency_texts, reference, args.repeat))
    if torch.cuda.is_available():
        for dtype in ("bf16", None):
            gpu = TorchTagger.from_dir(model, device="cuda", dtype=dtype, batch_size=args.gpu_batch_size)
            label = f"pytorch {dtype or 'fp32'} cuda bs={args.gpu_batch_size}"
            rows.append(measure(label, gpu.predict, texts, latency_texts, reference, args.repeat))
    card = ModelCard.read(model)
    out = {"model": model, "backbone": card.backbone, "decode": card.decode,
           "parameters": sum(p.numel() for p in torch_cpu.model.parameters()), "rows": rows,
           "decode_rows": decode_rows(torch_cpu, texts, args.beam, args.repeat) if args.beam else []}
    if tmp is not None:
        tmp.cleanup()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, action="append",
                    help="trained model directory (repeat to compare models in one table)")
    ap.add_argument("--data", required=True, help="records file (any format nerwheel reads)")
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput run")
    ap.add_argument("--latency-n", type=int, default=200, help="texts sent one at a time for latency")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--gpu-batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime (0: default)")
    ap.add_argument("--beam", type=int, default=0, help="also time the search alone: Viterbi vs beam of this size")
    ap.add_argument("--repeat", type=int, default=1, help="throughput passes per runtime; the fastest is reported")
    args = ap.parse_args(argv)

    import torch

    from nerwheel.formats import read_records

    if args.threads:
        torch.set_num_threads(args.threads)
    records = read_records(args.data).records[: args.n]
    texts = [r.text for r in records]
    latency_texts = texts[: args.latency_n]
    results = [model_rows(m, args, texts, latency_texts) for m in args.model]

    print(f"texts {len(texts)} (mean {sum(map(len, texts)) / len(texts):.1f} chars)  batch {args.batch_size}  "
          f"threads {args.threads or torch.get_num_threads()}  torch {torch.__version__}")
    print(f"{'model':<28}{'params':>10}  {'runtime':<32}{'texts/s':>10}{'cpu ms/text':>12}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'agree F1':>10}")
    for res in results:
        name = f"{res['backbone']} ({res['model'].name})"[:27]
        for r in res["rows"]:
            print(f"{name:<28}{res['parameters'] / 1e6:>9.2f}M  {r['runtime']:<32}{r['texts_per_s']:>10.1f}"
                  f"{r['cpu_ms_per_text']:>12.3f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['agree']:>10.4f}")
    if args.beam:
        print(f"\n{'model':<28}{'search':<22}{'cpu ms / 1000 texts':>20}")
        for res in results:
            name = f"{res['backbone']} ({res['model'].name})"[:27]
            for label, ms in res["decode_rows"]:
                print(f"{name:<28}{label:<22}{ms:>20.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
