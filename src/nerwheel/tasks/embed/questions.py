"""An LLM writes the questions a passage answers: versioned prompt, JSON answer, checks, cache and resume.

The request goes through nerwheel's one LLM client
(:class:`~nerwheel.llm.client.ChatClient`): bounded concurrency and rate,
retries with backoff, and the SQLite response cache, so a rerun (or a run
resumed after a crash) pays only for passages not answered before. The prompt
is a template file (``queries.v1.jinja``); a changed prompt gets a new version
name, so cached answers of the old one stay reproducible.

Every question the model returns is either accepted or rejected with a reason
(:func:`check_question`), so ``returned = accepted + rejected`` per passage:

* ``empty`` / ``too-short`` / ``too-long``: not a usable query;
* ``copy``: it copies the passage verbatim (a longest common substring of at
  least ``max_copy_ratio`` of the question): such a query teaches the encoder
  string matching, not retrieval;
* ``duplicate``: the same question (after normalisation) was already accepted
  for this passage or for another one: one query text must have one meaning.

An answer cut off at ``max_tokens`` keeps its complete questions (a question
list, unlike an entity list, loses nothing by being short); the question cut
in half is rejected (``truncated``); an answer with no JSON, or a request that failed for good, fails
the passage (``error``), which is reported, never raised.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from nerwheel.errors import ConfigError
from nerwheel.llm.cache import ResponseCache
from nerwheel.llm.client import ChatClient, LLMError, RunStats
from nerwheel.llm.config import LLMConfig
from nerwheel.llm.extract import extract_json
from nerwheel.llm.prompts import render_template

__all__ = ["PROMPTS", "QuestionCheck", "QuestionOutput", "QuestionWriter", "check_question", "parse_questions",
           "question_key", "questions_schema"]

#: Prompt version -> template file. Old versions stay as they are.
PROMPTS: dict[str, str] = {"queries.v1": "queries.v1.jinja"}
CHUNK = 256  # passages in flight at once (the client's semaphore bounds requests); bounds memory on big corpora

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def questions_schema(k: int) -> dict[str, Any]:
    """The JSON schema of an answer (sent as ``response_format`` where the server supports it)."""
    return {"type": "object",
            "properties": {"questions": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                         "maxItems": k}},
            "required": ["questions"]}


def question_key(text: str) -> str:
    """The comparison form of a question: NFKC, lower case, no spaces or punctuation."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


@dataclass(frozen=True)
class QuestionCheck:
    """The limits a question must meet."""

    min_chars: int = 4
    max_chars: int = 200
    max_copy_ratio: float = 0.8


def check_question(question: str, passage: str, seen: set[str], check: QuestionCheck) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``question`` is unusable for ``passage``; ``None`` when it is accepted.

    ``seen`` holds the keys of questions accepted so far (this passage and others); the caller adds to it.
    """
    text = question.strip()
    key = question_key(text)
    if not key:
        return "empty", "the question is empty or only punctuation"
    if len(key) < check.min_chars:
        return "too-short", f"the question has {len(key)} characters, under min_chars {check.min_chars}"
    if len(text) > check.max_chars:
        return "too-long", f"the question has {len(text)} characters, over max_chars {check.max_chars}"
    body = question_key(passage)
    match = SequenceMatcher(None, key, body, autojunk=False).find_longest_match(0, len(key), 0, len(body))
    if match.size / len(key) >= check.max_copy_ratio:
        return "copy", (f"the question copies the passage verbatim ({match.size} of its {len(key)} characters in "
                        f"one run, max_copy_ratio {check.max_copy_ratio})")
    if key in seen:
        return "duplicate", "the same question was already accepted (for this passage or another)"
    return None


def parse_questions(content: str) -> tuple[list[str], list[str], str | None, list[str]]:
    """``(questions, malformed items, error, cut-off fragments)`` from an answer.

    Accepts ``{"questions": [...]}``, a bare list, or one other list-valued key;
    non-string items are returned as malformed (JSON text) and the incomplete
    tail of an answer cut off mid-question as a fragment, so both are counted.
    """
    ex = extract_json(content)
    if not ex.ok:
        return [], [], ex.error or "no JSON in the answer", []
    value = ex.value
    if isinstance(value, dict):
        lists = [v for k, v in value.items() if isinstance(v, list)]
        value = value.get("questions") if isinstance(value.get("questions"), list) else (
            lists[0] if len(lists) == 1 else None)
    if not isinstance(value, list):
        return [], [], f"the JSON holds no question list ({type(ex.value).__name__})", []
    good = [q for q in value if isinstance(q, str)]
    bad = [repr(q)[:200] for q in value if not isinstance(q, str)]
    return good, bad, None, [f[:200] for f in ex.fragments]


@dataclass
class QuestionOutput:
    """The model's questions for one passage (unchecked), or why there are none."""

    questions: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)  # cut off mid-question at max_tokens
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class QuestionWriter:
    """Writes up to ``k`` questions per passage through an OpenAI-compatible endpoint."""

    def __init__(self, config: LLMConfig, *, k: int = 3, prompt: str = "queries.v1",
                 cache: ResponseCache | None = None, max_chars: int = 60, transport: Any = None) -> None:
        if prompt not in PROMPTS:
            raise ConfigError(f"unknown question prompt {prompt!r}; versions available: {', '.join(PROMPTS)}",
                              field="prompt")
        if k < 1:
            raise ConfigError(f"queries per passage must be >= 1, got {k}", field="queries_per_passage")
        self.config, self.k, self.prompt, self.cache = config, k, prompt, cache
        self.max_chars, self.transport = max_chars, transport
        self.name = f"llm:{config.model}"
        self.stats = RunStats()

    def messages(self, passage: str) -> list[dict[str, str]]:
        text = render_template(PROMPTS[self.prompt], passage=passage, k=self.k, max_chars=self.max_chars)
        return [{"role": "user", "content": text}]

    def write(self, passages: Sequence[str]) -> list[QuestionOutput]:
        """Questions for every passage, in order (blocking); usage is summed in :attr:`stats`."""
        return asyncio.run(self._write(passages))

    async def _write(self, passages: Sequence[str]) -> list[QuestionOutput]:
        out: list[QuestionOutput] = []
        async with ChatClient(self.config, cache=self.cache, transport=self.transport) as client:
            try:
                for start in range(0, len(passages), CHUNK):
                    chunk = passages[start : start + CHUNK]
                    out.extend(await asyncio.gather(*(self._one(client, p) for p in chunk)))
            finally:
                self.stats = client.stats
        return out

    async def _one(self, client: ChatClient, passage: str) -> QuestionOutput:
        try:
            resp = await client.complete(self.messages(passage), schema=questions_schema(self.k))
        except LLMError as exc:
            return QuestionOutput(error=f"request failed: {exc}")
        questions, malformed, error, fragments = parse_questions(resp.content)
        meta = {"cached": resp.cached, "finish_reason": resp.finish_reason, "cut_off": bool(fragments)}
        if error is not None:
            where = f"truncated at max_tokens ({self.config.max_tokens}); " if resp.truncated else ""
            return QuestionOutput(error=f"{where}unusable answer ({error})", meta=meta)
        extra = [f"beyond the {self.k} asked: {q!r}"[:200] for q in questions[self.k:]]
        return QuestionOutput(questions[: self.k], malformed + extra, fragments, None, meta)
