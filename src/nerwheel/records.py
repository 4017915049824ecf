"""The one in-memory form of a labelled (or unlabelled) text.

Every reader turns its format into :class:`Record`; every stage takes and returns
records; every writer turns records back into a format. Nothing else in nerwheel
passes raw dicts around, so an offset bug can only live in one place.

Records and entities are frozen: stages build new records (``with_entities``)
instead of mutating shared ones, which keeps provenance honest when one record
flows into several stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nerwheel.errors import DataError

__all__ = ["Entity", "FrozenMeta", "Record", "RecordError"]


class RecordError(DataError):
    """A record or entity that breaks an invariant (offsets, span text)."""


class FrozenMeta(dict):
    """A read-only, picklable dict for :attr:`Record.meta`.

    ``types.MappingProxyType`` cannot be pickled (multiprocessing, KFP local
    runs), so this subclass refuses mutation instead.
    """

    def _readonly(self, *_a: Any, **_k: Any) -> None:
        raise TypeError("Record.meta is read-only; use Record.with_meta(...) to derive a new record")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMeta, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((k, repr(v)) for k, v in self.items())))


@dataclass(frozen=True, slots=True, order=True)
class Entity:
    """A labelled character span: ``text[start:end]`` (``end`` exclusive).

    ``source`` names who produced the label (``gold``, ``kb``, ``llm:qwen2.5``,
    ``model:v3``, ``synthetic``); ``score`` is that source's confidence or vote
    share when it has one.
    """

    start: int
    end: int
    label: str
    text: str
    source: str | None = field(default=None, compare=False)
    score: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.start, int) or not isinstance(self.end, int):
            raise RecordError(f"entity offsets must be integers, got start={self.start!r} end={self.end!r}")
        if self.start < 0 or self.end <= self.start:
            raise RecordError(f"entity offsets must satisfy 0 <= start < end, got start={self.start} end={self.end}")
        if len(self.text) != self.end - self.start:
            raise RecordError(
                f"entity text {self.text!r} has length {len(self.text)} but its span [{self.start}, {self.end}) "
                f"has length {self.end - self.start}"
            )
        if not self.label:
            raise RecordError("entity label must be a non-empty string")

    @property
    def key(self) -> tuple[int, int, str]:
        """Identity of the span for comparisons across sources (offsets + label)."""
        return (self.start, self.end, self.label)

    def overlaps(self, other: Entity) -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start": self.start, "end": self.end, "label": self.label, "text": self.text}
        if self.source is not None:
            d["source"] = self.source
        if self.score is not None:
            d["score"] = self.score
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entity:
        return cls(
            start=d["start"],
            end=d["end"],
            label=d["label"],
            text=d["text"],
            source=d.get("source"),
            score=d.get("score"),
        )

    @classmethod
    def at(cls, text: str, start: int, end: int, label: str, **kw: Any) -> Entity:
        """Build an entity from offsets into ``text`` (the span text is taken from it)."""
        if end > len(text):
            raise RecordError(f"entity end {end} is past the end of the text (length {len(text)})")
        return cls(start, end, label, text[start:end], **kw)


@dataclass(frozen=True, slots=True)
class Record:
    """One text with its entities, sorted by (start, end, label).

    Invariant (checked on construction): every entity lies inside the text and
    ``text[e.start:e.end] == e.text``. Overlaps are allowed here; whether they
    are acceptable is a validation policy (:mod:`nerwheel.validate`).
    """

    id: str
    text: str
    entities: tuple[Entity, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=FrozenMeta)

    def __post_init__(self) -> None:
        ents = tuple(sorted(self.entities))
        for e in ents:
            if e.end > len(self.text):
                raise RecordError(
                    f"record {self.id!r}: entity {e.label}[{e.start}:{e.end}] is past the end of the text "
                    f"(length {len(self.text)})"
                )
            if self.text[e.start : e.end] != e.text:
                raise RecordError(
                    f"record {self.id!r}: entity {e.label}[{e.start}:{e.end}] says {e.text!r} but the text there "
                    f"is {self.text[e.start:e.end]!r}"
                )
        object.__setattr__(self, "entities", ents)
        if not isinstance(self.meta, FrozenMeta):
            object.__setattr__(self, "meta", FrozenMeta(self.meta))

    # -- derivation -------------------------------------------------------------------------
    def with_entities(self, entities: Iterable[Entity]) -> Record:
        return replace(self, entities=tuple(entities))

    def with_meta(self, **updates: Any) -> Record:
        return replace(self, meta=FrozenMeta({**self.meta, **updates}))

    # -- views ------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entities]

    def spans(self) -> set[tuple[int, int, str]]:
        return {e.key for e in self.entities}

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.entities)

    # -- plain-dict form (span JSONL is exactly this) ------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "text": self.text, "entities": [e.to_dict() for e in self.entities]}
        if self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, default_id: str | None = None) -> Record:
        rid = d.get("id", default_id)
        if rid is None:
            raise RecordError("record has no 'id' and no default id was given")
        return cls(
            id=str(rid),
            text=d["text"],
            entities=tuple(Entity.from_dict(e) for e in d.get("entities", ())),
            meta=d.get("meta") or {},
        )
