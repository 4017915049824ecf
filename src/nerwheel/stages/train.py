"""The train stage: records + a :class:`TrainConfig` -> a model directory.

Steps, each in its own module: read data (:mod:`nerwheel.formats`), carve a
seeded dev split when none is given (:mod:`nerwheel.stages.split`), resolve the
backbone (:mod:`nerwheel.model.backbones`), align labels to windows
(:mod:`nerwheel.model.data`), optimise (:mod:`nerwheel.model.loop`), write the
Hugging Face directory + ``nerwheel.json`` (:mod:`nerwheel.model.card`).

Output: ``<output_dir>/<model_name>-<timestamp>/`` with ``config.json``,
``model.safetensors``, ``crf.safetensors`` (CRF head), tokenizer files,
``nerwheel.json``, ``metrics.jsonl`` (one line per epoch), ``steps.jsonl`` (with
``logging.steps``/``eval_steps``: a line per that many optimiser steps), ``training_curve.png``,
``train_config.yaml`` (the resolved config), ``rejects.jsonl`` (input records
not used, with file, line and reason) and, when the keep-longest overlap policy
removed spans, ``dropped_spans.jsonl``. ``nerwheel.json``'s ``data`` section
counts read = accepted + rejected per input file. The folder is also a complete
Hugging Face folder (:mod:`nerwheel.hf`): its own model and pipeline code,
``auto_map``/``custom_pipelines`` in ``config.json``, and ``README.md``.

Two options feed the tagger what the flywheel already has: ``model.lexicon``
adds the knowledge base's matches as per-character input features
(:mod:`nerwheel.model.lexicon`; the card's ``lexicon`` section is their
signature), and ``unlabeled.file`` adds teacher-labelled traffic to gold
(:mod:`nerwheel.stages.unlabeled`, weighted or annealed per epoch by
:mod:`nerwheel.model.curriculum`; every traffic line is used or rejected, in
``unlabeled_rejects.jsonl``, and ``data.unlabeled`` reconciles the counts).

A span head (``model.head: span``, :mod:`nerwheel.model.span`) learns
overlapping and nested spans, so its training records keep them all (overlap
policy ``keep``, nothing dropped) and its windows come from
:mod:`nerwheel.model.span_data`. Extension labels (``pos:n``, ``kb:city``)
train as weighted auxiliary outputs; dev and test are scored on target labels
only, so the F1 that picks the best epoch and the one reported are target F1.

A learning rate or epoch budget the config leaves out is the backbone's
measured best (:mod:`nerwheel.model.defaults`); the log and
``nerwheel.json`` (``training.resolved``) say which values were used and why.
A run that continues a trained model says so and records it as ``parent``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nerwheel.errors import DataError
from nerwheel.formats.base import ReadResult, Reject
from nerwheel.labels import TASK_LABELS, LabelSet, TagSet
from nerwheel.model.backbones import Backbone, load_backbone, save_tokenizer
from nerwheel.model.hub import check_available
from nerwheel.model.card import ModelCard
from nerwheel.model.config import TrainConfig, check_num_labels, learning_rate_warning
from nerwheel.model.encoding import TextEncoder
from nerwheel.model.layout import DROPPED_SPANS_FILE, REJECTS_FILE, TRAIN_CONFIG_FILE, UNLABELED_REJECTS_FILE
from nerwheel.records import Record
from nerwheel.storage import sha256_file
from nerwheel.validate import NOTE_OVERLAPS_KEPT

__all__ = ["DROPPED_SPANS_FILE", "REJECTS_FILE", "TrainDataError", "TrainInputs", "as_read_result", "input_summary",
           "records_sha256",
           "resolve_inputs", "tag_ready", "train", "write_input_report"]

log = logging.getLogger(__name__)


class TrainDataError(DataError):
    """Training cannot start with the data given (no file, no records, no entities)."""


NOTE_OVERLAP_RECORDS = "records with overlapping entities resolved (keep-longest)"


@dataclass
class TrainInputs:
    """The records training uses, and the account of everything it did not use.

    ``rejects``: input records not used (reader rejects, blank texts), each with
    file, line and reason. ``dropped_spans``: entities removed from accepted
    training records by the keep-longest overlap policy, one row each.
    ``fingerprints`` becomes ``nerwheel.json``'s ``data`` section: per input
    file ``read = accepted + rejected``, and the policy's counts.
    """

    train: list[Record]
    dev: list[Record]
    test: list[Record]
    fingerprints: dict[str, Any]
    rejects: list[Reject] = field(default_factory=list)
    dropped_spans: list[dict[str, Any]] = field(default_factory=list)


def records_sha256(records: Sequence[Record]) -> str:
    """Content fingerprint of records (order-sensitive), independent of the file format they came from."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def as_read_result(records: Sequence[Record], role: str) -> ReadResult:
    """Records passed by a caller, as a read result whose "lines" are 1-based positions."""
    rr = ReadResult(source=f"<{role} records>", format="records")
    for i, r in enumerate(records, start=1):
        rr.add(r, i)
    return rr


def _read(path: str, fmt: str | None) -> ReadResult:
    from nerwheel.formats import read_records

    return read_records(path, format=fmt) if fmt else read_records(path)


def train_label_set(config: TrainConfig) -> LabelSet:
    """The labels training data may carry: ``data.labels``, else the continued model's, else the task's."""
    from nerwheel.model.backbones import is_nerwheel_model
    from nerwheel.model.card import ModelCard

    if config.data.labels is not None:
        return LabelSet.parse(config.data.labels, "data.labels")
    source = config.model.init_from or config.model.model_id
    if is_nerwheel_model(source):
        return LabelSet(frozenset(ModelCard.read(source).labels), f"the model being continued ({source})")
    return TASK_LABELS


def _limit(result: ReadResult, max_text_length: int, label_set: LabelSet) -> ReadResult:
    """Texts over ``data.max_text_length`` characters (0: no limit) and records with labels outside the
    label set become rejects."""
    from nerwheel.validate import limit_length, reject_unknown_labels

    result = limit_length(result, max_text_length or None, fix="raise data.max_text_length")
    return reject_unknown_labels(result, label_set, fix="name every label in data.labels, or set data.labels: any")


def _counts(result: ReadResult) -> dict[str, Any]:
    out: dict[str, Any] = {"read": result.read, "accepted": len(result.records), "rejected": len(result.rejects)}
    if result.rejects:
        out["rejected_by_kind"] = dict(sorted(result.reject_kinds().items()))
    return out


def tag_ready(result: ReadResult, overlaps: str = "keep-longest") -> tuple[ReadResult, list[dict[str, Any]]]:
    """Apply what the head can learn to ``result``: blank texts rejected, overlaps resolved keeping the longest
    (``overlaps="keep"``, for a span head: kept as they are).

    Returns a reconciling result (policy rejects join the reader's, with file
    and line) and one row per entity the overlap policy dropped, naming the
    longer span it lost to.
    """
    from nerwheel.formats.base import BadRecord
    from nerwheel.validate import ValidationPolicy, check_record

    policy = ValidationPolicy(overlaps=overlaps, max_length=None)
    out = ReadResult(source=result.source, format=result.format, rejects=list(result.rejects),
                     notes=Counter(result.notes))
    dropped: list[dict[str, Any]] = []
    for line, record in result.located():
        try:
            checked = check_record(record, policy, out.notes)
        except BadRecord as exc:
            out.rejects.append(Reject(result.source, line, str(exc), json.dumps(record.to_dict(), ensure_ascii=False),
                                      kind=exc.kind))
            continue
        if len(checked.entities) < len(set(record.entities)):
            out.notes[NOTE_OVERLAP_RECORDS] += 1
            kept = checked.entities
            for e in dict.fromkeys(record.entities):  # duplicates were collapsed, not dropped
                if e not in kept:
                    dropped.append({
                        "file": result.source, "line": line, "id": record.id,
                        "reason": "overlaps a longer span; tags cannot express overlaps (keep-longest)",
                        "dropped": e.to_dict(), "kept": [k.to_dict() for k in kept if k.overlaps(e)],
                    })
        out.add(checked, line)
    out.rejects.sort(key=lambda r: (r.file, r.line))
    return out, dropped


def resolve_inputs(
    config: TrainConfig,
    train: Sequence[Record] | None = None,
    dev: Sequence[Record] | None = None,
    test: Sequence[Record] | None = None,
) -> TrainInputs:
    """Records from the arguments, else from ``config.data``; without dev, a seeded share of train.

    Nothing is lost silently: every record not used is in ``rejects`` and every
    span removed in ``dropped_spans``, and the counts reconcile per file.
    """
    d = config.data
    overlaps = "keep" if config.model.head == "span" else "keep-longest"
    label_set = train_label_set(config)
    log.info("%s", label_set.describe())
    fp: dict[str, Any] = {"label_set": label_set.to_dict()}
    rejects: list[Reject] = []
    dropped: list[dict[str, Any]] = []
    parts: dict[str, list[Record] | None] = {}
    for role, given, path in (("train", train, d.train_file), ("dev", dev, d.dev_file), ("test", test, d.test_file)):
        if given is not None:
            parts[role] = list(given)
            continue
        if not path:
            if role == "train":
                raise TrainDataError("no training data: set data.train_file", field="data.train_file")
            parts[role] = None
            continue
        result = _limit(_read(path, d.format), d.max_text_length, label_set)
        if role == "train":  # dev and test are scored as they are; only train must fit the tags
            result, dropped = tag_ready(result, overlaps)
        log.info("%s: %s", role, result.summary())
        for rej in result.rejects[:3]:
            log.warning("%s reject: %s", role, rej)
        fp[f"{role}_file"] = {"path": path, "sha256": sha256_file(path), **_counts(result)}
        rejects += result.rejects
        parts[role] = list(result.records)
        if role == "train":
            fp["validation"] = _policy_counts(result, dropped)
    if train is not None:  # records passed in memory: the same policy, positions for lines
        result, dropped = tag_ready(_limit(as_read_result(parts["train"] or [], "train"), d.max_text_length, label_set),
                                    overlaps)
        rejects += result.rejects
        parts["train"] = list(result.records)
        fp["validation"] = {**_counts(result), **_policy_counts(result, dropped)}
    train_recs = parts["train"] or []
    if not train_recs:
        where = fp.get("train_file", {}).get("path", "the training records")
        first = f"; first reject: {rejects[0]}" if rejects else ""
        raise TrainDataError(f"{where}: no usable training records ({len(rejects)} rejected){first}")
    if not any(r.entities for r in train_recs):
        raise TrainDataError("the training data holds no entities; label some records first (nerwheel annotate)")
    dev_recs = parts["dev"]
    if dev_recs is None:
        from nerwheel.stages.split import split_records

        split = split_records(train_recs, (1 - d.dev_ratio, d.dev_ratio), names=("train", "dev"),
                             seed=config.training.seed)
        train_recs, dev_recs = split["train"], split["dev"]
        fp["dev_split"] = {"ratio": d.dev_ratio, "seed": config.training.seed}
    fp.update(train_records=len(train_recs), train_sha256=records_sha256(train_recs),
              dev_records=len(dev_recs), dev_sha256=records_sha256(dev_recs))
    return TrainInputs(train_recs, list(dev_recs), list(parts["test"] or []), fp, rejects, dropped)


def _policy_counts(result: ReadResult, dropped: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in result.notes.items()}
    out["overlap_spans_dropped"] = len(dropped)
    out["overlap_records_affected"] = result.notes.get(NOTE_OVERLAP_RECORDS, 0)
    if dropped:
        log.warning("%s: keep-longest dropped %d overlapping spans in %d records, e.g. line %d: %s",
                    result.source, len(dropped), out["overlap_records_affected"], dropped[0]["line"],
                    dropped[0]["dropped"])
    return out


def input_summary(data: dict[str, Any], run_dir: Path) -> list[str]:
    """What was read and what was not used, from ``nerwheel.json``'s ``data`` section, one line each.

    Each input file reconciles (read = accepted + rejected); the rejects and the
    spans dropped by keep-longest are named with the files that list them.
    """
    lines = []
    for role in ("train", "dev", "test"):
        f = data.get(f"{role}_file")
        if f:
            lines.append(f"{role} {f['path']}: read {f['read']} = accepted {f['accepted']} + rejected {f['rejected']}")
    v = data.get("validation", {})
    if "read" in v:
        lines.append(f"train records given: read {v['read']} = accepted {v['accepted']} + rejected {v['rejected']}")
    n_rejected = sum(data.get(f"{r}_file", {}).get("rejected", 0) for r in ("train", "dev", "test")) \
        + v.get("rejected", 0)
    lines.append(f"rejected: {n_rejected} records, each with file, line and reason, in {run_dir / REJECTS_FILE}")
    if v.get("overlap_spans_dropped"):
        lines.append(f"keep-longest: {v['overlap_spans_dropped']} overlapping spans dropped from "
                     f"{v['overlap_records_affected']} training records (tags cannot express overlaps), listed in "
                     f"{run_dir / DROPPED_SPANS_FILE}")
    if v.get(NOTE_OVERLAPS_KEPT):
        lines.append(f"span head: {v[NOTE_OVERLAPS_KEPT]} training records hold overlapping or nested spans, all kept")
    u = data.get("unlabeled")
    if u:
        lines.append(f"unlabeled {u['path']}: read {u['read']} = used {u['used']} + rejected {u['rejected']} (teacher "
                     f"{u['teacher']}; rejects with line and reason in {run_dir / UNLABELED_REJECTS_FILE})")
    a = data.get("alignment", {})
    if a.get("too_wide") or a.get("outside_windows"):
        lines.append(f"span head: {a.get('too_wide', 0)} spans wider than model.span.max_width and "
                     f"{a.get('outside_windows', 0)} spans no window holds whole cannot be learned (nerwheel.json: "
                     "data.alignment)")
    return lines


def write_input_report(run_dir: Path, inputs: TrainInputs) -> None:
    """``rejects.jsonl`` (always; empty when nothing was rejected) and ``dropped_spans.jsonl`` (when any)."""
    from nerwheel.formats import write_rejects

    write_rejects(inputs.rejects, run_dir / REJECTS_FILE)
    if inputs.dropped_spans:
        with (run_dir / DROPPED_SPANS_FILE).open("w", encoding="utf-8") as f:
            for row in inputs.dropped_spans:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def resolve_schedule(config: TrainConfig, backbone: Backbone) -> tuple[TrainConfig, dict[str, Any]]:
    """``config`` with ``learning_rate`` and ``epochs`` filled in from the backbone's measured defaults where unset.

    Returns the resolved config and the record for ``nerwheel.json``
    (``training.resolved``): the values, and for each whether it came from the
    config or the backbone's defaults (with the measurement behind them).
    """
    from nerwheel.model.defaults import defaults_for

    t = config.training
    base = backbone.info.get("adapted_from")  # a `nerwheel pretrain` folder trains like the backbone it continued
    name = str(base or backbone.name)
    d = defaults_for(name, pretrained=bool(backbone.info.get("pretrained", True)))
    lr = t.learning_rate if t.learning_rate is not None else d.learning_rate
    epochs = t.epochs if t.epochs is not None else d.epochs
    used = [k for k, v in (("learning_rate", t.learning_rate), ("epochs", t.epochs)) if v is None]
    via = f", {backbone.name} being {base} after nerwheel pretrain" if base else ""
    source = "config" if not used else f"{name} defaults for {' and '.join(used)}{via} ({d.evidence})"
    resolved = config.model_copy(update={"training": t.model_copy(update={"learning_rate": lr, "epochs": epochs})})
    return resolved, {"learning_rate": lr, "epochs": epochs, "from_backbone_defaults": used, "source": source}


def _language(texts: Sequence[str]) -> str | None:
    """``zh`` when CJK characters dominate the training texts, ``en`` for Latin letters, else unknown."""
    from nerwheel.model.encoding import is_cjk

    chars = [c for t in texts[:2000] for c in t if not c.isspace()]
    if not chars:
        return None
    if sum(map(is_cjk, chars)) >= 0.3 * len(chars):
        return "zh"
    return "en" if sum(c.isascii() and c.isalpha() for c in chars) >= 0.5 * len(chars) else None


def _parent(card: ModelCard, directory: str) -> dict[str, Any]:
    dev = (card.metrics.get("dev") or {}).get("overall", {}).get("strict", {}).get("f1")
    return {"path": directory, "name": card.name, "backbone": card.backbone, "dev_strict_f1": dev}


def _write_model(directory: Path, model: Any, backbone: Backbone, card: ModelCard) -> None:
    from nerwheel.hf.folder import write_hf_files

    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    save_tokenizer(backbone.tokenizer, backbone.special_tokens, directory, card.sequence_length)
    card.write(directory)
    write_hf_files(directory, card)


def _span_head(config: TrainConfig, inputs: TrainInputs, backbone: Backbone,
               encoder: TextEncoder) -> tuple[Any, list[Any], Any, dict[str, Any]]:
    """The span head's model, windows, alignment stats and card fields; dev/test become target-only."""
    from nerwheel.decode_span import SpanLayout
    from nerwheel.metrics import target_records
    from nerwheel.model.heads import span_labels
    from nerwheel.model.span_data import build_span_features

    span = config.model.span
    extra = backbone.previous_card.labels if backbone.previous_card else ()
    labels = span_labels(inputs.train + inputs.dev, extra=extra)
    check_num_labels(config.model.num_labels, labels, what="span labels (targets, then extension labels)")
    layout = SpanLayout(labels, span.max_width)
    if not layout.targets:
        raise TrainDataError("the training data holds extension labels only (pos:..., kb:...); a span head needs "
                             "target labels to learn")
    features, stats = build_span_features(inputs.train, encoder, layout)
    if stats.too_wide:
        log.warning("%d of %d training spans are wider than model.span.max_width=%d tokens and cannot be learned, "
                    "e.g. %s", stats.too_wide, stats.entities, span.max_width, stats.too_wide_examples[:3])
    inputs.dev, inputs.test = target_records(inputs.dev)[0], target_records(inputs.test)[0]
    card = {"labels": list(labels), "tags": [], "span": {"max_width": span.max_width, "threshold": span.threshold,
                                                        "nested": span.nested, "targets": list(layout.targets),
                                                        "extensions": list(layout.extensions)}}
    return backbone.span_classifier(labels, config.model), features, stats, card


def _lexicon(config: TrainConfig, encoder: TextEncoder, backbone: Backbone) -> Any:
    """:class:`~nerwheel.model.lexicon.LexiconInputs` when ``model.lexicon.enabled``, else ``None``."""
    previous = backbone.previous_card
    if previous is not None and previous.lexicon and not config.model.lexicon.enabled:
        from nerwheel.errors import ConfigError

        raise ConfigError("the model being continued reads lexicon features; set model.lexicon.enabled: true",
                          field="model.lexicon.enabled")
    if not config.model.lexicon.enabled:
        return None
    from nerwheel.kb.lexicon import shared_features
    from nerwheel.model.lexicon import LexiconInputs

    return LexiconInputs(shared_features(), encoder)


def _taught(config: TrainConfig, inputs: TrainInputs) -> Any:
    """The teacher-labelled traffic of ``unlabeled.file`` (:mod:`nerwheel.stages.unlabeled`).

    A model teacher without ``unlabeled.teacher_model`` is first trained on gold alone, with this config
    (as ``<model_name>-teacher``): self-training from the current data.
    """
    from nerwheel.model.runtime import TorchTagger
    from nerwheel.stages.unlabeled import eval_guard, teach

    u = config.unlabeled
    if config.model.head == "span":
        from nerwheel.errors import ConfigError

        raise ConfigError("unlabeled.file works with the crf and softmax heads; set model.head: crf",
                          field="unlabeled.file")
    predictor, teacher_model = None, u.teacher_model
    if u.teacher != "kb":
        if teacher_model is None:
            gold_only = config.model_copy(deep=True)
            gold_only.unlabeled.file = None
            gold_only.output.model_name = f"{config.output.model_name}-teacher"
            log.info("unlabeled.teacher=%s without unlabeled.teacher_model: training the teacher on gold first",
                     u.teacher)
            teacher_model = str(train(gold_only, train_records=inputs.train, dev_records=inputs.dev))
        predictor = TorchTagger.from_dir(teacher_model)  # a model directory, as train writes it
    taught = teach(u.file, teacher=u.teacher, guard=eval_guard([*inputs.dev, *inputs.test], u.exclude),  # type: ignore[arg-type]
                   gold_texts=[r.text for r in inputs.train], predictor=predictor, threshold=u.threshold,
                   max_records=u.max_records, seed=config.training.seed)
    taught.teacher_model = teacher_model
    if not taught.records:
        log.warning("%s: the teacher labelled none of it; training on gold alone", taught.summary())
    return taught


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
    """Train a token or span classifier as ``config`` says; returns the new model directory.

    Started by ``torchrun`` (``nerwheel train`` under ``torchrun --no-python``, or a PyTorchJob), each process
    joins the process group here and trains its share of every batch (:mod:`nerwheel.model.distributed`);
    rank 0 alone writes the model directory.
    """
    from nerwheel.model import distributed
    from nerwheel.model.loop import resolve_device

    with distributed.process_group(resolve_device(config.training.device).type) as dist:
        return _train(config, dist, train_records, dev_records, test_records)


def _train(config: TrainConfig, dist: Any, train_records: Sequence[Record] | None,
           dev_records: Sequence[Record] | None, test_records: Sequence[Record] | None) -> Path:
    from nerwheel.model.data import build_features
    from nerwheel.model.distributed import main_first
    from nerwheel.model.lora import apply_lora
    from nerwheel.model.loop import TaggerSteps, evaluate_model, fit, seed_everything, torch_threads
    from nerwheel.model.tracking import open_tracker

    t = config.training
    seed_everything(t.seed)
    check_available(config.model)
    inputs = resolve_inputs(config, train_records, dev_records, test_records)
    with main_first(dist):  # a backbone converted into the shared cache is converted once
        backbone = load_backbone(config.model, texts=[r.text for r in inputs.train],
                                 sequence_length=t.sequence_length)
    given_learning_rate = t.learning_rate
    config, schedule = resolve_schedule(config, backbone)
    t = config.training
    log.info("learning rate %g, at most %d epochs: %s", t.learning_rate, t.epochs, schedule["source"])
    parent = None
    if backbone.previous_card is not None:
        parent = _parent(backbone.previous_card, str(backbone.info.get("continued_from")))
        log.info("continuing training from %s (model %s, backbone %s, dev strict F1 %s): its weights, head and CRF "
                 "are the start", parent["path"], parent["name"], parent["backbone"], parent["dev_strict_f1"])
    if warning := learning_rate_warning(backbone.name, given_learning_rate,
                                        pretrained=bool(backbone.info.get("pretrained", True))):
        log.warning(warning)
    encoder = TextEncoder(backbone.tokenizer, sequence_length=t.sequence_length, stride=t.stride,
                          pad_id=backbone.pad_id)
    lexicon = _lexicon(config, encoder, backbone)
    taught = _taught(config, inputs) if config.unlabeled.file else None
    curriculum: Any = None
    if config.model.head == "span":
        model, features, stats, head_card = _span_head(config, inputs, backbone, encoder)
    else:
        extra = backbone.previous_card.labels if backbone.previous_card else ()
        tagset = TagSet.from_records(inputs.train + inputs.dev + (taught.records if taught else []),
                                     scheme=config.model.scheme, extra=extra)
        prefixes = "-/".join(c for c in config.model.scheme if c != "O")
        check_num_labels(config.model.num_labels, tagset.tags,
                         what=f"{config.model.scheme} tags (O + {prefixes}- per type)")
        features, stats = build_features(inputs.train, encoder, tagset, lexicon=lexicon)
        model = backbone.classifier(tagset, config.model)
        head_card = {"labels": list(tagset.labels), "scheme": tagset.scheme, "tags": tagset.tags}
        if lexicon is not None:
            from nerwheel.model.lexicon_model import LexiconTokenClassifier

            model = LexiconTokenClassifier.from_classifier(model, lexicon.width)
            head_card["lexicon"] = lexicon.features.signature
        if taught is not None:
            from nerwheel.model.curriculum import Curriculum

            teacher_features, _ = build_features(taught.records, encoder, tagset, lexicon=lexicon)
            curriculum = Curriculum(features, teacher_features, config.unlabeled.weight, config.unlabeled.curriculum,
                                    t.epochs)
            inputs.fingerprints["unlabeled"] = {**taught.account(), "weight": config.unlabeled.weight,
                                                **curriculum.describe()}
    if stats.misaligned:
        log.warning("%d of %d training entities have a boundary inside a token and cannot be learned exactly, e.g. %s",
                    stats.misaligned, stats.entities, stats.examples[:3])
    if config.model.lora.enabled:
        apply_lora(model, config.model.lora)

    run_dir = config.run_dir()
    with main_first(dist):  # rank 0 makes the folder; the others only check it was made
        if dist.main:
            if run_dir.exists() and any(run_dir.iterdir()):
                raise FileExistsError(f"{run_dir}: already exists and is not empty; choose another "
                                      "output.model_name")
            run_dir.mkdir(parents=True, exist_ok=True)
            write_input_report(run_dir, inputs)
            if taught is not None:
                from nerwheel.formats import write_rejects

                write_rejects(taught.rejects, run_dir / UNLABELED_REJECTS_FILE)
    learning_rate = float(t.learning_rate)  # type: ignore[arg-type] - resolved above
    card = ModelCard(
        **head_card, head=config.model.head, backbone=backbone.name, sequence_length=t.sequence_length, stride=t.stride,
        pad_id=backbone.pad_id, name=run_dir.name,
        data={**inputs.fingerprints, "alignment": stats.to_dict()},
        training={**config.model_dump(mode="json"), "resolved_learning_rate": learning_rate, "resolved": schedule,
                  **backbone.info},
        decode={"method": config.model.decode, "beam_size": config.model.beam_size},
        language=_language([r.text for r in inputs.train]), parent=parent,
    )
    if dist.main:
        (run_dir / TRAIN_CONFIG_FILE).write_text(
            yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    traffic = "" if curriculum is None else (
        f" (+ {len(curriculum.teacher)} windows of teacher-labelled traffic, {config.unlabeled.curriculum} at weight "
        f"{config.unlabeled.weight})")
    log.info("training %s (%s head, %d outputs) on %d windows from %d records%s; dev %d records -> %s",
             backbone.name, config.model.head, card.num_outputs, len(features), len(inputs.train), traffic,
             len(inputs.dev), run_dir)

    def save_checkpoint(path: Path, dev_metrics: dict[str, Any]) -> None:
        _write_model(path, model, backbone, card.model_copy(update={"metrics": {"dev": _summary(dev_metrics)}}))

    steps = TaggerSteps(features, inputs.dev, config, encoder, card, curriculum)
    # one run in the tracker (TensorBoard, W&B, MLflow): rank 0's
    tracking = open_tracker(config, run_dir) if dist.main else contextlib.nullcontext(None)
    with torch_threads(t.threads), tracking as tracker:
        result = fit(model, steps, config=config, learning_rate=learning_rate, run_dir=run_dir,
                     save=save_checkpoint, tracker=tracker)
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
    if not dist.main:  # rank 0 writes the model; the others' replicas are the same weights
        return run_dir
    _write_model(run_dir, model, backbone, card)
    if config.output.plots and result.history:
        from nerwheel.model.plots import training_curve_png

        training_curve_png(result.history, run_dir / "training_curve.png")
    log.info("best epoch %d, dev strict F1 %s, %.0f s -> %s", result.best_epoch,
             card_metrics.get("dev", {}).get("overall", {}).get("strict", {}).get("f1"), result.seconds, run_dir)
    if test_metrics:
        o = test_metrics["overall"]
        log.info("test (%d records): strict F1 %.4f (P %.4f R %.4f), partial F1 %.4f", len(inputs.test),
                 o["strict"]["f1"], o["strict"]["precision"], o["strict"]["recall"], o["partial"]["f1"])
    return run_dir
