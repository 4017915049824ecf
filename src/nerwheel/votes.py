"""Vote fusion: spans with their voters in, non-overlapping entities with a vote share out.

Two stages fuse votes on one text: annotate (K teachers) and merge (gold,
teachers, synthetic data, models). They rank candidates differently (annotate
by votes, merge by source precedence first), but the rest is one concept and
lives here:

* the **joint-source format**: an entity several sources voted for carries
  ``source="kb+llm:qwen"`` (:func:`joint_source`); :func:`voters` reads it back
  into ``["kb", "llm:qwen"]``. Nothing else writes or parses the separator;
* a source's **kind**, the part before ``:`` (``llm:qwen`` -> ``llm``,
  :func:`source_kind`);
* a :class:`Candidate`: one distinct span (offsets + label) with every source
  that voted for it and the score each gave;
* :func:`pick`: candidates taken in the caller's order, each kept unless it
  overlaps one kept before it (:func:`blocker` names that one);
* :func:`seen_by`: the sources that saw a record (each counted once, an
  input's kind only where it stands for a source), and :func:`vote_share`:
  votes over them, the ``score`` of a fused entity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nerwheel.records import Entity

__all__ = ["JOINT", "Candidate", "blocker", "joint_source", "pick", "seen_by", "source_kind", "vote_share",
           "voters"]

JOINT = "+"  # between the voters of a joint source: kb+llm:qwen


def joint_source(names: Iterable[str]) -> str:
    """The ``source`` of an entity these sources voted for, in the order given (``kb+llm:qwen``)."""
    return JOINT.join(names)


def voters(source: str | None) -> list[str]:
    """The sources in a (possibly joint) ``source``: ``kb+llm:qwen`` -> ``["kb", "llm:qwen"]``; none -> ``[]``."""
    return [s.strip() for s in source.split(JOINT) if s.strip()] if source else []


def source_kind(source: str | None) -> str | None:
    """The kind of a source name: the part before ``:`` (``llm:qwen2.5`` -> ``llm``), lower-cased."""
    if not source:
        return None
    return source.split(":", 1)[0].strip().lower() or None


def seen_by(inputs: Iterable[tuple[str | None, Sequence[str | None]]]) -> set[str]:
    """Every source that saw a record: what a fused entity's vote share is out of.

    ``inputs``: per input that holds the record, its kind (merge's ``--extra
    KIND=FILE``, or ``None``) and the ``source`` of each of its entities there.
    An input counts as the sources its entities name (joint sources split); its
    kind counts only for what it stands for: entities that name no source, or a
    record on which the input found nothing. So ``--extra llm=FILE`` whose
    entities say ``llm:qwen`` is one source, not two (``llm`` and
    ``llm:qwen``), and two agreeing sources score 1.0, not 0.667.
    """
    out: set[str] = set()
    for kind, sources in inputs:
        named = {v for s in sources for v in voters(s)}
        out |= named
        if kind and (not sources or any(not voters(s) for s in sources)):
            out.add(kind)
    return out


def vote_share(votes: int, out_of: int) -> float:
    """``votes / out_of`` rounded to 4 places (``out_of`` at least 1): a fused entity's ``score``."""
    return round(votes / max(out_of, 1), 4)


@dataclass
class Candidate:
    """One distinct span (offsets + label) with everyone who voted for it: source -> its score (or ``None``)."""

    entity: Entity
    sources: dict[str, float | None] = field(default_factory=dict)
    inputs: set[str] = field(default_factory=set)  # which inputs (files) it came from, for callers that track them

    @property
    def votes(self) -> int:
        return len(self.sources)

    @property
    def length(self) -> int:
        return self.entity.end - self.entity.start

    def vote(self, source: str, score: float | None = None) -> None:
        """Count ``source``'s vote once; a repeated vote keeps the higher score."""
        prev = self.sources.get(source)
        self.sources[source] = score if prev is None else max(prev, score or prev)

    def mean_score(self) -> float:
        s = [v for v in self.sources.values() if v is not None]
        return sum(s) / len(s) if s else 0.0


def blocker(cand: Candidate, kept: Sequence[Candidate],
            compatible: Callable[[Candidate, Candidate], bool] | None = None) -> Candidate | None:
    """The first of ``kept`` that ``cand`` overlaps (and, with ``compatible``, may not sit beside), or ``None``."""
    return next((k for k in kept if k.entity.overlaps(cand.entity) and not (compatible and compatible(k, cand))),
                None)


def pick(ordered: Iterable[Candidate], compatible: Callable[[Candidate, Candidate], bool] | None = None,
         ) -> tuple[list[Candidate], list[tuple[Candidate, Candidate]]]:
    """Take ``ordered`` best first: ``(kept, rejected)``, each rejected one with the kept one it overlapped.

    ``compatible(kept, candidate)`` lets two overlapping candidates both stay (merge: two gold spans).
    """
    kept: list[Candidate] = []
    rejected: list[tuple[Candidate, Candidate]] = []
    # character -> indices of the kept spans covering it: a candidate is compared with the kept spans it
    # overlaps, not with every kept span (a long text has tens of thousands of them)
    covering: dict[int, list[int]] = {}
    for cand in ordered:
        e = cand.entity
        near = sorted({i for pos in range(e.start, e.end) for i in covering.get(pos, ())})
        winner = next((kept[i] for i in near if not (compatible and compatible(kept[i], cand))), None)
        if winner is None:
            for pos in range(e.start, e.end):
                covering.setdefault(pos, []).append(len(kept))
            kept.append(cand)
        else:
            rejected.append((cand, winner))
    return kept, rejected
