"""Embedding fine-tuning on real data: base vs fine-tuned vs fine-tuned-after-expansion, and encode speed.

Usage:
    python benchmarks/embed.py --cmedir ../shared/datasets/cmedir/train.jsonl \\
        --cmrc ../shared/datasets/cmrc2018_corpus/corpus.txt --out runs/bench-embed [scale options]

Part (a), supervised: cMedIR graded pairs (query, page title, grade 0-4).
Queries are carved 80:20 into train and validation *by query* (never by
pair); a seeded sample of train queries with about ``--train-rows`` judged
pairs is trained on (grades repeated, grade-0 titles as judged negatives);
validation nDCG@10 (graded) and recall@10 of ``--val-queries`` validation
queries are measured against a corpus of every passage judged for the
sampled queries plus ``--distractors`` other titles.

Part (b), corpus adaptation: the first ``--cmrc-lines`` paragraphs of the
CMRC 2018 contexts go through ``split -> pairs (ict) -> train``, exactly as a
user's own corpus would; evaluation is on the validation pairs held out from
the generated set (passages of the val split, never trained on), against the
whole split corpus.

Each part scores the base encoder (``e5-small``), the fine-tune, and the
fine-tune after tokenizer expansion with ``--expand-words`` words mined
from that part's training text (``freq`` method), all with ``embed train``'s
own validation (see :func:`part`). Training time is wall
time of ``embed train`` (model load, base scoring, training, evaluations).
Speed: texts/s of the part (a) fine-tune on ``--speed-n`` passages in
PyTorch, ONNX Runtime fp32 and int8 (with int8's cosine to fp32).

Everything is printed side by side at the end, and written to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _subset_cmedir(path: Path, out: Path, *, val_queries: int, train_rows: int, distractors: int,
                   seed: int) -> Path:
    """A BEIR folder: train qrels of a seeded sample of train queries (about ``train_rows`` judged pairs), val
    qrels of ``val_queries`` val queries, and a corpus of every passage judged for them plus ``distractors``
    other titles (the evaluation corpus is the whole folder's, so its size is the scale knob)."""
    from nerwheel.tasks.embed.beir import RetrievalData, read_graded_pairs, write_beir

    data = read_graded_pairs(path, val_ratio=0.2, seed=seed)
    rng = random.Random(seed)
    val = sorted(data.qrels["val"])
    val = sorted(rng.sample(val, min(val_queries, len(val))))
    train = sorted(data.qrels["train"])
    rng.shuffle(train)
    taken, pairs = [], 0
    for q in train:
        if pairs >= train_rows:
            break
        taken.append(q)
        pairs += len(data.qrels["train"][q])
    qrels = {"train": {q: data.qrels["train"][q] for q in taken}, "val": {q: data.qrels["val"][q] for q in val}}
    judged = {c for split in qrels.values() for grades in split.values() for c in grades}
    others = sorted(set(data.corpus) - judged)
    keep = judged | set(rng.sample(others, min(distractors, len(others))))
    sub = RetrievalData(corpus={c: t for c, t in data.corpus.items() if c in keep},
                        queries={q: t for q, t in data.queries.items() if q in qrels["train"] or q in qrels["val"]},
                        qrels=qrels, source=str(path))
    write_beir(out, sub)
    return out


def _cmrc_pairs(path: Path, out: Path, *, lines: int, max_tokens: int, k: int) -> Path:
    from nerwheel.tasks.embed.beir import read_corpus
    from nerwheel.tasks.embed.model import token_counter
    from nerwheel.tasks.embed.pairs import PairsConfig, make_pairs, write_pairs
    from nerwheel.tasks.embed.passages import SplitConfig, split_corpus, write_split

    text = path.read_text(encoding="utf-8").splitlines()[:lines]
    raw = out / "raw.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("\n".join(text) + "\n", encoding="utf-8")
    split = split_corpus([raw], token_counter("e5-small"), SplitConfig(max_tokens=max_tokens))
    _log(f"split: {split.report.summary()}")
    write_split(split, out / "split")
    pairs = make_pairs(read_corpus(out / "split"), PairsConfig(teacher="ict", queries_per_passage=k))
    _log(f"pairs: {pairs.report.summary()}")
    write_pairs(pairs, out / "pairs")
    return out / "pairs"


def _expand(beir: Path, out: Path, n_words: int, min_count: int) -> tuple[Path | None, dict[str, Any]]:
    from nerwheel.tasks.embed.beir import read_beir
    from nerwheel.tasks.embed.expand import expand_vocabulary, mine_words

    data = read_beir(beir)
    train_q = set(data.qrels["train"])
    train_texts = [t for q, t in data.queries.items() if q in train_q]
    train_texts += [data.corpus[c] for grades in data.qrels["train"].values() for c in grades]
    words = [c.word for c in mine_words("e5-small", train_texts, n_words, min_count=min_count)]
    if not words:
        _log(f"expand: no word occurs {min_count}+ times in the training text; no expansion row")
        return None, {"words": 0}
    everything = [*data.corpus.values(), *data.queries.values()]
    report = expand_vocabulary("e5-small", words, out, corpus=everything)
    _log(f"expand: {report.summary()}")
    return out, {"words": len(words), "added": len(report.added), "sample": words[:15],
                 "tokens_change": report.corpus["change"] if report.corpus else None}


def _train(model: str, beir: Path, out: Path, args: argparse.Namespace) -> tuple[Path, float, dict[str, Any]]:
    from nerwheel.tasks.embed.train import EmbedTrainConfig, train

    cfg = EmbedTrainConfig(model=model, epochs=args.epochs, batch_size=args.batch_size,
                           learning_rate=args.learning_rate, max_train_rows=args.train_rows,
                           max_val_queries=args.val_queries, max_seq_length=args.max_seq_length, seed=args.seed,
                           patience=1)
    t0 = time.perf_counter()
    path = train(cfg, beir, out)
    seconds = time.perf_counter() - t0
    card = json.loads((path / "nerwheel.json").read_text(encoding="utf-8"))
    return path, seconds, card


def part(label: str, beir: Path, out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Base, fine-tuned and expanded + fine-tuned on one BEIR folder.

    Every score comes from ``embed train``'s own validation (the same graded evaluator and query sample): the
    base row is the card's ``base_val`` (e5-small before training; its vocabulary pruned to this folder's texts,
    which tokenises them exactly as the full vocabulary does), the others the card's ``val`` (the best
    checkpoint, re-scored after training). Scoring each model once more would double the time for the same
    numbers.
    """
    _log(f"{label}: fine-tuning e5-small")
    ft, secs, card = _train("e5-small", beir, out / "ft", args)
    m = card["metrics"]
    rows = [{"part": label, "model": "e5-small (base)", **m["base_val"], "train_s": None},
            {"part": label, "model": "fine-tuned", **m["val"], "train_s": secs, "steps": m["steps"],
             "rows": card["data"]["rows"]}]
    if args.expand_words:
        _log(f"{label}: expanding the tokenizer, then fine-tuning")
        exp, info = _expand(beir, out / "expanded", args.expand_words, args.mine_min_count)
        if exp is None:
            return rows
        ft2, secs2, card2 = _train(str(exp), beir, out / "ft-expanded", args)
        m2 = card2["metrics"]
        rows += [{"part": label, "model": f"expanded (+{info['added']} words), not trained", **m2["base_val"],
                  "train_s": None, "expansion": info},
                 {"part": label, "model": f"expanded (+{info['added']} words) + fine-tuned", **m2["val"],
                  "train_s": secs2, "steps": m2["steps"]}]
    return rows


def speed(model: Path, texts: list[str], out: Path) -> list[dict[str, Any]]:
    from nerwheel.tasks.embed.export import export_encoder
    from nerwheel.tasks.embed.runtime import OnnxEncoder, TorchEncoder

    report = export_encoder(model, out, "int8", overwrite=True)
    runtimes = [("pytorch fp32", TorchEncoder(model)), ("onnxruntime fp32", OnnxEncoder(out)),
                ("onnxruntime int8", OnnxEncoder(out, int8=True))]
    rows, reference = [], None
    for name, enc in runtimes:
        enc.encode(texts[:8], kind="document")
        t0 = time.perf_counter()
        vec = enc.encode(texts, kind="document")
        secs = time.perf_counter() - t0
        reference = vec if reference is None else reference
        cos = float((vec * reference).sum(axis=1).mean())
        rows.append({"runtime": name, "texts_per_s": len(texts) / secs, "cosine_to_pytorch": cos})
    rows[0]["parity_min_cosine"] = report.parity["min_cosine"]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmedir", type=Path, help="cMedIR graded pairs JSONL (part a)")
    ap.add_argument("--cmrc", type=Path, help="CMRC 2018 corpus.txt, one paragraph per line (part b)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--val-queries", type=int, default=300, help="validation queries scored per model")
    ap.add_argument("--distractors", type=int, default=3000, help="part a: unjudged titles added to the corpus")
    ap.add_argument("--train-rows", type=int, default=1500, help="training rows (pairs/triplets) per fine-tune")
    ap.add_argument("--cmrc-lines", type=int, default=300, help="part b: paragraphs of the corpus used")
    ap.add_argument("--max-tokens", type=int, default=128, help="part b: passage length for split")
    ap.add_argument("--queries-per-passage", type=int, default=2, help="part b: inverse-cloze queries")
    ap.add_argument("--expand-words", type=int, default=200, help="words mined and added (0: skip expansion)")
    ap.add_argument("--mine-min-count", type=int, default=3, help="fewest occurrences of a mined word")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=3e-5)
    ap.add_argument("--max-seq-length", type=int, default=160)
    ap.add_argument("--speed-n", type=int, default=500, help="passages encoded per runtime for texts/s")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    if not (args.cmedir or args.cmrc):
        ap.error("give --cmedir and/or --cmrc")

    import torch

    from nerwheel.tasks.embed.model import quiet_transformers

    quiet_transformers()  # no per-load weight report in the log (the unused pooler), errors still shown
    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    speed_rows: list[dict[str, Any]] = []
    if args.cmedir:
        beir = _subset_cmedir(args.cmedir, args.out / "a" / "beir", val_queries=args.val_queries,
                              train_rows=args.train_rows, distractors=args.distractors, seed=args.seed)
        rows += part("a cmedir", beir, args.out / "a", args)
        from nerwheel.tasks.embed.beir import read_beir

        passages = list(read_beir(beir).corpus.values())[: args.speed_n]
        _log("speed: PyTorch vs ONNX fp32 vs int8")
        speed_rows = speed(args.out / "a" / "ft", passages, args.out / "a" / "onnx")
    if args.cmrc:
        beir = _cmrc_pairs(args.cmrc, args.out / "b", lines=args.cmrc_lines, max_tokens=args.max_tokens,
                           k=args.queries_per_passage)
        rows += part("b cmrc2018", beir, args.out / "b", args)

    total = time.perf_counter() - t_all
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "speed": speed_rows,
              "seconds": total, "torch_threads": torch.get_num_threads()}
    (args.out / "results.json").write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    print(f"\nembedding benchmark: {total / 60:.1f} min, torch threads {torch.get_num_threads()}; "
          f"val queries {args.val_queries}, train rows {args.train_rows}, epochs {args.epochs}")
    print(f"{'part':<12}{'model':<40}{'nDCG@10':>9}{'R@10':>8}{'MRR@10':>8}{'queries':>8}{'corpus':>8}{'train s':>9}")
    for r in rows:
        train_s = f"{r['train_s']:.0f}" if r.get("train_s") else "-"
        print(f"{r['part']:<12}{r['model']:<40}{r['ndcg@10']:>9.4f}{r['recall@10']:>8.4f}{r['mrr@10']:>8.4f}"
              f"{r['queries']:>8}{r['corpus']:>8}{train_s:>9}")
    if speed_rows:
        print(f"\n{'runtime':<20}{'texts/s':>9}{'cos to pytorch':>16}   ({args.speed_n} cmedir titles, batch 32)")
        for r in speed_rows:
            print(f"{r['runtime']:<20}{r['texts_per_s']:>9.1f}{r['cosine_to_pytorch']:>16.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
