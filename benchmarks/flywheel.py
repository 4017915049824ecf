"""Turns of the data flywheel on real data, printed as a table.

    nice -n 10 .venv/bin/python benchmarks/flywheel.py ../shared/datasets/ccks2021_address/train.jsonl \\
        [--unlabeled .../unlabeled.jsonl] [--labelled-fraction 0.1] [--eval-fraction 0.1] [--traffic 800] \\
        [--turns 2] [--backbone tiny|e5-small] [--retrain scratch|finetune] [--llm-url URL --llm-model NAME]

Set-up (all seeded):
1. dedup the labelled file; a fixed eval set (``--eval-fraction`` of it) is cut
   off first and never trained on;
2. the starting gold set is ``--labelled-fraction`` of the rest (10 % of
   ``train.jsonl`` by default: "a small labelled fraction"), of which 10 % is a
   fixed dev set for early stopping;
3. live traffic is ``unlabeled.jsonl`` minus every text of the eval set (the
   split leakage check) and of the gold set; each turn takes the next
   ``--traffic`` texts.

Turn 0 trains the first model on gold and gates it (no production: promoted).
Each later turn: the production model and the teacher(s) label the turn's
traffic, the disagreements become the feedback set (``stages.feedback``), gold
and every feedback set so far are fused (``stages.merge``, gold first), a
candidate is trained (from scratch, or fine-tuned from production with a
replay sample), evaluated on the fixed eval set and gated against production
(``stages.gate``); production only changes on a promotion.

Printed: train sizes, disagreements by kind, eval strict F1 per turn, the
gate's verdict and reasons, and wall time per step; ``--out`` keeps models,
metrics, feedback sets and a ``flywheel.json`` with everything.
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
from nerwheel.records import Record
from nerwheel.stages.feedback import FeedbackConfig, feedback
from nerwheel.stages.gate import GatePolicy, gate
from nerwheel.stages.merge import SourceInput, merge
from nerwheel.stages.split import dedup, drop_leaks, find_leaks, nested_fractions, split_records


def _read(path: Path) -> list[Record]:
    result = read_records(path)
    print(result.summary(), file=sys.stderr)
    return list(result.records)


def _train(args: argparse.Namespace, out: Path, name: str, train: list[Record], dev: list[Record],
           init_from: Path | None) -> tuple[Path, float]:
    from nerwheel.model.config import validate
    from nerwheel.stages.train import train as run_train

    model: dict[str, Any] = {"model_id": args.backbone}
    if args.backbone == "tiny":
        model["tiny"] = {"hidden_size": args.hidden, "num_layers": args.layers, "num_heads": 4,
                         "intermediate_size": 4 * args.hidden}
    if init_from is not None:
        model["init_from"] = str(init_from)
    cfg = validate({
        "model": model,
        "training": {"epochs": args.epochs if init_from is None else args.finetune_epochs,
                     "batch_size": args.batch_size, "sequence_length": args.sequence_length, "stride": 16,
                     "threads": args.threads, "seed": args.seed},
        "early_stopping": {"patience": 2},
        "output": {"output_dir": str(out / "models"), "model_name": name, "timestamp": False,
                   "save_total_limit": 0, "plots": False},
    }, source="benchmark")
    t0 = time.perf_counter()
    model_dir = run_train(cfg, train_records=train, dev_records=dev)
    return model_dir, time.perf_counter() - t0


def _evaluate(model_dir: Path, evaluation: list[Record], out: Path) -> tuple[dict[str, Any], float]:
    from nerwheel.stages.evaluate import evaluate

    t0 = time.perf_counter()
    metrics = evaluate(model_dir, evaluation, out / "eval" / model_dir.name, plots=False)
    return metrics, time.perf_counter() - t0


def _teachers(args: argparse.Namespace, out: Path, seed_examples: list[Record]) -> list[Any]:
    """The KB first (``_kb_scores`` reads it), then one LLM teacher per ``--llm-model``."""
    from nerwheel.stages.annotate import build_teachers

    configs, cache = [], None
    if args.llm_url:
        from nerwheel.llm.cache import ResponseCache
        from nerwheel.llm.config import LLMConfig

        configs = [LLMConfig(base_url=args.llm_url, model=m) for m in args.llm_model]
        cache = ResponseCache(out / "llm-cache.sqlite")
    return build_teachers(["kb", "llm"] if configs else ["kb"], configs, examples=seed_examples, cache=cache)


def _kb_scores(evaluation: list[Record], teachers: list[Any]) -> tuple[float, dict[str, tuple[float, int]]]:
    """The KB teacher itself on the eval set: where its labels can lift a student to, per type."""
    from nerwheel.metrics import span_scores

    kb = teachers[0].kb
    overall, per_type = span_scores([r.entities for r in evaluation], [kb.annotate_text(r.text) for r in evaluation])
    return overall["strict"]["f1"], {k: (v["strict"]["f1"], v["strict"]["support"]) for k, v in per_type.items()}


def _f1(metrics: dict[str, Any]) -> float:
    return metrics["overall"]["strict"]["f1"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="labelled span JSONL (ccks2021_address/train.jsonl)")
    ap.add_argument("--unlabeled", type=Path, help="live traffic (default: unlabeled.jsonl beside DATA)")
    ap.add_argument("--eval-fraction", type=float, default=0.1)
    ap.add_argument("--labelled-fraction", type=float, default=0.1, help="of the labelled file (after eval)")
    ap.add_argument("--traffic", type=int, default=800, help="live texts per turn")
    ap.add_argument("--turns", type=int, default=2, help="feedback turns after the first model")
    ap.add_argument("--backbone", default="tiny", help="tiny or e5-small")
    ap.add_argument("--hidden", type=int, default=128, help="tiny backbone width")
    ap.add_argument("--layers", type=int, default=2, help="tiny backbone layers")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--finetune-epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--sequence-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--retrain", choices=["scratch", "finetune"], default="scratch",
                    help="candidate from scratch on gold + all feedback, or fine-tuned from production "
                         "on the turn's feedback + replay")
    ap.add_argument("--replay-ratio", type=float, default=1.0, help="replay per feedback record (finetune)")
    ap.add_argument("--min-delta", type=float, default=0.005)
    ap.add_argument("--max-type-drop", type=float, default=0.02)
    ap.add_argument("--llm-url", default=None)
    ap.add_argument("--llm-model", action="append", default=[])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.llm_url and not args.llm_model:
        ap.error("--llm-url needs --llm-model")

    out = args.out or Path(tempfile.mkdtemp(prefix="nerwheel-flywheel-"))
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    # -- data ------------------------------------------------------------------------------------
    labelled = dedup(_read(args.data)).records
    parts = split_records(labelled, (args.eval_fraction, 1 - args.eval_fraction), names=("eval", "rest"),
                          seed=args.seed)
    evaluation = parts["eval"]
    start = nested_fractions(parts["rest"], [args.labelled_fraction / (1 - args.eval_fraction)],
                             seed=args.seed)
    start_records = next(iter(start.values()))
    gd = split_records(start_records, (0.9, 0.1), names=("train", "dev"), seed=args.seed)
    gold, dev = gd["train"], gd["dev"]
    unlabeled_path = args.unlabeled or args.data.with_name("unlabeled.jsonl")
    traffic = dedup(_read(unlabeled_path)).records
    traffic, leaked = drop_leaks(traffic, evaluation + start_records)
    random.Random(args.seed).shuffle(traffic)
    need = args.traffic * args.turns
    if len(traffic) < need:
        print(f"only {len(traffic)} traffic texts for {need} ({args.turns} turns x {args.traffic})", file=sys.stderr)
    assert not find_leaks(gold + dev, evaluation), "gold overlaps the eval set"
    print(f"eval {len(evaluation)}, gold train {len(gold)} + dev {len(dev)}, traffic pool {len(traffic)} "
          f"({len(leaked)} traffic texts dropped as eval/gold duplicates) -> {out}", file=sys.stderr)
    write_records(evaluation, out / "eval.jsonl")
    write_records(gold, out / "gold.jsonl")

    teachers = _teachers(args, out, gold)
    kb_f1, kb_types = _kb_scores(evaluation, teachers)
    policy = GatePolicy(min_delta=args.min_delta, max_type_drop=args.max_type_drop)

    # -- turn 0: the first model ------------------------------------------------------------------
    rows: list[dict[str, Any]] = []
    model0, t_train = _train(args, out, "turn0", gold, dev, None)
    m0, t_eval = _evaluate(model0, evaluation, out)
    decision = gate(m0, None, policy)
    production, prod_metrics = model0, m0
    rows.append({"turn": 0, "train": len(gold), "gold": len(gold), "teacher": 0, "traffic": 0, "disagreed": 0,
                 "kinds": {}, "f1": _f1(m0), "delta": None, "verdict": decision.verdict,
                 "reasons": decision.reasons, "t_feedback": 0.0, "t_train": t_train, "t_eval": t_eval,
                 "per_type": {k: v["strict"]["f1"] for k, v in m0["per_type"].items()}})
    print(f"turn 0: F1 {_f1(m0):.4f} ({decision.verdict})", file=sys.stderr)

    feedback_sets: list[SourceInput] = []
    for turn in range(1, args.turns + 1):
        from nerwheel.stages.predict import load_predictor

        live = traffic[(turn - 1) * args.traffic: turn * args.traffic]
        t0 = time.perf_counter()
        fb = feedback(load_predictor(production), teachers, live, replay=gold, holdout=evaluation,
                      config=FeedbackConfig(replay_ratio=args.replay_ratio if args.retrain == "finetune" else 0.0,
                                            seed=args.seed + turn, model_source=f"model:{production.name}"))
        t_feedback = time.perf_counter() - t0
        write_records(fb.records, out / f"feedback{turn}.jsonl")
        (out / f"feedback{turn}.report.json").write_text(json.dumps(fb.report.to_dict(), ensure_ascii=False,
                                                                     indent=2, default=str), encoding="utf-8")
        feedback_sets.append(SourceInput(f"feedback{turn}", fb.records))
        if args.retrain == "scratch":
            fused = merge(gold, feedback_sets)
            train_set, init = fused.records, None
        else:
            fused = merge(None, [feedback_sets[-1]])
            train_set, init = fused.records, production
        assert not find_leaks(train_set, evaluation), "training data leaks eval texts"
        write_records(train_set, out / f"train{turn}.jsonl")
        cand, t_train = _train(args, out, f"turn{turn}", train_set, dev, init)
        mc, t_eval = _evaluate(cand, evaluation, out)
        decision = gate(mc, prod_metrics, policy)
        (out / f"decision{turn}.json").write_text(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2),
                                                 encoding="utf-8")
        n_teacher = sum(1 for r in train_set if any(not (e.source or "gold").startswith("gold") for e in r.entities))
        rows.append({"turn": turn, "train": len(train_set), "gold": len(train_set) - n_teacher, "teacher": n_teacher,
                     "traffic": len(live), "disagreed": fb.report.disagreed,
                     "kinds": {k: fb.report.by_kind.get(k, 0) for k in ("missing", "spurious", "boundary", "type")},
                     "f1": _f1(mc), "delta": decision.overall["delta"], "verdict": decision.verdict,
                     "reasons": decision.reasons, "t_feedback": t_feedback, "t_train": t_train, "t_eval": t_eval,
                     "per_type": {k: v["strict"]["f1"] for k, v in mc["per_type"].items()},
                     "merge_conflicts": dict(fused.report.conflicts)})
        print(f"turn {turn}: F1 {_f1(mc):.4f} ({decision.verdict}: {'; '.join(decision.reasons)})", file=sys.stderr)
        if decision.promote:
            production, prod_metrics = cand, mc

    total = time.perf_counter() - t_start
    teachers_desc = "kb" + "".join(f"+llm:{m}" for m in args.llm_model)
    print(f"\nflywheel on {args.data.name}: eval {len(evaluation)} records (fixed), teacher {teachers_desc} "
          f"(teacher's own eval strict F1 {kb_f1:.4f}), backbone {args.backbone}, retrain {args.retrain}, "
          f"{args.traffic} live texts per turn")
    head = (f"{'turn':>4} {'train':>6} {'gold':>5} {'teach':>6} {'traffic':>7} {'disagr':>6} "
            f"{'miss/spur/bound/type':>20} {'eval F1':>8} {'dF1':>8} {'gate':>8} {'fb s':>6} {'train s':>7} "
            f"{'eval s':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        kinds = "/".join(str(r["kinds"].get(k, 0)) for k in ("missing", "spurious", "boundary", "type")) \
            if r["turn"] else "-"
        delta = f"{r['delta']:+.4f}" if r["delta"] is not None else "-"
        print(f"{r['turn']:>4} {r['train']:>6} {r['gold']:>5} {r['teacher']:>6} {r['traffic']:>7} {r['disagreed']:>6} "
              f"{kinds:>20} {r['f1']:>8.4f} {delta:>8} {r['verdict']:>8} {r['t_feedback']:>6.0f} "
              f"{r['t_train']:>7.0f} {r['t_eval']:>6.0f}")
    print(f"total wall time {total:.0f} s; gate reasons:")
    for r in rows:
        print(f"  turn {r['turn']}: " + "; ".join(r["reasons"]))
    print("\nstrict F1 per type on the eval set (KB = the teacher's own labels)")
    print(f"{'type':<14}{'support':>8}{'KB':>7}" + "".join(f"{'turn ' + str(r['turn']):>8}" for r in rows))
    for label in sorted(kb_types.keys() | rows[0]["per_type"].keys(), key=lambda k: -kb_types.get(k, (0, 0))[1]):
        f1, support = kb_types.get(label, (0.0, 0))
        print(f"{label:<14}{support:>8}{f1:>7.3f}" + "".join(f"{r['per_type'].get(label, 0.0):>8.3f}" for r in rows))
    (out / "flywheel.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                   "kb_eval_f1": kb_f1, "kb_eval_per_type": kb_types,
                                                   "rows": rows, "wall_s": total},
                                                  ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
