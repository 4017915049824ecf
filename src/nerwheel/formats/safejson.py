"""Decoding JSON that came from outside (data files, model answers) into values every later step can handle.

``json.loads`` accepts two things that blow up far from where they came in:

- nesting deeper than the interpreter's recursion limit raises ``RecursionError``
  (a traceback, or a whole file aborted); nesting just under it loads, then
  breaks the first recursive step after it (``json.dumps`` of the record's meta
  in a writer, a deep copy). Records are shallow, so anything deeper than
  :data:`MAX_DEPTH` levels is refused here;
- a ``\\ud800`` escape decodes to a lone UTF-16 surrogate, which is a ``str``
  but not text: every UTF-8 writer later refuses it and aborts the whole
  output. Escaped surrogate *pairs* (``\\ud83d\\ude00``) are one character and
  are fine.

:func:`loads` refuses both with a :class:`~nerwheel.formats.base.BadRecord`
(kind ``json``) whose reason names the field, so a reader rejects that one
record and keeps the others. :func:`check_value` does the same for a value
decoded elsewhere (a ``raw_decode`` in an array reader). Both cost nothing
extra on ordinary records: the walk runs only when the text holds a
surrogate escape or more brackets than the depth limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nerwheel.formats.base import BadRecord

__all__ = ["MAX_DEPTH", "check_value", "loads", "needs_check"]

#: Deepest nesting accepted (a record with meta is 3-5 levels deep).
MAX_DEPTH = 64

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _too_deep() -> BadRecord:
    return BadRecord(f"JSON nested deeper than {MAX_DEPTH} levels; a record is a shallow object: this is not one",
                     "json")


def _surrogate_at(s: str) -> int | None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _where(path: list[str | int]) -> str:
    if not path:
        return "the top-level value"
    out = str(path[0]) if isinstance(path[0], str) else f"[{path[0]}]"
    for p in path[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return f"field {out!r}"


def check_value(value: Any) -> None:
    """Raise :class:`BadRecord` if ``value`` nests deeper than :data:`MAX_DEPTH` or holds a lone surrogate.

    Iterative (an explicit stack), so checking a deep value cannot itself recurse; the first problem in
    document order is the one reported.
    """
    stack: list[tuple[Any, int, list[str | int], bool]] = [(value, 1, [], False)]
    while stack:
        v, depth, path, is_key = stack.pop()
        if isinstance(v, str):
            at = _surrogate_at(v)
            if at is not None:
                what = f"a key of {_where(path)}" if is_key else _where(path)
                raise BadRecord(
                    f"{what} holds a lone UTF-16 surrogate {v[at]!r} at character {at} (a \\u escape "
                    "that is half of a pair); it is not text and cannot be written as UTF-8: fix the escape", "json")
        elif isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                raise _too_deep()
            pairs = v.items() if isinstance(v, dict) else enumerate(v)
            for k, item in reversed(list(pairs)):  # reversed: the stack pops them in document order
                stack.append((item, depth + 1, [*path, k], False))
                if isinstance(k, str):
                    stack.append((k, depth, path, True))


def needs_check(text: str) -> bool:
    """Whether ``text`` could hold a value :func:`check_value` refuses (cheap: two counts and a search)."""
    return text.count("[") + text.count("{") > MAX_DEPTH or ("\\u" in text and bool(_SURROGATE_ESCAPE.search(text)))


def loads(text: str) -> Any:
    """``json.loads`` for untrusted text: :class:`json.JSONDecodeError` as usual, :class:`BadRecord` for a value
    too deep or holding a lone surrogate."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    if needs_check(text):
        check_value(value)
    return value
