"""Getting JSON out of what a language model actually says.

Servers without constrained decoding wrap JSON in markdown fences, put prose
before or after it, and stop mid-array when they hit ``max_tokens``. The
extractor tries, in order: the whole text, a fenced block, the first balanced
value after leading prose; and when the value is cut off it salvages every
*complete* object of the first array, counting what it kept and what it had to
drop, so the caller can report it instead of silently losing it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nerwheel.formats import safejson
from nerwheel.formats.base import BadRecord

__all__ = ["Extracted", "extract_json"]

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)(?:```|$)", re.S)
_DECODER = json.JSONDecoder()


@dataclass(slots=True)
class Extracted:
    """The JSON value found (``None`` if none), how, and what truncation cost.

    ``salvaged`` counts complete objects recovered from a cut-off array,
    ``fragments`` holds the incomplete tails that had to be dropped.
    """

    value: Any = None
    method: str = "none"
    salvaged: int = 0
    fragments: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.method != "none"


def _salvage(text: str) -> Extracted | None:
    """Complete objects from the first array of a cut-off JSON text.

    Finds the first ``[``, then decodes ``{...}`` items one after another; the
    first item that does not decode is the truncated tail.
    """
    start = text.find("[")
    if start < 0:
        return None
    key = None
    head = text[:start]
    km = re.search(r'"([^"]+)"\s*:\s*$', head)
    if km:
        key = km.group(1)
    items: list[Any] = []
    pos = start + 1
    n = len(text)
    fragments: list[str] = []
    while pos < n:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            break
        try:
            item, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            tail = text[pos:].strip().rstrip("`").strip()
            if tail:
                fragments.append(tail)
            break
        items.append(item)
    if not items and not fragments:
        return None
    value: Any = {key: items} if key else items
    return Extracted(value=value, method="salvaged", salvaged=len(items), fragments=fragments)


def extract_json(text: str) -> Extracted:
    """Find the JSON value in a model's answer; see the module docstring for the order tried.

    A value nested deeper than :data:`~nerwheel.formats.safejson.MAX_DEPTH` or holding a lone UTF-16
    surrogate is no answer (``error`` says which): it fails that record, never the run.
    """
    try:
        found = _extract(text)
    except RecursionError:
        return Extracted(error=f"JSON nested deeper than {safejson.MAX_DEPTH} levels")
    if found.ok:
        try:
            safejson.check_value(found.value)
        except BadRecord as exc:
            return Extracted(error=str(exc))
    return found


def _extract(text: str) -> Extracted:
    stripped = text.strip()
    if not stripped:
        return Extracted(error="empty response")
    try:
        return Extracted(value=json.loads(stripped), method="whole")
    except json.JSONDecodeError:
        pass
    candidates = [m.group(1) for m in _FENCE.finditer(stripped)]
    for block in candidates:
        try:
            return Extracted(value=json.loads(block.strip()), method="fenced")
        except json.JSONDecodeError:
            continue
    for block in [*candidates, stripped]:
        starts = [m.start() for m in re.finditer(r"[\[{]", block)]
        if not starts:
            continue
        try:
            value, _ = _DECODER.raw_decode(block, starts[0])
            return Extracted(value=value, method="embedded")
        except json.JSONDecodeError:
            pass
        salvaged = _salvage(block[starts[0]:])
        if salvaged is not None:
            return salvaged
    return Extracted(error=f"no JSON object or array found in the response: {stripped[:120]!r}")
