"""Readers and writers for every on-disk format users bring, behind two calls.

``read_records(path, format=None)`` auto-detects the format by content unless
told, and returns a :class:`ReadResult` (accepted records + rejects with file,
line and reason). ``write_records(records, path, format)`` writes one and
returns a :class:`WriteResult` (records a format cannot express are refused,
never silently altered). One module per format; this file only dispatches.

- ``spans``: native JSONL, ``{"text", "entities": [{"start", "end", "label"}]}``
- ``mgeo``: ``{"address"|"text", "entities": {"road": "a, b"}}`` (values placed in the text)
- ``sft``: chinese_ner_sft JSONL (``start_idx``/``end_idx``/``entity_label``/``entity_text``)
- ``conll``: ``char<TAB>tag`` lines, BIO/BIOES/BMES, ``schema.json`` label map
- ``text``: plain lines, unlabelled
- ``labelstudio``: Label Studio tasks (export predictions, import reviewed annotations)
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerwheel.formats import conll, labelstudio, mgeo, safejson, sft, spans, text
from nerwheel.formats.base import (
    BadRecord,
    FormatError,
    Parsed,
    ReadResult,
    Reject,
    WriteResult,
    read_rejects,
    write_rejects,
)
from nerwheel.formats.lines import BOM, count_lines
from nerwheel.records import Record

__all__ = [
    "FORMATS",
    "BadRecord",
    "FormatError",
    "Parsed",
    "ReadResult",
    "Reject",
    "WriteResult",
    "detect_format",
    "read_records",
    "read_rejects",
    "write_records",
    "write_rejects",
]

# name -> module with read(path, **opts) and write(records, path, **opts)
FORMATS: dict[str, Any] = {m.NAME: m for m in (spans, mgeo, sft, conll, text, labelstudio)}
_LINE_FORMATS = {spans.NAME, mgeo.NAME, sft.NAME, text.NAME}
_TAG = re.compile(r"^(O|[A-Z][-_]\S+)$")


def _check_format(fmt: str) -> Any:
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; allowed formats are: {', '.join(sorted(FORMATS))}")
    return FORMATS[fmt]


def _json_kind(obj: Any) -> str | None:
    """Which JSON-lines format one decoded line looks like, or None if it says nothing."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("data"), dict):
        return labelstudio.NAME
    ents = obj.get("entities")
    if isinstance(ents, dict) or ("address" in obj and "text" not in obj):
        return mgeo.NAME
    if isinstance(ents, list):
        for e in ents:
            if isinstance(e, dict):
                if "start_idx" in e or "entity_label" in e:
                    return sft.NAME
                if "start" in e or "label" in e:
                    return spans.NAME
        return None  # an empty list fits spans and sft alike; look further
    if "text" in obj:
        return spans.NAME if "entities" not in obj else None
    return None


def detect_format(path: str | Path, *, sample_lines: int = 200) -> str:
    """Guess the format from the file's content (not its extension).

    A leading ``[`` means a Label Studio task array. JSON lines are told apart by
    their keys (``data`` -> labelstudio, an ``entities`` object or ``address`` ->
    mgeo, ``start_idx``/``entity_label`` -> sft, ``start``/``label`` -> spans);
    lines that are mostly (70%) ``X<TAB>TAG`` are CoNLL; anything else is plain text.
    """
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(1 << 16)
    lines = head.removeprefix(BOM).decode("utf-8", errors="replace").splitlines()
    if len(head) == 1 << 16 and lines:
        lines = lines[:-1]  # the last line may be cut
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("["):
        return labelstudio.NAME
    if first.startswith("{"):
        votes: Counter[str] = Counter()
        for ln in lines[:sample_lines]:
            if not ln.strip():
                continue
            try:
                kind = _json_kind(safejson.loads(ln))
            except (json.JSONDecodeError, BadRecord):  # the reader rejects such lines; they cast no vote
                continue
            if kind:
                votes[kind] += 1
        return votes.most_common(1)[0][0] if votes else spans.NAME
    body = [ln for ln in lines[:sample_lines] if ln.strip() and not ("\t" not in ln and ln.startswith("#"))]
    tagged = 0
    for ln in body:
        sep = "\t" if "\t" in ln else " "
        char, _, tag = ln.rpartition(sep)
        if ln.startswith("-DOCSTART-") or (len(char) == 1 and _TAG.match(tag.strip())):
            tagged += 1
    if body and tagged >= 0.7 * len(body):
        return conll.NAME
    return text.NAME


def _options_of(func: Any) -> list[str]:
    return [n for n, p in inspect.signature(func).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("notes", "origin", "on_unexpressible")]


def _check_options(fmt: str, func: Any, options: dict[str, Any], verb: str) -> None:
    allowed = _options_of(func)
    extra = sorted(set(options) - set(allowed) - {"origin", "on_unexpressible"})
    if extra:
        raise FormatError(f"format {fmt!r} has no {verb} option {', '.join(map(repr, extra))}; "
                          f"its {verb} options are: {', '.join(allowed) or '(none)'}")


def read_records(
    path: str | Path, format: str | None = None, *, strict: bool = False, progress: bool = False, **options: Any,
) -> ReadResult:
    """Read one file into a :class:`ReadResult`; ``strict`` raises :class:`FormatError` at the first reject.

    ``options`` go to the format's reader (``scheme=``/``schema=`` for conll,
    ``end=`` for sft, ``source=`` for labelstudio). ``progress`` shows a bar
    (:mod:`nerwheel.progress`: when stderr is a terminal, or forced).
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file")
    if p.is_dir():
        raise FormatError(f"{p}: is a folder; give a data file")
    fmt = format or detect_format(p)
    module = _check_format(fmt)
    _check_options(fmt, module.read, options, "read")
    result = ReadResult(source=str(p), format=fmt)
    items = module.read(p, notes=result.notes, **options)
    if progress:
        from nerwheel.progress import progress as bar

        total = count_lines(p) if fmt in _LINE_FORMATS else None
        items = bar(items, total=total, unit=" rec", desc=p.name, leave=False)
    try:
        for item in items:
            if strict and isinstance(item, Reject):
                raise FormatError(f"{item} (strict mode stops at the first error)")
            result.add(item)
    except ValueError as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{p}: {exc}") from None
    return result


def write_records(
    records: Iterable[Record], path: str | Path, format: str = "spans", **options: Any,
) -> WriteResult:
    """Write records in ``format``; see each format module for its options and what it can express.

    ``on_unexpressible="raise"`` (default) refuses to write a file when a record
    cannot be expressed faithfully; ``"reject"`` skips such records and returns
    them in :attr:`WriteResult.rejects` (``origin=(index, record) -> (file,
    line)`` names their input location).
    """
    module = _check_format(format)
    _check_options(format, module.write, options, "write")
    try:
        return module.write(records, Path(path), **options)
    except ValueError as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{path}: {exc}") from None
