"""Response text -> extracted JSON and parsed (text, label) items: complete tables, including broken answers."""

from __future__ import annotations

import pytest

from nerwheel.llm.extract import extract_json
from nerwheel.llm.parse import get_parser, parse_entities_v1

E = '{"text": "浙江省", "label": "prov"}'


@pytest.mark.parametrize(
    ("content", "method", "value", "salvaged", "fragments"),
    [
        ('{"entities": [' + E + "]}", "whole", {"entities": [{"text": "浙江省", "label": "prov"}]}, 0, 0),
        ("[" + E + "]", "whole", [{"text": "浙江省", "label": "prov"}], 0, 0),
        ("Sure!\n```json\n[" + E + "]\n```\nDone.", "fenced", [{"text": "浙江省", "label": "prov"}], 0, 0),
        ("Here you go: {\"entities\": [" + E + "]} hope it helps", "embedded",
         {"entities": [{"text": "浙江省", "label": "prov"}]}, 0, 0),
        ('{"entities": [' + E + ', {"text": "杭州', "salvaged", {"entities": [{"text": "浙江省", "label": "prov"}]}, 1, 1),
        ("```json\n[" + E + ", " + E, "salvaged", [{"text": "浙江省", "label": "prov"}] * 2, 2, 0),
        ('{\n "entities": [\n {\n "text": "1000000', "salvaged", {"entities": []}, 0, 1),
    ],
)
def test_extract_table(content: str, method: str, value: object, salvaged: int, fragments: int) -> None:
    ex = extract_json(content)
    assert (ex.method, ex.value, ex.salvaged, len(ex.fragments)) == (method, value, salvaged, fragments)


@pytest.mark.parametrize("content", ["", "   ", "I cannot help with that.", "label: prov"])
def test_extract_nothing(content: str) -> None:
    ex = extract_json(content)
    assert not ex.ok and ex.value is None and ex.error


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
        ("Sure: " + "[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
        ("```json\n" + "{\"a\": " * 5000 + "1" + "}" * 5000 + "\n```", "nested deeper than 64 levels"),
        ('{"entities": [{"text": "\\ud800", "label": "prov"}]}', "lone UTF-16 surrogate"),
    ],
)
def test_extract_refuses_hostile_json(content: str, error: str) -> None:
    """An answer nested too deep or holding a lone surrogate fails that record, never the run (no RecursionError)."""
    ex = extract_json(content)
    assert not ex.ok and ex.value is None and error in (ex.error or "")
    res = parse_entities_v1(content)
    assert res.candidates == [] and error in (res.error or "")


@pytest.mark.parametrize(
    ("content", "pairs", "reject_reasons"),
    [
        ('{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭州市", "label": "city"}]}',
         [("浙江省", "prov"), ("杭州市", "city")], []),
        ('[["浙江省", "prov"]]', [("浙江省", "prov")], []),
        ('{"entities": [{"entity": "文三路", "type": "road"}]}', [("文三路", "road")], []),
        ('{"prov": ["浙江省"], "city": "杭州市"}', [("浙江省", "prov"), ("杭州市", "city")], []),
        ('{"entities": [{"text": "浙江省"}, 5, {"label": "city"}, {"text": "", "label": "x"}, '
         '{"text": 3, "label": "prov"}]}', [],
         ["no label", "not an object", "no text", "text is empty", "must be strings"]),
        ('{"entities": [{"text": "浙江省", "label": "prov"}, {"text": "杭', [("浙江省", "prov")], ["truncated"]),
    ],
)
def test_parse_table(content: str, pairs: list[tuple[str, str]], reject_reasons: list[str]) -> None:
    res = parse_entities_v1(content)
    assert [(c.text, c.label) for c in res.candidates] == pairs
    assert len(res.rejects) == len(reject_reasons)
    for rej, expected in zip(res.rejects, reject_reasons, strict=True):
        assert expected in rej.reason
    assert res.returned == len(pairs) + len(reject_reasons)
    assert res.error is None


@pytest.mark.parametrize("content", ["no json here", '{"note": 1}', '"just a string"'])
def test_parse_whole_answer_unusable(content: str) -> None:
    res = parse_entities_v1(content)
    assert res.error and res.returned == 0


def test_parser_registry_names_versions() -> None:
    assert get_parser("entities.v1") is parse_entities_v1
    with pytest.raises(ValueError, match="registered parsers are: entities.v1"):
        get_parser("entities.v9")
