"""Teachers for the classifier: a few-shot LLM, a trained model above a confidence, and the vote between them.

- :class:`LLMClassifier`: one request per message through the shared
  :class:`~nerwheel.llm.client.ChatClient` (cache, so a rerun or a resumed
  run pays nothing for what was answered; retries; rate limits), a versioned
  prompt template (``classify.v1.jinja``: label definitions and few-shot
  examples, the previous turn as context) and a JSON-schema constrained
  answer (``{"label": <enum>}``). An answer that is not JSON, names no label
  or a label outside the set fails that message for that teacher, with the
  reason; nothing raises for one bad answer.
- :class:`ModelTeacher`: a trained classifier (any
  :func:`~nerwheel.tasks.classify.predict.load_classifier` target) labelling
  traffic offline; it abstains below ``threshold``.
- :func:`vote`: K teachers, one label per message: the plurality among the
  teachers that answered, kept when it has at least ``min_votes`` votes
  (default: a strict majority of those that answered). The message's
  ``meta`` keeps every teacher's answer, the ``agreement`` (winning votes /
  answering teachers) and the ``source`` (the voters, ``llm:a+model:b``); the
  vote share is its ``score``. Messages with no winner are reported, not
  guessed: ``read = labelled + undecided + failed``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nerwheel.errors import ConfigError
from nerwheel.tasks.classify.records import LabelSet, Message

__all__ = ["PROMPT", "Answer", "LLMClassifier", "LabelResult", "ModelTeacher", "Teacher", "label_schema",
           "select_examples", "vote"]

#: The prompt template version; a changed prompt gets a new file and name, old ones stay (cached runs reproduce).
PROMPT = "classify.v1"


@dataclass(frozen=True)
class Answer:
    """One teacher's answer for one message: a label (with a confidence when it has one), or why not."""

    label: str | None = None
    score: float | None = None
    error: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


class Teacher(Protocol):
    name: str

    def label(self, messages: Sequence[Message]) -> list[Answer]: ...


def label_schema(labels: LabelSet) -> dict[str, Any]:
    """The JSON schema of an answer (``response_format`` where the server supports it)."""
    return {"type": "object", "properties": {"label": {"type": "string", "enum": list(labels.names)}},
            "required": ["label"]}


def select_examples(seed: Sequence[Message], per_class: int = 2) -> list[Message]:
    """``per_class`` labelled examples per class, chosen by a hash of the text (deterministic, not file order)."""
    pool = sorted((m for m in seed if m.label is not None),
                  key=lambda m: hashlib.sha1(f"{m.context}\n{m.message}".encode()).hexdigest())
    shown: Counter[str] = Counter()
    out = []
    for m in pool:
        if shown[m.label] < per_class:  # type: ignore[index]
            out.append(m)
            shown[m.label] += 1  # type: ignore[index]
    return out


def render(message: Message, labels: LabelSet, definitions: Mapping[str, str], examples: Sequence[Message]) -> str:
    from nerwheel.llm.prompts import _env

    return _env().get_template(f"{PROMPT}.jinja").render(
        context=message.context, message=message.message, examples=list(examples),
        definitions=[(lab, definitions.get(lab, lab)) for lab in labels.names])


def parse_label(content: str, labels: LabelSet) -> tuple[str | None, str | None]:
    """``(label, None)`` or ``(None, reason)`` for one answer; names are matched ignoring case and spaces."""
    from nerwheel.llm.extract import extract_json

    value = extract_json(content).value
    if not isinstance(value, dict) or "label" not in value:
        return None, f"no {{\"label\": ...}} object in the answer: {content[:120]!r}"
    raw = value["label"]
    if not isinstance(raw, str):
        return None, f"label must be a string, got {raw!r}"
    by_key = {n.strip().lower(): n for n in labels.names}
    name = by_key.get(raw.strip().lower())
    if name is None:
        return None, f"label {raw!r} is not one of {', '.join(labels.names)}"
    return name, None


class LLMClassifier:
    """Few-shot classification through an OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(self, config: Any, labels: LabelSet, *, definitions: Mapping[str, str] | None = None,
                 examples: Sequence[Message] = (), per_class: int = 2, cache: Any = None, name: str | None = None,
                 transport: Any = None) -> None:
        self.config = config
        self.labels = labels
        self.definitions = dict(definitions or {})
        self.examples = select_examples(examples, per_class)
        self.cache = cache
        self.name = name or f"llm:{config.model}"
        self.transport = transport
        self.stats: Any = None

    def messages_for(self, message: Message) -> list[dict[str, str]]:
        return [{"role": "user", "content": render(message, self.labels, self.definitions, self.examples)}]

    def label(self, messages: Sequence[Message]) -> list[Answer]:
        return asyncio.run(self._all(messages))

    async def _all(self, messages: Sequence[Message]) -> list[Answer]:
        from nerwheel.llm.client import ChatClient

        async with ChatClient(self.config, cache=self.cache, transport=self.transport) as client:
            try:
                return list(await asyncio.gather(*(self._one(client, m) for m in messages)))
            finally:
                self.stats = client.stats

    async def _one(self, client: Any, message: Message) -> Answer:
        from nerwheel.llm.client import LLMError

        try:
            resp = await client.complete(self.messages_for(message), schema=label_schema(self.labels))
        except LLMError as exc:
            return Answer(error=f"request failed: {exc}")
        label, reason = parse_label(resp.content, self.labels)
        meta = {"cached": resp.cached, "finish_reason": resp.finish_reason, "prompt": PROMPT}
        if label is None:
            cut = f" (cut off at max_tokens {self.config.max_tokens})" if resp.truncated else ""
            return Answer(error=f"unusable answer{cut}: {reason}", meta=meta)
        return Answer(label=label, meta=meta)


class ModelTeacher:
    """A trained classifier as a teacher: its label where its confidence is at least ``threshold``, else none."""

    def __init__(self, predictor: Any, *, threshold: float = 0.9, name: str = "model") -> None:
        if not 0 <= threshold <= 1:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        self.predictor = predictor
        self.threshold = threshold
        self.name = name

    def label(self, messages: Sequence[Message]) -> list[Answer]:
        out = []
        for p in self.predictor.predict(list(messages)):
            if p.confidence >= self.threshold:
                out.append(Answer(label=p.label, score=p.confidence))
            else:
                out.append(Answer(error=f"below threshold {self.threshold}: {p.label} at {p.confidence:.3f}",
                                  meta={"abstained": True, "best": p.label, "confidence": p.confidence}))
        return out


@dataclass
class LabelResult:
    """Labelled messages, the ones the teachers could not settle, and the counts (read = sum of the three)."""

    labelled: list[Message]
    undecided: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    report: dict[str, Any]


def vote(messages: Sequence[Message], teachers: Sequence[Teacher], *, min_votes: int | None = None) -> LabelResult:
    """Label ``messages`` with every teacher and keep the plurality label (see the module docstring)."""
    if not teachers:
        raise ConfigError("vote needs at least one teacher")
    names = [t.name for t in teachers]
    if len(set(names)) != len(names):
        raise ConfigError(f"teacher names must be unique, got {names}")
    answers = [t.label(messages) for t in teachers]
    for t, a in zip(teachers, answers, strict=True):
        if len(a) != len(messages):
            raise RuntimeError(f"teacher {t.name} answered {len(a)} of {len(messages)} messages")
    labelled, undecided, failed = [], [], []
    per_teacher = {n: Counter() for n in names}
    agreement_sum = 0.0
    for i, msg in enumerate(messages):
        given = {n: a[i] for n, a in zip(names, answers, strict=True)}
        for n, ans in given.items():
            per_teacher[n]["labelled" if ans.label else "failed"] += 1
        voted = {n: ans.label for n, ans in given.items() if ans.label is not None}
        row = {"id": msg.id, "message": msg.message, "context": msg.context,
               "answers": {n: ans.label or f"({ans.error})" for n, ans in given.items()}}
        if not voted:
            failed.append({**row, "reason": "no teacher answered with a label"})
            continue
        counts = Counter(voted.values()).most_common()
        need = min_votes if min_votes is not None else len(voted) // 2 + 1
        top, n_top = counts[0]
        if (len(counts) > 1 and counts[1][1] == n_top) or n_top < need:
            undecided.append({**row, "reason": f"no label has {need} votes of {len(voted)} (tie or split)"})
            continue
        share = n_top / len(voted)
        agreement_sum += share
        voters = [n for n, lab in voted.items() if lab == top]
        scores = [given[n].score for n in voters if given[n].score is not None]
        labelled.append(msg.with_label(top, source="+".join(voters), score=round(share, 4), agreement=round(share, 4),
                                       votes=dict(voted), **({"confidence": max(scores)} if scores else {})))
    report = {"read": len(messages), "labelled": len(labelled), "undecided": len(undecided), "failed": len(failed),
              "teachers": {n: dict(c) for n, c in per_teacher.items()}, "min_votes": min_votes,
              "mean_agreement": round(agreement_sum / len(labelled), 4) if labelled else None,
              "labels": dict(Counter(m.label for m in labelled).most_common())}
    assert report["read"] == report["labelled"] + report["undecided"] + report["failed"]
    return LabelResult(labelled, undecided, failed, report)
