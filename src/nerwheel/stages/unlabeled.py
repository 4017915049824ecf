"""Unlabelled traffic -> teacher-labelled training records (``nerwheel train --unlabeled TRAFFIC``).

What the flywheel benchmark does by hand, in one step of training: read the
traffic, keep eval texts and gold texts out of it, let a teacher label it,
and keep only what the teacher is sure of. Teachers (``unlabeled.teacher``):

- ``kb``: the address knowledge base (:class:`~nerwheel.kb.annotator.AddressKB`);
  a text it finds nothing in is not used;
- ``model``: a model's confident predictions: a text is used only when every
  entity the model finds scores at least ``unlabeled.threshold`` (partial
  labels would teach "no entity here" where the model was unsure);
- ``both``: a text is used only when the knowledge base and the model give
  exactly the same entities (agreement of two independent teachers).

The model is ``unlabeled.teacher_model``, or, without one, the model the
train stage first trains on gold alone (self-training: "the current model").

Nothing is dropped silently: every traffic line is either used or rejected
with its line and a reason (``read = used + rejected``): a line the reader
refused, a blank text, an eval text (the leakage rule,
:mod:`nerwheel.leakage`: dev, test and ``unlabeled.exclude`` texts), a text
already in gold, a repeat of an earlier line, one beyond
``unlabeled.max_records``, or one the teacher did not label with confidence.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.formats.base import Reject
from nerwheel.leakage import EvalTexts, normalize_text
from nerwheel.records import Entity, Record

__all__ = ["TaughtTraffic", "eval_guard", "teach"]

log = logging.getLogger(__name__)


@dataclass
class TaughtTraffic:
    """Teacher-labelled records and the account of every traffic line (``read = used + rejected``)."""

    records: list[Record]
    rejects: list[Reject]
    read: int
    teacher: str
    source: str
    sha256: str = ""
    teacher_model: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return len(self.records)

    def account(self) -> dict[str, Any]:
        """``nerwheel.json``'s ``data.unlabeled``."""
        out: dict[str, Any] = {"path": self.source, "sha256": self.sha256, "read": self.read, "used": self.used,
                               "rejected": len(self.rejects), "teacher": self.teacher,
                               "entities": sum(len(r.entities) for r in self.records)}
        if self.rejects:
            out["rejected_by_kind"] = dict(sorted(Counter(r.kind for r in self.rejects).items()))
        if self.teacher_model:
            out["teacher_model"] = self.teacher_model
        return out | self.notes

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(r.kind for r in self.rejects).items(),
                                                         key=lambda kv: (-kv[1], kv[0])))
        return (f"unlabeled {self.source}: read {self.read} = used {self.used} + rejected {len(self.rejects)}"
                + (f" ({kinds})" if kinds else "") + f"; teacher {self.teacher}")


def eval_guard(eval_records: Iterable[Record], exclude_files: Sequence[str]) -> EvalTexts:
    """The texts traffic must not contain: the run's dev/test texts and every ``unlabeled.exclude`` file's."""
    from nerwheel.formats import read_records

    guard = EvalTexts(r.text for r in eval_records)
    if exclude_files:
        extra, unguarded = EvalTexts.from_reads([read_records(p) for p in exclude_files])
        for t in extra:
            guard.add(t)
        for rej, text in unguarded:
            if text is None:
                log.warning("%s: its text could not be recovered, so traffic cannot be checked against it", rej)
    return guard


def _rank(text: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=16).digest()


def _reject(source: str, line: int, kind: str, reason: str, record: Record) -> Reject:
    return Reject(source, line, reason, json.dumps({"text": record.text}, ensure_ascii=False), kind=kind,
                  extra={"id": record.id})


def teach(
    path: str | Path,
    *,
    teacher: str,
    guard: EvalTexts,
    gold_texts: Iterable[str],
    predictor: Any = None,
    kb: Any = None,
    threshold: float = 0.9,
    max_records: int | None = None,
    seed: int = 42,
) -> TaughtTraffic:
    """Label the traffic in ``path`` with ``teacher`` (``kb``, ``model`` or ``both``); see the module docstring.

    ``predictor`` (``model``/``both``) is anything with ``predict(texts)`` returning scored entities
    (:class:`~nerwheel.model.runtime.TorchTagger`); ``kb`` defaults to the shared address knowledge base.
    """
    from nerwheel.formats import read_records
    from nerwheel.storage import sha256_file

    if teacher not in ("kb", "model", "both"):
        raise ValueError(f"Invalid teacher: {teacher!r}. Allowed teachers are: kb, model, both")
    if teacher != "kb" and predictor is None:
        raise ValueError(f"teacher {teacher!r} needs a model to predict with")
    result = read_records(path)
    source = str(path)
    rejects: list[Reject] = [Reject(r.file, r.line, r.reason, r.raw, kind=r.kind, extra=r.extra)
                             for r in result.rejects]
    gold = {normalize_text(t) for t in gold_texts}
    seen: dict[str, int] = {}
    candidates: list[tuple[int, Record]] = []
    for line, rec in result.located():
        key = normalize_text(rec.text)
        if not key:
            rejects.append(_reject(source, line, "blank", "blank text", rec))
        elif rec.text in guard:
            rejects.append(_reject(source, line, "eval-text", "an eval text (dev, test or unlabeled.exclude): never "
                                   "trained on (nerwheel.leakage)", rec))
        elif key in gold:
            rejects.append(_reject(source, line, "in-gold", "already in the gold training data (gold wins)", rec))
        elif key in seen:
            rejects.append(_reject(source, line, "duplicate", f"same text as line {seen[key]}", rec))
        else:
            seen[key] = line
            candidates.append((line, rec))
    if max_records is not None and len(candidates) > max_records:
        order = sorted(range(len(candidates)), key=lambda i: _rank(normalize_text(candidates[i][1].text), seed))
        keep = set(order[:max_records])
        for i, (line, rec) in enumerate(candidates):
            if i not in keep:
                rejects.append(_reject(source, line, "over-limit", f"beyond unlabeled.max_records={max_records} "
                                       "(a seeded sample is used)", rec))
        candidates = [c for i, c in enumerate(candidates) if i in keep]

    texts = [rec.text for _, rec in candidates]
    kb_labels = _kb_labels(texts, kb) if teacher in ("kb", "both") else None
    model_labels = _model_labels(texts, predictor) if teacher in ("model", "both") else None
    records: list[Record] = []
    for i, (line, rec) in enumerate(candidates):
        entities, kind, reason = _judge(kb_labels[i] if kb_labels else None,
                                        model_labels[i] if model_labels else None, threshold)
        if kind:
            rejects.append(_reject(source, line, kind, reason, rec))
            continue
        records.append(Record(rec.id, rec.text, tuple(entities), {"teacher": teacher, "line": line}))
    rejects.sort(key=lambda r: r.line)
    taught = TaughtTraffic(records, rejects, result.read, teacher, source, sha256_file(path))
    log.info("%s", taught.summary())
    return taught


def _kb_labels(texts: Sequence[str], kb: Any) -> list[list[Entity]]:
    from nerwheel.progress import progress

    if kb is None:
        from nerwheel.kb.annotator import AddressKB

        kb = AddressKB()
    return [kb.annotate_text(t) for t in progress(texts, desc="kb teacher", unit="text")]


def _model_labels(texts: Sequence[str], predictor: Any) -> list[list[Entity]]:
    """The predictor batches on its own; ``stages.predict`` (and its Triton client) stays out of the train image."""
    out = predictor.predict(list(texts))
    if len(out) != len(texts):
        raise RuntimeError(f"the teacher model returned {len(out)} results for {len(texts)} texts")
    return out


def _key(entities: Iterable[Entity]) -> set[tuple[int, int, str]]:
    return {(e.start, e.end, e.label) for e in entities}


def _judge(kb: list[Entity] | None, model: list[Entity] | None,
           threshold: float) -> tuple[list[Entity], str, str]:
    """``(entities, "", "")`` when the text is used, else ``([], kind, reason)``."""
    if model is not None:
        if not model:
            return [], "no-entity", "the model found no entity"
        if kb is not None:
            if _key(kb) != _key(model):
                return [], "disagree", (f"the knowledge base and the model disagree ({len(_key(kb) ^ _key(model))} "
                                        "spans differ)")
            return sorted(kb, key=lambda e: e.start), "", ""
        low = min(e.score if e.score is not None else 0.0 for e in model)
        if low < threshold:
            return [], "unsure", f"the model is not confident (lowest entity score {low:.3f} < {threshold})"
        return sorted(model, key=lambda e: e.start), "", ""
    assert kb is not None
    if not kb:
        return [], "no-entity", "the knowledge base found no entity"
    return sorted(kb, key=lambda e: e.start), "", ""
