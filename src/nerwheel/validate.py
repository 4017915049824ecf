"""Validation policies over :class:`~nerwheel.formats.ReadResult`: what a training set may contain.

Readers already reject what cannot be a record at all (invalid UTF-8, invalid
JSON, offsets out of range, span text that does not match the text, ill-formed
tag sequences) and tolerate-and-count a BOM or CRLF line endings. This module
adds the *policy* checks, which depend on what the data is for:

- empty (blank) text, and text longer than ``max_length`` characters;
- labels outside ``allowed_labels``: ``unknown_labels="reject"`` rejects the
  record, ``"map"`` first translates labels through a :class:`LabelMap`
  (synonyms such as 省份 -> prov, optional prefix) and rejects only what is still
  unknown;
- overlapping spans, which BIO-style tags cannot express:
  ``overlaps="reject"`` rejects the record, ``"keep-longest"`` keeps the longest
  span of each overlapping group (ties: earlier start, then label) and counts the
  dropped ones in the notes; ``"keep"`` keeps them all (for a span head, which
  learns overlapping and nested spans) and counts the records that hold them. Exact duplicates (same offsets and label, e.g. two
  synonyms mapped to one label) are always collapsed and counted.

:func:`validate` returns a new ReadResult; every reject carries file, line and
reason, and ``read == accepted + rejected`` still holds. With ``strict=True`` it
raises :class:`ValidationError` at the first problem (including reader rejects).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.formats.base import BadRecord, FormatError, ReadResult, Reject
from nerwheel.labels import LabelMap, LabelSet, is_extension_label
from nerwheel.records import Entity, Record

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "OVERLAP_POLICIES",
    "UNKNOWN_LABEL_POLICIES",
    "ValidationError",
    "ValidationPolicy",
    "check_record",
    "limit_length",
    "reject_unknown_labels",
    "too_long",
    "unknown_label",
    "validate",
    "validate_records",
]

OVERLAP_POLICIES = ("reject", "keep-longest", "keep")
UNKNOWN_LABEL_POLICIES = ("reject", "map")
DEFAULT_MAX_LENGTH = 2048

NOTE_DUPLICATE_ENTITIES = "duplicate entities collapsed"
NOTE_KEEP_LONGEST = "overlapping entities dropped (keep-longest)"
NOTE_OVERLAPS_KEPT = "records with overlapping or nested entities kept (keep)"
NOTE_MAPPED = "entity labels mapped"
NOTE_DUPLICATE_IDS = "duplicate record ids"


class ValidationError(FormatError):
    """Strict validation met its first problem."""


@dataclass(frozen=True)
class ValidationPolicy:
    """What a record must satisfy. Fails on construction with a sentence naming the bad setting.

    ``max_length`` counts characters (``None`` for no limit; the default leaves
    room for long texts, which the model reads in sliding windows, while
    catching a whole file glued into one line). ``allowed_labels=None`` accepts
    every label.
    """

    max_length: int | None = DEFAULT_MAX_LENGTH
    allow_empty: bool = False
    overlaps: str = "reject"
    unknown_labels: str = "reject"
    allowed_labels: frozenset[str] | None = None
    label_map: LabelMap | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if self.max_length is not None and (
            isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1
        ):
            raise ConfigError(f"max_length must be a positive integer or None, got {self.max_length!r}")
        if self.overlaps not in OVERLAP_POLICIES:
            raise ConfigError(f"overlaps must be one of {', '.join(OVERLAP_POLICIES)}, got {self.overlaps!r}")
        if self.unknown_labels not in UNKNOWN_LABEL_POLICIES:
            raise ConfigError(
                f"unknown_labels must be one of {', '.join(UNKNOWN_LABEL_POLICIES)}, got {self.unknown_labels!r}")
        if self.unknown_labels == "map" and self.label_map is None:
            raise ConfigError("unknown_labels='map' needs a label_map (a synonym -> label mapping file)")
        if self.unknown_labels == "reject" and self.label_map is not None:
            raise ConfigError("a label_map is only used with unknown_labels='map'; set it, or drop the label map")
        if self.allowed_labels is not None:
            if isinstance(self.allowed_labels, str) or not all(isinstance(x, str) for x in self.allowed_labels):
                raise ConfigError("allowed_labels must be a collection of label names")
            object.__setattr__(self, "allowed_labels", frozenset(self.allowed_labels))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationPolicy:
        """Build from a config mapping; an unknown key is an error that lists the known ones."""
        known = {f.name for f in fields(cls)} - {"label_map"}
        extra = sorted(set(data) - known - {"label_map_file"})
        if extra:
            raise ConfigError(f"unknown validation setting(s) {', '.join(extra)}; known settings are: "
                             f"{', '.join(sorted(known | {'label_map_file'}))}")
        kw = {k: v for k, v in data.items() if k in known}
        if data.get("label_map_file"):
            kw["label_map"] = LabelMap.load(data["label_map_file"])
        return cls(**kw)

    def effective_label_map(self) -> LabelMap | None:
        if self.label_map is None:
            return None
        allowed = self.allowed_labels if self.allowed_labels is not None else self.label_map.allowed
        return replace(self.label_map, allowed=allowed)


def too_long(text: str, max_length: int, fix: str = "raise the limit with --max-length") -> BadRecord:
    """The reject reason for a text over the length limit (kind ``too-long``); ``fix`` names the setting."""
    return BadRecord(f"text has {len(text)} characters, over the limit of {max_length} (split the text, or {fix})",
                     "too-long")


def limit_length(result: ReadResult, max_length: int | None, *,
                 fix: str = "raise the limit with --max-length") -> ReadResult:
    """``result`` without the records longer than ``max_length`` characters, which become rejects.

    Every stage that reads texts bounds them (``None``: no limit): the work a text costs grows with
    its length (a model's windows, a teacher's scan, an LLM's tokens), and one glued file in a line
    must not stall a run. The rejects keep file, line and the record; ``read`` is unchanged.
    """
    if max_length is None or all(len(r.text) <= max_length for r in result.records):
        return result
    out = ReadResult(source=result.source, format=result.format, rejects=list(result.rejects),
                     notes=Counter(result.notes))
    for line, record in result.located():
        if len(record.text) > max_length:
            reason = str(too_long(record.text, max_length, fix))
            out.rejects.append(Reject(result.source, line, reason, json.dumps(record.to_dict(), ensure_ascii=False),
                                      kind="too-long"))
        else:
            out.add(record, line)
    out.rejects.sort(key=lambda r: r.line)
    return out


def unknown_label(e: Entity, allowed: Iterable[str], source: str = "",
                  fix: str = "to translate synonyms use --unknown-labels map with --label-map FILE") -> BadRecord:
    """The reject for an entity whose label is outside the label set (kind ``unknown-label``)."""
    where = f" ({source})" if source else ""
    return BadRecord(f"unknown label {e.label!r} ({_fmt(e)}); allowed labels{where} are: "
                     f"{', '.join(sorted(allowed))} ({fix})", "unknown-label")


def reject_unknown_labels(result: ReadResult, label_set: LabelSet, *,
                          fix: str = "set the labels with --labels A,B,... or --labels any") -> ReadResult:
    """``result`` without the records that carry a label outside ``label_set``, which become rejects.

    An unknown label is most often a typo (``STREETX``) or data meant for another task; accepted,
    it becomes a class of the model. ``label_set.labels=None`` (``any``) checks nothing; extension
    labels (``kb:city``, ``pos:n``: a namespace prefix) are auxiliary outputs, never judged as targets.
    """
    allowed = label_set.labels

    def unknown(e: Entity) -> bool:  # extension labels (kb:city, pos:n) live in their own namespaces
        return e.label not in allowed and not is_extension_label(e.label)

    if allowed is None or not any(unknown(e) for r in result.records for e in r.entities):
        return result
    out = ReadResult(source=result.source, format=result.format, rejects=list(result.rejects),
                     notes=Counter(result.notes))
    for line, record in result.located():
        bad = next((e for e in record.entities if unknown(e)), None)
        if bad is None:
            out.add(record, line)
            continue
        reason = str(unknown_label(bad, allowed, label_set.source, fix))
        out.rejects.append(Reject(result.source, line, reason, json.dumps(record.to_dict(), ensure_ascii=False),
                                  kind="unknown-label"))
    out.rejects.sort(key=lambda r: r.line)
    return out


def _fmt(e: Entity) -> str:
    return f"{e.label}[{e.start}:{e.end}] {e.text!r}"


def _first_overlap(ordered: list[Entity]) -> tuple[Entity, Entity] | None:
    """Two overlapping entities of ``ordered`` (sorted by start), or ``None``: one pass, not every pair."""
    reach: Entity | None = None  # the entity seen so far that ends last
    for e in ordered:
        if reach is not None and e.start < reach.end:
            return reach, e
        if reach is None or e.end > reach.end:
            reach = e
    return None


def _keep_longest(ents: list[Entity]) -> tuple[list[Entity], int]:
    kept: list[Entity] = []
    for e in sorted(ents, key=lambda x: (-(x.end - x.start), x.start, x.label)):
        if not any(e.overlaps(k) for k in kept):
            kept.append(e)
    return kept, len(ents) - len(kept)


def check_record(record: Record, policy: ValidationPolicy, notes: Counter[str] | None = None) -> Record:
    """Return the record as the policy accepts it (labels mapped, overlaps resolved) or raise :class:`BadRecord`."""
    notes = notes if notes is not None else Counter()
    text = record.text
    if not policy.allow_empty and not text.strip():
        raise BadRecord("field 'text' is empty or blank; remove the record or fill in the text", "empty")
    if policy.max_length is not None and len(text) > policy.max_length:
        raise too_long(text, policy.max_length)
    ents = list(record.entities)
    changed = False
    lm = policy.effective_label_map()
    if policy.unknown_labels == "map" and lm is not None:
        mapped = []
        for e in ents:
            new = lm.normalize(e.label)
            if new is None:
                allowed = ", ".join(sorted(lm.allowed or ()))
                raise BadRecord(f"unknown label {e.label!r} ({_fmt(e)}); allowed labels are: {allowed}; "
                                "add a synonym for it to the label map file", "unknown-label")
            if new != e.label:
                notes[NOTE_MAPPED] += 1
                e = replace(e, label=new)
                changed = True
            mapped.append(e)
        ents = mapped
    elif policy.allowed_labels is not None:
        for e in ents:
            if e.label not in policy.allowed_labels and not is_extension_label(e.label):
                raise unknown_label(e, policy.allowed_labels)
    unique = list(dict.fromkeys(ents))  # Entity equality is (start, end, label, text)
    if len(unique) != len(ents):
        notes[NOTE_DUPLICATE_ENTITIES] += len(ents) - len(unique)
        ents, changed = unique, True
    clash = _first_overlap(sorted(ents))
    if clash is not None and policy.overlaps == "keep":
        notes[NOTE_OVERLAPS_KEPT] += 1
    elif clash is not None:
        if policy.overlaps == "reject":
            a, b = clash
            raise BadRecord(f"entities {_fmt(a)} and {_fmt(b)} overlap; tags cannot express overlaps "
                            "(fix the labels, or use --overlaps keep-longest)", "overlap")
        ents, dropped = _keep_longest(ents)
        notes[NOTE_KEEP_LONGEST] += dropped
        changed = True
    return record.with_entities(ents) if changed else record


def validate(result: ReadResult, policy: ValidationPolicy | None = None) -> ReadResult:
    """Apply ``policy`` to every accepted record; returns a new, reconciling :class:`ReadResult`."""
    policy = policy or ValidationPolicy()
    out = ReadResult(source=result.source, format=result.format, notes=Counter(result.notes))
    # strict: the first problem in file order, whether the reader or the policy found it
    first_reader = min(result.rejects, key=lambda r: r.line) if policy.strict and result.rejects else None
    new_rejects: list[Reject] = []
    seen_ids: set[str] = set()
    for i, record in enumerate(result.records):
        line = result.line_of(i)
        if first_reader is not None and line > first_reader.line:
            break
        try:
            checked = check_record(record, policy, out.notes)
        except BadRecord as exc:
            rej = Reject(result.source, line, str(exc), json.dumps(record.to_dict(), ensure_ascii=False), kind=exc.kind)
            if policy.strict:
                raise ValidationError(f"{rej} (strict mode stops at the first error)") from None
            new_rejects.append(rej)
            continue
        if checked.id in seen_ids:
            out.notes[NOTE_DUPLICATE_IDS] += 1
        seen_ids.add(checked.id)
        out.add(checked, line)
    if first_reader is not None:
        raise ValidationError(f"{first_reader} (strict mode stops at the first error)")
    out.rejects = sorted([*result.rejects, *new_rejects], key=lambda r: r.line)
    return out


def validate_records(records: Iterable[Record], policy: ValidationPolicy | None = None,
                     source: str = "<records>") -> ReadResult:
    """Validate in-memory records (lines are positions, 1-based) — for stages that build records themselves."""
    rr = ReadResult(source=source, format="records")
    for i, r in enumerate(records, start=1):
        rr.add(r, i)
    return validate(rr, policy)
