"""The distill stage: a trained teacher + traffic texts -> a smaller student model directory.

:func:`distill` is the entry every caller uses (CLI, pipeline step, tests): it
refuses a used output folder, reads which task the teacher holds
(``nerwheel.json``) and hands the work to that task's ``distill`` hook
(:mod:`nerwheel.tasks`); a task without one is refused before any work. What
every task shares lives here once: the output folder, the run files
(``rejects.jsonl``, ``distill_config.yaml``), the per-file read counts and
the task-neutral half of the card's ``distillation`` section
(:func:`summary`). The loss (:class:`~nerwheel.model.distill.DistillLoss`), the
students (:mod:`nerwheel.model.students`) and the loop
(:func:`nerwheel.model.loop.fit`) are shared too.

The tagger's distillation (:func:`distill_tagger`, the ``ner`` hook): read
the texts (records with entities count as gold) and the optional gold and dev
files, with rejects (:mod:`nerwheel.formats`); hold out a seeded share of the
texts to measure agreement with the teacher; run the teacher once over every
text (its per-head emissions and its Viterbi entities); build the student;
line the teacher's emissions up with the student's tokens
(:func:`nerwheel.model.distill.align_teacher`); train; write the student like
any trained model, its card carrying a ``distillation`` section (teacher,
student, sizes, losses, agreement with the teacher, gold F1 of both when a dev
file is given). The classifier's is :mod:`nerwheel.tasks.classify.distill`.

The output is an ordinary model directory: ``evaluate``, ``export``, ``gate``,
``deploy`` take it as they take a trained one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nerwheel import metrics as M
from nerwheel.errors import ConfigError, DataError
from nerwheel.formats.base import ReadResult
from nerwheel.model.distill import DistillConfig
from nerwheel.records import Entity, Record

__all__ = ["DISTILL_CONFIG_FILE", "DistillInputs", "DistillResult", "check_teacher", "distill", "distill_tagger",
           "file_counts", "read_inputs", "summary", "teacher_tagger", "write_run_files"]

log = logging.getLogger(__name__)

DISTILL_CONFIG_FILE = "distill_config.yaml"


@dataclass
class DistillResult:
    model_dir: Path
    summary: dict[str, Any]  # the card's ``distillation`` section


def teacher_tagger(teacher: Path, runtime: str, *, batch_size: int, threads: int) -> Any:
    """The teacher's :class:`~nerwheel.model.runtime.Tagger`: its ONNX export (``auto``/``onnx``) or PyTorch."""
    from nerwheel.model.layout import find_export
    from nerwheel.model.runtime import OnnxTagger, TorchTagger

    export = find_export(teacher) if runtime in ("auto", "onnx") else None
    if runtime == "onnx" and export is None:
        raise FileNotFoundError(f"{teacher}: no ONNX export for distill.teacher_runtime=onnx; run nerwheel export "
                                "first or set distill.teacher_runtime: torch")
    if export is not None:
        return OnnxTagger(export, batch_size=batch_size, threads=threads or None)
    return TorchTagger.from_dir(teacher, device="cpu", batch_size=batch_size)


def _read(path: str, fmt: str | None, role: str) -> ReadResult:
    from nerwheel.formats import read_records

    result = read_records(path, format=fmt) if fmt else read_records(path)
    log.info("%s: %s", role, result.summary())
    return result


def file_counts(result: ReadResult) -> dict[str, Any]:
    """One input file's line in the card's ``data`` section: read = accepted + rejected."""
    return {"path": result.source, "read": result.read, "accepted": len(result.records),
            "rejected": len(result.rejects)}


def _teacher_pass(tagger: Any, texts: Sequence[str]) -> tuple[list[Any], list[Any], list[list[Entity]]]:
    """Encodings, per-head emissions and Viterbi entities of the teacher on every text, in chunks with a bar."""
    from nerwheel.progress import progress

    encs, ems, ents = [], [], []
    with progress(total=len(texts), desc="teacher", unit="text") as bar:
        for i in range(0, len(texts), 2048):
            part = list(texts[i : i + 2048])
            e, em = tagger.emissions(part)
            encs += e
            ems += em
            ents += tagger.decode(part, e, em, scores=False)
            bar.update(len(part))
    return encs, ems, ents


def check_teacher(teacher: Path) -> Any:
    """The teacher's card, refused before any work when its head has nothing to distil.

    The student learns the teacher's per-character tag distributions; a span
    head scores (start, width, label) cells instead, with no tag per
    character, and its overlapping or nested entities have no single tag
    path a CRF or softmax student could copy.
    """
    from nerwheel.model.card import ModelCard

    card = ModelCard.read(teacher)
    if card.lexicon:
        raise ConfigError(f"{teacher}: the teacher reads knowledge-base lexicon features, which the students do "
                          "not take yet; distil a teacher trained without model.lexicon", field="teacher")
    if card.head not in ("crf", "softmax"):
        raise ConfigError(f"{teacher}: the teacher has a {card.head} head, which gives no per-character tag "
                          "distribution to distil; pass a teacher trained with model.head crf or softmax, or "
                          "train the smaller model directly with nerwheel train", field="teacher")
    return card


def distill(config: DistillConfig, *, texts: Sequence[Any] | None = None) -> DistillResult:
    """Distil ``config.teacher`` into ``config.student`` over ``config.texts_file`` (or ``texts``); see the module.

    ``texts`` are the teacher task's records (a tagger's :class:`Record`, a
    classifier's :class:`~nerwheel.tasks.classify.records.Message`).
    """
    from nerwheel.tasks import get_task, task_of

    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty; choose a new folder for the student")
    name = task_of(config.teacher)
    task = get_task(name)
    if not task.has("distill"):
        raise ConfigError(f"{config.teacher}: the teacher is a {name} model, which nerwheel distill cannot distil "
                          "(taggers and classifiers can): train the smaller model directly with nerwheel train "
                          f"--task {name}", field="teacher")
    return task.distill(config, texts=texts)


def write_run_files(out: Path, config: DistillConfig, reads: Iterable[ReadResult | None]) -> None:
    """The student folder with the files every distillation writes first: the rejects of every read, the config."""
    from nerwheel.formats import write_rejects
    from nerwheel.model.layout import REJECTS_FILE

    out.mkdir(parents=True, exist_ok=True)
    write_rejects([rej for r in reads if r is not None for rej in r.rejects], out / REJECTS_FILE)
    (out / DISTILL_CONFIG_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True,
                                                          sort_keys=False), encoding="utf-8")


@dataclass
class DistillInputs:
    """What a distillation learns from: the reads (with their rejects), and the records after the cap and the
    removal of every text of the dev file (``leaked``)."""

    reads: dict[str, ReadResult | None]  # texts, gold, dev: None where not given (texts: passed in)
    traffic: list[Any]
    gold: list[Any]
    dev: list[Any]
    capped: int  # traffic beyond distill.max_texts, counted, not used
    leaked: int

    def data(self) -> dict[str, Any]:
        """The card's ``data`` entries every task writes: the files' counts, the cap, the dropped dev texts."""
        r = self.reads
        return {"texts_file": file_counts(r["texts"]) if r["texts"] is not None else {"records": len(self.traffic)},
                "texts_beyond_max_texts": self.capped,
                "gold_file": file_counts(r["gold"]) if r["gold"] is not None else None,
                "dev_file": file_counts(r["dev"]) if r["dev"] is not None else None,
                "eval_texts_dropped": self.leaked}


def read_inputs(config: DistillConfig, texts: Sequence[Any] | None, read: Callable[[str, str], ReadResult], *,
                traffic_ready: Callable[[list[Any]], list[Any]] = list,
                gold_ready: Callable[[ReadResult], list[Any]] = lambda result: list(result.records)) -> DistillInputs:
    """Read texts (unless passed), gold and dev with the task's reader ``read(path, role)``; cap the traffic at
    ``distill.max_texts``; let the task check the traffic and gold (``traffic_ready``, ``gold_ready``); drop every
    text of the dev file from both (a dev text the student trained on would flatter its score)."""
    from nerwheel.leakage import drop_leaks

    reads = {role: read(path, role) if path else None for role, path in
             (("texts", None if texts is not None else config.texts_file), ("gold", config.gold_file),
              ("dev", config.dev_file))}
    traffic = list(texts) if texts is not None else list(reads["texts"].records)  # type: ignore[union-attr]
    capped = max(0, len(traffic) - config.distill.max_texts)
    traffic = traffic_ready(traffic[: config.distill.max_texts])
    gold = gold_ready(reads["gold"]) if reads["gold"] is not None else []
    dev = list(reads["dev"].records) if reads["dev"] is not None else []
    leaked = 0
    if dev:
        traffic, dropped = drop_leaks(traffic, dev)
        gold, dropped_gold = drop_leaks(gold, dev)
        leaked = len(dropped) + len(dropped_gold)
    if not traffic and not gold:
        raise DataError(f"{config.texts_file}: no texts to distil on", field="texts_file")
    return DistillInputs(reads, traffic, gold, dev, capped, leaked)


def summary(config: DistillConfig, spec: Any, *, teacher_backbone: str, teacher: Any, student: Any,
            result: Any, heldout: int, agreement: dict[str, float] | None, dev: dict[str, Any],
            losses: dict[str, float], started: float) -> dict[str, Any]:
    """The card's ``distillation`` section: the task-neutral keys, and the task's agreement and dev figures."""
    from nerwheel.tasks import task_of

    d = config.distill
    return {
        "task": task_of(config.teacher), "teacher": str(Path(config.teacher)), "teacher_backbone": teacher_backbone,
        "student": config.student, "student_name": spec.name, "temperature": d.temperature,
        "kl_weight": d.kl_weight, "hard_weight": d.hard_weight,
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "agreement_with_teacher": agreement, "heldout_texts": heldout, "dev": dev,
        "last_batch_losses": {k: round(v, 6) for k, v in losses.items()},
        "best_epoch": result.best_epoch, "epochs_run": len(result.history),
        "seconds": round(time.perf_counter() - started, 1),
    }


def distill_tagger(config: DistillConfig, *, texts: Sequence[Record] | None = None) -> DistillResult:
    """The ``ner`` task's distillation (see the module); call :func:`distill`, which checks the output folder."""
    from nerwheel.model.backbones import save_tokenizer
    from nerwheel.model.card import ModelCard
    from nerwheel.model.classifier import TokenClassifier
    from nerwheel.model.data import build_features
    from nerwheel.model.distill import DistillLoss, align_teacher
    from nerwheel.model.encoding import TextEncoder
    from nerwheel.model.layout import TOKENIZER_FILE
    from nerwheel.model.loop import TaggerSteps, evaluate_model, fit, seed_everything, torch_threads
    from nerwheel.model.students import build_student, parse_student
    from nerwheel.stages.split import split_records
    from nerwheel.stages.train import as_read_result, records_sha256, tag_ready

    started = time.perf_counter()
    spec = parse_student(config.student)
    d, t = config.distill, config.training
    out = Path(config.out)
    teacher_dir = Path(config.teacher)
    teacher_card = check_teacher(teacher_dir)
    seed_everything(t.seed)

    # -- data ------------------------------------------------------------------------------------------
    def traffic_ready(traffic: list[Record]) -> list[Record]:
        labelled = [r for r in traffic if r.entities]
        if not labelled:
            return traffic
        # gold inside the traffic file: the same overlap policy as training data
        checked = tag_ready(as_read_result(labelled, "texts"))[0].records
        return [r for r in traffic if not r.entities] + list(checked)

    inputs = read_inputs(config, texts, lambda path, role: _read(path, config.format, role),
                         traffic_ready=traffic_ready, gold_ready=lambda result: list(tag_ready(result)[0].records))
    traffic, gold, dev_gold, reads = inputs.traffic, inputs.gold, inputs.dev, inputs.reads
    parts = split_records(traffic, (1 - d.dev_ratio, d.dev_ratio), names=("train", "heldout"), seed=t.seed)
    train_texts, heldout = parts["train"] + gold, parts["heldout"]

    # -- teacher -----------------------------------------------------------------------------------------
    teacher_model = TokenClassifier.load(teacher_dir, head=teacher_card.head).eval()
    from tokenizers import Tokenizer

    teacher_tok = Tokenizer.from_file(str(teacher_dir / TOKENIZER_FILE))
    tagger = teacher_tagger(teacher_dir, d.teacher_runtime, batch_size=d.teacher_batch_size, threads=t.threads)
    all_texts = [r.text for r in train_texts] + [r.text for r in heldout]
    with torch_threads(t.threads):
        encs, ems, ents = _teacher_pass(tagger, all_texts)
        teacher_dev = M.evaluate(dev_gold, tagger.predict([r.text for r in dev_gold], scores=False)) \
            if dev_gold else None
    n_train = len(train_texts)

    # -- student -----------------------------------------------------------------------------------------
    sequence_length = t.sequence_length if "sequence_length" in t.model_fields_set else teacher_card.sequence_length
    stride = t.stride if "stride" in t.model_fields_set else teacher_card.stride
    student, backbone = build_student(spec, teacher_model, teacher_tok, teacher_card.pad_id,
                                      [r.text for r in train_texts], sequence_length=sequence_length)
    encoder = TextEncoder(backbone.tokenizer, sequence_length=sequence_length, stride=stride, pad_id=backbone.pad_id)
    hard = [r if r.entities else r.with_entities(tuple(ents[i])) for i, r in enumerate(train_texts)]
    features, stats = build_features(hard, encoder, teacher_card.tagset,
                                     soft=lambda i, enc: align_teacher(enc, encs[i], ems[i]))
    heldout_teacher = [r.with_entities(tuple(ents[n_train + i])) for i, r in enumerate(heldout)]
    dev = dev_gold or heldout_teacher
    learning_rate = t.learning_rate or spec.learning_rate
    data = {**inputs.data(), "train_texts": n_train, "gold_texts": sum(bool(r.entities) for r in train_texts),
            "heldout_texts": len(heldout), "train_sha256": records_sha256(hard), "alignment": stats.to_dict()}
    card = ModelCard.new(teacher_card.tagset, head=teacher_card.head, backbone=backbone.name,
                         sequence_length=sequence_length, stride=stride, pad_id=backbone.pad_id, name=out.name,
                         data=data, training={**config.model_dump(mode="json"), "resolved_learning_rate": learning_rate,
                                              **backbone.info})
    write_run_files(out, config, reads.values())
    log.info("distilling %s (%s) into %s on %d texts (%d gold), %d windows; dev: %s -> %s", teacher_dir,
             teacher_card.backbone, spec.name, n_train, data["gold_texts"], len(features),
             "gold" if dev_gold else f"agreement with the teacher on {len(heldout)} held-out texts", out)
    loop_config = config.loop_config(out, sequence_length=sequence_length, stride=stride)
    loss = DistillLoss(d.temperature, d.kl_weight, d.hard_weight)
    steps = TaggerSteps(features, dev, loop_config, encoder, card, loss_fn=loss)
    with torch_threads(t.threads):
        result = fit(student, steps, config=loop_config, learning_rate=learning_rate, run_dir=out,
                     save=lambda path, metrics: None)
        agreement = evaluate_model(student, card, encoder, heldout_teacher, t.eval_batch_size) if heldout else None
    section = summary(config, spec, teacher_backbone=teacher_card.backbone, teacher=teacher_model, student=student,
                      result=result, heldout=len(heldout), agreement=_f1s(agreement),
                      dev={"kind": "gold" if dev_gold else "agreement", "student": _f1s(result.best_metrics),
                           "teacher": _f1s(teacher_dev)}, losses=loss.last, started=started)
    card.metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                    "stopped_early": result.stopped_early, "training_seconds": round(result.seconds, 1),
                    "dev": {k: v for k, v in result.best_metrics.items() if k != "seqeval_report"}}
    card_dict = card.model_dump()
    card_dict["distillation"] = section
    student.save(out)
    save_tokenizer(backbone.tokenizer, backbone.special_tokens, out, sequence_length)
    ModelCard.model_validate(card_dict).write(out)
    log.info("student %s: agreement with the teacher %s, dev %s -> %s", spec.name, section["agreement_with_teacher"],
             section["dev"], out)
    return DistillResult(out, section)


def _f1s(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    if not metrics:
        return None
    o = metrics["overall"]
    return {"strict_f1": o["strict"]["f1"], "strict_precision": o["strict"]["precision"],
            "strict_recall": o["strict"]["recall"], "type_f1": o["type"]["f1"]}

