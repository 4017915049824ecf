"""``embed train``: fine-tune a bi-encoder on (query, passage) pairs with sentence-transformers.

What is sentence-transformers' and what is ours:

* the loss is :class:`MultipleNegativesRankingLoss` (InfoNCE over in-batch
  negatives, plus a hard negative per row where there is one), batches come
  from the ``NO_DUPLICATES`` sampler (a text twice in a batch would be its own
  false negative), the loop is :class:`SentenceTransformerTrainer`, and hard
  negatives are mined with :func:`sentence_transformers.util.mine_hard_negatives`
  by the *base* model (NV-Retriever's TopK-PercPos: the most similar passages
  whose score stays ``hard_negative_margin`` below the positive's);
* ours is what the data means. **Grades are used, not thrown away**: a
  passage judged at or above ``min_positive_grade`` is a positive and is
  seen ``min(grade - min_positive_grade + 1, grade_repeat)`` times per epoch
  (a grade-3 answer pulls three times as hard as a grade-1 mention); a passage
  judged below it is an *explicit* hard negative of that query (a judged
  non-answer is the best negative there is); and validation scores nDCG@10
  with graded gains (:mod:`nerwheel.tasks.embed.metrics`);
* early stopping and the best checkpoint both go by validation nDCG@10
  (``load_best_model_at_end``, ``EarlyStoppingCallback``). The base model is
  scored on the same validation queries first, so the card says whether the
  fine-tune beat it.

Prompts: e5's ``query: `` / ``passage: `` (or the model's own, or the
config's) are mapped onto the training columns (anchor -> query prompt,
positive/negative -> document prompt) and saved with the model, so
``encode_query`` / ``encode_document`` and the export add the same prefixes.

The output folder is a sentence-transformers model (``modules.json``:
Transformer -> mean Pooling -> Normalize) plus ``nerwheel.json``
(``task: embed``, base, prompts, data counts, metrics, the resolved config)
and ``metrics.jsonl`` (one line per evaluation).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nerwheel.model.layout import CARD_FILE, CHECKPOINTS_DIR, HISTORY_FILE
from nerwheel.tasks.embed.beir import RetrievalData, read_pairs
from nerwheel.errors import ConfigError, DataError

__all__ = ["CARD_FILE", "HISTORY_FILE", "EmbedTrainConfig", "TrainRows", "load_train_config", "train",
           "training_rows"]

log = logging.getLogger(__name__)

# the model folder's names (nerwheel.model.layout), shared with every task
CHECKPOINTS = CHECKPOINTS_DIR
#: What the trainer keeps the best checkpoint by: the evaluator named "val", cosine nDCG@10 (graded).
BEST_METRIC = "val_cosine_ndcg@10"


class EmbedTrainConfig(BaseModel):
    """Bi-encoder fine-tuning settings. Unknown keys are refused by name; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("e5-small", description="Base: e5-small, a sentence-transformers folder or a HF folder.")
    epochs: int = Field(3, ge=1, le=100, description="Most epochs (early stopping may end sooner).")
    batch_size: int = Field(32, ge=2, description="Pairs per batch: each row's in-batch negatives are the others.")
    learning_rate: float = Field(2e-5, gt=0, lt=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with a linear warm-up.")
    weight_decay: float = Field(0.01, ge=0)
    max_seq_length: int = Field(512, ge=8, description="Tokens per text (prompt and special tokens included); "
                                "capped at what the model's position table holds.")
    min_positive_grade: int = Field(1, ge=1, description="Judged at least this: a positive; below: a negative.")
    grade_repeat: int = Field(3, ge=1, description="A positive of grade g is seen min(g - min_positive_grade + 1, "
                              "grade_repeat) times per epoch; 1 turns grade weighting off.")
    judged_negatives: bool = Field(True, description="Use passages judged below min_positive_grade as hard "
                                   "negatives of their query.")
    hard_negatives: int = Field(0, ge=0, le=1, description="1: mine a hard negative with the base model for rows "
                                "without a judged one; 0: off.")
    hard_negative_margin: float = Field(0.05, ge=0, lt=1, description="A mined negative's score must stay this "
                                        "share below the positive's (false-negative guard).")
    val_ratio: float = Field(0.2, gt=0, lt=1, description="Graded pairs file only: share of queries for validation.")
    train_split: str = "train"
    val_split: str = "val"
    eval_steps: int = Field(0, ge=0, description="Evaluate (and checkpoint) every N steps; 0: every epoch.")
    max_val_queries: int | None = Field(1000, ge=1, description="Validate on a seeded sample of this many queries.")
    patience: int = Field(2, ge=1, description="Stop after this many evaluations without a better nDCG@10.")
    seed: int = 42
    prune_vocab: bool = Field(True, description="e5-small only: keep the vocabulary rows the data needs.")
    query_prompt: str | None = Field(None, description="Prefix of queries (None: the model's own; '' none).")
    passage_prompt: str | None = Field(None, description="Prefix of passages (None: the model's own; '' none).")
    max_train_rows: int | None = Field(None, ge=1, description="Train on a seeded sample of at most this many rows.")
    eval_batch_size: int = Field(64, ge=1)
    keep_checkpoints: bool = False
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda.")


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> EmbedTrainConfig:
    """A YAML file (optional) with ``overrides`` (flags) on top; errors name the file and the field."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{p}: cannot read the config: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of setting: value, got {type(loaded).__name__}")
        data.update(loaded)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return EmbedTrainConfig(**data)
    except ValidationError as e:
        where = f"{path}: " if path else ""
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{where}bad training setting ({problems}); see `nerwheel embed train --help`",
                               field=str(e.errors()[0]["loc"][0])) from None


@dataclass
class TrainRows:
    """Training rows: ``pairs`` (query, positive) and ``triplets`` (query, positive, negative), and counts."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    triplets: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs) + len(self.triplets)


def training_rows(data: RetrievalData, split: str, cfg: EmbedTrainConfig) -> TrainRows:
    """Rows from the graded judgements of ``split`` (grade rules in the module docstring)."""
    rows = TrainRows(counts={"queries": 0, "queries_without_positive": 0, "positives": 0, "judged_negatives": 0,
                             "repeated_rows": 0})
    for qid, judged in sorted(data.split(split).items()):
        query = data.queries[qid]
        positives = sorted((c for c, g in judged.items() if g >= cfg.min_positive_grade), key=lambda c: (-judged[c], c))
        negatives = sorted(c for c, g in judged.items() if g < cfg.min_positive_grade) if cfg.judged_negatives else []
        if not positives:
            rows.counts["queries_without_positive"] += 1
            continue
        rows.counts["queries"] += 1
        rows.counts["positives"] += len(positives)
        rows.counts["judged_negatives"] += len(negatives)
        i = 0
        for cid in positives:
            times = min(judged[cid] - cfg.min_positive_grade + 1, cfg.grade_repeat)
            rows.counts["repeated_rows"] += times - 1
            for _ in range(times):
                if negatives:
                    rows.triplets.append((query, data.corpus[cid], data.corpus[negatives[i % len(negatives)]]))
                    i += 1
                else:
                    rows.pairs.append((query, data.corpus[cid]))
    if not len(rows):
        raise DataError(f"{data.source}: split {split!r} has no query with a passage judged >= "
                             f"min_positive_grade {cfg.min_positive_grade}; nothing to train on",
                             field="min_positive_grade")
    if cfg.max_train_rows is not None and len(rows) > cfg.max_train_rows:
        order = list(range(len(rows)))
        random.Random(cfg.seed).shuffle(order)
        keep = set(order[: cfg.max_train_rows])
        n = len(rows.pairs)
        rows.pairs = [r for i, r in enumerate(rows.pairs) if i in keep]
        rows.triplets = [r for i, r in enumerate(rows.triplets) if i + n in keep]
    rows.counts.update(pairs=len(rows.pairs), triplets=len(rows.triplets))
    return rows


def _position_limit(model: Any) -> int | None:
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    rows = getattr(config, "max_position_embeddings", None)
    if not isinstance(rows, int):
        return None
    roberta = "roberta" in str(getattr(config, "model_type", ""))
    return rows - ((getattr(config, "pad_token_id", 0) or 0) + 1 if roberta else 0)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: expected auto, cpu or cuda", field="device")
    return name


def _prompts(model: Any, cfg: EmbedTrainConfig) -> dict[str, str]:
    from nerwheel.tasks.embed.model import DOCUMENT, QUERY

    own = dict(model.prompts or {})
    query = cfg.query_prompt if cfg.query_prompt is not None else own.get(QUERY, "")
    passage = cfg.passage_prompt if cfg.passage_prompt is not None else own.get(DOCUMENT, "")
    return {k: v for k, v in ((QUERY, query), (DOCUMENT, passage)) if v}


def _mine(rows: TrainRows, model: Any, data: RetrievalData, prompts: dict[str, str], cfg: EmbedTrainConfig) -> int:
    """Give rows without a judged negative one mined by the base model; returns how many got one."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from nerwheel.tasks.embed.model import DOCUMENT, QUERY

    if not rows.pairs:
        return 0
    ds = Dataset.from_dict({"anchor": [q for q, _ in rows.pairs], "positive": [p for _, p in rows.pairs]})
    mined = mine_hard_negatives(ds, model, corpus=list(data.corpus.values()), num_negatives=1,
                                relative_margin=cfg.hard_negative_margin, sampling_strategy="top",
                                query_prompt=prompts.get(QUERY), corpus_prompt=prompts.get(DOCUMENT),
                                batch_size=cfg.eval_batch_size, output_format="triplet", verbose=False)
    got = {(r["anchor"], r["positive"]): r["negative"] for r in mined}
    kept: list[tuple[str, str]] = []
    for q, p in rows.pairs:
        if (q, p) in got:
            rows.triplets.append((q, p, got[(q, p)]))
        else:
            kept.append((q, p))
    n = len(rows.pairs) - len(kept)
    rows.pairs = kept
    rows.counts.update(pairs=len(rows.pairs), triplets=len(rows.triplets), mined_negatives=n)
    return n


def _datasets(rows: TrainRows) -> Any:
    from datasets import Dataset, DatasetDict

    parts = {}
    if rows.pairs:
        parts["pairs"] = Dataset.from_dict({"anchor": [q for q, _ in rows.pairs],
                                            "positive": [p for _, p in rows.pairs]})
    if rows.triplets:
        parts["triplets"] = Dataset.from_dict({"anchor": [t[0] for t in rows.triplets],
                                               "positive": [t[1] for t in rows.triplets],
                                               "negative": [t[2] for t in rows.triplets]})
    return next(iter(parts.values())) if len(parts) == 1 else DatasetDict(parts)


def _arguments(cfg: EmbedTrainConfig, out: Path, prompts: dict[str, str], device: str) -> Any:
    """sentence-transformers' training arguments: evaluate and checkpoint per epoch (or every ``eval_steps``),
    keep the best by validation nDCG@10, no duplicate text in a batch, prompts mapped onto the columns."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from nerwheel.tasks.embed.model import DOCUMENT, QUERY

    strategy = "steps" if cfg.eval_steps else "epoch"
    columns = {"anchor": prompts.get(QUERY, ""), "positive": prompts.get(DOCUMENT, ""),
               "negative": prompts.get(DOCUMENT, "")}
    return SentenceTransformerTrainingArguments(
        output_dir=str(out / CHECKPOINTS), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy=strategy, save_strategy=strategy,
        eval_steps=cfg.eval_steps or None, save_steps=cfg.eval_steps or None, save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model=f"eval_{BEST_METRIC}", greater_is_better=True,
        prompts={k: v for k, v in columns.items() if v} or None, seed=cfg.seed, data_seed=cfg.seed,
        report_to="none", logging_steps=10, use_cpu=device == "cpu", disable_tqdm=not sys.stderr.isatty(),
        save_only_model=True,
    )


def _log_to_logger(trainer: Any) -> None:
    """Send the trainer's loss and evaluation lines to nerwheel's log (stderr), not to stdout.

    Without a progress bar (``disable_tqdm``, as in any log file or pipeline step) transformers adds its
    ``PrinterCallback``, which ``print``s every log dict to stdout, where ``nerwheel embed train`` writes
    only the model folder it made (scripts read that line)."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    class _ToLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if state.is_world_process_zero and logs:
                shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
                log.info("step %d (epoch %.2f): %s", state.global_step, state.epoch or 0.0, shown)

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_ToLog())


def _write_history(out: Path, log_history: list[dict[str, Any]]) -> int:
    """``metrics.jsonl``: one line per validation (epoch, step, nDCG@10, MRR@10, recall@10); returns how many."""
    rows = [h for h in log_history if f"eval_{BEST_METRIC}" in h]
    with open(out / HISTORY_FILE, "w", encoding="utf-8") as f:
        for h in rows:
            f.write(json.dumps({"epoch": h.get("epoch"), "step": h.get("step"), "ndcg@10": h[f"eval_{BEST_METRIC}"],
                                "mrr@10": h.get("eval_val_cosine_mrr@10"),
                                "recall@10": h.get("eval_val_cosine_recall@10")}) + "\n")
    return len(rows)


def train(cfg: EmbedTrainConfig, pairs: str | Path, out: str | Path) -> Path:
    """Fine-tune ``cfg.model`` on ``pairs`` (BEIR folder or graded pairs file) into ``out``; returns ``out``."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import EarlyStoppingCallback

    from nerwheel.storage import write_json
    from nerwheel.tasks.embed.evaluate import evaluate_model
    from nerwheel.tasks.embed.metrics import GradedRetrievalEvaluator
    from nerwheel.tasks.embed.model import E5_NAME, describe, load_encoder

    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose a new output folder", field="out")
    data = read_pairs(pairs, splits=[cfg.train_split, cfg.val_split], val_ratio=cfg.val_ratio, seed=cfg.seed)
    rows = training_rows(data, cfg.train_split, cfg)
    data.split(cfg.val_split)
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    corpus = None
    if cfg.model == E5_NAME and cfg.prune_vocab:
        corpus = [*data.corpus.values(), *data.queries.values(), *(p for p in (cfg.query_prompt, cfg.passage_prompt)
                                                                   if p), "query: ", "passage: "]
    model = load_encoder(cfg.model, corpus=corpus, device=device)
    limit = _position_limit(model)
    model.max_seq_length = min(cfg.max_seq_length, limit) if limit else cfg.max_seq_length
    prompts = _prompts(model, cfg)
    model.prompts = prompts
    log.info("training %s: %d pair rows, %d triplet rows; prompts %s", cfg.model, len(rows.pairs),
             len(rows.triplets), prompts)
    base_val = evaluate_model(model, data, cfg.val_split, batch_size=cfg.eval_batch_size,
                              max_queries=cfg.max_val_queries, seed=cfg.seed)
    log.info("base model on %s: nDCG@10 %.4f", cfg.val_split, base_val["ndcg@10"])
    if cfg.hard_negatives:
        _mine(rows, model, data, prompts, cfg)

    evaluator = GradedRetrievalEvaluator(data, cfg.val_split, name="val", batch_size=cfg.eval_batch_size,
                                         max_queries=cfg.max_val_queries, seed=cfg.seed)
    trainer = SentenceTransformerTrainer(
        model=model, args=_arguments(cfg, out, prompts, device), train_dataset=_datasets(rows),
        loss=MultipleNegativesRankingLoss(model), evaluator=evaluator,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience)],
    )
    _log_to_logger(trainer)
    trainer.train()
    best = trainer.model
    val = evaluate_model(best, data, cfg.val_split, batch_size=cfg.eval_batch_size, max_queries=cfg.max_val_queries,
                         seed=cfg.seed)
    log.info("fine-tuned on %s: nDCG@10 %.4f (base %.4f)", cfg.val_split, val["ndcg@10"], base_val["ndcg@10"])
    if trainer.state.best_metric is not None and abs(val["ndcg@10"] - trainer.state.best_metric) > 1e-4:
        # sentence-transformers logs (and swallows) a failure to restore the best checkpoint
        raise RuntimeError(f"the best checkpoint ({trainer.state.best_model_checkpoint}, validation nDCG@10 "
                           f"{trainer.state.best_metric:.4f}) was not restored: the model in memory scores "
                           f"{val['ndcg@10']:.4f}; see the log above")
    best.save(str(out))
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    evaluations = _write_history(out, trainer.state.log_history)
    card = {
        "task": "embed", "name": out.name, "base": cfg.model, **describe(best),
        "data": {"source": data.source, **data.counts(), "rows": rows.counts},
        "metrics": {"val": val, "base_val": base_val, "beats_base": val["ndcg@10"] > base_val["ndcg@10"],
                    "best_checkpoint": trainer.state.best_model_checkpoint and Path(
                        trainer.state.best_model_checkpoint).name,
                    "best_val_ndcg@10_during_training": trainer.state.best_metric,
                    "evaluations": evaluations, "steps": trainer.state.global_step},
        "training": cfg.model_dump(), "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / CARD_FILE, card)
    return out
