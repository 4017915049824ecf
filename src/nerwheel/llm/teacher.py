"""An LLM as a teacher: prompt, call (cached), parse, place, optionally let the knowledge base correct.

One request per record, all records in flight at once under the client's
semaphore and rate limit. A record whose request fails for good, whose answer
holds no JSON at all, or whose answer breaks off (cut at ``max_tokens``, or a
JSON array that never closes) comes back with ``error`` set: the stage counts
it as failed and keeps it in the rejects file. A cut-off answer is never a
labelling, because the entities it misses would teach the student that those
spans are no entities; its complete entities go to the rejects as
``salvaged``, for review. An answer whose JSON is complete is used even if the
server reports ``finish_reason: length`` (prose after the JSON was cut, not the
entity list). Nothing raises out of :meth:`LLMTeacher.label` for one bad record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeVar

import httpx

from nerwheel.errors import ConfigError
from nerwheel.labels import ADDRESS_LABELS, LabelMap
from nerwheel.llm.cache import ResponseCache
from nerwheel.llm.client import ChatClient, ChatResponse, LLMError, RunStats
from nerwheel.llm.config import LLMConfig
from nerwheel.llm.definitions import address_label_map, pos_label_map
from nerwheel.llm.parse import get_parser
from nerwheel.llm.extract import extract_json
from nerwheel.llm.prompts import SYNTH_SCHEMA, get_prompt, select_examples, synth_messages
from nerwheel.llm.validate import EntityReject, OverlapPolicy, Placed, TeacherOutput, place
from nerwheel.records import Entity, Record

__all__ = ["LLMTeacher"]

T = TypeVar("T")


async def _gather_with_progress(tasks: Sequence[Awaitable[T]], *, desc: str) -> list[T]:
    """``asyncio.gather`` in order, with a bar that moves as each answer comes back (seconds per text on an LLM)."""
    from nerwheel.progress import progress

    with progress(total=len(tasks), desc=desc, unit="text") as bar:
        async def tick(task: Awaitable[T]) -> T:
            try:
                return await task
            finally:
                bar.update(1)

        return list(await asyncio.gather(*(tick(t) for t in tasks)))


class LLMTeacher:
    """Labels records through an OpenAI-compatible endpoint.

    ``examples`` is the seed set few-shot examples are chosen from
    (``per_type`` per label, deterministic). ``corrector`` is anything with
    ``correct(record) -> (record, corrections)``, normally the address KB.
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        mode: Literal["entity", "pos"] = "entity",
        prompt: str | None = None,
        examples: Sequence[Record] = (),
        per_type: int = 4,
        labels: Sequence[str] = ADDRESS_LABELS,
        label_map: LabelMap | None = None,
        cache: ResponseCache | None = None,
        overlap: OverlapPolicy = "longest",
        corrector: Any = None,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.mode = mode
        self.prompt = get_prompt(prompt or ("ner.v1" if mode == "entity" else "pos.v1"))
        if self.prompt.mode != mode:
            raise ConfigError(f"prompt {self.prompt.name!r} is for mode {self.prompt.mode!r}, not {mode!r}")
        self.parser = get_parser(self.prompt.parser)
        self.labels = tuple(labels)
        self.examples = select_examples(examples, per_type, None if mode == "pos" else self.labels)
        self.label_map = label_map or (address_label_map(self.labels) if mode == "entity" else pos_label_map())
        self.cache = cache
        self.overlap: OverlapPolicy = "allow" if mode == "pos" else overlap
        self.corrector = corrector
        self.name = name or f"llm:{config.model}"
        self.transport = transport
        self.stats = RunStats()

    def label(self, records: Sequence[Record]) -> list[TeacherOutput]:
        """Label ``records`` (blocking); per-run usage is left in :attr:`stats`."""
        return asyncio.run(self.alabel(records))

    async def alabel(self, records: Sequence[Record]) -> list[TeacherOutput]:
        async with ChatClient(self.config, cache=self.cache, transport=self.transport) as client:
            try:
                return await _gather_with_progress([self._one(client, r) for r in records], desc=self.name)
            finally:
                self.stats = client.stats

    def generate(self, requests: Sequence[Sequence[tuple[str, str, str]]]) -> list[str | None]:
        """One new address text per request of (text, label, explanation) hints; ``None`` where none came back."""
        return asyncio.run(self._agenerate(requests))

    async def _agenerate(self, requests: Sequence[Sequence[tuple[str, str, str]]]) -> list[str | None]:
        async with ChatClient(self.config, cache=self.cache, transport=self.transport) as client:

            def text_of(resp: ChatResponse) -> str | None:
                value = extract_json(resp.content).value
                text = value.get("text") if isinstance(value, dict) else None
                return text.strip() if isinstance(text, str) and text.strip() else None

            async def one(hints: Sequence[tuple[str, str, str]]) -> str | None:
                try:
                    resp = await client.complete(synth_messages(hints), schema=SYNTH_SCHEMA,
                                                 accept=lambda r: text_of(r) is not None)
                except LLMError:
                    return None
                return text_of(resp)

            return await _gather_with_progress([one(h) for h in requests], desc=f"{self.name} writing")

    async def _one(self, client: ChatClient, record: Record) -> TeacherOutput:
        messages = self.prompt.messages(record.text, self.examples, self.labels)
        try:
            resp = await client.complete(messages, schema=self.prompt.schema(self.labels), accept=self._usable)
        except LLMError as exc:
            return TeacherOutput(error=f"request failed: {exc}")
        parsed = self.parser(resp.content)
        meta: dict[str, Any] = {"parse": parsed.method, "salvaged": parsed.salvaged, "cached": resp.cached,
                                "finish_reason": resp.finish_reason}
        if parsed.error is not None:
            reason = f"unusable answer ({parsed.error})"
            if resp.truncated:
                reason = f"truncated at max_tokens ({self.config.max_tokens}): 0 complete entities salvaged; {reason}"
            return TeacherOutput(error=reason, meta=meta)
        placed = place(record.text, parsed, self.label_map, source=self.name, mode=self.mode, overlap=self.overlap)
        if parsed.method == "salvaged":
            return self._cut_off(placed, resp.truncated, meta)
        entities, rejects = placed.entities, placed.rejects
        if self.corrector is not None and self.mode == "entity" and entities:
            fixed, corrections = self.corrector.correct(record.with_entities(entities))
            entities = list(fixed.entities)
            if corrections:
                meta["kb_corrections"] = [c.to_dict() for c in corrections]
            flagged = {(c.start, c.end) for c in corrections if getattr(c, "code", None) == "hierarchy"}
            rejects += [EntityReject("hierarchy", c.reason, c.text, c.old, c.start, c.end, self.name)
                        for c in corrections if getattr(c, "code", None) == "hierarchy"]
            entities = [e for e in entities if (e.start, e.end) not in flagged]
        return TeacherOutput(entities=[_with_source(e, self.name) for e in entities], rejects=rejects, meta=meta)

    def _usable(self, resp: ChatResponse) -> bool:
        """Whether an answer labels its record (so it may be cached): complete JSON the parser reads.

        A failure (no JSON, a cut-off answer) is not cached: the next run asks again.
        """
        parsed = self.parser(resp.content)
        return parsed.error is None and parsed.method != "salvaged"

    def _cut_off(self, placed: Placed, at_max_tokens: bool, meta: dict[str, Any]) -> TeacherOutput:
        """An answer that breaks off is no labelling: what it misses would teach a student false negatives.

        The record fails for this teacher; its complete entities are kept as ``salvaged`` rejects for review.
        """
        where = f"at max_tokens ({self.config.max_tokens})" if at_max_tokens else "(the JSON breaks off before its end)"
        salvaged = placed.entities
        meta["salvaged_entities"] = [e.to_dict() for e in salvaged]
        rejects = [*placed.rejects, *(EntityReject(
            "salvaged", f"complete entity of an answer cut off {where}; not used, the record failed for this "
            "teacher (kept for review)", e.text, e.label, e.start, e.end, self.name) for e in salvaged)]
        return TeacherOutput(error=f"truncated {where}: {len(salvaged)} complete entities salvaged", rejects=rejects,
                             meta=meta)


def _with_source(e: Entity, source: str) -> Entity:
    return e if e.source == source else Entity(e.start, e.end, e.label, e.text, source=source, score=e.score)

