"""Versioned prompt templates (``ner.v1.jinja``, ``pos.v1.jinja``) and few-shot example selection.

Templates are files, never strings glued together in code; a changed prompt
gets a new version name and old versions stay as they were, so a cached run can
be reproduced. Few-shot examples are picked deterministically from a seed set so
that every entity type is shown ``per_type`` times.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from nerwheel.errors import ConfigError
from nerwheel.labels import ADDRESS_LABELS
from nerwheel.llm.definitions import LABEL_DEFINITIONS, POS_PREFIX, POS_TAGS
from nerwheel.records import Record

__all__ = ["PROMPTS", "SYNTH_SCHEMA", "Prompt", "entity_schema", "get_prompt", "render_template", "select_examples",
           "synth_messages"]

HERE = Path(__file__).parent


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE)), undefined=jinja2.StrictUndefined,
                              autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def _answer_schema(key: str, tag: str, values: Sequence[str]) -> dict[str, Any]:
    """JSON schema of ``{key: [{"text": ..., tag: one of values}]}``: the shape of every answer we ask for."""
    item = {"type": "object", "properties": {"text": {"type": "string"}, tag: {"type": "string", "enum": list(values)}},
            "required": ["text", tag]}
    return {"type": "object", "properties": {key: {"type": "array", "items": item}}, "required": [key]}


def entity_schema(labels: Sequence[str]) -> dict[str, Any]:
    """JSON schema of an entity answer (sent as ``response_format`` where supported)."""
    return _answer_schema("entities", "label", labels)


def pos_schema() -> dict[str, Any]:
    """JSON schema of a POS answer (tokens with their tag)."""
    return _answer_schema("tokens", "pos", list(POS_TAGS))


@dataclass(frozen=True)
class Example:
    text: str
    answer: str  # the JSON the model should give for ``text``


@dataclass(frozen=True)
class Prompt:
    """A named template version with its answer schema and the parser that reads its answers."""

    name: str
    template: str
    parser: str
    mode: str

    def schema(self, labels: Sequence[str] = ADDRESS_LABELS) -> dict[str, Any]:
        return entity_schema(labels) if self.mode == "entity" else pos_schema()

    def definitions(self, labels: Sequence[str] = ADDRESS_LABELS) -> list[tuple[str, str, str]]:
        if self.mode == "pos":
            return [(t, zh, en) for t, (zh, en) in POS_TAGS.items()]
        return [(lab, *LABEL_DEFINITIONS.get(lab, (lab, lab))) for lab in labels]

    def examples(self, records: Iterable[Record]) -> list[Example]:
        out = []
        for r in records:
            if self.mode == "pos":
                items = [{"text": e.text, "pos": e.label.removeprefix(POS_PREFIX)} for e in r.entities]
                answer = {"tokens": items}
            else:
                answer = {"entities": [{"text": e.text, "label": e.label} for e in r.entities]}
            out.append(Example(r.text, json.dumps(answer, ensure_ascii=False)))
        return out

    def render(self, text: str, examples: Sequence[Record] = (), labels: Sequence[str] = ADDRESS_LABELS) -> str:
        return _env().get_template(self.template).render(
            text=text, definitions=self.definitions(labels), examples=self.examples(examples))

    def messages(self, text: str, examples: Sequence[Record] = (),
                 labels: Sequence[str] = ADDRESS_LABELS) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.render(text, examples, labels)}]


PROMPTS: dict[str, Prompt] = {
    "ner.v1": Prompt("ner.v1", "ner.v1.jinja", parser="entities.v1", mode="entity"),
    "pos.v1": Prompt("pos.v1", "pos.v1.jinja", parser="pos.v1", mode="pos"),
}


def get_prompt(name: str) -> Prompt:
    if name not in PROMPTS:
        raise ConfigError(f"unknown prompt {name!r}; versions available: {', '.join(PROMPTS)}")
    return PROMPTS[name]


def render_template(name: str, **values: Any) -> str:
    """Render the template file ``name`` (e.g. ``queries.v1.jinja``) of this folder; a missing value is an error."""
    return _env().get_template(name).render(**values)


def synth_messages(hints: Sequence[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Messages asking for one new address text containing ``hints`` (text, label, explanation)."""
    return [{"role": "user", "content": _env().get_template("synth.v1.jinja").render(hints=list(hints))}]


SYNTH_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def _stable(r: Record) -> str:
    return hashlib.sha1(r.text.encode()).hexdigest()


def select_examples(seed: Iterable[Record], per_type: int = 4, labels: Sequence[str] | None = None) -> list[Record]:
    """Few-shot records so that each label is shown at least ``per_type`` times where the seed allows.

    Deterministic (records are ranked by a hash of their text, not by file
    order or randomness). Labels are served rarest first, so a rare type is not
    crowded out; a record that shows several needed types is preferred.
    """
    pool = sorted((r for r in seed if r.entities), key=_stable)
    have = Counter(e.label for r in pool for e in r.entities)
    wanted = [lab for lab in (labels or sorted(have)) if have[lab]]
    wanted.sort(key=lambda lab: (have[lab], lab))
    shown: Counter[str] = Counter()
    chosen: list[Record] = []
    for lab in wanted:
        while shown[lab] < per_type:
            candidates = [r for r in pool if r not in chosen and any(e.label == lab for e in r.entities)]
            if not candidates:
                break
            best = max(candidates, key=lambda r: sum(1 for lb in {e.label for e in r.entities}
                                                     if shown[lb] < per_type and lb in wanted))
            chosen.append(best)
            shown.update({e.label for e in best.entities})
    return chosen
