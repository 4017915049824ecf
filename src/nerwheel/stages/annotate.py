"""The annotate stage: label records with one or several teachers, keep votes, and account for everything.

Teachers are anything with a ``name`` and ``label(records) -> list[TeacherOutput]``:
:class:`KBTeacher` (the offline address knowledge base) and
:class:`nerwheel.llm.teacher.LLMTeacher`. With K teachers, each span
``(start, end, label)`` collects the names of the teachers that produced it;
spans with at least ``min_votes`` votes are kept (default: a majority of the
teachers that answered), overlaps settled by more votes, then longer, then
earlier; their ``Entity.source`` lists the voters in the joint-source format
(``kb+llm:qwen``) and ``Entity.score`` is the vote share (:mod:`nerwheel.votes`).
The record's ``meta["annotate"]`` keeps every span's votes, per-teacher counts
and an agreement score (the share of spans all answering teachers agree on).

Counts reconcile by construction and are checked (:meth:`AnnotateResult.check`):
lines read = labelled + failed + rejected on input (the reader's rejects, passed
in as ``input_rejects``, are kept with kind ``input``); per teacher, entities
returned = accepted + rejected. Every reject is a :class:`~nerwheel.formats.Reject`
(kind ``input``, ``record`` or ``entity``; the record ``id``, the ``teacher``
and the codes in its ``extra``): the CLI and the pipeline write the same rows.
A teacher whose answer for a record was cut off has *failed* that record (see
:mod:`nerwheel.llm.teacher`): with several teachers the record is labelled from
those that answered completely. In ``pos`` mode the teachers' ``pos:`` labels
are added to a record's existing entities; in ``entity`` mode they replace them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from nerwheel.errors import ConfigError
from nerwheel.formats.base import Reject
from nerwheel.labels import ADDRESS_LABELS
from nerwheel.llm.validate import EntityReject, OverlapPolicy, TeacherOutput
from nerwheel.records import Entity, Record
from nerwheel.votes import Candidate, joint_source, pick, vote_share

if TYPE_CHECKING:
    from nerwheel.labels import LabelMap

__all__ = ["TEACHER_KINDS", "AnnotateResult", "FailedRecord", "KBTeacher", "Teacher", "annotate", "build_teachers",
           "input_reject"]

#: The teachers :func:`build_teachers` knows: the knowledge base and OpenAI-compatible LLMs.
TEACHER_KINDS: tuple[str, ...] = ("kb", "llm")

STAGE = "annotate"  # the ``file`` of rejects the stage itself makes (line 0: a record, not a line; ``id`` names it)


class Teacher(Protocol):
    name: str

    def label(self, records: Sequence[Record]) -> list[TeacherOutput]: ...


class KBTeacher:
    """The address knowledge base as a teacher (entity mode only; it never fails a record).

    Administrative mentions that break the hierarchy (``广州市`` after ``浙江省``) are not emitted; they
    come back as rejects with code ``hierarchy`` and the reason. ``labels`` restricts the output to a
    target label set (what the run asked for, not a rejection).
    """

    def __init__(self, kb: Any = None, name: str = "kb", labels: Sequence[str] | None = None) -> None:
        if kb is None:
            from nerwheel.kb.annotator import AddressKB

            kb = AddressKB(source=name)
        self.kb = kb
        self.name = name
        self.labels = frozenset(labels) if labels is not None else None

    def label(self, records: Sequence[Record]) -> list[TeacherOutput]:
        from nerwheel.progress import progress

        return [self._one(r.text) for r in progress(records, desc=self.name, unit="text")]

    def _one(self, text: str) -> TeacherOutput:
        if hasattr(self.kb, "annotate_checked"):
            entities, dropped = self.kb.annotate_checked(text)
        else:
            entities, dropped = self.kb.annotate_text(text), []
        rejects = [EntityReject("hierarchy", reason, e.text, e.label, e.start, e.end, self.name)
                   for e, reason in dropped]
        if self.labels is not None:
            entities = [e for e in entities if e.label in self.labels]
            rejects = [r for r in rejects if r.label in self.labels]
        return TeacherOutput(entities=entities, rejects=rejects)


def build_teachers(
    kinds: Sequence[str],
    llm_configs: Sequence[Any] = (),
    *,
    examples: Sequence[Record] = (),
    mode: Literal["entity", "pos"] = "entity",
    prompt: str | None = None,
    per_type: int = 4,
    cache: Any = None,
    kb_correct: bool = True,
    labels: Sequence[str] | None = None,
    label_map: LabelMap | None = None,
    overlap: OverlapPolicy = "longest",
) -> list[Teacher]:
    """Assemble the teachers named in ``kinds`` (``kb``, ``llm``): the one place the CLI, the
    pipeline and the benchmarks build them, so they label alike.

    ``llm`` makes one :class:`~nerwheel.llm.teacher.LLMTeacher` per config (several models vote).
    With ``kb_correct`` the knowledge base also checks the LLMs' address labels (entity mode), and
    one KB instance serves both roles (it takes seconds to load). ``labels`` is the target label set
    (default: the address labels), ``label_map`` normalises the LLMs' label names (default: the
    built-in synonyms; see :func:`nerwheel.llm.definitions.load_label_map`) and ``overlap`` is the
    policy for overlapping LLM answers (``longest``, ``first``, ``reject``).
    """
    kinds = list(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in TEACHER_KINDS]
    if unknown:
        raise ConfigError(f"unknown teacher(s) {unknown}; choose from: {', '.join(TEACHER_KINDS)}", field="kind")
    if "llm" in kinds and not llm_configs:
        raise ConfigError("teacher 'llm' needs an LLM endpoint and a model name", field="llm")
    if mode == "pos" and "kb" in kinds:
        raise ConfigError("the knowledge base labels address entities only; use the llm teacher for mode 'pos'")
    if mode == "pos" and (labels is not None or label_map is not None):
        raise ConfigError("a target label set and a label map apply to mode 'entity'; mode 'pos' uses the POS tags")
    needs_kb = "kb" in kinds or ("llm" in kinds and kb_correct and mode == "entity")
    kb = KBTeacher(labels=labels) if needs_kb else None
    built: list[Teacher] = [kb] if (kb is not None and "kb" in kinds) else []
    if "llm" in kinds:
        from nerwheel.llm.teacher import LLMTeacher

        corrector = kb.kb if (kb is not None and kb_correct and mode == "entity") else None
        built += [LLMTeacher(cfg, mode=mode, prompt=prompt, examples=examples, per_type=per_type, cache=cache,
                             corrector=corrector, labels=tuple(labels) if labels is not None else ADDRESS_LABELS,
                             label_map=label_map, overlap=overlap) for cfg in llm_configs]
    return built


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """A record no teacher labelled; ``details`` keeps each failing teacher's answer facts (finish
    reason, the complete entities salvaged from a cut-off answer) for review."""

    record: Record
    reasons: dict[str, str]  # teacher name -> why
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_reject(self) -> Reject:
        extra: dict[str, Any] = {"id": self.record.id, "text": self.record.text, "reasons": self.reasons}
        salvaged = {k: d["salvaged_entities"] for k, d in self.details.items() if d.get("salvaged_entities")}
        if salvaged:
            extra["salvaged"] = salvaged
        if self.details:
            extra["teachers"] = self.details
        return Reject(STAGE, 0, "; ".join(f"{k}: {v}" for k, v in self.reasons.items()), self.record.text,
                      kind="record", extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return self.to_reject().to_dict()


def input_reject(reject: Reject, role: str = "input") -> Reject:
    """A reader's reject as the stage keeps it: ``kind`` is the input's role (``input``, ``examples``,
    ``eval``), ``code`` (in ``extra``) the reader's reject kind; file, line, reason and raw line as read."""
    return Reject(reject.file, reject.line, reject.reason, reject.raw, kind=role, extra={"code": reject.kind})


def _entity_reject(record: Record, teacher: str, rej: EntityReject) -> Reject:
    facts = {k: v for k, v in rej.to_dict().items() if k != "reason"}
    return Reject(STAGE, 0, rej.reason, rej.text or "", kind="entity", extra={"id": record.id, "teacher": teacher,
                                                                                **facts})


@dataclass
class AnnotateResult:
    records: list[Record] = field(default_factory=list)
    failed: list[FailedRecord] = field(default_factory=list)
    entity_items: list[Reject] = field(default_factory=list)
    input_items: list[Reject] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def entity_rejects(self) -> list[dict[str, Any]]:
        """Refused entities as rejects-file rows (``code``, ``text``, ``label``, ``teacher``, ``id`` ...)."""
        return [r.to_dict() for r in self.entity_items]

    @property
    def input_rejects(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.input_items]

    def reject_items(self) -> list[Reject]:
        """Lines rejected on input, failed records and refused entities, in that order."""
        return self.input_items + [f.to_reject() for f in self.failed] + self.entity_items

    def rejects(self) -> list[dict[str, Any]]:
        """:meth:`reject_items` as rejects-file rows (what ``--rejects`` and the pipeline's rejects.jsonl hold)."""
        return [r.to_dict() for r in self.reject_items()]

    def check(self) -> None:
        """Raise ``AssertionError`` naming the count that does not reconcile."""
        s = self.stats
        if s["records_in"] != s["labelled"] + s["failed"]:
            raise AssertionError(f"records in {s['records_in']} != labelled {s['labelled']} + failed {s['failed']}")
        if s["read"] != s["labelled"] + s["failed"] + s["rejected_on_input"]:
            raise AssertionError(f"read {s['read']} != labelled {s['labelled']} + failed {s['failed']} "
                                 f"+ rejected on input {s['rejected_on_input']}")
        for name, t in s["teachers"].items():
            if t["returned"] != t["accepted"] + t["rejected"]:
                raise AssertionError(f"teacher {name}: returned {t['returned']} != accepted {t['accepted']} "
                                     f"+ rejected {t['rejected']}")

    def summary(self) -> str:
        s = self.stats
        lines = [f"read {s['read']} = labelled {s['labelled']} + failed {s['failed']} + rejected on input "
                 f"{s['rejected_on_input']}; entities kept {s['entities_kept']}"]
        for name, t in s["teachers"].items():
            codes = ", ".join(f"{k} {v}" for k, v in sorted(t["reject_codes"].items())) or "none"
            lines.append(f"  {name}: returned {t['returned']} = accepted {t['accepted']} + rejected {t['rejected']} "
                         f"({codes}); failed records {t['failed']}")
            if "usage" in t:
                u = t["usage"]
                lines.append(f"    requests {u['requests']} (cache hits {u['cache_hits']}, http calls {u['http_calls']}, "
                             f"retries {u['retries']}), tokens {u['prompt_tokens']}+{u['completion_tokens']}, "
                             f"cost {u['cost']:.4f}")
        return "\n".join(lines)


def _resolve(candidates: list[Candidate]) -> list[Candidate]:
    """Non-overlapping spans: more votes first, then longer, then earlier; returned in text order."""
    order = sorted(candidates, key=lambda c: (-c.votes, -c.length, c.entity.start, c.entity.label))
    return sorted(pick(order)[0], key=lambda c: c.entity.key)


def annotate(
    records: Sequence[Record],
    teachers: Teacher | Sequence[Teacher],
    *,
    mode: Literal["entity", "pos"] = "entity",
    min_votes: int | None = None,
    input_rejects: Sequence[Reject] = (),
) -> AnnotateResult:
    """Label ``records`` with every teacher (one, or several) and fuse the answers by vote (see the module docstring).

    ``input_rejects`` are the lines the reader of ``records`` refused: they are counted and kept, so the
    result accounts for every line read.
    """
    if hasattr(teachers, "label"):
        teachers = [teachers]  # type: ignore[list-item]
    teachers = list(teachers)  # type: ignore[arg-type]
    if not teachers:
        raise ConfigError("annotate needs at least one teacher")
    names = [t.name for t in teachers]
    if len(set(names)) != len(names):
        raise ConfigError(f"teacher names must be unique, got {names}")
    outputs = {t.name: t.label(records) for t in teachers}
    for name, outs in outputs.items():
        if len(outs) != len(records):
            raise RuntimeError(f"teacher {name} returned {len(outs)} outputs for {len(records)} records")

    result = AnnotateResult(input_items=[input_reject(r) for r in input_rejects])
    per_teacher = {n: {"returned": 0, "accepted": 0, "rejected": 0, "failed": 0, "reject_codes": Counter()}
                   for n in names}
    dropped_by_vote = 0
    agreements: list[float] = []
    for i, record in enumerate(records):
        answered: dict[str, TeacherOutput] = {}
        errors: dict[str, str] = {}
        details: dict[str, dict[str, Any]] = {}
        for name in names:
            out = outputs[name][i]
            t = per_teacher[name]
            t["returned"] += out.returned
            t["accepted"] += len(out.entities)
            t["rejected"] += len(out.rejects)
            t["reject_codes"].update(r.code for r in out.rejects)
            result.entity_items.extend(_entity_reject(record, name, r) for r in out.rejects)
            if out.error is not None:
                t["failed"] += 1
                errors[name] = out.error
                if out.meta:
                    details[name] = out.meta
            else:
                answered[name] = out
        if not answered:
            result.failed.append(FailedRecord(record, errors, details))
            continue
        votes: dict[tuple[int, int, str], Candidate] = {}
        for name, out in answered.items():
            for e in out.entities:
                a, b, lab = e.key
                votes.setdefault(e.key, Candidate(Entity(a, b, lab, record.text[a:b]))).vote(name)
        need = min_votes or (len(answered) // 2 + 1)
        kept = _resolve([c for c in votes.values() if c.votes >= need])
        dropped_by_vote += len(votes) - len(kept)
        n = len(answered)
        agreement = sum(1 for c in votes.values() if c.votes == n) / len(votes) if votes else 1.0
        agreements.append(agreement)
        entities = [Entity(c.entity.start, c.entity.end, c.entity.label, c.entity.text,
                           source=joint_source(c.sources), score=vote_share(c.votes, n)) for c in kept]
        if mode == "pos":
            entities = [*record.entities, *entities]
        info: dict[str, Any] = {
            "teachers": {name: {"entities": len(o.entities), "rejected": len(o.rejects), **o.meta}
                         for name, o in answered.items()},
            "agreement": round(agreement, 4),
        }
        if errors:
            info["errors"] = errors
        if len(teachers) > 1:
            info["votes"] = [{"start": a, "end": b, "label": lab, "teachers": list(c.sources)}
                             for (a, b, lab), c in sorted(votes.items())]
        result.records.append(record.with_entities(entities).with_meta(annotate=info))

    result.stats = {
        "read": len(records) + len(result.input_items),
        "rejected_on_input": len(result.input_items),
        "records_in": len(records),
        "labelled": len(result.records),
        "failed": len(result.failed),
        "entities_kept": sum(len(r.entities) for r in result.records),
        "dropped_by_vote": dropped_by_vote,
        "mean_agreement": round(sum(agreements) / len(agreements), 4) if agreements else None,
        "teachers": {n: {**t, "reject_codes": dict(t["reject_codes"])} for n, t in per_teacher.items()},
    }
    for t in teachers:
        usage = getattr(t, "stats", None)
        if usage is not None and hasattr(usage, "to_dict"):
            result.stats["teachers"][t.name]["usage"] = usage.to_dict()
    result.check()
    return result
