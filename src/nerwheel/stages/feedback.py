"""Turn live traffic into a feedback training set: where the model and its teachers disagree.

Why disagreements only: texts where the production model already agrees with
the teacher teach it nothing new, and labelling every text would drown the few
informative ones. Each disagreement is classified so a reviewer (and the
report) can see *what* the model gets wrong:

``missing``   the teacher has a span the model lacks (nothing overlaps it);
``spurious``  the model has a span the teacher lacks;
``boundary``  overlapping spans with the same type and different offsets;
``type``      the same or overlapping span with a different type.

Teachers are often partial (the knowledge base knows provinces, cities and
roads, not shop names), so ``teacher_labels`` names what the teacher can say:
a model span of another type is *out of scope* (neither confirmed nor
spurious) unless it overlaps a teacher span. The feedback record then carries
the teacher's spans plus the model's out-of-scope spans that no teacher span
overlaps: training on teacher spans alone would teach the model to forget
every type the teacher cannot see.

A seeded replay sample of earlier training data goes with the feedback set,
because fine-tuning on corrections alone makes a model forget what it knew.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.labels import is_extension_label
from nerwheel.records import Entity, Record

if TYPE_CHECKING:
    from nerwheel.stages.annotate import Teacher

__all__ = [
    "DISAGREEMENT_KINDS",
    "Disagreement",
    "FeedbackConfig",
    "FeedbackReport",
    "FeedbackResult",
    "Predictor",
    "diff_entities",
    "feedback",
    "feedback_record",
    "review_records",
    "reviewed_as_gold",
    "sample_replay",
]

#: Source given to labels a human confirmed or corrected in review (kind ``gold`` for :mod:`merge`).
REVIEW_SOURCE = "gold:review"

DISAGREEMENT_KINDS: tuple[str, ...] = ("missing", "spurious", "boundary", "type")
Kind = Literal["missing", "spurious", "boundary", "type"]


class Predictor(Protocol):
    """What ``stages.predict.load_predictor`` returns (PyTorch, ONNX or Triton behind it)."""

    def predict(self, texts: list[str]) -> list[list[Entity]]: ...




@dataclass(frozen=True)
class Disagreement:
    """One difference between the model's and the teacher's spans on one text."""

    kind: Kind
    model: Entity | None
    teacher: Entity | None

    @property
    def label(self) -> str:
        """The label the disagreement is counted under: the teacher's when it has one."""
        return (self.teacher or self.model).label  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model.to_dict() if self.model else None,
            "teacher": self.teacher.to_dict() if self.teacher else None,
        }


def _overlap(a: Entity, b: Entity) -> int:
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def diff_entities(
    model: Iterable[Entity],
    teacher: Iterable[Entity],
    *,
    teacher_labels: Iterable[str] | None = None,
) -> list[Disagreement]:
    """Classify every difference between two span sets of one text (extension labels are ignored).

    Pairs are one-to-one and chosen in passes: same offsets with another type,
    then overlapping spans of the same type (largest overlap first), then
    overlapping spans of another type. What stays unpaired is ``missing``
    (teacher) or ``spurious`` (model, in the teacher's scope).
    """
    scope = frozenset(teacher_labels) if teacher_labels is not None else None
    t_ents = [e for e in teacher if not is_extension_label(e.label)]
    m_ents = [e for e in model if not is_extension_label(e.label)]
    t_keys = {e.key for e in t_ents}
    m_keys = {e.key for e in m_ents}
    t_left = sorted({e.key: e for e in t_ents if e.key not in m_keys}.values())
    m_left = sorted({e.key: e for e in m_ents if e.key not in t_keys}.values())
    out: list[Disagreement] = []

    def pair(kind: Kind, ok: Callable[[Entity, Entity], bool]) -> None:
        options = [(t, m) for t in t_left for m in m_left if ok(t, m)]
        options.sort(key=lambda tm: (-_overlap(*tm), tm[0].start, tm[1].start, tm[0].label, tm[1].label))
        used_t: set[int] = set()
        used_m: set[int] = set()
        for t, m in options:
            if id(t) in used_t or id(m) in used_m:
                continue
            used_t.add(id(t))
            used_m.add(id(m))
            out.append(Disagreement(kind, m, t))
        t_left[:] = [t for t in t_left if id(t) not in used_t]
        m_left[:] = [m for m in m_left if id(m) not in used_m]

    pair("type", lambda t, m: (t.start, t.end) == (m.start, m.end) and t.label != m.label)
    pair("boundary", lambda t, m: t.label == m.label and t.overlaps(m))
    pair("type", lambda t, m: t.label != m.label and t.overlaps(m))
    out.extend(Disagreement("missing", None, t) for t in t_left)
    out.extend(
        Disagreement("spurious", m, None) for m in m_left if scope is None or m.label in scope
        or any(m.overlaps(t) for t in t_ents)
    )
    def position(d: Disagreement) -> tuple[int, int, str]:
        e = d.teacher or d.model
        return (e.start, e.end, d.kind)  # type: ignore[union-attr]

    return sorted(out, key=position)


def feedback_record(
    record: Record,
    model: Sequence[Entity],
    teacher: Sequence[Entity],
    disagreements: Sequence[Disagreement],
    *,
    teacher_labels: Iterable[str] | None = None,
) -> Record:
    """The training form of one disagreement: teacher spans, plus model spans outside the teacher's scope."""
    scope = frozenset(teacher_labels) if teacher_labels is not None else None
    ents = list(teacher)
    if scope is not None:
        ents += [
            m for m in model
            if not is_extension_label(m.label) and m.label not in scope and not any(m.overlaps(t) for t in teacher)
        ]
    return record.with_entities(ents).with_meta(
        feedback={"role": "disagreement", "disagreements": [d.to_dict() for d in disagreements]}
    )


def sample_replay(
    replay: Sequence[Record], n: int, *, seed: int = 0, exclude_texts: Iterable[str] = (), source: str = "gold"
) -> list[Record]:
    """A seeded sample of ``n`` earlier training records, skipping texts already in the feedback set.

    Replayed entities without a source get ``source`` (earlier training data is
    gold unless it says otherwise), so the feedback set merges without a kind.
    """
    from nerwheel.leakage import normalize_text

    excluded = {normalize_text(t) for t in exclude_texts}
    pool = [r for r in replay if normalize_text(r.text) not in excluded]
    picked = random.Random(seed).sample(pool, min(max(n, 0), len(pool)))
    return [
        r.with_entities(e if e.source else Entity(e.start, e.end, e.label, e.text, source, e.score) for e in r.entities)
        .with_meta(feedback={"role": "replay"})
        for r in picked
    ]


class FeedbackConfig(BaseModel):
    """How the feedback set is built. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher_labels: tuple[str, ...] | None = Field(
        default=None, description="Labels the teacher can produce; None means the teacher is complete."
    )
    replay_ratio: float = Field(default=0.0, ge=0.0, description="Replay records per feedback record.")
    seed: int = 0
    model_source: str = Field(default="model", description="Source name for model spans that carry none.")
    replay_source: str = Field(default="gold", description="Source name for replayed spans that carry none.")
    min_votes: int | None = Field(default=None, ge=1, description="Teacher votes a span needs (default: a majority).")
    max_examples: int = Field(default=5, ge=0)


@dataclass
class FeedbackReport:
    """Counts per disagreement kind and per label; ``to_dict`` is what ``--report`` writes."""

    texts: int = 0
    holdout_dropped: int = 0
    teacher_failed: int = 0
    agreed: int = 0
    disagreed: int = 0
    replay: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_label: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    model_entities: int = 0
    teacher_entities: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    teachers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "holdout_dropped": self.holdout_dropped,
            "teacher_failed": self.teacher_failed,
            "agreed": self.agreed,
            "disagreed": self.disagreed,
            "replay": self.replay,
            "model_entities": self.model_entities,
            "teacher_entities": self.teacher_entities,
            "by_kind": {k: self.by_kind.get(k, 0) for k in DISAGREEMENT_KINDS},
            "by_label": {
                label: {k: c.get(k, 0) for k in DISAGREEMENT_KINDS} for label, c in sorted(self.by_label.items())
            },
            "examples": {k: v for k, v in self.examples.items() if v},
            "teachers": self.teachers,
        }

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {self.by_kind.get(k, 0)}" for k in DISAGREEMENT_KINDS)
        return (
            f"{self.texts} texts (+{self.holdout_dropped} eval texts dropped): {self.agreed} agreed, "
            f"{self.disagreed} disagreed ({kinds}), {self.teacher_failed} unlabelled by the teachers; "
            f"{self.replay} replay records"
        )


@dataclass
class FeedbackResult:
    """``records``: the feedback training set (disagreements, then replay);
    ``model_records``/``teacher_records``: both sides' labels for every disagreement record (for review);
    ``agreed``: the teacher's labels on the texts where the model agreed (a replay pool drawn from current
    traffic); ``unlabelled``: the texts no teacher could label (what a model may pseudo-label)."""

    records: list[Record]
    report: FeedbackReport
    model_records: list[Record] = field(default_factory=list)
    teacher_records: list[Record] = field(default_factory=list)
    agreed: list[Record] = field(default_factory=list)
    unlabelled: list[Record] = field(default_factory=list)


def _with_source(ents: Iterable[Entity], source: str) -> list[Entity]:
    return [e if e.source else Entity(e.start, e.end, e.label, e.text, source=source, score=e.score) for e in ents]


def _align(bare: Sequence[Record], labelled: Sequence[Record]) -> list[Record | None]:
    """``labelled`` (annotate's output: input order, failed records left out) aligned to ``bare``."""
    out: list[Record | None] = []
    j = 0
    for rec in bare:
        if j < len(labelled) and labelled[j].id == rec.id and labelled[j].text == rec.text:
            out.append(labelled[j])
            j += 1
        else:
            out.append(None)
    if j != len(labelled):
        raise ValueError("the teachers returned records that are not the input texts in input order")
    return out


def feedback(
    model: Predictor,
    teachers: Teacher | Sequence[Teacher],
    texts: Sequence[Record],
    *,
    replay: Sequence[Record] = (),
    holdout: Sequence[Record] = (),
    config: FeedbackConfig | None = None,
) -> FeedbackResult:
    """Run ``model`` and the ``teachers`` over ``texts`` (their own entities are ignored); keep the disagreements.

    Texts equal to a ``holdout`` (eval) text are dropped first (the leakage
    check of :mod:`nerwheel.stages.split`), so the eval set never leaks into
    training through traffic. Several teachers vote as in
    :func:`nerwheel.stages.annotate.annotate`; texts no teacher could label are
    counted, not diffed. Returns the feedback training set (teacher labels on
    disagreement records, then ``round(replay_ratio * n)`` seeded replay
    records), the report, and both sides' labels for the disagreement records.
    """
    from nerwheel.stages.annotate import annotate
    from nerwheel.leakage import drop_leaks
    from nerwheel.stages.predict import predict_texts

    cfg = config or FeedbackConfig()
    report = FeedbackReport()
    kept, leaked = drop_leaks(texts, holdout)
    report.holdout_dropped = len(leaked)
    bare = [r.with_entities(()) for r in kept]
    report.texts = len(bare)
    predicted = predict_texts(model, [r.text for r in bare], desc="model")
    team = list(teachers) if isinstance(teachers, Sequence) else [teachers]
    annotated = annotate(bare, team, min_votes=cfg.min_votes)
    report.teachers = annotated.stats

    out: list[Record] = []
    model_side: list[Record] = []
    teacher_side: list[Record] = []
    agreed: list[Record] = []
    unlabelled: list[Record] = []
    for rec, m_ents, t_rec in zip(bare, predicted, _align(bare, annotated.records)):
        if t_rec is None:
            report.teacher_failed += 1
            unlabelled.append(rec)
            continue
        m = _with_source(m_ents, cfg.model_source)
        t = list(t_rec.entities)
        report.model_entities += len(m)
        report.teacher_entities += len(t)
        diffs = diff_entities(m, t, teacher_labels=cfg.teacher_labels)
        if not diffs:
            report.agreed += 1
            agreed.append(t_rec)
            continue
        report.disagreed += 1
        for d in diffs:
            report.by_kind[d.kind] += 1
            report.by_label[d.label][d.kind] += 1
            if len(report.examples[d.kind]) < cfg.max_examples:
                report.examples[d.kind].append({"id": rec.id, "text": rec.text, **d.to_dict()})
        out.append(feedback_record(rec, m, t, diffs, teacher_labels=cfg.teacher_labels))
        model_side.append(rec.with_entities(m))
        teacher_side.append(rec.with_entities(t))

    n_replay = round(cfg.replay_ratio * len(out))
    replayed = sample_replay(replay, n_replay, seed=cfg.seed, exclude_texts={r.text for r in out},
                             source=cfg.replay_source)
    report.replay = len(replayed)
    return FeedbackResult(out + replayed, report, model_side, teacher_side, agreed, unlabelled)


def review_records(result: FeedbackResult) -> list[Record]:
    """Disagreement records for human review, carrying *both* sides' spans.

    Written in the ``labelstudio`` format, each source becomes its own
    prediction, so the reviewer sees the model's and the teacher's proposals
    side by side and keeps, fixes or deletes them.
    """
    metas = [r.meta for r in result.records[: len(result.model_records)]]  # disagreements come first, in order
    return [
        Record(m.id, m.text, m.entities + t.entities, meta)
        for m, t, meta in zip(result.model_records, result.teacher_records, metas)
    ]


def review_labels(model: Any, teachers: Any, config: FeedbackConfig | None = None) -> list[str]:
    """Every label a reviewer may need: the model's (its card) and each teacher's, not only those proposed.

    The Label Studio labelling config is built from these, so a reviewer can add
    an entity that neither side found.
    """
    from nerwheel.labels import ADDRESS_LABELS

    labels: set[str] = set(getattr(getattr(model, "card", None), "labels", None) or ())
    for t in teachers if isinstance(teachers, Sequence) else [teachers]:
        own = getattr(t, "labels", None)
        labels |= set(own) if own is not None else set(ADDRESS_LABELS)  # the knowledge base: address labels
    if config is not None and config.teacher_labels:
        labels |= set(config.teacher_labels)
    return sorted(labels)


def reviewed_as_gold(records: Iterable[Record]) -> list[Record]:
    """Reviewed records (as read back from Label Studio annotations) become gold: every span is
    re-sourced :data:`REVIEW_SOURCE` so :func:`nerwheel.stages.merge.merge` ranks it as gold; the
    review's task/annotator ids stay in ``meta["review"]``."""
    return [
        r.with_entities(Entity(e.start, e.end, e.label, e.text, source=REVIEW_SOURCE) for e in r.entities)
        for r in records
    ]
