"""The train stage: records + a :class:`TrainConfig` -> a model directory.

Steps, each in its own module: read data (:mod:`nerwheel.formats`), carve a
seeded dev split when none is given (:mod:`nerwheel.stages.split`), resolve the
backbone (:mod:`nerwheel.model.backbones`), align labels to windows
(:mod:`nerwheel.model.data`), optimise (:mod:`nerwheel.model.loop`), write the
Hugging Face directory + ``nerwheel.json`` (:mod:`nerwheel.model.card`).

Output: ``<output_dir>/<model_name>-<timestamp>/`` with ``config.json``,
``model.safetensors``, ``crf.safetensors`` (CRF head), tokenizer files,
``nerwheel.json``, ``metrics.jsonl`` (one line per epoch), ``training_curve.png``
and ``train_config.yaml`` (the resolved config).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nerwheel.labels import TagSet
from nerwheel.model.backbones import Backbone, load_backbone, save_tokenizer
from nerwheel.model.card import ModelCard, file_sha256
from nerwheel.model.config import TrainConfig
from nerwheel.model.encoding import TextEncoder
from nerwheel.records import Record

__all__ = ["TrainDataError", "TrainInputs", "records_sha256", "resolve_inputs", "train"]

log = logging.getLogger(__name__)


class TrainDataError(ValueError):
    """Training cannot start with the data given (no file, no records, no entities)."""


@dataclass
class TrainInputs:
    train: list[Record]
    dev: list[Record]
    test: list[Record]
    fingerprints: dict[str, Any]


def records_sha256(records: Sequence[Record]) -> str:
    """Content fingerprint of records (order-sensitive), independent of the file format they came from."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def _read(path: str, fmt: str | None, role: str) -> list[Record]:
    from nerwheel.formats import read_records

    result = read_records(path, format=fmt) if fmt else read_records(path)
    log.info("%s: %s", role, result.summary())
    for rej in result.rejects[:5]:
        log.warning("%s reject: %s", role, rej)
    return list(result.records)


def resolve_inputs(
    config: TrainConfig,
    train: Sequence[Record] | None = None,
    dev: Sequence[Record] | None = None,
    test: Sequence[Record] | None = None,
) -> TrainInputs:
    """Records from the arguments, else from ``config.data``; without dev, a seeded share of train."""
    d = config.data
    fp: dict[str, Any] = {}
    if train is None:
        if not d.train_file:
            raise TrainDataError("no training data: set data.train_file (or pass --train FILE)")
        train = _read(d.train_file, d.format, "train")
        fp["train_file"] = {"path": d.train_file, "sha256": file_sha256(d.train_file)}
    if dev is None and d.dev_file:
        dev = _read(d.dev_file, d.format, "dev")
        fp["dev_file"] = {"path": d.dev_file, "sha256": file_sha256(d.dev_file)}
    if test is None and d.test_file:
        test = _read(d.test_file, d.format, "test")
        fp["test_file"] = {"path": d.test_file, "sha256": file_sha256(d.test_file)}
    train = list(train)
    if not train:
        raise TrainDataError("the training data holds no records")
    if not any(r.entities for r in train):
        raise TrainDataError("the training data holds no entities; label some records first (nerwheel annotate)")
    if dev is None:
        from nerwheel.stages.split import split_records

        parts = split_records(train, (1 - d.dev_ratio, d.dev_ratio), names=("train", "dev"), seed=config.training.seed)
        train, dev = parts["train"], parts["dev"]
        fp["dev_split"] = {"ratio": d.dev_ratio, "seed": config.training.seed}
    dev, test = list(dev), list(test or [])
    train, notes = _tag_ready(train, "train")
    if notes:
        fp["validation"] = notes
    fp.update(train_records=len(train), train_sha256=records_sha256(train),
              dev_records=len(dev), dev_sha256=records_sha256(dev))
    return TrainInputs(train, dev, test, fp)


def _tag_ready(records: list[Record], source: str) -> tuple[list[Record], dict[str, int]]:
    """Resolve overlapping spans (keep the longest; tags cannot express overlaps) and drop blank texts, counted."""
    from nerwheel.validate import ValidationPolicy, validate_records

    result = validate_records(records, ValidationPolicy(overlaps="keep-longest", max_length=None), source=source)
    notes = dict(result.notes)
    if result.rejects:
        notes["rejected"] = len(result.rejects)
        log.warning("%s: %d records dropped, e.g. %s", source, len(result.rejects), result.rejects[0])
    return list(result.records), notes


def _default_lr(backbone: Backbone) -> float:
    return 1e-3 if backbone.name == "tiny" else 5e-5


def _write_model(directory: Path, model: Any, backbone: Backbone, card: ModelCard) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    save_tokenizer(backbone.tokenizer, backbone.special_tokens, directory, card.sequence_length)
    card.write(directory)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json without the report text: what belongs in the card."""
    return {k: v for k, v in metrics.items() if k != "seqeval_report"}


def train(
    config: TrainConfig,
    *,
    train_records: Sequence[Record] | None = None,
    dev_records: Sequence[Record] | None = None,
    test_records: Sequence[Record] | None = None,
) -> Path:
    """Train a token classifier as ``config`` says; returns the new model directory."""
    from nerwheel.model.data import build_features
    from nerwheel.model.lora import apply_lora
    from nerwheel.model.loop import evaluate_model, fit, seed_everything, torch_threads

    t = config.training
    seed_everything(t.seed)
    inputs = resolve_inputs(config, train_records, dev_records, test_records)
    backbone = load_backbone(config.model, texts=[r.text for r in inputs.train], sequence_length=t.sequence_length)
    extra = backbone.previous_card.labels if backbone.previous_card else ()
    tagset = TagSet.from_records(inputs.train + inputs.dev, scheme=config.model.scheme, extra=extra)
    encoder = TextEncoder(backbone.tokenizer, sequence_length=t.sequence_length, stride=t.stride,
                          pad_id=backbone.pad_id)
    features, stats = build_features(inputs.train, encoder, tagset)
    if stats.misaligned:
        log.warning("%d of %d training entities have a boundary inside a token and cannot be learned exactly, e.g. %s",
                    stats.misaligned, stats.entities, stats.examples[:3])
    model = backbone.classifier(tagset, config.model)
    if config.model.lora.enabled:
        model.encoder = apply_lora(model.encoder, config.model.lora)

    run_dir = config.run_dir()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir}: already exists and is not empty; choose another output.model_name")
    run_dir.mkdir(parents=True, exist_ok=True)
    learning_rate = t.learning_rate or _default_lr(backbone)
    card = ModelCard.new(
        tagset, head=config.model.head, backbone=backbone.name, sequence_length=t.sequence_length, stride=t.stride,
        pad_id=backbone.pad_id, name=run_dir.name,
        data={**inputs.fingerprints, "alignment": stats.to_dict()},
        training={**config.model_dump(mode="json"), "resolved_learning_rate": learning_rate, **backbone.info},
    )
    (run_dir / "train_config.yaml").write_text(
        yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    log.info("training %s (%s head, %d tags) on %d windows from %d records; dev %d records -> %s",
             backbone.name, config.model.head, len(tagset.tags), len(features), len(inputs.train), len(inputs.dev),
             run_dir)

    def save_checkpoint(path: Path, dev_metrics: dict[str, Any]) -> None:
        _write_model(path, model, backbone, card.model_copy(update={"metrics": {"dev": _summary(dev_metrics)}}))

    with torch_threads(t.threads):
        result = fit(model, features, inputs.dev, config=config, learning_rate=learning_rate, encoder=encoder,
                     card=card, run_dir=run_dir, save=save_checkpoint)
        test_metrics = evaluate_model(model, card, encoder, inputs.test, t.eval_batch_size) if inputs.test else None
    card_metrics: dict[str, Any] = {
        "best_epoch": result.best_epoch, "epochs_run": len(result.history), "stopped_early": result.stopped_early,
        "training_seconds": round(result.seconds, 1),
    }
    if result.best_metrics:
        card_metrics["dev"] = _summary(result.best_metrics)
    if test_metrics:
        card_metrics["test"] = _summary(test_metrics)
    card.metrics = card_metrics
    _write_model(run_dir, model, backbone, card)
    if config.output.plots and result.history:
        from nerwheel.model.plots import training_curve_png

        training_curve_png(result.history, run_dir / "training_curve.png")
    log.info("best epoch %d, dev strict F1 %s, %.0f s -> %s", result.best_epoch,
             card_metrics.get("dev", {}).get("overall", {}).get("strict", {}).get("f1"), result.seconds, run_dir)
    return run_dir
