"""Label sets, label normalisation, and tag schemes (spans <-> BIO/BIOES/BMES).

Tagging schemes are declarations (:data:`SCHEMES`); the conversion logic lives
once in :func:`spans_to_tags` and :func:`tags_to_spans`. The label map of a
model (``id2label``) is built here by :class:`TagSet`, so the trainer, the ONNX
export, Triton and the evaluator all read it from one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError, DataError
from nerwheel.records import Entity, Record

__all__ = [
    "ADDRESS_LABELS",
    "ANY",
    "LabelSet",
    "TASK_LABELS",
    "SCHEMES",
    "LabelMap",
    "Scheme",
    "TagSet",
    "UnknownLabelError",
    "is_extension_label",
    "spans_to_tags",
    "tags_to_spans",
]

# MGeo / CCKS 2021 address element types, in the order a Chinese address usually reads.
ADDRESS_LABELS: tuple[str, ...] = (
    "prov", "city", "district", "devzone", "town", "community", "village_group", "road", "roadno",
    "intersection", "poi", "subpoi", "houseno", "cellno", "floorno", "roomno", "detail", "assist", "distance",
)


class UnknownLabelError(DataError):
    pass


def is_extension_label(label: str) -> bool:
    """Extension labels carry a namespace prefix (``pos:n``, ``kb:city``); target labels never contain ``:``.

    Teachers add them beside the target entities (part of speech, word
    segmentation, extra types); merge keeps them, a span head learns them as
    auxiliary outputs, and nothing reports them as target entities.
    """
    return ":" in label


#: What ``--labels`` / ``data.labels`` say to accept every label.
ANY = "any"


@dataclass(frozen=True)
class LabelSet:
    """The labels entities may carry, and where that set comes from (every summary names both).

    Resolved in this order by whoever reads labelled data: what the user gave (``--labels``,
    ``data.labels``), the data's own schema (CoNLL ``schema.json``), the model being continued,
    else the task's labels (:data:`TASK_LABELS`). ``labels=None`` accepts every label: only when
    the user says so (``any``).
    """

    labels: frozenset[str] | None
    source: str

    @classmethod
    def parse(cls, value: str | Iterable[str], source: str) -> LabelSet:
        """``"a,b"``, a list of names, or ``"any"``; an empty set is an error that says what to give."""
        names = [x.strip() for x in (value.split(",") if isinstance(value, str) else value) if x.strip()]
        if names == [ANY]:
            return cls(None, source)
        if not names:
            from nerwheel.errors import ConfigError

            raise ConfigError(f"{source}: give the allowed labels (e.g. prov,city,road) or '{ANY}'")
        return cls(frozenset(names), source)

    def describe(self) -> str:
        if self.labels is None:
            return f"labels: {ANY}, not checked (from {self.source})"
        return f"labels checked ({len(self.labels)}, from {self.source}): {', '.join(sorted(self.labels))}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "labels": sorted(self.labels) if self.labels is not None else ANY}


#: The NER task's labels: what an unknown label is judged against when nothing else names a set.
TASK_LABELS = LabelSet(frozenset(ADDRESS_LABELS), "the address task, the default")


@dataclass(frozen=True)
class Scheme:
    """A tagging scheme: which prefixes exist and what they mean.

    ``begin``/``inside``/``end``/``single`` name the prefix letters; a scheme
    without ``end``/``single`` (BIO) marks every non-first token ``inside``.
    """

    name: str
    begin: str
    inside: str
    end: str | None = None
    single: str | None = None
    outside: str = "O"

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(p for p in (self.begin, self.inside, self.end, self.single) if p)


SCHEMES: dict[str, Scheme] = {
    "BIO": Scheme("BIO", begin="B", inside="I"),
    "BIOES": Scheme("BIOES", begin="B", inside="I", end="E", single="S"),
    "BMES": Scheme("BMES", begin="B", inside="M", end="E", single="S"),
}


def get_scheme(name: str | Scheme) -> Scheme:
    if isinstance(name, Scheme):
        return name
    key = name.upper()
    if key == "IOB2":
        key = "BIO"
    if key not in SCHEMES:
        raise ConfigError(f"Invalid tagging scheme: {name!r}. Allowed schemes are: {', '.join(SCHEMES)}, IOB2")
    return SCHEMES[key]


def _split_tag(tag: str, scheme: Scheme) -> tuple[str, str | None]:
    if tag == scheme.outside:
        return scheme.outside, None
    if len(tag) < 3 or tag[1] not in "-_":
        raise DataError(
            f"Invalid tag is found: {tag!r}. Tags look like PREFIX-label with prefix in {', '.join(scheme.prefixes)}, "
            f"or {scheme.outside!r}"
        )
    prefix, label = tag[0], tag[2:]
    if prefix not in scheme.prefixes:
        raise DataError(f"Invalid tag is found: {tag!r}. Allowed prefixes are: {', '.join(scheme.prefixes)}")
    return prefix, label


def spans_to_tags(length: int, entities: Iterable[Entity | tuple[int, int, str]], scheme: str | Scheme = "BIO") -> list[str]:
    """Tag ``length`` positions (characters or tokens) from non-overlapping spans.

    Raises ``ValueError`` on overlapping spans: tags cannot express them, so the
    caller must resolve overlaps first (a validation policy).
    """
    s = get_scheme(scheme)
    tags = [s.outside] * length
    for e in entities:
        start, end, label = (e.start, e.end, e.label) if isinstance(e, Entity) else e
        if start < 0 or end > length or start >= end:
            raise DataError(f"span [{start}, {end}) out of range for length {length}")
        if any(t != s.outside for t in tags[start:end]):
            raise DataError(f"span {label}[{start}:{end}] overlaps another span; tags cannot express overlaps")
        if end - start == 1 and s.single:
            tags[start] = f"{s.single}-{label}"
            continue
        tags[start] = f"{s.begin}-{label}"
        for i in range(start + 1, end):
            tags[i] = f"{s.inside}-{label}"
        if s.end:
            tags[end - 1] = f"{s.end}-{label}"
    return tags


def tags_to_spans(tags: Sequence[str], scheme: str | Scheme = "BIO", *, strict: bool = False) -> list[tuple[int, int, str]]:
    """Rebuild ``(start, end, label)`` spans from tags.

    Lenient by default (like a decoder must be): an ``I`` without a ``B`` starts
    a span, a label change closes one. With ``strict=True`` an ill-formed
    sequence raises ``ValueError`` naming the position (used to validate CoNLL
    files, where a broken sequence is a data error).
    """
    s = get_scheme(scheme)
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    label: str | None = None

    def close(end: int) -> None:
        nonlocal start, label
        if start is not None and label is not None:
            spans.append((start, end, label))
        start, label = None, None

    for i, tag in enumerate(tags):
        prefix, lab = _split_tag(tag, s)
        if prefix == s.outside:
            close(i)
            continue
        if prefix == s.single:
            close(i)
            spans.append((i, i + 1, lab))  # type: ignore[arg-type]
            continue
        if prefix == s.begin:
            close(i)
            start, label = i, lab
        elif prefix in (s.inside, s.end):
            if start is None or label != lab:
                if strict:
                    raise DataError(f"tag {tag!r} at position {i} continues no open {lab!r} span")
                close(i)
                start, label = i, lab
        if prefix == s.end:
            close(i + 1)
        elif s.end and strict and prefix in (s.begin, s.inside):
            nxt = tags[i + 1] if i + 1 < len(tags) else s.outside
            np_, nl = _split_tag(nxt, s)
            if not (np_ in (s.inside, s.end) and nl == lab):
                raise DataError(f"tag {tag!r} at position {i} is not closed by an {s.end!r} tag")
    close(len(tags))
    return spans


@dataclass(frozen=True)
class TagSet:
    """The ordered label inventory of a model and its tag ids.

    ``tags`` is ``["O", "B-a", "I-a", "B-b", ...]`` (scheme order per label);
    this is what goes into ``config.id2label``.
    """

    labels: tuple[str, ...]
    scheme: str = "BIO"

    @classmethod
    def from_records(cls, records: Iterable[Record], scheme: str = "BIO", extra: Iterable[str] = ()) -> TagSet:
        seen = dict.fromkeys(extra)
        for r in records:
            for e in r.entities:
                seen.setdefault(e.label)
        return cls(tuple(sorted(seen)), scheme)

    @property
    def tags(self) -> list[str]:
        s = get_scheme(self.scheme)
        out = [s.outside]
        for lab in self.labels:
            out.extend(f"{p}-{lab}" for p in s.prefixes)
        return out

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.tags))

    @property
    def label2id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}


@dataclass(frozen=True)
class LabelMap:
    """Normalises label names: synonyms to canonical names, optional prefix for extension labels.

    A mapping file is JSON or YAML: ``{"省份": "prov", "省": "prov", "道路": "road"}``.
    ``allowed`` (canonical labels) makes unknown labels detectable; a label is
    looked up as-is, then case-folded. ``prefix`` is prepended to every output
    label (``pos:`` for word-segmentation/POS extension labels) so extension
    labels never collide with target labels.
    """

    mapping: Mapping[str, str] = field(default_factory=dict)
    allowed: frozenset[str] | None = None
    prefix: str = ""

    @classmethod
    def load(cls, path: str | Path, *, allowed: Iterable[str] | None = None, prefix: str = "") -> LabelMap:
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        data: Any
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ConfigError(f"{p}: a label map must be an object of synonym -> canonical label strings")
        return cls(mapping=data, allowed=frozenset(allowed) if allowed is not None else None, prefix=prefix)

    def normalize(self, label: str) -> str | None:
        """Canonical (prefixed) label, or ``None`` when ``allowed`` is set and the label is unknown."""
        raw = label.strip()
        canon = self.mapping.get(raw) or self.mapping.get(raw.casefold()) or raw
        lookup = {a.casefold(): a for a in self.allowed} if self.allowed is not None else None
        if lookup is not None:
            if canon in self.allowed:  # type: ignore[operator]
                pass
            elif canon.casefold() in lookup:
                canon = lookup[canon.casefold()]
            else:
                return None
        return f"{self.prefix}{canon}"

    def require(self, label: str) -> str:
        out = self.normalize(label)
        if out is None:
            raise UnknownLabelError(
                f"unknown label {label!r}; allowed labels are: {', '.join(sorted(self.allowed or ()))} "
                "(add a synonym to the label map file to accept it)"
            )
        return out
