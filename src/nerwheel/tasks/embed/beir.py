"""The embedding task's data on disk: the BEIR layout, and graded pairs JSONL.

**BEIR folder** (what ``embed pairs`` writes and ``embed train`` / ``embed evaluate`` read)::

    corpus.jsonl          {"_id", "title", "text", ...}     one passage per line
    queries.jsonl         {"_id", "text", ...}              one query per line
    qrels/<split>.tsv     query-id <TAB> corpus-id <TAB> score   (header line; score: graded relevance, 0 = judged
                                                                  not relevant)

**Graded pairs** (e.g. a search log judged by people)::

    {"query": "...", "passage": "...", "label": 0-4}

Both read into one in-memory form, :class:`RetrievalData`, with every line
that cannot be used kept as a :class:`~nerwheel.formats.base.Reject` (file,
line, kind, reason) so ``read = accepted + rejected`` holds per file. A qrels
line whose query or passage is not in ``queries.jsonl`` / ``corpus.jsonl`` is
such a reject (``kind: missing-passage`` / ``missing-query``), never a crash
and never silently dropped. Extra fields on corpus and query lines are kept in
``meta`` (``split``, ``file``, ``line``, ``teacher`` ...).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.errors import DataError
from nerwheel.formats.base import Reject, atomic_path
from nerwheel.formats.lines import Line, iter_json_lines, iter_lines
from nerwheel.stages.split import normalize_text

__all__ = ["CORPUS_FILE", "QRELS_DIR", "QUERIES_FILE", "FileCount", "RetrievalData", "is_beir_dir", "query_id",
           "read_beir", "read_corpus", "read_graded_pairs", "read_pairs", "write_beir", "write_corpus"]

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"
QRELS_HEADER = "query-id\tcorpus-id\tscore"
LINE_KEY = "_line"  # in meta: the line of corpus.jsonl / queries.jsonl the entry was read from (never written)


@dataclass
class FileCount:
    """``read = accepted + rejected`` for one input file (lines holding data; blank lines are not counted)."""

    path: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "read": self.read, "accepted": self.accepted, "rejected": self.rejected}

    def reject(self, data: RetrievalData, reject: Reject) -> None:
        self.rejected += 1
        data.rejects.append(reject)


@dataclass
class RetrievalData:
    """Passages, queries and graded judgements by split (``qrels[split][qid][cid] = grade``).

    ``corpus_meta`` / ``query_meta`` keep the extra fields of each line.
    """

    corpus: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    corpus_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    query_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    files: list[FileCount] = field(default_factory=list)
    source: str = ""

    def split(self, name: str) -> dict[str, dict[str, int]]:
        """The judgements of ``name``; a clear error naming the splits there when it has none."""
        if name not in self.qrels or not self.qrels[name]:
            have = ", ".join(f"{k} ({len(v)} queries)" for k, v in self.qrels.items() if v) or "none"
            raise DataError(f"{self.source}: no judgements for split {name!r} (qrels/{name}.tsv); splits "
                                 f"there: {have}", field="split")
        return self.qrels[name]

    def counts(self) -> dict[str, Any]:
        return {
            "corpus": len(self.corpus), "queries": len(self.queries),
            "qrels": {s: {"queries": len(q), "pairs": sum(len(v) for v in q.values()),
                          "positive": sum(1 for v in q.values() for g in v.values() if g > 0)}
                      for s, q in self.qrels.items()},
            "rejected": len(self.rejects), "files": [f.to_dict() for f in self.files],
        }


def query_id(text: str) -> str:
    """A content id for a query text (used when pairs come without ids)."""
    return "q-" + hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:12]


def is_beir_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_dir() and (p / CORPUS_FILE).is_file()


def _text_field(obj: Any, key: str, where: tuple[str, int], raw: str, kind: str) -> str | Reject:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value.strip():
        got = "missing" if not isinstance(obj, dict) or key not in obj else f"{type(value).__name__} {value!r:.40}"
        return Reject(where[0], where[1], f"{key!r} must be a non-empty string, got {got}", raw, kind=kind)
    return value


def _json_rows(path: Path, data: RetrievalData) -> Iterator[tuple[FileCount, Line, Any]]:
    """``(count, line, decoded JSON)`` per non-blank line of ``path``; a line that is no JSON is a reject.

    ``count`` (also appended to ``data.files``) has ``read`` kept here; the caller accepts or rejects each row.
    """
    count = FileCount(str(path))
    data.files.append(count)
    for item in iter_json_lines(path):
        count.read += 1
        if isinstance(item, Reject):
            count.reject(data, item)
            continue
        yield count, *item


def _read_jsonl_table(path: Path, id_key: str, text_keys: tuple[str, ...], kind: str,
                      data: RetrievalData) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """``{id: text}`` and ``{id: extra fields}`` of a BEIR corpus or queries file; rejects into ``data``."""
    texts: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    name = str(path)
    for count, line, obj in _json_rows(path, data):
        raw_id = obj.get(id_key) if isinstance(obj, dict) else None
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or not str(raw_id).strip():
            count.reject(data, Reject(name, line.number, f"{id_key!r} must be a non-empty string or integer",
                                      line.text, kind=kind))
            continue
        rid = str(raw_id)
        text = _text_field(obj, text_keys[-1], (name, line.number), line.text, kind)
        if isinstance(text, Reject):
            count.reject(data, text)
            continue
        title = obj.get("title") if len(text_keys) > 1 else None
        if isinstance(title, str) and title.strip():
            text = f"{title.strip()} {text}"
        if rid in texts:
            count.reject(data, Reject(name, line.number, f"duplicate {id_key} {rid!r} (first on an earlier line); "
                                      "ids must be unique", line.text, kind="duplicate"))
            continue
        count.accepted += 1
        texts[rid] = text
        meta[rid] = {k: v for k, v in obj.items() if k not in (id_key, *text_keys)} | {LINE_KEY: line.number}
    return texts, meta


def _read_qrels(path: Path, data: RetrievalData) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    count = FileCount(str(path))
    data.files.append(count)
    name = str(path)
    first = True
    for item in iter_lines(path):
        if isinstance(item, Reject):
            count.read += 1
            count.reject(data, item)
            continue
        cells = item.text.split("\t")
        if first and cells[0].strip().lower() in ("query-id", "query_id", "qid"):
            first = False
            continue  # the header
        first = False
        count.read += 1
        reject = None
        if len(cells) < 2:
            reject = ("qrels", "expected query-id <TAB> corpus-id <TAB> score")
        else:
            qid, cid = cells[0].strip(), cells[1].strip()
            grade: int | None = 1
            if len(cells) >= 3:
                try:
                    grade = int(float(cells[2]))
                except ValueError:
                    grade = None
            if grade is None or grade < 0:
                reject = ("qrels", f"score {cells[2].strip()!r} is not a non-negative integer grade")
            elif cid not in data.corpus:
                reject = ("missing-passage", f"corpus-id {cid!r} is not in {CORPUS_FILE}; the pair has no passage")
            elif qid not in data.queries:
                reject = ("missing-query", f"query-id {qid!r} is not in {QUERIES_FILE}")
            elif cid in qrels.get(qid, {}):
                reject = ("duplicate", f"pair ({qid}, {cid}) judged twice; the first judgement is kept")
        if reject is not None:
            count.reject(data, Reject(name, item.number, reject[1], item.text, kind=reject[0]))
            continue
        count.accepted += 1
        qrels.setdefault(qid, {})[cid] = grade  # type: ignore[assignment]
    return qrels


def read_beir(path: str | os.PathLike[str], splits: Iterable[str] | None = None) -> RetrievalData:
    """Read a BEIR folder; ``splits`` (default: every ``qrels/*.tsv``) picks the judgement files."""
    root = Path(path)
    for need in (CORPUS_FILE, QUERIES_FILE):
        if not (root / need).is_file():
            raise DataError(f"{root}: not a BEIR folder, {need} is missing (expected {CORPUS_FILE}, "
                                 f"{QUERIES_FILE} and {QRELS_DIR}/<split>.tsv)")
    data = RetrievalData(source=str(root))
    data.corpus, data.corpus_meta = _read_jsonl_table(root / CORPUS_FILE, "_id", ("title", "text"), "corpus", data)
    data.queries, data.query_meta = _read_jsonl_table(root / QUERIES_FILE, "_id", ("text",), "query", data)
    names = list(splits) if splits is not None else sorted(p.stem for p in (root / QRELS_DIR).glob("*.tsv"))
    for split in names:
        f = root / QRELS_DIR / f"{split}.tsv"
        if not f.is_file():
            have = ", ".join(sorted(p.stem for p in (root / QRELS_DIR).glob("*.tsv"))) or "none"
            raise DataError(f"{f}: missing; the qrels splits in {root} are: {have}", field="split")
        data.qrels[split] = _read_qrels(f, data)
    if not data.corpus:
        raise DataError(f"{root / CORPUS_FILE}: no usable passage ({len(data.rejects)} lines rejected)")
    return data


def read_corpus(path: str | os.PathLike[str]) -> RetrievalData:
    """Only ``corpus.jsonl`` of a folder (the output of ``embed split``), with its rejects."""
    root = Path(path)
    f = root / CORPUS_FILE if root.is_dir() else root
    if not f.is_file():
        raise DataError(f"{f}: missing; give the folder `nerwheel embed split` wrote (it holds {CORPUS_FILE})")
    data = RetrievalData(source=str(root))
    data.corpus, data.corpus_meta = _read_jsonl_table(f, "_id", ("title", "text"), "corpus", data)
    if not data.corpus:
        raise DataError(f"{f}: no usable passage ({len(data.rejects)} lines rejected)")
    return data


def read_graded_pairs(path: str | os.PathLike[str], *, val_ratio: float = 0.2, seed: int = 0,
                      split: str | None = None) -> RetrievalData:
    """Read ``{"query", "passage", "label"}`` lines; ids are content hashes.

    Without ``split``, queries go to ``train`` / ``val`` by a seeded hash of the
    query text in proportion ``1 - val_ratio : val_ratio``: validation is carved
    *by query*, so no query is judged in both (carving by pair would leak).
    With ``split`` every pair lands there (e.g. ``test`` for evaluation).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file; give graded pairs JSONL or a BEIR folder")
    if split is None and not 0 < val_ratio < 1:
        raise DataError(f"val_ratio {val_ratio} must lie strictly between 0 and 1", field="val_ratio")
    data = RetrievalData(source=str(p))
    name = str(p)
    for count, line, obj in _json_rows(p, data):
        query = _text_field(obj, "query", (name, line.number), line.text, "pair")
        passage = _text_field(obj, "passage", (name, line.number), line.text, "missing-passage")
        label = obj.get("label", 1) if isinstance(obj, dict) else None
        reject = next((r for r in (query, passage) if isinstance(r, Reject)), None)
        if reject is None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
            reject = Reject(name, line.number, f"'label' must be a non-negative integer grade, got {label!r}",
                            line.text, kind="pair")
        if reject is not None:
            count.reject(data, reject)
            continue
        qid, cid = query_id(query), _passage_id(passage)  # type: ignore[arg-type]
        part = split or _query_split(query, val_ratio, seed)  # type: ignore[arg-type]
        judged = data.qrels.setdefault(part, {}).setdefault(qid, {})
        if cid in judged:
            count.reject(data, Reject(name, line.number, "the same (query, passage) pair was judged on an earlier "
                                      "line; the first judgement is kept", line.text, kind="duplicate"))
            continue
        count.accepted += 1
        data.queries.setdefault(qid, query)  # type: ignore[arg-type]
        data.corpus.setdefault(cid, passage)  # type: ignore[arg-type]
        judged[cid] = label
    if not data.corpus:
        raise DataError(f"{p}: no usable pair ({len(data.rejects)} lines rejected; first: "
                        f"{data.rejects[0] if data.rejects else 'the file is empty'})")
    return data


def _passage_id(text: str) -> str:
    from nerwheel.tasks.embed.passages import passage_id

    return passage_id(text)


def _query_split(query: str, val_ratio: float, seed: int) -> str:
    h = hashlib.blake2b(f"{seed}\x00{normalize_text(query)}".encode(), digest_size=8).digest()
    return "val" if int.from_bytes(h, "big") / 2**64 < val_ratio else "train"


def read_pairs(path: str | os.PathLike[str], *, splits: Iterable[str] | None = None, val_ratio: float = 0.2,
               seed: int = 0) -> RetrievalData:
    """A BEIR folder or a graded pairs file, whichever ``path`` is."""
    if Path(path).is_dir():
        return read_beir(path, splits)
    return read_graded_pairs(path, val_ratio=val_ratio, seed=seed)


def _jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_corpus(out: str | os.PathLike[str], data: RetrievalData) -> Path:
    """Write ``corpus.jsonl`` alone (what ``embed split`` hands to ``embed pairs``)."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    _jsonl(root / CORPUS_FILE, ({"_id": cid, "title": "", "text": text,
                                 **{k: v for k, v in data.corpus_meta.get(cid, {}).items() if k != LINE_KEY}}
                                for cid, text in data.corpus.items()))
    return root / CORPUS_FILE


def write_beir(out: str | os.PathLike[str], data: RetrievalData) -> Path:
    """Write ``data`` as a BEIR folder (extra fields of each line written back beside ``_id``/``text``)."""
    root = Path(out)
    (root / QRELS_DIR).mkdir(parents=True, exist_ok=True)
    write_corpus(root, data)
    _jsonl(root / QUERIES_FILE, ({"_id": qid, "text": text,
                                  **{k: v for k, v in data.query_meta.get(qid, {}).items() if k != LINE_KEY}}
                                 for qid, text in data.queries.items()))
    for split, judged in data.qrels.items():
        with atomic_path(root / QRELS_DIR / f"{split}.tsv") as tmp, open(tmp, "w", encoding="utf-8",
                                                                         newline="\n") as f:
            f.write(QRELS_HEADER + "\n")
            for qid, grades in judged.items():
                for cid, grade in grades.items():
                    f.write(f"{qid}\t{cid}\t{grade}\n")
    return root

