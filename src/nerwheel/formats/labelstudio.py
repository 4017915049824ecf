"""Label Studio task JSON: export records for human review, import the reviewed result.

Export (``write``) makes one task per record, for a project whose labelling
config is a ``<Labels name="label" toName="text">`` over ``<Text name="text"
value="$text">`` (the writer also leaves that config beside the tasks as
``<stem>.label_config.xml``, listing every label of the schema given as
``labels`` and every label in the records)::

    {"data": {"text": "...", "id": "<record id>"},
     "meta": {"record": {...record meta...}, "sources": ["kb", "llm:qwen"]},
     "predictions": [{"model_version": "kb", "score": 0.9,
                      "result": [{"id": "r0", "from_name": "label", "to_name": "text", "type": "labels",
                                  "value": {"start": 0, "end": 3, "text": "浙江省", "labels": ["prov"]},
                                  "score": 0.9}]}]}

Entities are grouped into one prediction per ``source`` (teacher or model
version) so reviewers see who proposed what; the provenance also goes in
``meta.sources``.

Import (``read``) takes ``source="annotations"`` by default: the latest
non-cancelled annotation of each task becomes the record (entity source
``human``; the task, annotation and annotator ids go in ``meta["review"]``). A
task nobody has annotated is rejected as ``not-reviewed``, so unreviewed
machine labels never pass for gold. ``source="predictions"`` reads the
predictions instead (re-importing an export), ``"auto"`` takes annotations when
there are any, else predictions.

A region that is not a well-formed span (no ``type``, a ``value`` without
``start``/``end``/``labels``, empty ``labels``, a span type other than
``labels``) rejects its task with the reason: dropping it would turn the task
into reviewed gold that lacks the entity. Results of other types (``choices``,
``textarea``, ``rating``, ``relation``) are not spans; they are skipped and
counted in the notes.

Offsets are code points (Python ``str`` indices), which current Label Studio
stores; versions before the fix for HumanSignal/label-studio#1008 stored
JavaScript UTF-16 offsets, which differ after an emoji or other astral
character. A region whose ``value.text`` matches only under the UTF-16 reading
is converted (and counted in the notes); one that matches neither is rejected.

Label Studio's JSON-MIN export (data fields at the top level, the annotation's
regions under the labelling config's ``from_name``, ``label`` by default) is
read too: its tasks are reviewed annotations (source ``human``), and a task
without an annotation is ``not-reviewed`` as above.

The file is a JSON array (what Label Studio exports) or JSON lines of tasks.
For an array, each task's line is where it starts in the file; a syntax error
rejects the rest of the file from that line (one reject, saying so), after
keeping every task before it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerwheel.formats import safejson
from nerwheel.formats.base import BadRecord, FormatError, Parsed, Reject, WriteResult, atomic_path, check_entity
from nerwheel.formats.lines import BOM, NOTE_BOM, iter_json_lines
from nerwheel.records import Entity, Record

NAME = "labelstudio"
CAN_EXPRESS = "everything (overlaps as separate regions, sources as predictions, meta in task meta)"
SOURCES = ("annotations", "predictions", "auto")
NOTE_UTF16 = "Label Studio UTF-16 offsets converted to code points"
NOTE_IGNORED = "non-span Label Studio results ignored"


# -- reading ---------------------------------------------------------------------------------------
def _utf16_to_cp(text: str, offset: int) -> int | None:
    """Code-point index for a UTF-16 code-unit offset, or None if it falls inside a surrogate pair."""
    units = 0
    for i, ch in enumerate(text):
        if units == offset:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > offset:
            return None
    return len(text) if units == offset else None


def _entities(text: str, result: Any, where: str, *, from_name: str | None, source: str | None,
              notes: Counter[str] | None) -> list[Entity]:
    if not isinstance(result, list):
        raise BadRecord(f"{where}.result must be a list")
    out: list[Entity] = []
    for j, item in enumerate(result):
        w = f"{where}.result[{j}]"
        if not isinstance(item, dict):
            raise BadRecord(f"{w} is not an object")
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise BadRecord(f"{w} has no 'type'; a span region is {{\"type\": \"labels\", \"value\": {{\"start\", "
                            "\"end\", \"text\", \"labels\"}}}}: fix the export or remove the region")
        if kind != "labels" and kind.endswith("labels"):
            raise BadRecord(f"{w}: {kind!r} regions cannot be read (nerwheel reads text spans of a <Labels> tag); "
                            "its labels would be lost: label the text with <Labels>, or remove the region")
        if kind != "labels" or (from_name is not None and item.get("from_name") != from_name):
            if notes is not None:  # choices, textarea, rating, relation...: not spans, nothing is lost
                notes[NOTE_IGNORED] += 1
            continue
        value = item.get("value")
        if not isinstance(value, dict):
            raise BadRecord(f"{w}.value must be an object with start, end, text, labels")
        missing = [k for k in ("start", "end", "labels") if k not in value]
        if missing:
            raise BadRecord(f"{w}.value lacks field(s) {', '.join(missing)}")
        labels = value["labels"]
        if not isinstance(labels, list) or not labels:
            raise BadRecord(f"{w}.value.labels must be a non-empty list of label names")
        start, end, span_text = value["start"], value["end"], value.get("text")
        score = item.get("score")
        if (span_text is not None and isinstance(start, int) and isinstance(end, int)
                and text[start:end] != span_text and any(ord(c) > 0xFFFF for c in text)):
            s2, e2 = _utf16_to_cp(text, start), _utf16_to_cp(text, end)
            if s2 is not None and e2 is not None and text[s2:e2] == span_text:
                start, end = s2, e2
                if notes is not None:
                    notes[NOTE_UTF16] += 1
        for label in labels:
            out.append(check_entity(text, start, end, label, span_text, where=f"{w}.value", source=source,
                                    score=score))
    return out


def _latest(annotations: list[Any]) -> dict[str, Any] | None:
    done = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        return None
    # ISO timestamps sort as strings; without them the list order (oldest first) decides
    return max(enumerate(done), key=lambda ia: (str(ia[1].get("updated_at") or ia[1].get("created_at") or ""), ia[0]))[1]


def parse_task(task: Any, *, default_id: str, source: str = "annotations", from_name: str | None = None,
               text_key: str = "text", notes: Counter[str] | None = None) -> Record:
    if not isinstance(task, dict):
        raise BadRecord(f"a task must be a JSON object, got {type(task).__name__}")
    if "data" not in task and isinstance(task.get(text_key), str):
        return _parse_min(task, default_id=default_id, source=source, from_name=from_name or "label",
                          text_key=text_key, notes=notes)
    data = task.get("data")
    if not isinstance(data, dict):
        raise BadRecord("task field 'data' is missing or not an object (export from Label Studio as JSON or "
                        "JSON-MIN)")
    text = data.get(text_key)
    if not isinstance(text, str):
        raise BadRecord(f"task field 'data.{text_key}' is missing or not a string")
    rid = data.get("id", task.get("id"))
    rid = default_id if rid is None or rid == "" else str(rid)
    tmeta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
    meta = dict(tmeta.get("record") or {}) if isinstance(tmeta.get("record") or {}, dict) else {}

    annotations = task.get("annotations") or task.get("completions") or []
    predictions = task.get("predictions") or []
    if not isinstance(annotations, list) or not isinstance(predictions, list):
        raise BadRecord("task fields 'annotations' and 'predictions' must be lists")
    chosen = _latest(annotations) if source in ("annotations", "auto") else None
    if chosen is not None:
        ents = _entities(text, chosen.get("result", []), "annotations[-1]", from_name=from_name, source="human",
                         notes=notes)
        review = {k: chosen[k2] for k, k2 in (("task_id", "task"), ("annotation_id", "id"),
                                              ("annotator", "completed_by"), ("updated_at", "updated_at"))
                  if chosen.get(k2) is not None}
        if task.get("id") is not None:
            review.setdefault("task_id", task["id"])
        meta["review"] = review
    elif source == "annotations":
        raise BadRecord("task has no completed (non-cancelled) annotation: it has not been reviewed yet "
                        "(read with source='predictions' to take the machine labels)", "not-reviewed")
    else:
        ents = []
        for i, p in enumerate(predictions):
            if not isinstance(p, dict):
                raise BadRecord(f"predictions[{i}] is not an object")
            mv = p.get("model_version")
            ents += _entities(text, p.get("result", []), f"predictions[{i}]", from_name=from_name,
                              source=str(mv) if mv not in (None, "", "nerwheel") else None, notes=notes)
    return Record(rid, text, tuple(ents), meta)


#: Keys Label Studio's JSON-MIN export adds beside the data fields and the regions.
_MIN_REVIEW = (("task_id", "id"), ("annotation_id", "annotation_id"), ("annotator", "annotator"),
               ("updated_at", "updated_at"))


def _parse_min(task: dict[str, Any], *, default_id: str, source: str, from_name: str, text_key: str,
               notes: Counter[str] | None) -> Record:
    """One task of a JSON-MIN export: data fields at the top level, the annotation's regions under ``from_name``.

    JSON-MIN carries only the (latest) annotation, no predictions: a task is
    reviewed when it has an ``annotation_id`` or regions; otherwise it is
    ``not-reviewed``, exactly as in the full JSON export.
    """
    text = task[text_key]
    regions = task.get(from_name)
    reviewed = task.get("annotation_id") is not None or regions is not None
    if source == "predictions":
        raise BadRecord("a JSON-MIN export holds annotations only, no predictions; export as JSON to read "
                        "predictions", "not-reviewed")
    if not reviewed:
        raise BadRecord("task has no annotation in this JSON-MIN export: it has not been reviewed yet", "not-reviewed")
    if regions is None:
        regions = []
    if not isinstance(regions, list):
        raise BadRecord(f"JSON-MIN field {from_name!r} must be a list of regions with start, end, text, labels")
    result = [{"type": "labels", "from_name": from_name, "value": r} for r in regions]
    ents = _entities(text, result, from_name, from_name=from_name, source="human", notes=notes)
    review = {k: task[k2] for k, k2 in _MIN_REVIEW if task.get(k2) is not None}
    record_id = task.get("id")
    return Record(default_id if record_id in (None, "") else str(record_id), text, tuple(ents), {"review": review})


def _iter_array(path: Path, notes: Counter[str] | None) -> Iterator[tuple[int, Any, str] | Reject]:
    """Yield ``(line, task, raw)`` per element of a top-level JSON array, with real line numbers."""
    name = str(path)
    blob = path.read_bytes()
    if blob.startswith(BOM):
        blob = blob[len(BOM):]
        if notes is not None:
            notes[NOTE_BOM] += 1
    data = blob.decode("utf-8", errors="surrogateescape")
    dec = json.JSONDecoder()
    pos, line = 0, 1

    def skip(i: int) -> int:
        while i < len(data) and data[i] in " \t\r\n":
            i += 1
        return i

    def advance(to: int) -> None:
        nonlocal pos, line
        line += data.count("\n", pos, to)
        pos = to

    i = skip(0)
    advance(i)
    if i >= len(data) or data[i] != "[":
        yield Reject(name, line, "expected a JSON array of Label Studio tasks", data[i:i + 200], kind="json")
        return
    i = skip(i + 1)
    first = True
    while True:
        advance(i)
        if i < len(data) and data[i] == "]":
            return
        if not first:
            if i >= len(data) or data[i] != ",":
                yield Reject(name, line, "invalid JSON: expected ',' or ']' between tasks; the rest of the file "
                                         f"from line {line} could not be read", data[i:i + 200], kind="json")
                return
            i = skip(i + 1)
            advance(i)
        try:
            obj, j = dec.raw_decode(data, i)
        except json.JSONDecodeError as exc:
            yield Reject(name, exc.lineno, f"invalid JSON: {exc.msg} at column {exc.colno}; the rest of the file "
                                           f"from line {line} could not be read", data[i:i + 200], kind="json")
            return
        except RecursionError:  # where this task ends cannot be found without decoding it
            yield Reject(name, line, f"JSON nested deeper than {safejson.MAX_DEPTH} levels; the rest of the file "
                                     f"from line {line} could not be read", data[i:i + 200], kind="json")
            return
        raw = data[i:j]
        if any("\udc80" <= c <= "\udcff" for c in raw):
            yield Reject(name, line, "invalid UTF-8 inside this task; re-save the file as UTF-8",
                         raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), kind="utf8")
        else:
            try:
                if safejson.needs_check(raw):
                    safejson.check_value(obj)
                yield line, obj, raw
            except BadRecord as exc:
                yield Reject(name, line, str(exc), raw, kind=exc.kind)
        first = False
        i = skip(j)


def _first_char(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.removeprefix(BOM).decode("utf-8", errors="replace").lstrip()[:1]


def read(path: Path, *, source: str = "annotations", from_name: str | None = None, text_key: str = "text",
         notes: Counter[str] | None = None) -> Iterator[Parsed | Reject]:
    if source not in SOURCES:
        raise FormatError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    name, stem = str(path), Path(path).stem
    items: Iterable[tuple[int, Any, str] | Reject]
    if _first_char(path) == "[":
        items = _iter_array(path, notes)
    else:
        items = ((it[0].number, it[1], it[0].text) if not isinstance(it, Reject) else it
                 for it in iter_json_lines(path, notes=notes))
    for item in items:
        if isinstance(item, Reject):
            yield item
            continue
        line, task, raw = item
        try:
            yield Parsed(line, parse_task(task, default_id=f"{stem}:{line}", source=source, from_name=from_name,
                                          text_key=text_key, notes=notes))
        except BadRecord as exc:
            yield Reject(name, line, str(exc), raw, kind=exc.kind)


# -- writing ---------------------------------------------------------------------------------------
def to_task(record: Record, *, from_name: str = "label", to_name: str = "text") -> dict[str, Any]:
    groups: dict[str, list[Entity]] = {}
    for e in record.entities:
        groups.setdefault(e.source or "nerwheel", []).append(e)
    predictions = []
    for src, ents in groups.items():
        result = []
        for k, e in enumerate(ents):
            region: dict[str, Any] = {
                "id": f"{record.id}-{src}-{k}"[-64:], "from_name": from_name, "to_name": to_name, "type": "labels",
                "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.label]},
            }
            if e.score is not None:
                region["score"] = e.score
            result.append(region)
        pred: dict[str, Any] = {"model_version": src, "result": result}
        scores = [e.score for e in ents if e.score is not None]
        if scores:
            pred["score"] = sum(scores) / len(scores)
        predictions.append(pred)
    return {
        "data": {"text": record.text, "id": record.id},
        "meta": {"record": dict(record.meta), "sources": sorted(groups)},
        "predictions": predictions,
    }


def label_config(labels: Iterable[str], *, from_name: str = "label", to_name: str = "text") -> str:
    from xml.sax.saxutils import quoteattr

    items = "\n".join(f"    <Label value={quoteattr(lab)}/>" for lab in sorted(set(labels)))
    return (f'<View>\n  <Labels name="{from_name}" toName="{to_name}">\n{items}\n  </Labels>\n'
            f'  <Text name="{to_name}" value="$text"/>\n</View>\n')


def write(records: Iterable[Record], path: Path, *, from_name: str = "label", to_name: str = "text",
          labels: Iterable[str] = (), origin: Any = None, on_unexpressible: str = "raise") -> WriteResult:
    """Write a JSON array of tasks (every record is expressible) and the labelling config beside it.

    The config lists ``labels`` (the schema: every label a reviewer may need,
    e.g. to add an entity no source proposed; a list, or comma-separated text
    as ``nerwheel data convert -w labels=a,b`` gives it) plus any other label
    the records carry.
    """
    result = WriteResult(str(path), NAME)
    labels = {x.strip() for x in labels.split(",") if x.strip()} if isinstance(labels, str) else set(labels)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("[")
        for r in records:
            f.write(",\n" if result.written else "\n")
            f.write(json.dumps(to_task(r, from_name=from_name, to_name=to_name), ensure_ascii=False))
            labels.update(r.labels)
            result.written += 1
        f.write("\n]\n")
    cfg = Path(path).with_name(Path(path).stem + ".label_config.xml")
    cfg.write_text(label_config(labels, from_name=from_name, to_name=to_name), encoding="utf-8")
    return result
