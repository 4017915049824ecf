"""Span head vs CRF head on real data, and what extension labels add, printed as one table.

    nice -n 10 .venv/bin/python benchmarks/span.py \\
        --cluener ../shared/datasets/cluener/train.jsonl --ccks ../shared/datasets/ccks2021_address/train.jsonl \\
        [--train 2000 --dev 200 --test 600] [--epochs 8] [--hidden 128 --layers 2] [--extension-weights 0.5,1.0] \\
        [--out DIR]

Each corpus is carved here, seeded: ``--test`` records first (never trained
on), then ``--dev`` (early stopping), then ``--train``. Rows:

- CLUENER (``cluener/train.jsonl``): ``crf`` (training drops overlapping spans,
  keep-longest) and ``span`` (nested spans kept, decoded ``--nested``);
- CCKS 2021 addresses: ``crf`` and ``span`` on the gold labels, then ``span +
  kb:`` with extension labels made by the knowledge-base teacher
  (:class:`nerwheel.kb.annotator.AddressKB` over the training texts, each of
  its entities relabelled ``kb:<type>``) at each ``--extension-weights``
  weight. The extension labels overlap the gold spans by nature (the KB and
  gold often mark the same span); only the span head can learn both.

Scores are strict P/R/F1 of target labels on the test carve (extension labels
are never scored; :func:`nerwheel.stages.evaluate.evaluate`), plus strict recall
of the gold spans that overlap another gold span (nested). Speed: training
seconds and epochs run (both swing with a shared machine's load), the cost of
one training step on the same 32 windows (forward, loss, backward; one thread,
best of five), and inference texts/s of the ONNX export and of PyTorch,
one thread each, best of three passes over the test texts (so the figures
depend less on what else a shared machine runs). The whole table comes from
one run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from nerwheel.formats import read_records
from nerwheel.records import Entity, Record


def _carve(path: Path, args: argparse.Namespace) -> tuple[list[Record], list[Record], list[Record]]:
    result = read_records(path)
    print(f"{path}: {result.summary()}", file=sys.stderr)
    records = list(result.records)
    random.Random(args.seed).shuffle(records)
    t, d = args.test, args.dev
    return records[t + d : t + d + args.train], records[t : t + d], records[:t]


def _kb_extensions(records: list[Record]) -> tuple[list[Record], float]:
    """``records`` with the knowledge base's entities added as ``kb:<type>`` extension labels."""
    from nerwheel.kb.annotator import AddressKB

    kb = AddressKB()
    started = time.perf_counter()
    out = []
    for r in records:
        extra = [Entity(e.start, e.end, f"kb:{e.label}", e.text) for e in kb.annotate_text(r.text)]
        out.append(r.with_entities([*r.entities, *extra]))
    return out, time.perf_counter() - started


def _train(args: argparse.Namespace, name: str, head: str, train: list[Record], dev: list[Record],
           extension_weight: float = 0.5) -> tuple[Path, float, int]:
    from nerwheel.labels import is_extension_label
    from nerwheel.model.config import validate
    from nerwheel.stages.train import train as run_train

    model: dict[str, Any] = {
        "model_id": args.backbone, "head": head,
        "span": {"max_width": args.max_width, "extension_weight": extension_weight},
    }
    if args.backbone == "tiny":
        model["tiny"] = {"hidden_size": args.hidden, "num_layers": args.layers, "num_heads": 4,
                         "intermediate_size": 4 * args.hidden}
    # the data set's own target labels (CLUENER's are not the address task's, the train default)
    labels = sorted({e.label for r in train for e in r.entities if not is_extension_label(e.label)})
    cfg = validate({
        "model": model,
        "data": {"labels": labels},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "sequence_length": args.sequence_length,
                     "stride": 16, "threads": args.threads, "seed": args.seed},
        "early_stopping": {"patience": 2},
        "output": {"output_dir": str(args.out / "models"), "model_name": name, "timestamp": False,
                   "save_total_limit": 0, "plots": False},
    }, source="benchmark")
    started = time.perf_counter()
    model_dir = run_train(cfg, train_records=train, dev_records=dev)
    card = json.loads((model_dir / "nerwheel.json").read_text(encoding="utf-8"))
    return model_dir, time.perf_counter() - started, card["metrics"]["epochs_run"]


def _texts_per_second(predictor: Any, texts: list[str], repeats: int = 3) -> float:
    """Best of ``repeats`` passes: on a shared machine the fastest pass is the one least disturbed by others."""
    predictor.predict(texts[:32])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def _step_ms(model_dir: Path, train: list[Record], repeats: int = 5) -> float:
    """One optimiser step's forward + loss + backward on 32 training windows, one thread, best of ``repeats``.

    Epoch times on a shared machine swing with its load; this figure compares
    the heads' compute on identical input.
    """
    import torch

    from nerwheel.decode_span import SpanLayout
    from nerwheel.model.data import build_features, collate
    from nerwheel.model.runtime import TorchTagger
    from nerwheel.model.span_data import build_span_features

    tagger = TorchTagger.from_dir(model_dir)
    card, model = tagger.card, tagger.model
    if card.head == "span":
        layout = SpanLayout(tuple(card.labels), int(card.span["max_width"]))
        features = build_span_features(train[:32], tagger.encoder, layout)[0]
    else:
        features = build_features(train[:32], tagger.encoder, card.tagset)[0]
    batch = {k: torch.from_numpy(v) for k, v in collate(features[:32], tagger.encoder.pad_id).items()}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    best = float("inf")
    try:
        for _ in range(repeats + 1):  # the first pass warms up
            started = time.perf_counter()
            model.zero_grad()
            model.loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"]).backward()
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
    return best * 1000


def _score(args: argparse.Namespace, model_dir: Path, head: str, test: list[Record]) -> dict[str, Any]:
    import torch

    from nerwheel.model.runtime import OnnxTagger, TorchTagger
    from nerwheel.stages.evaluate import evaluate
    from nerwheel.stages.export import export

    nested = True if head == "span" else None
    export(model_dir, model_dir / "onnx", texts=[r.text for r in test[:64]])
    onnx = OnnxTagger(model_dir / "onnx", threads=1, nested=nested)
    metrics = evaluate(model_dir, test, args.out / "eval" / model_dir.name, predictor=onnx, plots=False)
    texts = [r.text for r in test]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch_speed = _texts_per_second(TorchTagger.from_dir(model_dir, nested=nested), texts)
    finally:
        torch.set_num_threads(before)
    o, ov = metrics["overall"]["strict"], metrics["overlapping_spans"]
    return {"precision": o["precision"], "recall": o["recall"], "f1": o["f1"],
            "nested_gold": ov["gold"], "nested_recall": ov["strict"]["recall"],
            "onnx_texts_s": _texts_per_second(onnx, texts), "torch_texts_s": torch_speed}


def _run(args: argparse.Namespace, corpus: str, row: str, head: str, train: list[Record], dev: list[Record],
         test: list[Record], **kw: Any) -> dict[str, Any]:
    name = re.sub(r"[^A-Za-z0-9.]+", "-", f"{corpus}-{row}").strip("-")  # ccks-span-kb-w-0.5
    print(f"--- {corpus} {row}: training {len(train)} records", file=sys.stderr)
    model_dir, seconds, epochs = _train(args, name, head, train, dev, **kw)
    out = {"corpus": corpus, "row": row, "head": head, "train_seconds": round(seconds, 1), "epochs": epochs,
           "step_ms": round(_step_ms(model_dir, train), 1), **_score(args, model_dir, head, test)}
    print(json.dumps(out), file=sys.stderr)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'corpus':<8} {'model':<22} {'strict P':>8} {'R':>7} {'F1':>7} {'nested R':>9} {'train s':>8} "
            f"{'epochs':>6} {'step ms':>8} {'onnx t/s':>9} {'torch t/s':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        nested = f"{r['nested_recall']:.3f}" if r["nested_gold"] else "-"
        lines.append(f"{r['corpus']:<8} {r['row']:<22} {r['precision']:>8.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} "
                     f"{nested:>9} {r['train_seconds']:>8.1f} {r['epochs']:>6} {r['step_ms']:>8.1f} "
                     f"{r['onnx_texts_s']:>9.0f} "
                     f"{r['torch_texts_s']:>9.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cluener", type=Path, help="cluener/train.jsonl")
    p.add_argument("--ccks", type=Path, help="ccks2021_address/train.jsonl")
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--dev", type=int, default=200)
    p.add_argument("--test", type=int, default=600)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--sequence-length", type=int, default=64)
    p.add_argument("--max-width", type=int, default=24, help="span head: longest span in tokens")
    p.add_argument("--extension-weights", default="0.5,1.0", help="CCKS: weights of the kb: extension labels")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training (1: fastest on a busy machine)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if not (args.cluener or args.ccks):
        p.error("give --cluener and/or --ccks")
    if args.out is None:
        import tempfile

        args.out = Path(tempfile.mkdtemp(prefix="span-bench-"))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    if args.cluener:
        train, dev, test = _carve(args.cluener, args)
        for head in ("crf", "span"):
            rows.append(_run(args, "cluener", head, head, train, dev, test))
    if args.ccks:
        train, dev, test = _carve(args.ccks, args)
        for head in ("crf", "span"):
            rows.append(_run(args, "ccks", head, head, train, dev, test))
        fused, kb_seconds = _kb_extensions(train)
        n_ext = sum(len(r.entities) for r in fused) - sum(len(r.entities) for r in train)
        notes.append(f"ccks: the KB teacher labelled {len(train)} training texts in {kb_seconds:.1f} s: {n_ext} kb: "
                     "extension spans")
        for w in (float(x) for x in args.extension_weights.split(",") if x.strip()):
            rows.append(_run(args, "ccks", f"span + kb: (w={w:g})", "span", fused, dev, test, extension_weight=w))
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "notes": notes,
              "seconds": round(time.perf_counter() - started, 1)}
    (args.out / "span_benchmark.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(_table(rows))
    for n in notes:
        print(n)
    print(f"carve: train {args.train}, dev {args.dev}, test {args.test} (seed {args.seed}); backbone {args.backbone}"
          f"{f' {args.hidden}x{args.layers}' if args.backbone == 'tiny' else ''}; {args.epochs} epochs max; "
          f"total {report['seconds']:.0f} s; details in {args.out / 'span_benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
