"""The message classifier on a real data set: backbones side by side, then runtimes side by side.

Usage:
    python benchmarks/classify.py --data ../shared/datasets/kuake_qqr/train.json --out runs/bench-classify \
        [--backbones tiny,e5-small] [--epochs 3] [--max-length 64] [--dev-ratio 0.1] [--seed 7] [--n 1000]

``--data`` is a JSON array of ``{"message", "context", "label"}`` with a
``labels.json`` beside it (e.g. KUAKE-QQR). A stratified, seeded dev carve
(``--dev-ratio``) is set aside first and never seen in training (training
carves its own validation split from the rest, for early stopping and the best
checkpoint); the figures are on the carve.

Table 1 (per backbone): accuracy, macro-F1, ECE on the dev carve, training
seconds, epochs run. Table 2 (per backbone): texts/s of PyTorch fp32, ONNX
Runtime fp32 and int8 on the first ``--n`` dev pairs (batches of
``--batch-size``, sorted by length as in production), and how often int8
picks the same class as fp32. One run, printed side by side; a JSON with
everything goes to ``--out``/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _carve(data: str, ratio: float, seed: int) -> tuple[list[Any], list[Any], Any]:
    from nerwheel.tasks.classify.formats import read_messages
    from nerwheel.tasks.classify.records import LabelSet
    from nerwheel.tasks.classify.train import stratified_split

    result = read_messages(data, require_label=True)
    print(result.summary(), file=sys.stderr)
    labels = LabelSet.beside(data) or LabelSet.from_messages(result.records)
    train, dev = stratified_split(result.records, ratio, seed)
    return train, dev, labels


def _train(backbone: str, train: list[Any], labels: Any, args: argparse.Namespace) -> Path:
    from nerwheel.tasks.classify.config import validate
    from nerwheel.tasks.classify.train import train as run

    raw = {
        "model": {"name": backbone, "num_labels": len(labels), "max_length": args.max_length,
                  "labels": list(labels.names)},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                     "threads": args.threads, **({"learning_rate": args.lr} if args.lr else {})},
        "early_stopping": {"patience": 2},
        "logging": {"steps": 50},
        "output": {"output_dir": str(args.out / "models"), "model_name": backbone, "timestamp": False,
                   "save_total_limit": 1},
    }
    return run(validate(raw), train_records=train)


def _speed(name: str, clf: Any, pairs: list[tuple[str, str]]) -> tuple[dict[str, Any], Any]:
    clf.probabilities(pairs[:16])  # warm-up
    started = time.perf_counter()
    probs = clf.probabilities(pairs)
    seconds = time.perf_counter() - started
    return {"runtime": name, "texts_per_s": len(pairs) / seconds}, probs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="JSON array / JSONL of messages with labels.json beside it")
    ap.add_argument("--out", required=True, type=Path, help="folder for the models and results.json")
    ap.add_argument("--backbones", default="tiny,e5-small")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: per backbone)")
    ap.add_argument("--dev-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--n", type=int, default=1000, help="dev pairs for the speed table")
    ap.add_argument("--train-limit", type=int, default=0,
                    help="train on a stratified, seeded subset of this many pairs of the train carve (0: all); for "
                    "machines where a full epoch of e5-small does not fit the time (the dev carve stays whole)")
    args = ap.parse_args(argv)

    import logging

    import numpy as np

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")  # progress per logging step

    from nerwheel.tasks.classify.evaluate import evaluate
    from nerwheel.tasks.classify.export import export
    from nerwheel.tasks.classify.runtime import OnnxClassifier, TorchClassifier

    args.out.mkdir(parents=True, exist_ok=True)
    train, dev, labels = _carve(args.data, args.dev_ratio, args.seed)
    if args.train_limit and args.train_limit < len(train):
        from nerwheel.tasks.classify.train import stratified_split

        _, train = stratified_split(train, args.train_limit / len(train), args.seed)
    print(f"carve: {len(train)} train / {len(dev)} dev (stratified, seed {args.seed})", file=sys.stderr)
    quality, speed = [], []
    for backbone in [b.strip() for b in args.backbones.split(",") if b.strip()]:
        started = time.perf_counter()
        model_dir = _train(backbone, train, labels, args)
        wall = time.perf_counter() - started
        card = json.loads((model_dir / "nerwheel.json").read_text(encoding="utf-8"))
        m = evaluate(model_dir, dev, args.out / "eval" / backbone)
        o = m["overall"]
        quality.append({"backbone": backbone, "accuracy": o["accuracy"], "macro_f1": o["macro"]["f1"],
                        "ece": o.get("ece"), "train_seconds": card["metrics"]["training_seconds"],
                        "wall_seconds": round(wall, 1), "best_epoch": card["metrics"]["best_epoch"],
                        "evaluations": card["metrics"]["evaluations"]})
        export(model_dir, model_dir / "onnx", "int8", overwrite=True)
        pairs = [(x.context, x.message) for x in dev[: args.n]]
        rows = []
        for name, clf in (("pytorch fp32", TorchClassifier.from_dir(model_dir)),
                          ("onnx fp32", OnnxClassifier(model_dir / "onnx")),
                          ("onnx int8", OnnxClassifier(model_dir / "onnx", int8=True))):
            row, probs = _speed(name, clf, pairs)
            rows.append((row, probs))
        ref = rows[0][1].argmax(1)
        for row, probs in rows:
            row["same_class_as_pytorch"] = float(np.mean(probs.argmax(1) == ref))
            speed.append({"backbone": backbone, **row})
        print(json.dumps(quality[-1]), file=sys.stderr, flush=True)

    print(f"\n{'backbone':<10}{'accuracy':>10}{'macro-F1':>10}{'ECE':>8}{'train s':>10}{'best ep':>9}")
    for q in quality:
        print(f"{q['backbone']:<10}{q['accuracy']:>10.4f}{q['macro_f1']:>10.4f}{q['ece']:>8.4f}"
              f"{q['train_seconds']:>10.1f}{q['best_epoch']:>9}")
    print(f"\n{'backbone':<10}{'runtime':<14}{'texts/s':>10}{'same class':>12}")
    for s in speed:
        print(f"{s['backbone']:<10}{s['runtime']:<14}{s['texts_per_s']:>10.1f}{s['same_class_as_pytorch']:>12.4f}")
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "dev": len(dev), "train": len(train), "quality": quality,
                                                       "speed": speed}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
