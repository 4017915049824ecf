"""Why int8 does or does not pay: every quantisation choice on one model, side by side, with its F1 cost.

Usage:
    python benchmarks/int8.py --model MODEL_DIR --data FILE [--eval GOLD] [--n 2000] [--threads 1] [--repeat 3]

From one trained model it builds each variant the question needs:

- graph: ``plain`` (the traced graph; ONNX Runtime fuses at load) or ``fused``
  (ONNX Runtime's transformer optimizer: Attention, SkipLayerNorm,
  EmbedLayerNorm, BiasGelu written into the file);
- int8: dynamic (weights int8, activations quantised per batch at run time,
  QOperator ops: ``MatMulInteger`` -> ``DynamicQuantizeMatMul``, ``QAttention``)
  per output channel or per tensor, optionally 7-bit (``reduce_range``, for
  AVX2 machines without VNNI); and static QDQ (activation scales calibrated on
  ``--calibration`` texts, ``QuantizeLinear``/``DequantizeLinear`` pairs).

Per variant: the encoder alone (CPU ms per batch of ``--batch-size`` real
windows, the fastest of ``--repeat`` passes over the batches, measured with
the thread's CPU clock on one intra-op thread, so a loaded machine disturbs it
little), the whole ``predict`` (texts/s, wall and CPU), strict F1 on
``--eval`` and its change against plain fp32, agreement with plain fp32, the
largest emission difference, and how many of the heavy ops run in int8 and how
many stay float (``MatMul`` for attention scores in a plain graph). The CPU's
int8 instruction sets are printed (VNNI makes int8 products much cheaper than
plain AVX2).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    have = set(flags.split(":", 1)[1].split())
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in have) or "none"


def variant_folder(export: Path, onnx_file: Path, root: Path, name: str) -> Path:
    """An export folder whose ``model.onnx`` is ``onnx_file`` (tokenizer, card and CRF copied)."""
    from nerwheel.model.layout import CARD_FILE, CRF_NPZ, ONNX_FILE, TOKENIZER_FILE

    folder = root / name
    folder.mkdir(parents=True)
    for f in (CARD_FILE, CRF_NPZ, TOKENIZER_FILE):
        if (export / f).exists():
            shutil.copy2(export / f, folder / f)
    shutil.copy2(onnx_file, folder / ONNX_FILE)
    return folder


def build_variants(model: Path, root: Path, calibration: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Path]:
    """Every variant's ONNX file, built from ``model`` into ``root``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from nerwheel.model.classifier import TokenClassifier
    from nerwheel.model.card import ModelCard
    from nerwheel.model.onnx_export import quiet, fuse_transformer, quantize_int8, write_onnx

    card = ModelCard.read(model)
    net = TokenClassifier.load(model, head=card.head).eval()
    plain, eager, fused = root / "plain.onnx", root / "eager.onnx", root / "fused.onnx"
    write_onnx(net, plain, pad_id=card.pad_id)
    write_onnx(net, eager, pad_id=card.pad_id, attention="eager")
    fuse_transformer(eager, fused, net.encoder.config)
    out = {"plain fp32": plain, "fused fp32": fused}
    for name, src, kw in (("plain int8 per-channel", plain, {}), ("plain int8 per-tensor", plain, {"per_channel": False}),
                          ("plain int8 per-channel 7-bit", plain, {"reduce_range": True}),
                          ("fused int8 per-channel", fused, {})):
        target = root / (name.replace(" ", "_") + ".onnx")
        quantize_int8(src, target, **kw)
        out[name] = target

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            nxt = next(self.batches, None)
            return None if nxt is None else {"input_ids": nxt[0], "attention_mask": nxt[1]}

    static = root / "plain_int8_static_qdq.onnx"
    with quiet():
        quantize_static(str(plain), str(static), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"DefaultTensorType": 1})
    out["plain int8 static QDQ per-channel"] = static
    return out


def encoder_ms(path: Path, batches: list[tuple[np.ndarray, np.ndarray]], repeat: int) -> float:
    """CPU milliseconds per batch of the ONNX graph alone (one intra-op thread, thread CPU clock, best pass)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = [{"input_ids": i, "attention_mask": m} for i, m in batches]
    session.run(["emissions"], feed[0])
    best = float("inf")
    for _ in range(max(1, repeat)):
        started = time.thread_time()
        for f in feed:
            session.run(["emissions"], f)
        best = min(best, time.thread_time() - started)
    return best / len(feed) * 1000


def window_batches(tagger: Any, texts: list[str], batch_size: int, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``limit`` real model inputs: the tagger's own padded batches for ``texts``."""
    captured: list[tuple[np.ndarray, np.ndarray]] = []
    run = tagger.run
    tagger.run = lambda ids, mask: (captured.append((ids.copy(), mask.copy())), run(ids, mask))[1]
    saved = tagger.batch_size
    tagger.batch_size = batch_size
    try:
        tagger.emissions(texts)
    finally:
        tagger.run, tagger.batch_size = run, saved
    step = max(1, len(captured) // limit)
    return captured[::step][:limit]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="trained model directory")
    ap.add_argument("--data", required=True, help="records file: the timed texts")
    ap.add_argument("--eval", dest="eval_path", help="gold records for F1 (e.g. the CCKS carve)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=16, help="real batches timed for the encoder-alone column")
    ap.add_argument("--calibration", type=int, default=8, help="batches calibrating the static QDQ variant")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the predict columns")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from nerwheel import metrics as M
    from nerwheel.formats import read_records
    from nerwheel.model.onnx_export import FLOAT_HEAVY_OPS, INT8_OPS, graph_ops
    from nerwheel.model.runtime import OnnxTagger
    from nerwheel.stages.export import export

    texts = [r.text for r in read_records(args.data).records[: args.n]]
    gold = read_records(args.eval_path).records if args.eval_path else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="nerwheel-int8-") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "export"
        print(f"exporting {args.model} ...", file=sys.stderr)
        export(args.model, base)
        ref_tagger = OnnxTagger(base, batch_size=args.batch_size, threads=args.threads)
        batches = window_batches(ref_tagger, texts, args.batch_size, args.batches)
        calibration = window_batches(ref_tagger, texts[::7], 8, args.calibration)
        variants = build_variants(args.model, tmp, calibration)
        reference = ref_tagger.predict(texts, scores=False)
        base_f1 = None
        for name, onnx_file in variants.items():
            tagger = OnnxTagger(variant_folder(base, onnx_file, tmp, name.replace(" ", "_")),
                                batch_size=args.batch_size, threads=args.threads)
            wall, cpu, out = float("inf"), float("inf"), None
            for _ in range(args.repeat):
                w0, c0 = time.perf_counter(), time.process_time()
                out = tagger.predict(texts, scores=False)
                w, c = time.perf_counter() - w0, time.process_time() - c0
                if w < wall:
                    wall, cpu = w, c
            _, em_ref = ref_tagger.emissions(texts[:200])
            _, em = tagger.emissions(texts[:200])
            ops = graph_ops(onnx_file)
            f1 = M.evaluate(gold, tagger.predict([r.text for r in gold], scores=False))["overall"]["strict"]["f1"] \
                if gold else None
            base_f1 = f1 if base_f1 is None else base_f1
            rows.append({
                "variant": name, "encoder_ms": encoder_ms(onnx_file, batches, args.repeat),
                "texts_per_s": len(texts) / wall, "cpu_texts_per_s": len(texts) / max(cpu, 1e-9), "f1": f1,
                "f1_change": None if f1 is None else f1 - base_f1,
                "agree": M.span_scores(reference, out)[0]["strict"]["f1"],
                "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(em_ref, em, strict=True) if a.size),
                "int8_ops": sum(v for k, v in ops.items() if k in INT8_OPS),
                "float_ops": sum(v for k, v in ops.items() if k in FLOAT_HEAVY_OPS),
            })
    plain = rows[0]["encoder_ms"]
    print(f"model {args.model}  {len(texts)} texts  batch {args.batch_size}  CPU int8 features: {cpu_flags()}")
    print("| variant | encoder CPU ms/batch | x plain fp32 | texts/s | cpu texts/s | F1 | F1 change | agree | "
          "max diff | int8 ops | float ops |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        f1 = f"{r['f1']:.4f}" if r["f1"] is not None else "-"
        change = f"{r['f1_change']:+.4f}" if r["f1_change"] is not None else "-"
        print(f"| {r['variant']} | {r['encoder_ms']:.1f} | {plain / r['encoder_ms']:.2f} | {r['texts_per_s']:.0f} | "
              f"{r['cpu_texts_per_s']:.0f} | {f1} | {change} | {r['agree']:.4f} | {r['max_diff']:.3f} | "
              f"{r['int8_ops']} | {r['float_ops']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
