"""How components read their inputs and write their artifacts.

A pipeline parameter names data by URI (a local path or ``s3://bucket/key``,
read through :mod:`nerwheel.storage`), or is empty to mean the bundled sample
data set, so the embedded default runs anywhere the package is installed: a
laptop, the test suite, a cluster image. Artifacts between tasks are plain files
in the paths KFP hands out (``Output[Dataset].path``); on a cluster the KFP
launcher moves them to and from the ``s3://`` pipeline root.

A Dataset artifact is a folder: ``records.jsonl`` (span JSONL) plus, when there
are any, ``rejects.jsonl`` (input lines that were not accepted, with file, line
and reason) and other named side sets (``leaked.jsonl``). A folder, because the
KFP launcher uploads exactly the artifact's path: files written beside it would
be lost on a cluster. Input files may be in any format
:func:`nerwheel.formats.read_records` detects; rejects are kept, so records in =
accepted + rejected holds across the pipeline too.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.formats import ReadResult, read_records, write_records, write_rejects
from nerwheel.records import Record

__all__ = ["RECORDS_FILE", "REJECTS_FILE", "SAMPLE_FILES", "local_copy", "read_artifact", "read_dataset",
           "read_json", "resolve_uri", "sample_path", "write_dataset", "write_json"]

RECORDS_FILE = "records.jsonl"
REJECTS_FILE = "rejects.jsonl"

#: The bundled sample data set (``nerwheel/data/sample``): what an empty data URI means.
SAMPLE_FILES = {"seed": "seed.jsonl", "eval": "eval.jsonl", "texts": "traffic.txt"}


def sample_path(name: str) -> Path:
    """Path of a file of the bundled sample data set by role (``seed``, ``eval`` or ``texts``)."""
    from nerwheel.data.sample import sample_path as bundled

    if name not in SAMPLE_FILES:
        raise ConfigError(f"unknown sample file {name!r}; the sample data set has: {', '.join(SAMPLE_FILES)}")
    return bundled(SAMPLE_FILES[name])


def resolve_uri(uri: str, sample: str) -> str:
    """``uri`` itself, or the bundled sample file ``sample`` when ``uri`` is empty."""
    return uri.strip() or str(sample_path(sample))


@contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path holding ``uri``'s content: the path itself, or a temporary download from S3."""
    from nerwheel import storage

    if not storage.is_s3(uri):
        yield Path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="nerwheel-in-") as tmp:
        dest = Path(tmp) / (uri.rstrip("/").rsplit("/", 1)[-1] or "data")
        storage.get_storage().download_file(uri, dest)
        yield dest


def read_dataset(uri: str, *, format: str | None = None) -> ReadResult:
    """Read records from a local path or S3 URI; rejects are returned, never dropped."""
    with local_copy(uri) as path:
        result = read_records(path, format=format)
    result.source = uri
    return result


def read_artifact(path: str | os.PathLike[str], name: str = RECORDS_FILE) -> list[Record]:
    """The records of a Dataset artifact folder written by :func:`write_dataset` (any reject is a bug here).

    ``path`` is the folder (the task's local path) or its URI (``s3://...``: an artifact handed on by URI, as
    the fan-in's output is when one of two branches produced it); ``name`` picks a side set instead of
    ``records.jsonl`` (a missing side set is empty).
    """
    from nerwheel import storage

    uri = storage.join(str(path), name)
    if name != RECORDS_FILE and not storage.get_storage().exists(uri):
        return []
    with local_copy(uri) as local:
        result = read_records(local, format="spans")
    result.raise_first()
    return result.records


def write_dataset(path: str | os.PathLike[str], records: Iterable[Record], *, rejects: Iterable[Any] = (),
                  **side_sets: Iterable[Record]) -> int:
    """Write a Dataset artifact folder: records, rejects (if any) and named side sets (if not empty)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    records = list(records)
    write_records(records, folder / RECORDS_FILE, format="spans")
    rejects = list(rejects)
    if rejects:
        write_rejects(rejects, folder / REJECTS_FILE)
    for name, side in side_sets.items():
        side = list(side)
        if side:
            write_records(side, folder / f"{name}.jsonl", format="spans")
    return len(records)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """An artifact's JSON document, keys sorted (:func:`nerwheel.storage.write_json`: atomic)."""
    from nerwheel.storage import write_json as write

    return write(path, obj, sort_keys=True)


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
