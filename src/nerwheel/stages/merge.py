"""Fuse labels from gold, teachers (knowledge base, LLMs), synthetic data and models.

Why a merge stage at all: every source is wrong in its own way (a tiny LLM
invents spans, the knowledge base only knows administrative names, a model
repeats its own mistakes), so the training set is built by *voting with a
precedence*, and every label keeps who said it. Downstream (training, review,
the next turn of the flywheel) can then weigh or audit a label by its origin.

Rules, in the order they apply (all configurable in :class:`MergeConfig`):

* **Source kind.** An entity's kind is the prefix of ``Entity.source`` before
  ``:`` (``llm:qwen`` -> ``llm``); a joint source from the annotate stage
  (``kb+llm:qwen``) counts as a vote from each; an entity without a source takes the kind of
  the input it came from (``gold`` for the gold input, :attr:`SourceInput.kind` for
  the others). A kind missing from ``precedence`` is an error, not a silent last
  place.
* **Matching.** Records are matched by id when the id exists and the text is
  the same, otherwise by exact text. Records found in one input only are kept
  (this is how original + synthetic data are fused) and counted as
  ``source_only``.
* **Agreement.** Identical spans (offsets + label) from several sources are one
  candidate with several votes. A kind in ``agreement_kinds`` (LLMs by default)
  only earns its precedence rank when at least ``min_agreement`` distinct
  sources of that kind agree; otherwise the candidate drops below every ranked
  kind (it can still fill a gap nobody else labels).
* **Conflicts.** Candidates are taken best first (rank, then votes, then mean
  score, then length); one that overlaps an accepted span is rejected and
  reported as ``type`` (same offsets, other label), ``boundary`` (same label,
  other offsets) or ``overlap`` (both differ).
* **Gold is complete** unless ``fill_gold`` is set: a record from the gold
  input keeps exactly its gold entities; other sources only add votes, and
  spans gold leaves unlabelled are reported as ``not_in_gold``. Human labels
  mark absence too, so filling them with teacher spans would undo review work.
* **Extension labels** (labels with a namespace prefix such as ``pos:n``) are
  kept alongside target labels, never conflict with them, and are dropped only
  when ``keep_extension_labels`` is false.

The output entity's ``source`` is its highest-precedence supporter and its
``score`` the vote share (supporting sources / sources that saw the record);
the full list of supporters per entity is in ``record.meta["merge"]``. The
joint-source format, candidates and the overlap pick are :mod:`nerwheel.votes`,
shared with the annotate stage.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nerwheel.errors import NerwheelError
from nerwheel.labels import is_extension_label
from nerwheel.records import Entity, Record
from nerwheel.votes import Candidate, blocker, pick, seen_by, source_kind, vote_share, voters

__all__ = [
    "CONFLICT_KINDS",
    "MergeConfig",
    "MergeError",
    "MergeReport",
    "MergeResult",
    "SourceInput",
    "merge",
    "source_kind",
]

#: Conflict kinds in the report, in the order they are listed.
CONFLICT_KINDS: tuple[str, ...] = ("boundary", "type", "overlap", "not_in_gold", "source_only", "id_mismatch")

GOLD = "gold"


class MergeError(NerwheelError, ValueError):
    """Inputs the merge cannot interpret (an unranked source kind, an entity with no source)."""


class MergeConfig(BaseModel):
    """How conflicting labels are resolved. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    precedence: tuple[str, ...] = Field(
        default=(GOLD, "kb", "llm", "synthetic", "model"),
        description="Source kinds, most trusted first.",
    )
    min_agreement: int = Field(default=1, ge=1, description="Distinct sources of an agreement kind that must agree.")
    agreement_kinds: tuple[str, ...] = Field(default=("llm",), description="Kinds whose rank needs min_agreement.")
    keep_extension_labels: bool = True
    fill_gold: bool = Field(default=False, description="Let other sources add spans to records from the gold input.")
    max_examples: int = Field(default=5, ge=0, description="Examples kept per conflict kind in the report.")

    @field_validator("precedence", "agreement_kinds", mode="before")
    @classmethod
    def _split_kinds(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p for p in v.split(",")]
        return tuple(str(p).strip().lower() for p in v if str(p).strip())

    @field_validator("precedence")
    @classmethod
    def _check_precedence(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("precedence must name at least one source kind, e.g. gold,kb,llm,synthetic,model")
        dup = [k for k, n in Counter(v).items() if n > 1]
        if dup:
            raise ValueError(f"precedence lists {', '.join(dup)} more than once")
        bad = [k for k in v if ":" in k]
        if bad:
            raise ValueError(f"precedence takes source kinds (the part before ':'), got {', '.join(bad)}")
        return v

    def rank(self, kind: str) -> int:
        return self.precedence.index(kind)


@dataclass(frozen=True)
class SourceInput:
    """One input of the merge: its records, a display name and the kind for entities without a source."""

    name: str
    records: Sequence[Record]
    kind: str | None = None


@dataclass
class MergeReport:
    """Counts and examples of what the merge decided; ``to_dict`` is what ``--report`` writes."""

    inputs: dict[str, int] = field(default_factory=dict)
    records_out: int = 0
    entities_out: int = 0
    extension_entities_out: int = 0
    entities_by_source: Counter = field(default_factory=Counter)
    conflicts: Counter = field(default_factory=Counter)
    conflicts_by_pair: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    below_agreement: int = 0
    renamed_ids: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, pair: str, example: dict[str, Any], max_examples: int) -> None:
        self.conflicts[kind] += 1
        self.conflicts_by_pair[kind][pair] += 1
        if len(self.examples[kind]) < max_examples:
            self.examples[kind].append(example)

    @property
    def source_only(self) -> dict[str, int]:
        """Records found in one input only, per input (also counted as the ``source_only`` conflict kind)."""
        return dict(self.conflicts_by_pair.get("source_only", {}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": dict(self.inputs),
            "records_out": self.records_out,
            "entities_out": self.entities_out,
            "extension_entities_out": self.extension_entities_out,
            "entities_by_source": dict(sorted(self.entities_by_source.items())),
            "conflicts": {k: self.conflicts.get(k, 0) for k in CONFLICT_KINDS},
            "conflicts_by_pair": {k: dict(sorted(v.items())) for k, v in self.conflicts_by_pair.items()},
            "source_only": dict(sorted(self.source_only.items())),
            "below_agreement": self.below_agreement,
            "renamed_ids": self.renamed_ids,
            "examples": {k: v for k, v in self.examples.items() if v},
        }

    def summary(self) -> str:
        c = ", ".join(f"{k} {self.conflicts.get(k, 0)}" for k in CONFLICT_KINDS)
        return f"merged {self.records_out} records, {self.entities_out} entities; conflicts: {c}"


@dataclass
class MergeResult:
    records: list[Record]
    report: MergeReport


# ------------------------------------------------------------------------------------------------
@dataclass
class _Group:
    """All input records that carry the same text."""

    id: str
    text: str
    members: list[tuple[SourceInput, Record]] = field(default_factory=list)

    def has_input(self, name: str) -> bool:
        return any(src.name == name for src, _ in self.members)


def _entity_sources(e: Entity, src: SourceInput, rec: Record) -> list[str]:
    """Who produced ``e``: ``kb+llm:qwen`` (annotate's joint vote) is two sources, ``kb`` and ``llm:qwen``."""
    if e.source:
        return voters(e.source)
    if src.kind:
        return [src.kind]
    raise MergeError(
        f"{src.name}: record {rec.id!r} entity {e.label}[{e.start}:{e.end}] has no source; "
        "give the input a kind (SourceInput.kind: kb, llm, model, ...)", field="kind"
    )


def _group(inputs: Sequence[SourceInput], report: MergeReport, max_examples: int) -> list[_Group]:
    groups: list[_Group] = []
    by_id: dict[str, _Group] = {}
    by_text: dict[str, _Group] = {}
    for src in inputs:
        for rec in src.records:
            g = by_id.get(rec.id)
            if g is not None and g.text != rec.text:
                report.add("id_mismatch", src.name, {"id": rec.id, "text": rec.text, "other_text": g.text},
                           max_examples)
                g = None
            if g is None or g.has_input(src.name):
                g = by_text.get(rec.text)
                if g is not None and g.has_input(src.name):
                    g = None  # a duplicate within one input stays a separate record (dedup is split's job)
            if g is None:
                rid = rec.id
                if rid in by_id:
                    n = 2
                    while f"{rec.id}~{n}" in by_id:
                        n += 1
                    rid = f"{rec.id}~{n}"
                    report.renamed_ids += 1
                g = _Group(rid, rec.text)
                groups.append(g)
                by_id[rid] = g
                by_text.setdefault(rec.text, g)
            g.members.append((src, rec))
    return groups


def _conflict_kind(loser: Entity, winner: Entity) -> str:
    if (loser.start, loser.end) == (winner.start, winner.end):
        return "type"
    if loser.label == winner.label:
        return "boundary"
    return "overlap"


def _ent_dict(e: Entity, sources: Iterable[str]) -> dict[str, Any]:
    return {"start": e.start, "end": e.end, "label": e.label, "text": e.text, "sources": sorted(sources)}


class _Merger:
    def __init__(self, config: MergeConfig, report: MergeReport) -> None:
        self.cfg = config
        self.report = report

    def kind_of(self, source: str, where: str) -> str:
        kind = source_kind(source) or source
        if kind not in self.cfg.precedence:
            raise MergeError(
                f"{where}: source {source!r} has kind {kind!r}, which is not in the precedence "
                f"({','.join(self.cfg.precedence)}); add it to precedence", field="precedence"
            )
        return kind

    def tier(self, cand: Candidate) -> int:
        """Best precedence rank the candidate earns; ``len(precedence)`` when only unagreed kinds back it."""
        by_kind: dict[str, int] = Counter(source_kind(s) or s for s in cand.sources)
        ranks = [
            self.cfg.rank(k) for k, n in by_kind.items()
            if k not in self.cfg.agreement_kinds or n >= self.cfg.min_agreement
        ]
        return min(ranks) if ranks else len(self.cfg.precedence)

    def best_source(self, cand: Candidate) -> str:
        return min(cand.sources, key=lambda s: (self.cfg.rank(source_kind(s) or s), s))

    def merge_group(self, g: _Group) -> Record:
        cfg, report = self.cfg, self.report
        targets: dict[tuple[int, int, str], Candidate] = {}
        extensions: dict[tuple[int, int, str], Candidate] = {}
        for src, rec in g.members:
            for e in rec.entities:
                pool = extensions if is_extension_label(e.label) else targets
                cand = pool.setdefault(e.key, Candidate(Entity(e.start, e.end, e.label, e.text)))
                cand.inputs.add(src.name)
                for s in _entity_sources(e, src, rec):
                    self.kind_of(s, f"{src.name}: record {rec.id!r}")
                    cand.vote(s, e.score)
        # every source that saw the record, each once: what the vote share is out of
        seen = seen_by((src.kind, [e.source for e in rec.entities]) for src, rec in g.members)

        gold_inputs = {src.name for src, _ in g.members if src.kind == GOLD}
        if len(g.members) == 1:
            report.add("source_only", g.members[0][0].name, {"id": g.id, "text": g.text}, cfg.max_examples)
        tiers = {k: self.tier(c) for k, c in targets.items()}
        report.below_agreement += sum(1 for t in tiers.values() if t == len(cfg.precedence))
        ordered = sorted(
            targets.items(),
            key=lambda kv: (tiers[kv[0]], -kv[1].votes, -kv[1].mean_score(), -(kv[0][1] - kv[0][0]), kv[0]),
        )
        if gold_inputs and not cfg.fill_gold:
            accepted = [c for _, c in ordered if c.inputs & gold_inputs]
            for _, c in ordered:
                if c.inputs & gold_inputs:
                    continue
                winner = blocker(c, accepted)
                kind = _conflict_kind(c.entity, winner.entity) if winner else "not_in_gold"
                self._report(kind, g, c, winner)
        else:
            def both_gold(a: Candidate, c: Candidate) -> bool:  # two gold spans never push each other out
                return bool(a.inputs & gold_inputs and c.inputs & gold_inputs)

            accepted, rejected = pick((c for _, c in ordered), both_gold)
            for c, winner in rejected:
                self._report(_conflict_kind(c.entity, winner.entity), g, c, winner)

        out: list[Entity] = []
        provenance: list[dict[str, Any]] = []
        kept_ext = list(extensions.values()) if cfg.keep_extension_labels else []
        for c in accepted + kept_ext:
            best = self.best_source(c)
            e = c.entity
            out.append(Entity(e.start, e.end, e.label, e.text, source=best, score=vote_share(c.votes, len(seen))))
            p = _ent_dict(e, c.sources)
            scores = {s: v for s, v in c.sources.items() if v is not None}
            if scores:
                p["scores"] = dict(sorted(scores.items()))
            provenance.append(p)
            report.entities_by_source[best] += 1
        report.entities_out += len(accepted)
        report.extension_entities_out += len(kept_ext)

        meta: dict[str, Any] = {}
        for _, rec in reversed(g.members):  # the first (highest) input's meta wins on key clashes
            meta.update(rec.meta)
        meta["merge"] = {
            "inputs": [src.name for src, _ in g.members],
            "voters": sorted(seen),
            "entities": sorted(provenance, key=lambda p: (p["start"], p["end"], p["label"])),
        }
        return Record(g.id, g.text, tuple(out), meta)

    def _report(self, kind: str, g: _Group, loser: Candidate, winner: Candidate | None) -> None:
        w = self.best_source(winner) if winner else GOLD
        pair = f"{source_kind(w) or w}>{source_kind(self.best_source(loser)) or ''}"
        example = {
            "id": g.id,
            "text": g.text,
            "kept": _ent_dict(winner.entity, winner.sources) if winner else None,
            "rejected": _ent_dict(loser.entity, loser.sources),
        }
        self.report.add(kind, pair, example, self.cfg.max_examples)


def merge(
    gold: Sequence[Record] | None,
    extras: Sequence[SourceInput] = (),
    config: MergeConfig | None = None,
) -> MergeResult:
    """Fuse ``gold`` (may be empty) with each extra input; see the module docstring for the rules.

    Records come out in input order: gold first, then records new to each extra.
    Raises :class:`MergeError` for an entity whose source cannot be ranked.
    """
    cfg = config or MergeConfig()
    report = MergeReport()
    inputs: list[SourceInput] = []
    if gold is not None:
        inputs.append(SourceInput(GOLD, gold, GOLD))
    names = Counter()
    for src in extras:
        names[src.name] += 1
        name = src.name if names[src.name] == 1 else f"{src.name}#{names[src.name]}"
        kind = src.kind.strip().lower() if src.kind else None
        if kind is not None and kind not in cfg.precedence:
            raise MergeError(
                f"{src.name}: input kind {kind!r} is not in the precedence ({','.join(cfg.precedence)}); "
                "add it to precedence", field="precedence"
            )
        inputs.append(SourceInput(name, src.records, kind))
    for src in inputs:
        report.inputs[src.name] = len(src.records)
    merger = _Merger(cfg, report)
    records = [merger.merge_group(g) for g in _group(inputs, report, cfg.max_examples)]
    report.records_out = len(records)
    return MergeResult(records, report)
