import pydantic
import pytest

from nerwheel.records import Entity, Record
from nerwheel.stages.merge import MergeConfig, MergeError, SourceInput, merge, source_kind

TEXT = "浙江省杭州市西湖区文三路100号"  # 浙江省[0:3] 杭州市[3:6] 西湖区[6:9] 文三路[9:12] 100号[12:16]


def ent(start, end, label, source=None, score=None):
    return Entity.at(TEXT, start, end, label, source=source, score=score)


def rec(*ents, rid="r1", text=TEXT):
    return Record(rid, text, tuple(ents))


def spans(record):
    return [(e.start, e.end, e.label, e.source) for e in record.entities]


@pytest.mark.parametrize(
    "source, kind", [("llm:qwen2.5", "llm"), ("kb", "kb"), ("model:v3", "model"), ("LLM:x", "llm"), (None, None)]
)
def test_source_kind(source, kind):
    assert source_kind(source) == kind


# precedence table: (precedence, sources with their span, expected winner span+source, conflict kind)
PRECEDENCE_CASES = [
    # type conflict: same offsets, other label
    ("gold,kb,llm,model", [("kb", (3, 6, "city")), ("model:v1", (3, 6, "district"))], (3, 6, "city", "kb"), "type"),
    # boundary conflict: same label, other offsets
    ("gold,kb,llm,model", [("model:v1", (9, 13, "road")), ("kb", (9, 12, "road"))], (9, 12, "road", "kb"), "boundary"),
    # overlap: both differ
    ("gold,kb,llm,model", [("llm:a", (6, 12, "poi")), ("kb", (6, 9, "district"))], (6, 9, "district", "kb"), "overlap"),
    # precedence is configurable: model first now wins
    ("model,kb", [("kb", (3, 6, "city")), ("model:v1", (3, 6, "district"))], (3, 6, "district", "model:v1"), "type"),
    ("gold,llm,kb,model", [("kb", (3, 6, "city")), ("llm:a", (3, 6, "district"))], (3, 6, "district", "llm:a"), "type"),
]


@pytest.mark.parametrize("precedence, votes, winner, kind", PRECEDENCE_CASES)
def test_precedence_decides_conflicts(precedence, votes, winner, kind):
    extras = [SourceInput(src, [rec(ent(*span, source=src))]) for src, span in votes]
    result = merge(None, extras, MergeConfig(precedence=precedence))
    (out,) = result.records
    assert spans(out) == [winner]
    assert result.report.conflicts[kind] == 1
    assert sum(result.report.conflicts.values()) == 1
    example = result.report.examples[kind][0]
    assert (example["kept"]["start"], example["kept"]["end"], example["kept"]["label"]) == winner[:3]


def test_votes_provenance_and_vote_share():
    extras = [
        SourceInput("kb", [rec(ent(0, 3, "prov"), ent(3, 6, "city"))], kind="kb"),
        SourceInput("llm-a", [rec(ent(0, 3, "prov", "llm:a", 0.9))]),
        SourceInput("m", [rec(ent(0, 3, "prov", "model:v1", 0.7), ent(12, 16, "houseno", "model:v1", 0.6))]),
    ]
    (out,) = merge(None, extras).records
    by_span = {(e.start, e.end, e.label): e for e in out.entities}
    prov = by_span[(0, 3, "prov")]
    assert prov.source == "kb"  # highest-precedence supporter
    assert prov.score == 1.0  # all three voters agree
    assert by_span[(3, 6, "city")].score == round(1 / 3, 4)
    assert by_span[(12, 16, "houseno")].source == "model:v1"
    prov_meta = next(p for p in out.meta["merge"]["entities"] if p["label"] == "prov")
    assert prov_meta["sources"] == ["kb", "llm:a", "model:v1"]
    assert prov_meta["scores"] == {"llm:a": 0.9, "model:v1": 0.7}
    assert out.meta["merge"]["inputs"] == ["kb", "llm-a", "m"]


def test_llm_agreement_threshold():
    def run(llm_sources, k):
        extras = [SourceInput("m", [rec(ent(3, 6, "district", "model:v1"))])]
        extras += [SourceInput(s, [rec(ent(3, 6, "city", s))]) for s in llm_sources]
        return merge(None, extras, MergeConfig(min_agreement=k))

    agreed = run(["llm:a", "llm:b"], 2)
    assert spans(agreed.records[0]) == [(3, 6, "city", "llm:a")]
    lone = run(["llm:a"], 2)  # one LLM is not enough: it falls below the model
    assert spans(lone.records[0]) == [(3, 6, "district", "model:v1")]
    assert lone.report.below_agreement == 1
    assert spans(run(["llm:a"], 1).records[0]) == [(3, 6, "city", "llm:a")]


def test_unagreed_llm_span_still_fills_a_gap():
    extras = [SourceInput("llm", [rec(ent(9, 12, "road", "llm:a"))])]
    (out,) = merge(None, extras, MergeConfig(min_agreement=2)).records
    assert spans(out) == [(9, 12, "road", "llm:a")]


def test_gold_is_complete_by_default_and_fill_gold_opens_it():
    gold = [rec(ent(0, 3, "prov"), ent(3, 6, "city"))]
    kb = SourceInput("kb", [rec(ent(0, 3, "prov"), ent(3, 6, "district"), ent(9, 12, "road"))], kind="kb")
    closed = merge(gold, [kb])
    assert spans(closed.records[0]) == [(0, 3, "prov", "gold"), (3, 6, "city", "gold")]
    assert closed.report.conflicts["type"] == 1
    assert closed.report.conflicts["not_in_gold"] == 1
    assert closed.records[0].entities[0].score == 1.0  # gold and kb agree on prov

    opened = merge(gold, [kb], MergeConfig(fill_gold=True))
    assert spans(opened.records[0]) == [(0, 3, "prov", "gold"), (3, 6, "city", "gold"), (9, 12, "road", "kb")]
    assert opened.report.conflicts["type"] == 1 and opened.report.conflicts["not_in_gold"] == 0


def test_gold_overlaps_are_kept_as_written():
    gold = [rec(ent(0, 6, "poi"), ent(0, 3, "prov"))]
    (out,) = merge(gold, [], MergeConfig(fill_gold=True)).records
    assert len(out.entities) == 2


def test_extension_labels_never_conflict():
    gold = [rec(ent(0, 3, "prov"))]
    pos = SourceInput("pos", [rec(ent(0, 2, "pos:ns"), ent(2, 3, "pos:n"))], kind="model")
    result = merge(gold, [pos])
    assert [(e.label, e.source) for e in result.records[0].entities] == [
        ("pos:ns", "model"), ("prov", "gold"), ("pos:n", "model")]
    assert sum(result.report.conflicts.values()) == 0
    assert result.report.extension_entities_out == 2
    dropped = merge(gold, [pos], MergeConfig(keep_extension_labels=False))
    assert dropped.records[0].labels == ["prov"]


def test_original_plus_synthetic_is_one_call_and_reports_source_only():
    gold = [rec(ent(0, 3, "prov"), rid="g1"), Record("g2", "上海市", ())]
    synth = SourceInput("synthetic", [Record("s1", "北京市朝阳区", ()), Record("s2", "上海市", ())], kind="synthetic")
    result = merge(gold, [synth])
    assert [r.id for r in result.records] == ["g1", "g2", "s1"]  # s2 matched g2 by text
    assert result.report.source_only == {"gold": 1, "synthetic": 1}
    report = result.report.to_dict()
    assert report["conflicts"]["source_only"] == 2
    assert report["examples"]["source_only"][0] == {"id": "g1", "text": TEXT}
    assert result.records[1].meta["merge"]["inputs"] == ["gold", "synthetic"]


def test_match_by_id_then_text_and_id_clash():
    gold = [Record("a", "北京市", ()), Record("b", "上海市", ())]
    other = SourceInput("kb", [Record("b", "北京市", (Entity(0, 3, "city", "北京市"),))], kind="kb")
    result = merge(gold, [other], MergeConfig(fill_gold=True))
    # id "b" names a different text: reported, then matched by text to "a"
    assert result.report.conflicts["id_mismatch"] == 1
    assert [(r.id, r.labels) for r in result.records] == [("a", ["city"]), ("b", [])]


def test_new_record_with_taken_id_is_renamed():
    gold = [Record("1", "北京市", ())]
    other = SourceInput("synthetic", [Record("1", "天津市", ())], kind="synthetic")
    result = merge(gold, [other])
    assert [r.id for r in result.records] == ["1", "1~2"]
    assert result.report.renamed_ids == 1


def test_unranked_kind_and_missing_source_are_clear_errors():
    with pytest.raises(MergeError, match=r"kind 'rules'.*add it to precedence"):
        merge(None, [SourceInput("r.jsonl", [rec(ent(0, 3, "prov", "rules:v1"))])])
    with pytest.raises(MergeError, match=r"r.jsonl: record 'r1' entity prov\[0:3\] has no source; give the input a kind"):
        merge(None, [SourceInput("r.jsonl", [rec(ent(0, 3, "prov"))])])


def test_config_refuses_unknown_keys_and_bad_precedence():
    with pytest.raises(pydantic.ValidationError, match="min_agreemnt"):
        MergeConfig(min_agreemnt=2)
    with pytest.raises(pydantic.ValidationError, match="more than once"):
        MergeConfig(precedence="gold,kb,gold")
    assert MergeConfig(precedence="Gold, KB").precedence == ("gold", "kb")


def test_joint_teacher_source_counts_as_votes_from_each():
    extras = [
        SourceInput("ann", [rec(ent(3, 6, "city", "kb+llm:a", 1.0))]),
        SourceInput("m", [rec(ent(3, 6, "district", "model:v1"))]),
    ]
    result = merge(None, extras, MergeConfig(precedence="llm,model,kb", min_agreement=1))
    (e,) = result.records[0].entities
    assert (e.label, e.source) == ("city", "llm:a")
    assert result.records[0].meta["merge"]["entities"][0]["sources"] == ["kb", "llm:a"]
    assert e.score == round(2 / 3, 4)
