"""The classifier's teachers: few-shot LLM (versioned prompt, JSON-schema answer, cache, resume), the model teacher
above a threshold, and the K-teacher vote with agreement. A scripted server injects bad answers; a real llama.cpp
server (SmolLM2-135M) checks the protocol end to end (not label quality)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_helpers import Reply, chat

from nerwheel.llm.cache import ResponseCache
from nerwheel.llm.config import LLMConfig
from nerwheel.tasks.classify.records import LabelSet, Message
from nerwheel.tasks.classify.runtime import Prediction
from nerwheel.tasks.classify.teachers import LLMClassifier, ModelTeacher, label_schema, render, vote

LABELS = LabelSet(("low_value", "normal", "interrupt"))
DEFS = {"low_value": "acknowledgements, small talk", "normal": "a request to act on", "interrupt": "stop now"}
MESSAGES = [Message("a", "好的", "你好"), Message("b", "帮我查一下订单物流"), Message("c", "停停停，换个问题")]
SEED = [Message("s1", "嗯嗯", label="low_value"), Message("s2", "怎么申请退款", "你好", label="normal"),
        Message("s3", "等一下，停", label="interrupt")]


def test_prompt_is_the_versioned_template_with_definitions_and_examples():
    text = render(MESSAGES[0], LABELS, DEFS, SEED[:2])
    assert text == (
        "You classify one chat message, read with the previous turn as its context.\n\n"
        'Return only JSON: {"label": "<one of the labels below>"}\nLabels:\n'
        "  - low_value: acknowledgements, small talk\n  - normal: a request to act on\n  - interrupt: stop now\n\n"
        "Examples:\nContext: (none)\nMessage: 嗯嗯\n{\"label\": \"low_value\"}\n"
        "Context: 你好\nMessage: 怎么申请退款\n{\"label\": \"normal\"}\n\n"
        "Context: 你好\nMessage: 好的")
    assert label_schema(LABELS)["properties"]["label"]["enum"] == list(LABELS.names)


def test_bad_answers_fail_their_message_with_a_reason_and_the_cache_resumes(scripted, tmp_path: Path):
    answers = {"好的": chat('{"label": "Low_Value"}'), "帮我查一下订单物流": chat("I think it is normal"),
               "停停停，换个问题": chat('{"label": "spam"}')}
    scripted.reset(lambda n, body: answers[body["messages"][0]["content"].rsplit("Message: ", 1)[1]])
    cfg = LLMConfig(base_url=scripted.url, model="scripted", max_retries=0)
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        teacher = LLMClassifier(cfg, LABELS, definitions=DEFS, examples=SEED, cache=cache)
        got = teacher.label(MESSAGES)
        assert got[0].label == "low_value"  # case and spaces of a label name are forgiven
        assert got[1].label is None and "no {\"label\"" in got[1].error
        assert got[2].label is None and "'spam' is not one of" in got[2].error
        assert scripted.calls == 3
        body = scripted.bodies[0]
        assert body["response_format"]["json_schema"]["schema"] == label_schema(LABELS)
        again = LLMClassifier(cfg, LABELS, definitions=DEFS, examples=SEED, cache=cache).label(MESSAGES)
    assert scripted.calls == 3 and [a.label for a in again] == [a.label for a in got]  # all from the cache

    scripted.reset(lambda n, body: Reply(status=500, body="boom"))
    failed = LLMClassifier(cfg, LABELS).label(MESSAGES[:1])
    assert failed[0].label is None and failed[0].error.startswith("request failed")


class _Fixed:
    """A stand-in predictor with fixed answers (the model teacher's input), for the threshold and vote rules."""

    labels = list(LABELS.names)

    def __init__(self, answers: list[tuple[str, float]]) -> None:
        self.answers = answers

    def predict(self, messages):
        return [Prediction(lab, {n: (p if n == lab else (1 - p) / 2) for n in self.labels})
                for lab, p in self.answers[: len(messages)]]


class _Named:
    def __init__(self, name: str, labels: list[str | None]) -> None:
        from nerwheel.tasks.classify.teachers import Answer

        self.name = name
        self.answers = [Answer(label=x) if x else Answer(error="no answer") for x in labels]

    def label(self, messages):
        return self.answers[: len(messages)]


def test_model_teacher_abstains_below_threshold_and_vote_keeps_agreement():
    model = ModelTeacher(_Fixed([("low_value", 0.97), ("normal", 0.6), ("interrupt", 0.95)]), threshold=0.9,
                         name="model:v1")
    answers = model.label(MESSAGES)
    assert [a.label for a in answers] == ["low_value", None, "interrupt"] and "below threshold" in answers[1].error
    result = vote(MESSAGES, [model, _Named("llm:a", ["low_value", "normal", "normal"]),
                             _Named("llm:b", ["low_value", None, "interrupt"])])
    assert result.report["read"] == 3 == result.report["labelled"] + result.report["undecided"] + \
        result.report["failed"]
    first = result.labelled[0]
    assert (first.label, first.meta["agreement"], first.meta["source"]) == ("low_value", 1.0, "model:v1+llm:a+llm:b")
    assert first.meta["votes"] == {"model:v1": "low_value", "llm:a": "low_value", "llm:b": "low_value"}
    by_id = {m.id: m for m in result.labelled}
    assert by_id["b"].label == "normal" and by_id["b"].meta["agreement"] == 1.0  # only llm:a answered
    assert by_id["c"].label == "interrupt" and by_id["c"].score == pytest.approx(2 / 3, abs=1e-4)
    split = vote(MESSAGES[:1], [_Named("x", ["normal"]), _Named("y", ["interrupt"])])
    assert split.report["undecided"] == 1 and "tie or split" in split.undecided[0]["reason"]


@pytest.mark.server
def test_real_llm_answers_within_the_schema_and_reruns_from_the_cache(llama_url: str, tmp_path: Path):
    cfg = LLMConfig(base_url=llama_url, model="smollm2", max_tokens=20, max_in_flight=2, read_timeout=600,
                    structured="json_schema")
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        teacher = LLMClassifier(cfg, LABELS, definitions=DEFS, examples=SEED[:1], cache=cache)
        result = vote(MESSAGES, [teacher])
        assert result.report["read"] == 3 == result.report["labelled"] + result.report["failed"]
        for m in result.labelled:  # a constrained answer is always one of the labels
            assert m.label in LABELS and m.meta["source"] == "llm:smollm2"
        assert teacher.stats.http_calls == 3
        again = LLMClassifier(cfg, LABELS, definitions=DEFS, examples=SEED[:1], cache=cache)
        assert [a.label for a in again.label(MESSAGES)] == [a.label for a in teacher.label(MESSAGES)]
        assert again.stats.cache_hits == 3 and again.stats.http_calls == 0
