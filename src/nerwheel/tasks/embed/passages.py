"""``embed split``: raw text files -> passages that fit the encoder, split 8:2 into train and val.

Rules, in order (each step counts what it removes, so the report reconciles):

1. **Files.** Every file given (folders are walked, hidden entries skipped) is
   read line by line, so a file of any size streams. A file with NUL bytes in
   its first 8 KiB is a binary file: rejected as a whole (``kind: binary``).
   A line that is not UTF-8 is rejected with file, line and byte offset.
2. **Sentences.** A line is cut after each sentence stop: ``。！？；`` always,
   ``.!?`` when followed by a space, the end of the line or a non-word
   character (so ``3.14`` and ``U.S.A`` stay whole); closing quotes and
   brackets stay with their sentence. A newline always ends a sentence, and a
   passage never crosses a line (one paragraph per line is the common form of
   raw Chinese text; two paragraphs glued together retrieve badly).
3. **Passages.** Consecutive sentences of a line are merged greedily while the
   passage stays within ``max_tokens`` tokens of the *target tokenizer*
   (special tokens and the ``passage: `` prefix are not counted: the encoder
   adds them). A sentence longer than ``max_tokens`` is cut at token
   boundaries into pieces that fit (``long="cut"``) or dropped
   (``long="drop"``); both are counted.
4. **Filters.** Passages under ``min_tokens`` tokens are dropped (headings,
   page numbers), and exact duplicates after normalisation (NFKC, spaces) are
   dropped; both counted.
5. **Split.** Passages go to ``train`` / ``val`` in proportion ``ratio`` by a
   seeded hash of their normalised text (:func:`nerwheel.stages.split.split_records`):
   the same corpus gives the same split whatever order the files come in.

Passage ids are content hashes (``doc-<12 hex>``), so a re-split of a grown
corpus keeps the ids (and the LLM cache) of passages that did not change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nerwheel.errors import DataError
from nerwheel.formats.base import Reject
from nerwheel.formats.lines import Line, iter_lines
from nerwheel.records import Record
from nerwheel.stages.split import normalize_text, parse_ratio, split_records

__all__ = ["REPORT_FILE", "SPLIT_NAMES", "SplitConfig", "SplitReport", "SplitResult", "TokenCounter", "corpus_files",
           "join_sentences", "passage_id", "sentences", "split_corpus", "write_split"]

SPLIT_NAMES = ("train", "val")
REPORT_FILE = "split.json"
REJECTS_FILE = "rejects.jsonl"
BINARY_PROBE_BYTES = 8192

#: Offsets (start, end) of each token of each text, special tokens excluded: what splitting needs to know of a
#: tokenizer. :func:`nerwheel.tasks.embed.model.token_counter` builds one from a model name.
TokenCounter = Callable[[Sequence[str]], list[list[tuple[int, int]]]]

_STRONG_STOPS = "。！？；"
_WEAK_STOPS = ".!?"
_CLOSERS = "”’\"'」』）)]》】"


class SplitConfig(BaseModel):
    """How raw text becomes passages. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(256, ge=8, le=8192, description="Longest passage, in tokens of the target tokenizer "
                            "(without special tokens and the passage prefix).")
    min_tokens: int = Field(4, ge=1, description="Shorter passages are dropped (headings, page numbers).")
    ratio: str = Field("8:2", description="train:val proportion, by a seeded hash of the passage text.")
    seed: int = 0
    long: Literal["cut", "drop"] = Field("cut", description="A sentence over max_tokens: cut at token boundaries "
                                         "into pieces that fit, or drop it.")
    max_bytes: int = Field(2 << 30, ge=1, description="Refuse corpora larger than this (bytes, all files).")
    max_passages: int = Field(2_000_000, ge=1, description="Refuse corpora that make more passages than this.")

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: str) -> str:
        try:
            weights = parse_ratio(v)
        except ValueError as e:
            raise ValueError(str(e)) from None
        if len(weights) != 2 or min(weights) <= 0:
            raise ValueError(f"ratio {v!r} must have two positive parts, train:val (e.g. 8:2)")
        return v

    @model_validator(mode="after")
    def _limits(self) -> SplitConfig:
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens {self.min_tokens} is above max_tokens {self.max_tokens}; lower min_tokens")
        return self


@dataclass
class SplitReport:
    """What went in and where it went; :meth:`check` proves every count is accounted for.

    ``lines.read = blank + used + rejected``; ``sentences.read = whole + cut + dropped_long``;
    ``passages.made = written + short + duplicates``; ``passages.written = train + val``.
    """

    files: dict[str, int] = field(default_factory=lambda: {"read": 0, "rejected": 0})
    bytes: int = 0
    lines: dict[str, int] = field(default_factory=lambda: {"read": 0, "blank": 0, "used": 0, "rejected": 0})
    sentences: dict[str, int] = field(default_factory=lambda: {"read": 0, "whole": 0, "cut": 0, "dropped_long": 0,
                                                               "pieces_from_cuts": 0})
    passages: dict[str, int] = field(default_factory=lambda: {"made": 0, "short": 0, "duplicates": 0,
                                                              "written": 0, "train": 0, "val": 0})
    tokens: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    tokenizer: str = ""

    def check(self) -> None:
        """Raise ``AssertionError`` naming the count that does not add up (a bug, never the user's data)."""
        ln, s, p = self.lines, self.sentences, self.passages
        problems = []
        if ln["read"] != ln["blank"] + ln["used"] + ln["rejected"]:
            problems.append(f"lines: read {ln['read']} != blank + used + rejected {ln}")
        if s["read"] != s["whole"] + s["cut"] + s["dropped_long"]:
            problems.append(f"sentences: read {s['read']} != whole + cut + dropped_long {s}")
        if p["made"] != p["written"] + p["short"] + p["duplicates"]:
            problems.append(f"passages: made {p['made']} != written + short + duplicates {p}")
        if p["written"] != p["train"] + p["val"]:
            problems.append(f"passages: written {p['written']} != train + val {p}")
        if problems:
            raise AssertionError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {"files": dict(self.files), "bytes": self.bytes, "lines": dict(self.lines),
                "sentences": dict(self.sentences), "passages": dict(self.passages), "tokens": dict(self.tokens),
                "tokenizer": self.tokenizer, "config": dict(self.config)}

    def summary(self) -> str:
        p, s = self.passages, self.sentences
        return (f"{self.files['read']} files ({self.files['rejected']} rejected), {self.lines['read']} lines "
                f"({self.lines['rejected']} rejected) -> {s['read']} sentences ({s['cut']} cut into "
                f"{s['pieces_from_cuts']} pieces, {s['dropped_long']} dropped as too long) -> {p['made']} passages "
                f"({p['short']} too short, {p['duplicates']} duplicates dropped) -> {p['train']} train + "
                f"{p['val']} val")


@dataclass
class SplitResult:
    passages: dict[str, list[Record]]  # "train" / "val" -> passages (meta: file, line, split)
    rejects: list[Reject]
    report: SplitReport


def passage_id(text: str) -> str:
    """A content id: the same passage text always gets the same id, across runs and corpus growth."""
    return "doc-" + hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:12]


def sentences(line: str) -> list[str]:
    """The sentences of one line (stops as in the module docstring), stripped, empty ones removed."""
    out: list[str] = []
    start, i, n = 0, 0, len(line)
    while i < n:
        ch = line[i]
        end = None
        if ch in _STRONG_STOPS:
            end = i + 1
        elif ch in _WEAK_STOPS:
            nxt = line[i + 1] if i + 1 < n else ""
            if not nxt or nxt.isspace() or nxt in _WEAK_STOPS or nxt in _CLOSERS or not (nxt.isalnum() or nxt == "_"):
                end = i + 1
        if end is None:
            i += 1
            continue
        while end < n and (line[end] in _STRONG_STOPS or line[end] in _WEAK_STOPS or line[end] in _CLOSERS):
            end += 1
        piece = line[start:end].strip()
        if piece:
            out.append(piece)
        start = i = end
    tail = line[start:].strip()
    if tail:
        out.append(tail)
    return out


def join_sentences(parts: Sequence[str]) -> str:
    """Glue sentences back into a text: a space between Latin-script ones, nothing between CJK ones."""
    out = ""
    for right in parts:
        out = f"{out} {right}" if out and ord(out[-1]) < 0x2E80 and ord(right[0]) < 0x2E80 else out + right
    return out


def corpus_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files behind ``paths``: files as given, folders walked (sorted, hidden entries skipped)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder; give text files or folders of them")
    return out


def _is_binary(path: Path) -> int | None:
    """The offset of the first NUL byte in the file's first 8 KiB (a binary file), else ``None``."""
    with open(path, "rb") as f:
        head = f.read(BINARY_PROBE_BYTES)
    at = head.find(b"\x00")
    return at if at >= 0 else None


class _Splitter:
    """Sentences of one line -> passages within the token budget (greedy merge, cut or drop the too long)."""

    def __init__(self, counter: TokenCounter, config: SplitConfig, report: SplitReport) -> None:
        self.counter, self.config, self.report = counter, config, report

    def passages(self, line: str) -> list[tuple[str, int]]:
        """``(passage, tokens)`` for one line."""
        sents = sentences(line)
        if not sents:
            return []
        cfg, s = self.config, self.report.sentences
        s["read"] += len(sents)
        offsets = self.counter(sents)
        units: list[tuple[str, int]] = []  # (text, tokens) of whole sentences and of cut pieces
        for text, offs in zip(sents, offsets, strict=True):
            if len(offs) <= cfg.max_tokens:
                s["whole"] += 1
                units.append((text, len(offs)))
            elif cfg.long == "drop":
                s["dropped_long"] += 1
            else:
                s["cut"] += 1
                pieces = self._cut(text, offs)
                s["pieces_from_cuts"] += len(pieces)
                units.extend(pieces)
        merged: list[str] = []
        current, used = "", 0
        for text, n in units:
            if current and used + n <= cfg.max_tokens:
                current, used = join_sentences((current, text)), used + n
                continue
            if current:
                merged.append(current)
            current, used = text, n
        if current:
            merged.append(current)
        return self._fit(merged)

    def _cut(self, text: str, offs: list[tuple[int, int]]) -> list[tuple[str, int]]:
        size = self.config.max_tokens
        pieces = []
        for at in range(0, len(offs), size):
            window = offs[at : at + size]
            start = window[0][0] if at else 0
            end = offs[at + size][0] if at + size < len(offs) else len(text)
            piece = text[start:end].strip()
            if piece:
                pieces.append((piece, len(window)))
        return pieces

    def _fit(self, merged: list[str]) -> list[tuple[str, int]]:
        """Re-count each merged passage as a whole (joining can change the segmentation); split any that grew."""
        if not merged:
            return []
        out: list[tuple[str, int]] = []
        for text, offs in zip(merged, self.counter(merged), strict=True):
            if len(offs) <= self.config.max_tokens:
                out.append((text, len(offs)))
            else:  # rare: cut at the token boundary like a long sentence (tokens, not sentences, are the limit)
                out.extend(self._cut(text, offs))
        return out


def split_corpus(paths: Iterable[str | os.PathLike[str]], counter: TokenCounter, config: SplitConfig | None = None,
                 *, tokenizer_name: str = "") -> SplitResult:
    """Split the text files behind ``paths`` into train/val passages (rules in the module docstring).

    Raises :class:`DataError` when nothing usable is left (an empty corpus, only binary files) or a
    bound is passed (``max_bytes``, ``max_passages``), naming the setting to change.
    """
    cfg = config or SplitConfig()
    report = SplitReport(config=cfg.model_dump(), tokenizer=tokenizer_name)
    files = corpus_files(paths)
    if not files:
        raise DataError("the corpus is empty: the folders given hold no files; give UTF-8 text files")
    total = sum(f.stat().st_size for f in files)
    if total > cfg.max_bytes:
        raise DataError(f"the corpus is {total:,} bytes, over max_bytes {cfg.max_bytes:,}; split it into "
                             "batches or raise max_bytes (--max-bytes)", field="max_bytes")
    if total == 0:
        raise DataError(f"the corpus is empty: {', '.join(str(f) for f in files[:3])}"
                        f"{' ...' if len(files) > 3 else ''} hold(s) 0 bytes; give UTF-8 text files")
    report.bytes = total
    splitter = _Splitter(counter, cfg, report)
    rejects: list[Reject] = []
    seen: dict[str, str] = {}
    made: list[Record] = []
    lengths: list[int] = []
    for path in files:
        at = _is_binary(path)
        if at is not None:
            report.files["rejected"] += 1
            rejects.append(Reject(str(path), 0, f"binary file (a NUL byte at offset {at}), not text; give UTF-8 "
                                  "text files (convert PDFs or Word files to text first)", kind="binary"))
            continue
        report.files["read"] += 1
        for item in _lines(path, report):
            if isinstance(item, Reject):
                report.lines["rejected"] += 1
                rejects.append(item)
                continue
            texts = splitter.passages(item.text)
            report.lines["used" if texts or sentences(item.text) else "blank"] += 1
            for text, n_tokens in texts:
                report.passages["made"] += 1
                if n_tokens < cfg.min_tokens:
                    report.passages["short"] += 1
                    continue
                key = normalize_text(text)
                if key in seen:
                    report.passages["duplicates"] += 1
                    continue
                pid = passage_id(text)
                seen[key] = pid
                made.append(Record(pid, text, meta={"file": str(path), "line": item.number}))
                lengths.append(n_tokens)
                if len(made) > cfg.max_passages:
                    raise DataError(f"the corpus makes more than max_passages {cfg.max_passages:,} passages; "
                                         "split it into batches or raise max_passages (--max-passages)",
                                         field="max_passages")
    if not made:
        why = "; ".join(str(r) for r in rejects[:3]) or "no line holds a sentence of at least min_tokens tokens"
        raise DataError(f"no passages: {len(files)} file(s) gave nothing usable ({why}); give UTF-8 text with "
                             "sentences")
    parts = split_records(made, cfg.ratio, names=SPLIT_NAMES, seed=cfg.seed)
    out = {name: [r.with_meta(split=name) for r in recs] for name, recs in parts.items()}
    for name in SPLIT_NAMES:
        report.passages[name] = len(out[name])
    report.passages["written"] = len(made)
    report.tokens = {"max_tokens": cfg.max_tokens, "mean": round(sum(lengths) / len(lengths), 2),
                     "max": max(lengths), "total": sum(lengths)}
    report.check()
    return SplitResult(out, rejects, report)


def _lines(path: Path, report: SplitReport) -> Iterator[Line | Reject]:
    """Every line of ``path`` (blank ones too, so they are counted), or its reject."""
    for item in iter_lines(path, skip_blank=False):
        report.lines["read"] += 1
        yield item


def write_split(result: SplitResult, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``corpus.jsonl`` (BEIR corpus rows plus ``split`` and ``source``), ``split.json`` and the rejects."""
    from nerwheel.formats.base import write_rejects
    from nerwheel.storage import write_json
    from nerwheel.tasks.embed.beir import RetrievalData, write_corpus

    root = Path(out)
    data = RetrievalData(source=str(root))
    for name in SPLIT_NAMES:
        for r in result.passages[name]:
            data.corpus[r.id] = r.text
            data.corpus_meta[r.id] = {"split": name, "source": f"{r.meta['file']}:{r.meta['line']}"}
    paths = {"corpus": write_corpus(root, data), "report": root / REPORT_FILE, "rejects": root / REJECTS_FILE}
    write_json(paths["report"], result.report.to_dict())
    write_rejects(result.rejects, paths["rejects"])
    return paths
