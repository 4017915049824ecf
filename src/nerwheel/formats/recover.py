"""The text of a line a reader refused, where it can still be read: what keeps a rejected eval line guarding.

A broken eval line is still an eval text: if its text can be read out of the
raw line, it must be kept out of training data like any other
(:class:`nerwheel.leakage.EvalTexts`). Reading it is a format's job, so it
lives here, beside the readers whose field names it knows.
"""

from __future__ import annotations

import re

from nerwheel.formats import safejson
from nerwheel.formats.base import BadRecord

__all__ = ["recover_text"]

_TEXT_FIELD = re.compile(r'"(?:text|address)"\s*:\s*("(?:[^"\\]|\\.)*")')


def recover_text(raw: str, fmt: str) -> str | None:
    """The text of a line the reader refused, where it can still be read (for the eval guard).

    JSON formats: the ``text`` (``address`` for mgeo, ``data.text`` for Label Studio) field, from the
    decoded line or, when the line is not valid JSON, from the first complete ``"text": "..."`` in it.
    CoNLL: the first column of the sentence's lines. Plain text: the line, unless it could not be
    decoded (a replaced byte is not the text the eval set holds).
    """
    if not raw or "\ufffd" in raw:
        return None
    if fmt == "text":
        return raw if raw.strip() else None
    if fmt == "conll":
        chars = [ln.split("\t")[0] if "\t" in ln else (ln.rpartition(" ")[0] if " " in ln.strip() else ln.strip())
                 for ln in raw.splitlines()]
        text = "".join(c for c in chars if c)
        return text or None
    try:
        obj = safejson.loads(raw)  # a line nested too deep or holding a lone surrogate has no usable text
    except BadRecord:
        return None
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        data = obj.get("data")
        for value in (obj.get("text"), obj.get("address"), data.get("text") if isinstance(data, dict) else None):
            if isinstance(value, str) and value.strip():
                return value
        return None
    m = _TEXT_FIELD.search(raw)
    if m is None:
        return None
    try:
        value = safejson.loads(m.group(1))
    except ValueError:  # BadRecord included
        return None
    return value if isinstance(value, str) and value.strip() else None
