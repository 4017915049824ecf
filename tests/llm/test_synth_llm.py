"""Synthesis (c): the LLM writes sentences around sampled entities, then they are annotated like any text."""

from __future__ import annotations

import json
from typing import Any

from llm_helpers import Reply, ScriptedServer, address_of, chat

from nerwheel.llm.config import LLMConfig
from nerwheel.llm.teacher import LLMTeacher
from nerwheel.stages.synthesize import SynthesisConfig, synthesize


def test_llm_sentences_are_written_then_annotated(scripted: ScriptedServer) -> None:
    written = iter(["请送到文三路000号华星大厦", "", "杭州市西湖区文三路000号华星大厦", "not json at all"])

    def script(n: int, body: dict[str, Any]) -> Reply:
        content = body["messages"][-1]["content"]
        if "Write ONE new" in content:
            assert "road:" in content or "poi:" in content or "prov:" in content  # explanations are in the prompt
            text = next(written)
            return chat(json.dumps({"text": text}, ensure_ascii=False) if text != "not json at all" else text)
        addr = address_of(body)
        ents = [{"text": "文三路", "label": "road"}, {"text": "华星大厦", "label": "poi"},
                {"text": "西溪路", "label": "road"}]
        return chat(json.dumps({"entities": ents}, ensure_ascii=False) if "文三路" in addr else '{"entities": []}')

    scripted.reset(script)
    teacher = LLMTeacher(LLMConfig(base_url=scripted.url, model="scripted", max_in_flight=1, max_retries=0))
    res = synthesize(SynthesisConfig(n_short=0, n_long=0, n_llm=4, seed=2), llm=teacher, gazetteer=None)
    llm_records = [r for r in res.records if r.meta["synthetic"] == "llm"]
    assert [r.text for r in llm_records] == ["请送到文三路000号华星大厦", "杭州市西湖区文三路000号华星大厦"]
    assert [(e.text, e.label) for e in llm_records[0].entities] == [("文三路", "road"), ("华星大厦", "poi")]
    assert res.coverage["texts"]["llm"] == 2 and res.coverage["llm"] == {"road": 2, "poi": 2}
    assert res.coverage["skipped"]["failed"] == 2  # the empty text and the answer without JSON
