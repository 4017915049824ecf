import pickle

import pytest

from nerwheel.records import Entity, FrozenMeta, Record, RecordError


def test_entity_checks_offsets_and_text_length():
    with pytest.raises(RecordError, match="0 <= start < end"):
        Entity(3, 3, "road", "")
    with pytest.raises(RecordError, match="has length"):
        Entity(0, 3, "road", "清远")
    with pytest.raises(RecordError, match="non-empty"):
        Entity(0, 2, "", "清远")


def test_record_checks_span_text_against_text():
    with pytest.raises(RecordError, match="says '九堡' but the text there is '江干'"):
        Record("r1", "杭州江干区", (Entity(2, 4, "district", "九堡"),))
    with pytest.raises(RecordError, match="past the end"):
        Record("r1", "杭州", (Entity(1, 3, "city", "州市"),))


def test_record_sorts_entities_and_freezes_meta():
    r = Record("r1", "浙江杭州", (Entity.at("浙江杭州", 2, 4, "city"), Entity.at("浙江杭州", 0, 2, "prov")), {"a": 1})
    assert [e.label for e in r.entities] == ["prov", "city"]
    with pytest.raises(TypeError, match="read-only"):
        r.meta["b"] = 2  # type: ignore[index]
    assert r.with_meta(b=2).meta == {"a": 1, "b": 2} and r.meta == {"a": 1}


def test_record_round_trips_through_dict_and_pickle():
    r = Record("x", "九堡镇", (Entity(0, 3, "town", "九堡镇", source="kb", score=0.5),), {"k": [1, 2]})
    assert Record.from_dict(r.to_dict()) == r
    again = pickle.loads(pickle.dumps(r))
    assert again == r and isinstance(again.meta, FrozenMeta)


def test_entity_equality_ignores_provenance():
    assert Entity(0, 2, "prov", "浙江", source="kb") == Entity(0, 2, "prov", "浙江", source="llm", score=0.1)
