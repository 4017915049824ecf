"""The classifier's distillation (the ``classify`` task's ``distill`` hook): a trained classifier -> a smaller one.

The student learns the teacher's class probabilities over traffic messages:
``kl_weight * T**2 * KL(softmax(teacher/T) || softmax(student/T))`` plus
``hard_weight`` times the cross-entropy on the teacher's top class, or on the
gold label where a message has one. That is the tagger's
:class:`~nerwheel.model.distill.DistillLoss` on the classifier's own hard loss
(:class:`~nerwheel.tasks.classify.train.CrossEntropy`), trained by the
classifier's own :class:`~nerwheel.tasks.classify.train.ClassifierSteps` in the
shared loop (:func:`nerwheel.model.loop.fit`).

Steps: read the traffic, gold and dev files with the classifier's readers
(JSON array, JSONL, CSV, TSV or plain text lines; rejects with file and line,
``read = accepted + rejected``; labels checked against the teacher's classes);
hold out a seeded share of the traffic to measure agreement with the teacher;
run the teacher once over every (context, message) pair, encoded as the
classifier encodes pairs (its export on ONNX Runtime where there is one, else
PyTorch); build the student: ``tiny`` sizes (the classifier's own tiny build,
:func:`~nerwheel.tasks.classify.model.build_model`) or ``shallow:K`` (the
teacher's first K layers, vocabulary pruned to the traffic,
:func:`nerwheel.model.students.shallow_student`); train; write an ordinary
classifier folder (:func:`~nerwheel.tasks.classify.train.write_model`) whose
card carries a ``distillation`` section: teacher, student, sizes, losses,
agreement with the teacher on the held-out share (accuracy and macro-F1
against the teacher's labels) and, with a dev file, the gold macro-F1 of both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nerwheel.errors import DataError
from nerwheel.formats.base import ReadResult
from nerwheel.model.distill import DistillConfig
from nerwheel.stages.distill import DistillResult
from nerwheel.tasks.classify.records import LabelSet, Message

__all__ = ["HARD_TARGETS", "build_student", "distill", "teacher_log_probabilities"]

log = logging.getLogger(__name__)

#: What the hard loss is computed on, as the card says it.
HARD_TARGETS = "gold label where a message has one, else the teacher's top class"
#: Messages handed to the teacher at once (its own batching runs inside; the bar moves per chunk).
CHUNK = 2048


def _read(path: str, fmt: str | None, labels: LabelSet, role: str) -> ReadResult:
    """A message file (``texts``: labels optional; ``gold``, ``dev``: required), labels named by the teacher's set."""
    from nerwheel.tasks.classify.formats import read_messages

    result = read_messages(path, fmt, labels=labels, require_label=role != "texts")
    log.info("%s: %s", role, result.summary())
    return result


def teacher_log_probabilities(teacher: Any, messages: Sequence[Message]) -> np.ndarray:
    """``[n, C]`` log-probabilities of the teacher (any :class:`~nerwheel.tasks.classify.classifier.Classifier`).

    Log-probabilities are logits up to a constant per row, so the KL term's
    softmax of ``row / T`` is the teacher's softened distribution whichever
    runtime gave the probabilities (ONNX exports output probabilities only).
    """
    from nerwheel.progress import progress

    out = np.zeros((len(messages), len(teacher.labels)), dtype=np.float32)
    with progress(total=len(messages), desc="teacher", unit="message") as bar:
        for i in range(0, len(messages), CHUNK):
            part = messages[i : i + CHUNK]
            out[i : i + len(part)] = teacher.probabilities([(m.context, m.message) for m in part])
            bar.update(len(part))
    return np.log(np.maximum(out, np.float32(1e-30)))


def build_student(spec: Any, teacher: Any, teacher_tok: Any, teacher_pad_id: int, labels: LabelSet,
                  texts: Sequence[str], *, max_length: int) -> Any:
    """The untrained student (a :class:`~nerwheel.tasks.classify.model.Built`) for a parsed ``--student`` spec."""
    from nerwheel.model.students import shallow_student
    from nerwheel.tasks.classify.config import ClassifyModel
    from nerwheel.tasks.classify.model import Built, build_model

    if spec.kind == "tiny":
        built = build_model(ClassifyModel(model_id="tiny", labels=list(labels.names), max_length=max_length,
                                          tiny=spec.tiny), labels, texts=texts)
    else:
        model, backbone = shallow_student(spec, teacher, teacher_tok, teacher_pad_id, texts,
                                          encoder_of=lambda m: m.base_model)
        built = Built(spec.name, model, backbone.tokenizer, backbone.special_tokens, backbone.pad_id,
                      dict(backbone.info))
    built.name = spec.name
    built.info["student"] = spec.name
    return built


def distill(config: DistillConfig, *, texts: Sequence[Message] | None = None) -> DistillResult:
    """Distil the classifier ``config.teacher`` into ``config.student`` (see the module); call it through
    :func:`nerwheel.stages.distill.distill`, which checks the output folder and picks the task."""
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification

    from nerwheel.model.distill import DistillLoss
    from nerwheel.model.loop import fit, seed_everything, torch_threads
    from nerwheel.model.students import parse_student
    from nerwheel.stages.distill import read_inputs, summary, write_run_files
    from nerwheel.tasks.classify.card import ClassifierCard
    from nerwheel.tasks.classify.config import ClassifyConfig
    from nerwheel.tasks.classify.encoding import PairEncoder
    from nerwheel.tasks.classify.metrics import summary as figures
    from nerwheel.tasks.classify.predict import load_classifier
    from nerwheel.tasks.classify.runtime import TOKENIZER_FILE
    from nerwheel.tasks.classify.train import (
        ClassifierSteps,
        card_metrics,
        classifier_metrics,
        messages_sha256,
        score,
        stratified_split,
        write_model,
    )

    started = time.perf_counter()
    spec = parse_student(config.student)
    d, t = config.distill, config.training
    out, teacher_dir = Path(config.out), Path(config.teacher)
    teacher_card = ClassifierCard.read(teacher_dir)
    labels = teacher_card.labelset
    seed_everything(t.seed)

    # -- data ------------------------------------------------------------------------------------------
    def traffic_ready(traffic: list[Message]) -> list[Message]:  # messages passed in, not read against the labels
        outside = sorted({m.label for m in traffic if m.label is not None and m.label not in labels})
        if outside:
            raise DataError(f"texts: labels {outside} are not classes of the teacher ({', '.join(labels.names)})",
                            field="texts_file")
        return traffic

    inputs = read_inputs(config, texts, lambda path, role: _read(path, config.format, labels, role),
                         traffic_ready=traffic_ready)
    traffic, gold, dev_gold = inputs.traffic, inputs.gold, inputs.dev
    kept, heldout = stratified_split(traffic, d.dev_ratio, t.seed) if traffic else ([], [])
    train_msgs = kept + gold
    n_train = len(train_msgs)

    # -- teacher -----------------------------------------------------------------------------------------
    teacher = load_classifier(teacher_dir, runtime=d.teacher_runtime, batch_size=d.teacher_batch_size)
    with torch_threads(t.threads):
        soft = teacher_log_probabilities(teacher, train_msgs + heldout)
        teacher_dev = classifier_metrics(teacher, dev_gold) if dev_gold else None
    top = soft.argmax(axis=1)
    targets = np.array([labels.index(m.label) if m.label is not None else int(top[i])
                        for i, m in enumerate(train_msgs)], dtype=np.int64)
    heldout_teacher = [m.with_label(labels.names[int(top[n_train + i])]) for i, m in enumerate(heldout)]
    dev = dev_gold or heldout_teacher

    # -- student -----------------------------------------------------------------------------------------
    teacher_model = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    teacher_tok = Tokenizer.from_file(str(teacher_dir / TOKENIZER_FILE))
    built = build_student(spec, teacher_model, teacher_tok, teacher_card.pad_id, labels,
                          [x for m in train_msgs for x in (m.context, m.message) if x],
                          max_length=teacher_card.max_length)
    encoder = PairEncoder(built.tokenizer, max_length=teacher_card.max_length, pad_id=built.pad_id)
    rows = encoder.encode([(m.context, m.message) for m in train_msgs])
    learning_rate = t.learning_rate or spec.learning_rate
    data = {**inputs.data(), "train_texts": n_train, "gold_texts": sum(m.label is not None for m in train_msgs),
            "heldout_texts": len(heldout),
            "train_sha256": messages_sha256([m.with_label(labels.names[i]) for m, i in zip(train_msgs, targets,
                                                                                          strict=True)]),
            "truncated_train_pairs": sum(1 for ids, _ in rows if len(ids) >= teacher_card.max_length)}
    card = ClassifierCard(labels=list(labels.names), backbone=built.name, max_length=teacher_card.max_length,
                          pad_id=built.pad_id, name=out.name, data=data,
                          training={**config.model_dump(mode="json"), "resolved_learning_rate": learning_rate,
                                    **built.info})
    write_run_files(out, config, inputs.reads.values())
    log.info("distilling %s (%s) into %s on %d messages (%d gold); dev: %s -> %s", teacher_dir,
             teacher_card.backbone, spec.name, n_train, data["gold_texts"],
             "gold" if dev_gold else f"agreement with the teacher on {len(heldout)} held-out messages", out)
    loop_config = config.loop_config(out, schema=ClassifyConfig)
    loss = DistillLoss(d.temperature, d.kl_weight, d.hard_weight)
    steps = ClassifierSteps(rows, targets, encoder, loop_config, dev, card, soft=soft[:n_train], loss_fn=loss)
    with torch_threads(t.threads):
        result = fit(built.model, steps, config=loop_config, learning_rate=learning_rate, run_dir=out,
                     save=lambda path, metrics: None, encoder_prefix=built.encoder_prefix)
        agreement = score(built.model, card, encoder, heldout_teacher, t.eval_batch_size) if heldout else None
    section = summary(config, spec, teacher_backbone=teacher_card.backbone, teacher=teacher_model,
                      student=built.model, result=result, heldout=len(heldout),
                      agreement=figures(agreement) if agreement else None,
                      dev={"kind": "gold" if dev_gold else "agreement",
                           "student": figures(result.best_metrics) if result.best_metrics else None,
                           "teacher": figures(teacher_dev) if teacher_dev else None},
                      losses=loss.last, started=started)
    section["hard_targets"] = HARD_TARGETS
    card.metrics = {"best_epoch": result.best_epoch, "best_step": result.best_step,
                    "evaluations": len(result.history), "stopped_early": result.stopped_early,
                    "training_seconds": round(result.seconds, 1)}
    if result.best_metrics:
        card.metrics["dev"] = card_metrics(result.best_metrics)
    write_model(out, built, labels, ClassifierCard.model_validate({**card.model_dump(), "distillation": section}))
    log.info("student %s: agreement with the teacher %s, dev %s -> %s", spec.name, section["agreement_with_teacher"],
             section["dev"], out)
    return DistillResult(out, section)
