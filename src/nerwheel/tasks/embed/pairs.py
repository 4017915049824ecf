"""``embed pairs``: passages -> (query, passage) pairs in the BEIR layout, from an LLM or inverse cloze.

Input: the folder ``embed split`` wrote (``corpus.jsonl``, each passage with
its ``split``). Output: a BEIR folder (:mod:`nerwheel.tasks.embed.beir`):
``corpus.jsonl`` (every passage, with or without queries: the ones without are
the distractors retrieval has to rank below), ``queries.jsonl`` (each query
with its ``passage_id``, ``teacher`` and ``split``), ``qrels/train.tsv`` and
``qrels/val.tsv`` (a query's split is its passage's, so no validation passage
is ever trained on), ``pairs.json`` (the report) and ``rejects.jsonl``.

Teachers:

* ``llm``: :class:`~nerwheel.tasks.embed.questions.QuestionWriter` writes
  ``k`` questions per passage; each is checked (:func:`check_question`);
* ``ict``: :func:`~nerwheel.tasks.embed.ict.ict_queries`, sentences of the
  passage as queries and the rest of it as the positive (that rest becomes the
  passage's text in the output corpus).

Counts reconcile: ``passages.read = with_queries + without``;
``questions.returned = accepted + sum(rejected)``; every rejected question and
every passage without queries is a line in ``rejects.jsonl``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.errors import DataError
from nerwheel.formats.base import Reject, write_rejects
from nerwheel.records import Record
from nerwheel.stages.split import split_records
from nerwheel.storage import write_json
from nerwheel.tasks.embed.beir import CORPUS_FILE, LINE_KEY, RetrievalData, query_id, write_beir
from nerwheel.tasks.embed.ict import ict_queries
from nerwheel.tasks.embed.passages import SPLIT_NAMES
from nerwheel.tasks.embed.questions import QuestionCheck, QuestionWriter, check_question, question_key

__all__ = ["PairsConfig", "PairsReport", "PairsResult", "make_pairs", "write_pairs"]

REPORT_FILE = "pairs.json"
REJECTS_FILE = "rejects.jsonl"


class PairsConfig(BaseModel):
    """How pairs are made. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: Literal["llm", "ict"] = "ict"
    queries_per_passage: int = Field(3, ge=1, le=20, description="Questions asked (llm) or sentences taken (ict).")
    seed: int = 0
    min_query_chars: int = Field(4, ge=1, description="Shorter queries (characters of words) are rejected.")
    max_query_chars: int = Field(200, ge=8, description="Longer queries are rejected.")
    max_copy_ratio: float = Field(0.8, gt=0, le=1, description="Reject an LLM question whose longest run copied "
                                  "from the passage covers this share of it.")
    ict_min_chars: int = Field(6, ge=1, description="Inverse cloze: shortest sentence (characters of words) used "
                               "as a query.")
    prompt: str = "queries.v1"
    max_passages: int = Field(500_000, ge=1, description="Refuse corpora with more passages.")


@dataclass
class PairsReport:
    teacher: str
    config: dict[str, Any]
    passages: dict[str, Any] = field(default_factory=lambda: {"read": 0, "with_queries": 0, "without": {}})
    questions: dict[str, Any] = field(default_factory=lambda: {"returned": 0, "accepted": 0, "rejected": {}})
    queries: dict[str, int] = field(default_factory=dict)
    splits_assigned: int = 0  # passages without a ``split`` field, assigned by hash
    llm: dict[str, Any] | None = None
    corpus_rejects: int = 0

    def check(self) -> None:
        p, q = self.passages, self.questions
        problems = []
        if p["read"] != p["with_queries"] + sum(p["without"].values()):
            problems.append(f"passages: read {p['read']} != with_queries + without {p}")
        if q["returned"] != q["accepted"] + sum(q["rejected"].values()):
            problems.append(f"questions: returned {q['returned']} != accepted + rejected {q}")
        if sum(self.queries.values()) != q["accepted"]:
            problems.append(f"queries per split {self.queries} do not add up to accepted {q['accepted']}")
        if problems:
            raise AssertionError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "config": self.config, "passages": self.passages,
                "questions": self.questions, "queries": self.queries, "splits_assigned": self.splits_assigned,
                "corpus_rejects": self.corpus_rejects, "llm": self.llm}

    def summary(self) -> str:
        q, p = self.questions, self.passages
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(q["rejected"].items())) or "none"
        without = ", ".join(f"{k} {v}" for k, v in sorted(p["without"].items())) or "none"
        return (f"{p['read']} passages -> {q['returned']} questions from {self.teacher}: {q['accepted']} accepted "
                f"({', '.join(f'{k} {v}' for k, v in self.queries.items())}), rejected: {rejected}; passages "
                f"without queries: {without}")


@dataclass
class PairsResult:
    data: RetrievalData
    rejects: list[Reject]
    report: PairsReport


def _splits(corpus: RetrievalData, seed: int) -> tuple[dict[str, str], int]:
    """Each passage's split: its ``split`` field, else (counted) a seeded 8:2 hash split like ``embed split``."""
    split = {cid: str(m["split"]) for cid, m in corpus.corpus_meta.items() if m.get("split") in SPLIT_NAMES}
    missing = [Record(cid, text) for cid, text in corpus.corpus.items() if cid not in split]
    if missing:
        for name, recs in split_records(missing, "8:2", names=SPLIT_NAMES, seed=seed).items():
            split.update((r.id, name) for r in recs)
    return split, len(missing)


def make_pairs(corpus: RetrievalData, config: PairsConfig | None = None, *,
               writer: QuestionWriter | None = None) -> PairsResult:
    """Queries for every passage of ``corpus`` (see the module docstring); ``writer`` is needed for ``llm``."""
    cfg = config or PairsConfig()
    if cfg.teacher == "llm" and writer is None:
        raise DataError("teacher llm needs an LLM endpoint (--llm-url and --llm-model); or use --teacher ict, "
                             "which needs none", field="teacher")
    if len(corpus.corpus) > cfg.max_passages:
        raise DataError(f"{len(corpus.corpus):,} passages, over max_passages {cfg.max_passages:,}; make pairs "
                             "for a part of the corpus or raise max_passages", field="max_passages")
    report = PairsReport(teacher=writer.name if cfg.teacher == "llm" and writer else "ict", config=cfg.model_dump(),
                         corpus_rejects=len(corpus.rejects))
    split, report.splits_assigned = _splits(corpus, cfg.seed)
    out = RetrievalData(source=corpus.source, qrels={name: {} for name in SPLIT_NAMES})
    rejects: list[Reject] = list(corpus.rejects)
    ids = list(corpus.corpus)
    corpus_file = str(Path(corpus.source) / CORPUS_FILE) if Path(corpus.source).is_dir() else corpus.source
    check = QuestionCheck(cfg.min_query_chars, cfg.max_query_chars, cfg.max_copy_ratio)
    seen: set[str] = set()
    rejected: Counter[str] = Counter()
    without: Counter[str] = Counter()

    if cfg.teacher == "llm":
        assert writer is not None
        outputs = writer.write([corpus.corpus[cid] for cid in ids])
        report.llm = writer.stats.to_dict() | {"model": writer.config.model, "prompt": writer.prompt}
    for i, cid in enumerate(ids):
        text, meta = corpus.corpus[cid], corpus.corpus_meta.get(cid, {})
        line = int(meta.get(LINE_KEY, 0))
        positive, error = text, None
        if cfg.teacher == "llm":
            o = outputs[i]
            candidates, error = o.questions, o.error
            for kind, items, why in (("malformed", o.malformed, "answer item is not a question string"),
                                     ("truncated", o.fragments, "question cut off at max_tokens")):
                for bad in items:
                    rejected[kind] += 1
                    report.questions["returned"] += 1
                    rejects.append(Reject(corpus_file, line, f"passage {cid}: {why}", bad, kind=kind,
                                          extra={"passage_id": cid}))
        else:
            ict = ict_queries(cid, text, k=cfg.queries_per_passage, min_chars=cfg.ict_min_chars, seed=cfg.seed)
            candidates, positive, error = ict.queries, ict.positive, ict.reason
        accepted: list[str] = []
        for q in candidates:
            report.questions["returned"] += 1
            problem = check_question(q, positive, seen, check) if cfg.teacher == "llm" else (
                ("duplicate", "the same sentence is a query of another passage") if question_key(q) in seen
                else None)
            if problem is not None:
                rejected[problem[0]] += 1
                rejects.append(Reject(corpus_file, line, f"passage {cid}: {problem[1]}", q, kind=problem[0],
                                      extra={"passage_id": cid}))
                continue
            seen.add(question_key(q))
            accepted.append(q.strip())
        out.corpus[cid] = positive
        out.corpus_meta[cid] = {k: v for k, v in meta.items() if k != LINE_KEY} | {"split": split[cid]}
        report.passages["read"] += 1
        if not accepted:
            kind = "llm-failed" if error and cfg.teacher == "llm" else "too-few-sentences" if error else "no-question"
            without[kind] += 1
            rejects.append(Reject(corpus_file, line, f"passage {cid}: no query ({error or 'every question rejected'})",
                                  text[:300], kind=kind, extra={"passage_id": cid}))
            continue
        report.passages["with_queries"] += 1
        for q in accepted:
            qid = query_id(q)
            out.queries[qid] = q
            out.query_meta[qid] = {"passage_id": cid, "teacher": report.teacher, "split": split[cid]}
            out.qrels[split[cid]].setdefault(qid, {})[cid] = 1
    report.questions["accepted"] = len(out.queries)
    report.questions["rejected"] = dict(rejected)
    report.passages["without"] = dict(without)
    report.queries = {name: len(out.qrels[name]) for name in SPLIT_NAMES}
    report.check()
    if not out.queries:
        raise DataError(f"no pairs: not one of {len(ids)} passages got a usable query ({report.summary()}); "
                             "see the rejects", field="teacher")
    return PairsResult(out, rejects, report)


def write_pairs(result: PairsResult, out: str | os.PathLike[str]) -> dict[str, Path]:
    """The BEIR folder, ``pairs.json`` and ``rejects.jsonl`` under ``out``."""
    root = write_beir(out, result.data)
    paths = {"beir": root, "report": root / REPORT_FILE, "rejects": root / REJECTS_FILE}
    write_json(paths["report"], result.report.to_dict())
    write_rejects(result.rejects, paths["rejects"])
    return paths
