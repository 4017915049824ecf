"""The classifier's train stage: messages -> a Hugging Face sequence classifier directory + ``nerwheel.json``.

What is task-specific lives here: reading and labelling the inputs (with the
same rejects contract as NER: ``rejects.jsonl``, ``read = accepted +
rejected`` per file in the card's ``data`` section), the stratified dev carve,
the answer to imbalance (class-weighted loss or a balanced sampler), the loss
and the dev score (macro-F1). The loop itself (steps, evaluation cadence,
checkpoints by steps or epochs, best by dev score, early stopping, tracking)
is :func:`nerwheel.model.loop.fit`, shared with NER.

Output folder (``<output_dir>/<model_name>-<timestamp>/``): ``config.json``
(``id2label``), ``model.safetensors``, tokenizer files, ``labels.json``,
``nerwheel.json`` (:class:`~nerwheel.tasks.classify.card.ClassifierCard`),
``metrics.jsonl``, ``training_curve.png``, ``train_config.yaml``,
``rejects.jsonl`` and ``checkpoints/``; and, for ``transformers`` users,
``pipeline_classify.py`` with the modules it imports, ``custom_pipelines`` in
``config.json`` and the ``README.md`` model card (:mod:`nerwheel.hf.folder`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nerwheel.formats.base import ReadResult, Reject
from nerwheel.model.card import file_sha256
from nerwheel.stages.train import TrainDataError
from nerwheel.tasks.classify.config import ClassifyConfig
from nerwheel.tasks.classify.records import LabelSet, Message

__all__ = ["REJECTS_FILE", "ClassifierSteps", "ClassifyInputs", "CrossEntropy", "TrainDataError", "card_metrics",
           "classifier_metrics", "messages_sha256", "resolve_inputs", "score", "stratified_split", "train",
           "write_model"]

log = logging.getLogger(__name__)
REJECTS_FILE = "rejects.jsonl"


@dataclass
class ClassifyInputs:
    """The messages training uses, the label set, and the account of everything not used."""

    train: list[Message]
    dev: list[Message]
    test: list[Message]
    labels: LabelSet
    fingerprints: dict[str, Any]
    rejects: list[Reject] = field(default_factory=list)


def messages_sha256(messages: Sequence[Message]) -> str:
    h = hashlib.sha256()
    for m in messages:
        h.update(json.dumps([m.id, m.context, m.message, m.label], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def stratified_split(messages: Sequence[Message], ratio: float, seed: int) -> tuple[list[Message], list[Message]]:
    """``(train, dev)`` with ``ratio`` of each class in dev (at least one where a class has two or more)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str | None, list[int]] = {}
    for i, m in enumerate(messages):
        by_label.setdefault(m.label, []).append(i)
    dev_idx: set[int] = set()
    for label in sorted(by_label, key=str):
        idx = by_label[label]
        k = int(round(len(idx) * ratio))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        dev_idx.update(int(i) for i in rng.permutation(idx)[:k])
    train = [m for i, m in enumerate(messages) if i not in dev_idx]
    dev = [m for i, m in enumerate(messages) if i in dev_idx]
    return train, dev


def resolve_labels(config: ClassifyConfig, messages: Sequence[Message] = ()) -> LabelSet:
    """model.labels, else data.labels_file, else labels.json beside train_file, else the labels in the data."""
    c = config
    if c.model.labels:
        labels = LabelSet(tuple(c.model.labels))
    elif c.data.labels_file:
        labels = LabelSet.read(c.data.labels_file)
    elif c.data.train_file and (found := LabelSet.beside(c.data.train_file)) is not None:
        labels = found
    else:
        labels = LabelSet.from_messages(messages)
    from nerwheel.model.config import check_num_labels

    check_num_labels(c.model.num_labels, labels.names, what="classes")
    return labels


def _read(path: str, config: ClassifyConfig, labels: LabelSet | None) -> ReadResult:
    from nerwheel.tasks.classify.formats import read_messages

    return read_messages(path, config.data.format, labels=labels, require_label=True)


def _counts(result: ReadResult) -> dict[str, Any]:
    out: dict[str, Any] = {"read": result.read, "accepted": len(result.records), "rejected": len(result.rejects)}
    if result.rejects:
        out["rejected_by_kind"] = dict(sorted(result.reject_kinds().items()))
    return out


def resolve_inputs(config: ClassifyConfig, train: Sequence[Message] | None = None,
                   dev: Sequence[Message] | None = None, test: Sequence[Message] | None = None) -> ClassifyInputs:
    """Messages from the arguments, else from ``config.data``; without dev, a stratified seeded share of train."""
    d = config.data
    fp: dict[str, Any] = {}
    rejects: list[Reject] = []
    if train is None and not d.train_file:
        raise TrainDataError("no training data: set data.train_file (CLI: --data-path FILE)")
    labels = None
    if config.model.labels or d.labels_file or (d.train_file and LabelSet.beside(d.train_file)):
        labels = resolve_labels(config)
    parts: dict[str, list[Message] | None] = {}
    for role, given, path in (("train", train, d.train_file), ("dev", dev, d.dev_file), ("test", test, d.test_file)):
        if given is not None:
            parts[role] = list(given)
        elif path:
            result = _read(path, config, labels)
            log.info("%s: %s", role, result.summary())
            fp[f"{role}_file"] = {"path": path, "sha256": file_sha256(path), **_counts(result)}
            rejects += result.rejects
            parts[role] = list(result.records)
        else:
            parts[role] = None
    train_msgs = [m for m in parts["train"] or [] if m.label is not None]
    if not train_msgs:
        first = f"; first reject: {rejects[0]}" if rejects else ""
        raise TrainDataError(f"{fp.get('train_file', {}).get('path', 'the training data')}: no usable labelled "
                             f"messages ({len(rejects)} rejected){first}")
    if labels is None:
        labels = resolve_labels(config, train_msgs + list(parts["dev"] or []))
    outside = sorted({m.label for m in train_msgs + list(parts["dev"] or []) if m.label not in labels})
    if outside:
        raise TrainDataError(f"labels {outside} are not in the label set ({', '.join(labels.names)})")
    if len({m.label for m in train_msgs}) < 2:
        raise TrainDataError(f"the training data holds one class only ({train_msgs[0].label}); a classifier needs "
                             "at least two")
    dev_msgs = parts["dev"]
    if dev_msgs is None:
        train_msgs, dev_msgs = stratified_split(train_msgs, d.dev_ratio, config.training.seed)
        fp["dev_split"] = {"ratio": d.dev_ratio, "seed": config.training.seed, "stratified": True}
    fp.update(train_records=len(train_msgs), train_sha256=messages_sha256(train_msgs), dev_records=len(dev_msgs),
              dev_sha256=messages_sha256(dev_msgs),
              train_class_counts=dict(Counter(m.label for m in train_msgs).most_common()))
    return ClassifyInputs(train_msgs, list(dev_msgs), list(parts["test"] or []), labels, fp, rejects)


def class_weights(counts: Counter[str], labels: LabelSet) -> np.ndarray:
    """``n / (classes * count)`` per class (scikit-learn's "balanced"); a class absent from train gets 1."""
    n = sum(counts.values())
    return np.array([n / (len(labels) * counts[lab]) if counts[lab] else 1.0 for lab in labels.names],
                    dtype=np.float32)


@dataclass
class CrossEntropy:
    """The classifier's loss on hard targets (class-weighted when ``weight`` is given).

    Shaped as a model's ``loss(logits, labels)``, so distillation's
    :class:`~nerwheel.model.distill.DistillLoss` adds its KL term to this very
    loss, as it does to a tagger's CRF loss.
    """

    weight: Any = None  # a float tensor [C], or None

    def loss(self, logits: Any, labels: Any) -> Any:
        import torch

        return torch.nn.functional.cross_entropy(logits.float(), labels, weight=self.weight)


@dataclass
class ClassifierSteps:
    """The classifier's :class:`~nerwheel.model.loop.Steps`: pair batches, weighted cross-entropy, dev macro-F1.

    With ``soft`` (the teacher's log-probabilities ``[N, C]``, one row per
    example) and ``loss_fn`` (a :class:`~nerwheel.model.distill.DistillLoss`)
    the batch loss is ``loss_fn(CrossEntropy, logits, {labels, soft, soft_mask})``:
    distillation trains in this same loop.
    """

    rows: list[tuple[list[int], list[int]]]
    targets: np.ndarray
    encoder: Any
    config: ClassifyConfig
    dev: list[Message]
    card: Any
    weights: np.ndarray | None = None
    soft: np.ndarray | None = None
    loss_fn: Any = None

    def plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        t = self.config.training
        n = len(self.rows)
        if t.sampler == "balanced":
            counts = np.bincount(self.targets, minlength=int(self.targets.max()) + 1).astype(np.float64)
            p = 1.0 / counts[self.targets]
            order = rng.choice(n, size=n, replace=True, p=p / p.sum())
        else:
            order = rng.permutation(n)
        return [order[i : i + t.batch_size] for i in range(0, n, t.batch_size)]

    def loss(self, model: Any, batch: np.ndarray, device: Any, autocast: Any) -> Any:
        import torch

        from nerwheel.model.distributed import unwrap

        enc = self.encoder.pad([self.rows[i] for i in batch])
        feeds = {k: torch.from_numpy(v).to(device) for k, v in enc.feeds().items()
                 if k != "token_type_ids" or getattr(unwrap(model).config, "type_vocab_size", 1) > 1}
        with autocast():
            logits = model(**feeds).logits
        hard = CrossEntropy(torch.from_numpy(self.weights).to(device) if self.weights is not None else None)
        target = torch.from_numpy(self.targets[batch]).to(device)
        if self.loss_fn is None or self.soft is None:
            return hard.loss(logits, target)
        soft = torch.from_numpy(self.soft[batch]).to(device)
        mask = torch.ones(len(batch), dtype=torch.bool, device=device)
        return self.loss_fn(hard, logits, {"labels": target, "soft": soft, "soft_mask": mask})

    def evaluate(self, model: Any) -> Any:
        from nerwheel.model.loop import DevResult
        from nerwheel.tasks.classify.metrics import summary

        if not self.dev:
            return None
        m = score(model, self.card, self.encoder, self.dev, self.config.training.eval_batch_size)
        return DevResult(m["overall"]["macro"]["f1"], summary(m), m)


def score(model: Any, card: Any, encoder: Any, messages: Sequence[Message], batch_size: int) -> dict[str, Any]:
    """Metrics of an in-memory model on labelled messages (the dev evaluation, and the test set at the end)."""
    from nerwheel.tasks.classify.runtime import TorchClassifier

    return classifier_metrics(TorchClassifier(model, card, encoder, batch_size=batch_size), messages)


def classifier_metrics(classifier: Any, messages: Sequence[Message]) -> dict[str, Any]:
    """Metrics of any :class:`~nerwheel.tasks.classify.classifier.Classifier` (PyTorch or ONNX) on labelled messages."""
    from nerwheel.tasks.classify.metrics import classification_metrics

    probs = classifier.probabilities([(m.context, m.message) for m in messages])
    pred = [classifier.labels[int(i)] for i in probs.argmax(axis=1)]
    return classification_metrics([m.label for m in messages], pred, classifier.labels, probs)


def write_model(directory: Path, built: Any, labels: LabelSet, card: Any) -> None:
    """A classifier folder: the Hugging Face files, the tokenizer, ``labels.json``, the card, the HF pipeline files.

    Every classifier folder is written here (training, its checkpoints, a
    distilled student), so ``evaluate``, ``export`` and ``predict`` read them
    all alike.
    """
    from nerwheel.hf.folder import write_hf_files
    from nerwheel.model.backbones import save_tokenizer

    directory.mkdir(parents=True, exist_ok=True)
    built.model.save_pretrained(directory)
    save_tokenizer(built.tokenizer, built.special_tokens, directory, card.max_length)
    labels.write(directory)
    card.write(directory)
    write_hf_files(directory, card)  # its text-classification pipeline and README.md model card (nerwheel.hf)


def train(config: ClassifyConfig, *, train_records: Sequence[Message] | None = None,
          dev_records: Sequence[Message] | None = None, test_records: Sequence[Message] | None = None) -> Path:
    """Train a classifier as ``config`` says; returns the new model directory."""
    from nerwheel.formats import write_rejects
    from nerwheel.model.config import default_learning_rate, learning_rate_warning
    from nerwheel.model.loop import fit, seed_everything, torch_threads
    from nerwheel.model.tracking import open_tracker
    from nerwheel.tasks.classify.card import ClassifierCard
    from nerwheel.tasks.classify.encoding import PairEncoder
    from nerwheel.tasks.classify.model import build_model

    t = config.training
    seed_everything(t.seed)
    inputs = resolve_inputs(config, train_records, dev_records, test_records)
    labels = inputs.labels
    built = build_model(config.model, labels, texts=[x for m in inputs.train for x in (m.context, m.message) if x])
    encoder = PairEncoder(built.tokenizer, max_length=config.model.max_length, pad_id=built.pad_id)
    rows = encoder.encode([(m.context, m.message) for m in inputs.train])
    targets = np.array([labels.index(m.label) for m in inputs.train], dtype=np.int64)
    counts = Counter(m.label for m in inputs.train)
    weights = class_weights(counts, labels) if t.class_weights == "balanced" else None

    run_dir = config.run_dir()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir}: already exists and is not empty; choose another output.model_name")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_rejects(inputs.rejects, run_dir / REJECTS_FILE)
    if warning := learning_rate_warning(built.name, t.learning_rate):
        log.warning(warning)
    learning_rate = t.learning_rate or default_learning_rate(built.name, task="classify")
    truncated = sum(1 for ids, _ in rows if len(ids) >= config.model.max_length)
    card = ClassifierCard(
        labels=list(labels.names), backbone=built.name, max_length=config.model.max_length, pad_id=built.pad_id,
        name=run_dir.name, data={**inputs.fingerprints, "truncated_train_pairs": truncated},
        training={**config.model_dump(mode="json"), "resolved_learning_rate": learning_rate,
                  "class_weights": weights.tolist() if weights is not None else None, **built.info},
    )
    (run_dir / "train_config.yaml").write_text(
        yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False), encoding="utf-8")
    log.info("training %s on %d messages (%s); dev %d -> %s", built.name, len(inputs.train),
             dict(counts.most_common()), len(inputs.dev), run_dir)

    def write(directory: Path, metrics: dict[str, Any]) -> None:
        write_model(directory, built, labels,
                    card.model_copy(update={"metrics": {"dev": card_metrics(metrics)}} if metrics else {}))

    steps = ClassifierSteps(rows, targets, encoder, config, inputs.dev, card, weights)
    with torch_threads(t.threads), open_tracker(config, run_dir) as tracker:
        result = fit(built.model, steps, config=config, learning_rate=learning_rate, run_dir=run_dir, save=write,
                     encoder_prefix=built.encoder_prefix, tracker=tracker)
        test_metrics = (score(built.model, card, encoder, inputs.test, t.eval_batch_size)
                        if inputs.test else None)
    card.metrics = {"best_epoch": result.best_epoch, "best_step": result.best_step,
                    "evaluations": len(result.history), "stopped_early": result.stopped_early,
                    "training_seconds": round(result.seconds, 1)}
    if result.best_metrics:
        card.metrics["dev"] = card_metrics(result.best_metrics)
    if test_metrics:
        card.metrics["test"] = card_metrics(test_metrics)
    write(run_dir, {})
    if config.output.plots and result.history:
        from nerwheel.model.plots import training_curve_png

        training_curve_png(result.history, run_dir / "training_curve.png", scores=("macro_f1", "accuracy"))
    log.info("best step %d, dev macro-F1 %s, %.0f s -> %s", result.best_step,
             card.metrics.get("dev", {}).get("overall", {}).get("macro", {}).get("f1"), result.seconds, run_dir)
    return run_dir


def card_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json without the confusion matrix: what belongs in the card."""
    return {k: v for k, v in metrics.items() if k != "confusion"}
