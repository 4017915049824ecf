"""Placing an LLM's (text, label) answers at character offsets, and rejecting what cannot be placed.

Rules (each rejection carries a code and a sentence):
- labels go through a :class:`~nerwheel.labels.LabelMap` (``省份`` -> ``prov``);
  unknown labels are rejected (``unknown_label``);
- a mention must be an exact substring of the text (``not_in_text``);
- entity mode: the k-th answer with the same mention takes the k-th
  occurrence, left to right; one more answer than there are occurrences is
  rejected (``too_many``), never guessed;
- pos mode: tokens are placed in answer order, each at the first occurrence at
  or after the previous token's end (segmentation reads left to right);
- overlapping spans are resolved by ``overlap`` policy: ``longest`` keeps the
  longer span (then the earlier answer), ``first`` keeps the earlier answer,
  ``reject`` keeps none of them (an answer that contradicts itself is not
  trusted), ``allow`` keeps all. What is not kept is rejected (``overlap``).
So ``returned == accepted + rejected`` per record, by construction.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from nerwheel.labels import LabelMap
from nerwheel.llm.parse import ItemReject, ParseResult
from nerwheel.records import Entity

__all__ = ["OVERLAP_POLICIES", "EntityReject", "OverlapPolicy", "Placed", "TeacherOutput", "place"]

OverlapPolicy = Literal["longest", "first", "reject", "allow"]
OVERLAP_POLICIES: tuple[str, ...] = ("longest", "first", "reject", "allow")


@dataclass(frozen=True, slots=True)
class EntityReject:
    code: str  # malformed | truncated | salvaged | unknown_label | not_in_text | too_many | overlap | hierarchy
    reason: str
    text: str | None = None
    label: str | None = None
    start: int | None = None
    end: int | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("code", "reason", "text", "label", "start", "end", "source")
                if getattr(self, k) is not None}

    @classmethod
    def from_item(cls, r: ItemReject, source: str | None = None) -> EntityReject:
        code = "truncated" if r.reason.startswith("truncated") else "malformed"
        return cls(code, f"{r.reason}: {r.item}", r.text, r.label, source=source)


@dataclass(slots=True)
class Placed:
    entities: list[Entity] = field(default_factory=list)
    rejects: list[EntityReject] = field(default_factory=list)

    @property
    def returned(self) -> int:
        return len(self.entities) + len(self.rejects)


def _occurrences(text: str, mention: str) -> list[int]:
    out, i = [], text.find(mention)
    while i >= 0:
        out.append(i)
        i = text.find(mention, i + 1)
    return out


def place(
    text: str,
    parsed: ParseResult,
    label_map: LabelMap,
    *,
    source: str,
    mode: Literal["entity", "pos"] = "entity",
    overlap: OverlapPolicy = "longest",
) -> Placed:
    """Offsets for every candidate in ``parsed``; see the module docstring for the rules."""
    out = Placed(rejects=[EntityReject.from_item(r, source) for r in parsed.rejects])
    placed: list[tuple[int, Entity]] = []  # (answer index, entity)
    seen: dict[str, int] = defaultdict(int)
    cursor = 0
    allowed = ", ".join(sorted(label_map.allowed or ()))
    for c in parsed.candidates:
        mention = c.text.strip()
        label = label_map.normalize(c.label)
        if label is None:
            entry = json.dumps(c.label.strip(), ensure_ascii=False)
            out.rejects.append(EntityReject(
                "unknown_label", f"unknown label {c.label!r}; allowed labels are: {allowed}. To accept it, add it to "
                f'the label map (--label-map FILE holding {{{entry}: "<label>"}})', mention, c.label, source=source))
            continue
        occ = _occurrences(text, mention)
        if not occ:
            out.rejects.append(EntityReject("not_in_text", f"{mention!r} is not a substring of the text",
                                            mention, c.label, source=source))
            continue
        if mode == "pos":
            nxt = [i for i in occ if i >= cursor]
            if not nxt:
                out.rejects.append(EntityReject(
                    "not_in_text", f"token {mention!r} does not occur after offset {cursor} (tokens must be in text "
                    "order)", mention, c.label, source=source))
                continue
            start = nxt[0]
            cursor = start + len(mention)
        else:
            k = seen[mention]
            seen[mention] += 1
            if k >= len(occ):
                out.rejects.append(EntityReject(
                    "too_many", f"{mention!r} occurs {len(occ)} time(s) in the text but was returned {k + 1} times",
                    mention, c.label, source=source))
                continue
            start = occ[k]
        placed.append((c.index, Entity(start, start + len(mention), label, mention, source=source)))

    if overlap == "allow":
        out.entities = sorted(e for _, e in placed)
        return out
    if overlap == "reject":
        for _, e in placed:
            clash = next((o for _, o in placed if o is not e and o.overlaps(e)), None)
            if clash is None:
                out.entities.append(e)
            else:
                out.rejects.append(EntityReject(
                    "overlap", f"{e.label}[{e.start}:{e.end}] overlaps {clash.label}[{clash.start}:{clash.end}] "
                    "(policy 'reject': overlapping answers are all refused)", e.text, e.label, e.start, e.end, source))
        out.entities.sort()
        return out
    order = (sorted(placed, key=lambda p: (-(p[1].end - p[1].start), p[0])) if overlap == "longest"
             else sorted(placed, key=lambda p: p[0]))
    kept: list[Entity] = []
    for _, e in order:
        clash = next((k for k in kept if k.overlaps(e)), None)
        if clash is None:
            kept.append(e)
        else:
            out.rejects.append(EntityReject(
                "overlap", f"{e.label}[{e.start}:{e.end}] overlaps kept {clash.label}[{clash.start}:{clash.end}] "
                f"(policy {overlap!r})", e.text, e.label, e.start, e.end, source))
    out.entities = sorted(kept)
    return out


@dataclass(slots=True)
class TeacherOutput:
    """What one teacher made of one record.

    ``error`` set means the record failed for this teacher (no usable answer);
    otherwise ``entities`` were accepted and ``rejects`` hold what was returned
    but refused, so ``returned == len(entities) + len(rejects)``.
    """

    entities: list[Entity] = field(default_factory=list)
    rejects: list[EntityReject] = field(default_factory=list)
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def returned(self) -> int:
        return len(self.entities) + len(self.rejects)
