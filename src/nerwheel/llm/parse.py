"""Turning a model's answer into candidate (text, label) items, as a swappable, versioned function.

A parser only reads structure: it never looks at the input text or the label
set (that is :mod:`nerwheel.llm.validate`). Every item it cannot use becomes an
:class:`ItemReject` with a reason, so ``returned == len(candidates) + len(rejects)``
always holds. Registered names carry a version (``entities.v1``); a changed
parser gets a new name and old ones stay frozen, so cached runs stay reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.llm.extract import extract_json

__all__ = ["PARSERS", "Candidate", "ItemReject", "ParseResult", "get_parser", "parse_entities_v1", "parse_pos_v1"]

TEXT_KEYS = ("text", "entity", "span", "value", "word", "token", "name", "mention")
LABEL_KEYS = ("label", "type", "entity_type", "category", "tag", "pos")
LIST_KEYS = ("entities", "tokens", "words", "spans", "results", "items")


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    label: str
    index: int  # position in the answer, so placement can honour answer order


@dataclass(frozen=True, slots=True)
class ItemReject:
    reason: str
    item: str  # the item as the model wrote it (JSON), kept for the rejects file
    text: str | None = None
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "item": self.item, "text": self.text, "label": self.label}


@dataclass(slots=True)
class ParseResult:
    candidates: list[Candidate] = field(default_factory=list)
    rejects: list[ItemReject] = field(default_factory=list)
    method: str = "none"
    salvaged: int = 0
    error: str | None = None  # the answer as a whole had no usable JSON

    @property
    def returned(self) -> int:
        return len(self.candidates) + len(self.rejects)


def _items(value: Any) -> tuple[list[Any] | None, str | None]:
    """The list of items inside a decoded answer, or a reason why there is none."""
    if isinstance(value, list):
        return value, None
    if isinstance(value, dict):
        for k in LIST_KEYS:
            if isinstance(value.get(k), list):
                return value[k], None
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1 and not all(isinstance(x, str) for x in lists[0]):
            return lists[0], None
        # {"prov": ["浙江省"], "city": "杭州市"}: a label -> mention(s) mapping
        if value and all(isinstance(v, (str, list)) for v in value.values()):
            out: list[Any] = []
            for label, texts in value.items():
                for t in [texts] if isinstance(texts, str) else texts:
                    out.append({"text": t, "label": label})
            return out, None
        return None, f"JSON object without an entity list (keys: {', '.join(map(str, value))[:80]})"
    return None, f"JSON {type(value).__name__} is not a list of entities"


def _item(raw: Any, index: int) -> Candidate | ItemReject:
    dumped = json.dumps(raw, ensure_ascii=False)[:300]
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(x, str) for x in raw):
        text, label = raw
    elif isinstance(raw, dict):
        text = next((raw[k] for k in TEXT_KEYS if k in raw), None)
        label = next((raw[k] for k in LABEL_KEYS if k in raw), None)
        if text is None:
            return ItemReject(f"item has no text field (one of {', '.join(TEXT_KEYS)})", dumped, label=_s(label))
        if label is None:
            return ItemReject(f"item has no label field (one of {', '.join(LABEL_KEYS)})", dumped, text=_s(text))
    else:
        return ItemReject(f"item is a {type(raw).__name__}, not an object with text and label", dumped)
    if not isinstance(text, str) or not isinstance(label, str):
        return ItemReject("item text and label must be strings", dumped, text=_s(text), label=_s(label))
    if not text.strip():
        return ItemReject("item text is empty", dumped, text=text, label=label)
    if not label.strip():
        return ItemReject("item label is empty", dumped, text=text, label=label)
    return Candidate(text=text, label=label, index=index)


def _s(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def parse_entities_v1(content: str) -> ParseResult:
    """Items ``{"text", "label"}`` (or close variants) from an answer; see the module docstring."""
    ex = extract_json(content)
    result = ParseResult(method=ex.method, salvaged=ex.salvaged)
    if not ex.ok:
        result.error = ex.error
        return result
    items, problem = _items(ex.value)
    if items is None:
        result.error = problem
        return result
    for i, raw in enumerate(items):
        parsed = _item(raw, i)
        (result.candidates if isinstance(parsed, Candidate) else result.rejects).append(parsed)  # type: ignore[arg-type]
    for frag in ex.fragments:
        result.rejects.append(ItemReject("truncated: incomplete item at the end of a cut-off answer", frag[:300]))
    return result


def parse_pos_v1(content: str) -> ParseResult:
    """Word segmentation + POS answers: ``{"tokens": [{"text", "pos"}]}``; same contract as entities."""
    return parse_entities_v1(content)


PARSERS: dict[str, Callable[[str], ParseResult]] = {
    "entities.v1": parse_entities_v1,
    "pos.v1": parse_pos_v1,
}


def get_parser(name: str) -> Callable[[str], ParseResult]:
    if name not in PARSERS:
        raise ConfigError(f"unknown parser {name!r}; registered parsers are: {', '.join(PARSERS)}")
    return PARSERS[name]
