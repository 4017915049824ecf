"""Ablation of what the flywheel can add to a small address tagger, on your own carve, as one table.

    nice -n 10 .venv/bin/python benchmarks/accuracy.py ../shared/datasets/ccks2021_address/train.jsonl \\
        --unlabeled ../shared/datasets/ccks2021_address/unlabeled.jsonl [--train-size 2000] [--eval-size 1000] \\
        [--traffic 4000] [--backbone tiny|e5-small] [--epochs 12] [--rows base,lexicon,...] [--out DIR]

Carve (seeded, the same for every row): the labelled file is deduplicated;
``--eval-size`` records are the held-out eval set, never trained on; the next
``--train-size`` are gold, of which 10 % is the dev set for early stopping.
Traffic is ``--unlabeled`` (its eval and gold texts are refused by the
unlabeled stage itself, :mod:`nerwheel.stages.unlabeled`), at most
``--traffic`` texts of it.

Rows (``--rows``, default all):

- ``kb``: the knowledge base alone (no training);
- ``base``: the plain tagger on gold;
- ``dapt``: the same, on an encoder first pretrained with masked-LM on traffic (``nerwheel pretrain``,
  ``--dapt-texts`` texts, eval texts left out, ``--dapt-epochs`` passes, span masking);
- ``lexicon``: + the knowledge base's matches as input features (``model.lexicon.enabled``);
- ``unlabeled``: + KB-labelled traffic (``train --unlabeled``, ``unlabeled.teacher: kb``, weight 0.5, mixed);
- ``unlabeled-anneal``: the same, the traffic's weight annealed to 0 by the last epoch;
- ``lexicon+unlabeled``: both;
- ``chars``: ``model.tokenization: chars`` (only differs from ``base`` for a piece backbone such as e5-small);
- ``zero-human``: no human label at all: trained (and early-stopped) on KB labels of traffic only.

Every trained row reports strict F1 on the eval carve (the train stage's own
test scoring) and its wall time (traffic labelling included). Alongside the
table: how many gold entities have a boundary inside a token, e5-small pieces
against one piece per character (tokenizers only, no training).

A carve of train overstates held-out scores (issue 20: by about 2 points on
the official CCKS dev set), so compare rows with each other, not with
published figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nerwheel.formats import read_records, write_records
from nerwheel.model.config import default_learning_rate
from nerwheel.records import Record
from nerwheel.stages.split import dedup

ROWS = ("kb", "base", "dapt", "lexicon", "unlabeled", "unlabeled-anneal", "lexicon+unlabeled", "chars", "zero-human")


def carve(path: Path, *, train_size: int, eval_size: int, seed: int) -> dict[str, list[Record]]:
    records = dedup(read_records(path).records).records
    random.Random(seed).shuffle(records)
    if len(records) < eval_size + train_size:
        raise SystemExit(f"{path}: {len(records)} distinct records, fewer than --eval-size + --train-size")
    gold = records[eval_size: eval_size + train_size]
    n_dev = max(1, len(gold) // 10)
    return {"eval": records[:eval_size], "train": gold[n_dev:], "dev": gold[:n_dev]}


def tiny_size(args: argparse.Namespace) -> dict[str, int]:
    return {"hidden_size": args.hidden, "num_layers": args.layers, "num_heads": 4, "intermediate_size": 4 * args.hidden}


def dapt_backbone(args: argparse.Namespace, out: Path, parts: dict[str, list[Record]], traffic: Path) -> Path:
    """``nerwheel pretrain`` on traffic (eval texts left out: no transductive peek at them)."""
    from nerwheel.leakage import EvalTexts
    from nerwheel.stages.pretrain import PretrainConfig, pretrain

    folder = out / "dapt"
    if (folder / "config.json").exists():
        return folder
    guard = EvalTexts(r.text for r in parts["eval"])
    texts = [r for r in read_records(traffic).records if r.text not in guard][: args.dapt_texts]
    write_records(texts, out / "dapt_texts.jsonl")
    model: dict[str, Any] = {"model_id": args.backbone}
    if args.backbone == "tiny":
        model["tiny"] = tiny_size(args)
    cfg = PretrainConfig.model_validate({
        "model": model, "texts": str(out / "dapt_texts.jsonl"), "out": str(folder),
        "training": {"epochs": args.dapt_epochs, "batch_size": args.batch_size, "sequence_length": args.sequence_length,
                     "threads": args.threads, "seed": args.seed, "masking": "span"}})
    return pretrain(cfg)


def row_config(row: str, args: argparse.Namespace, out: Path, traffic: Path | None) -> dict[str, Any]:
    """The train config of one row: the base recipe plus what the row adds."""
    model: dict[str, Any] = {"model_id": args.backbone}
    if row == "dapt":
        model["model_id"] = str(out / "dapt")
    elif args.backbone == "tiny":
        model["tiny"] = tiny_size(args)
    if "lexicon" in row:
        model["lexicon"] = {"enabled": True}
    if row == "chars":
        model["tokenization"] = "chars"
    cfg: dict[str, Any] = {
        "model": model,
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "sequence_length": args.sequence_length,
                     "stride": 16, "threads": args.threads, "seed": args.seed,
                     # one learning rate for every row (dapt's encoder is pretrained, yet gets the base row's)
                     "learning_rate": args.learning_rate or default_learning_rate(args.backbone)},
        "early_stopping": {"patience": args.patience},
        "output": {"output_dir": str(out / "models"), "model_name": row.replace("+", "-"), "timestamp": False,
                   "save_total_limit": 0, "plots": False},
    }
    if "unlabeled" in row:
        cfg["unlabeled"] = {"file": str(traffic), "teacher": "kb", "max_records": args.traffic, "weight": args.weight,
                            "curriculum": "anneal" if row.endswith("anneal") else "mixed"}
    return cfg


def kb_row(evaluation: list[Record]) -> dict[str, Any]:
    from nerwheel.kb.annotator import AddressKB
    from nerwheel.metrics import span_scores

    t0 = time.perf_counter()
    kb = AddressKB()
    pred = [kb.annotate_text(r.text) for r in evaluation]
    overall, _ = span_scores([r.entities for r in evaluation], pred)
    return {"row": "kb", "f1": overall["strict"]["f1"], "seconds": time.perf_counter() - t0, "train_records": 0}


def train_row(row: str, args: argparse.Namespace, out: Path, parts: dict[str, list[Record]],
              traffic: Path | None) -> dict[str, Any]:
    from nerwheel.model.card import ModelCard
    from nerwheel.model.config import validate
    from nerwheel.stages.train import train

    train_recs, dev_recs = parts["train"], parts["dev"]
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if row == "dapt":
        folder = dapt_backbone(args, out, parts, traffic)  # type: ignore[arg-type]
        report = json.loads((folder / "pretrain.json").read_text(encoding="utf-8"))
        extra["pretrain"] = {k: report[k] for k in ("steps", "seconds", "windows")} | {
            "loss_first": report["loss"][0]["loss"], "loss_last": report["loss"][-1]["loss"]}
    if row == "zero-human":  # KB labels of traffic are train and dev: no human label anywhere
        from nerwheel.leakage import EvalTexts
        from nerwheel.stages.unlabeled import teach

        taught = teach(traffic, teacher="kb", guard=EvalTexts(r.text for r in parts["eval"]), gold_texts=[],
                       max_records=args.traffic, seed=args.seed)
        n_dev = max(1, len(taught.records) // 10)
        train_recs, dev_recs = taught.records[n_dev:], taught.records[:n_dev]
    cfg = validate(row_config(row, args, out, traffic), source=f"benchmark row {row}")
    model_dir = train(cfg, train_records=train_recs, dev_records=dev_recs, test_records=parts["eval"])
    card = ModelCard.read(model_dir)
    result = {"row": row, "f1": card.metrics["test"]["overall"]["strict"]["f1"],
              "seconds": time.perf_counter() - t0, "train_records": len(train_recs),
              "best_epoch": card.metrics.get("best_epoch"), "epochs_run": card.metrics.get("epochs_run"),
              "model_dir": str(model_dir), **extra}
    if "unlabeled" in card.data:
        u = card.data["unlabeled"]
        result["traffic"] = {k: u[k] for k in ("read", "used", "rejected", "teacher_weight_by_epoch")}
    return result


def misalignment(parts: dict[str, list[Record]]) -> dict[str, Any]:
    """Gold entities with a boundary inside a token: e5-small's pieces against one piece per character."""
    from nerwheel.model import e5small
    from nerwheel.model.backbones import _from_hf
    from nerwheel.model.encoding import TextEncoder, ensure_char_split, misaligned

    records = parts["train"] + parts["dev"]
    directory = e5small.ensure_model_dir(corpus=[r.text for r in records], all_single_chars=True)
    pieces = ensure_char_split(_from_hf(str(directory)).tokenizer)
    out: dict[str, Any] = {"entities": sum(len(r.entities) for r in records)}
    for name, tok in (("pieces", pieces), ("chars", ensure_char_split(pieces, every_char=True))):
        enc = TextEncoder(tok, sequence_length=512, stride=0, pad_id=1)
        bad = [(r, m) for r in records for m in misaligned(enc.encode(r.text), r.spans())]
        tokens = sum(len(enc.encode(r.text)) for r in records)
        out[name] = {"misaligned": len(bad), "tokens_per_char": tokens / sum(len(r.text) for r in records),
                     "examples": [f"{r.text[s:e]}/{lab}" for r, (s, e, lab) in bad[:5]]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="labelled JSONL (e.g. ccks2021_address/train.jsonl)")
    ap.add_argument("--unlabeled", type=Path, help="unlabelled traffic (rows with 'unlabeled' and zero-human)")
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--eval-size", type=int, default=1000)
    ap.add_argument("--traffic", type=int, default=2000, help="at most this many traffic texts per row")
    ap.add_argument("--weight", type=float, default=0.5, help="loss weight of a traffic window")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--dapt-texts", type=int, default=10000, help="traffic texts the dapt row pretrains on")
    ap.add_argument("--dapt-epochs", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--sequence-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-misalignment", action="store_true", help="skip the e5-small tokenizer count")
    ap.add_argument("--out", type=Path, default=None, help="keep models and accuracy.json here")
    args = ap.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if any("unlabeled" in r or r in ("zero-human", "dapt") for r in rows) and not args.unlabeled:
        ap.error("rows with traffic need --unlabeled FILE")

    out = args.out or Path(tempfile.mkdtemp(prefix="nerwheel-accuracy-"))
    out.mkdir(parents=True, exist_ok=True)
    parts = carve(args.data, train_size=args.train_size, eval_size=args.eval_size, seed=args.seed)
    for name, recs in parts.items():
        write_records(recs, out / f"{name}.jsonl")
    print(f"carve of {args.data} (seed {args.seed}): train {len(parts['train'])}, dev {len(parts['dev'])}, "
          f"eval {len(parts['eval'])}; backbone {args.backbone}; files in {out}", file=sys.stderr)
    results = []
    for row in rows:
        print(f"-- {row}", file=sys.stderr)
        results.append(kb_row(parts["eval"]) if row == "kb" else train_row(row, args, out, parts, args.unlabeled))
        r = results[-1]
        print(f"   {row}: strict F1 {r['f1']:.4f} in {r['seconds']:.0f}s", file=sys.stderr)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": results}
    if not args.no_misalignment:
        report["misalignment"] = misalignment(parts)
    (out / "accuracy.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")

    base = next((r["f1"] for r in results if r["row"] == "base"), None)
    print(f"| row | train records | strict F1 | vs base | best/run epochs | time (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        delta = f"{r['f1'] - base:+.4f}" if base is not None else ""
        epochs = f"{r.get('best_epoch')}/{r.get('epochs_run')}" if "epochs_run" in r else ""
        print(f"| {r['row']} | {r['train_records']} | {r['f1']:.4f} | {delta} | {epochs} | {r['seconds']:.0f} |")
    m = report.get("misalignment")
    if m:
        print(f"\ngold entities with a boundary inside an e5-small token (of {m['entities']}): "
              f"pieces {m['pieces']['misaligned']} ({m['pieces']['tokens_per_char']:.3f} tokens/char), "
              f"chars {m['chars']['misaligned']} ({m['chars']['tokens_per_char']:.3f} tokens/char); "
              f"e.g. {', '.join(m['pieces']['examples'])}")
    print(f"\n{out / 'accuracy.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
