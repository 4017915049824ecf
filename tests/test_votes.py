"""Vote fusion (nerwheel.votes): one joint-source format, one overlap pick, shared by annotate and merge."""

from __future__ import annotations

from nerwheel.records import Entity, Record
from nerwheel.stages.annotate import annotate
from nerwheel.stages.merge import SourceInput, merge
from nerwheel.votes import Candidate, blocker, joint_source, pick, seen_by, source_kind, vote_share, voters


def cand(start: int, end: int, label: str, *names: str) -> Candidate:
    c = Candidate(Entity(start, end, label, "浙江省杭州市西湖区"[start:end]))
    for n in names:
        c.vote(n)
    return c


def test_joint_source_round_trips_and_kinds() -> None:
    assert joint_source(["kb", "llm:qwen"]) == "kb+llm:qwen"
    assert voters("kb+llm:qwen") == ["kb", "llm:qwen"] and voters(" kb + ") == ["kb"] and voters(None) == []
    assert [source_kind(s) for s in ("llm:Qwen2.5", "KB", "", None)] == ["llm", "kb", None, None]
    assert vote_share(2, 3) == 0.6667 and vote_share(1, 0) == 1.0


def test_a_repeated_vote_counts_once_and_keeps_the_higher_score() -> None:
    c = cand(0, 3, "prov")
    c.vote("m", 0.4)
    c.vote("m", 0.9)
    c.vote("m", None)
    assert c.votes == 1 and c.sources == {"m": 0.9} and c.mean_score() == 0.9


def test_pick_keeps_in_order_and_names_the_winner_of_each_overlap() -> None:
    a, b, c = cand(0, 6, "city", "x", "y"), cand(3, 6, "city", "x"), cand(6, 9, "district", "x")
    kept, rejected = pick([a, b, c])
    assert kept == [a, c] and rejected == [(b, a)] and blocker(b, kept) is a
    kept, rejected = pick([a, b], compatible=lambda k, n: True)
    assert kept == [a, b] and rejected == []


def test_annotate_writes_the_joint_source_that_merge_reads_as_votes() -> None:
    class Teacher:
        def __init__(self, name: str) -> None:
            self.name = name

        def label(self, records):  # noqa: ANN001, ANN202
            from nerwheel.llm.validate import TeacherOutput

            return [TeacherOutput(entities=[Entity(0, 3, "prov", r.text[:3])]) for r in records]

    fused = annotate([Record("r", "浙江省杭州市")], [Teacher("kb"), Teacher("llm:qwen")])
    (ent,) = fused.records[0].entities
    assert (ent.source, ent.score) == ("kb+llm:qwen", 1.0)
    merged = merge(None, [SourceInput("annotated", fused.records)])
    assert merged.records[0].meta["merge"]["entities"][0]["sources"] == ["kb", "llm:qwen"]


def test_an_inputs_kind_is_no_extra_voter_beside_the_sources_it_names() -> None:
    # --extra llm=FILE whose entities say llm:qwen: one source; --extra kb=FILE without sources: kb
    assert seen_by([("llm", ["llm:qwen", "llm:qwen"]), ("kb", [None])]) == {"llm:qwen", "kb"}
    assert seen_by([("llm", [])]) == {"llm"}  # it saw the record and found nothing: it still counts
    assert seen_by([("llm", ["llm:qwen", None])]) == {"llm:qwen", "llm"}  # the unnamed entity is the kind's
    assert seen_by([(None, ["kb+llm:qwen"]), (None, [])]) == {"kb", "llm:qwen"}


def test_two_agreeing_sources_score_one_when_a_kind_is_given_too() -> None:
    """The double count of issue 16: `--extra llm=FILE` and the entities' own `llm:qwen` were two voters."""
    text = "浙江省杭州市"
    kb = SourceInput("kb.jsonl", [Record("r", text, (Entity(0, 3, "prov", "浙江省"),))], kind="kb")
    llm = SourceInput("llm.jsonl", [Record("r", text, (Entity(0, 3, "prov", "浙江省", source="llm:qwen"),))],
                      kind="llm")
    merged = merge(None, [kb, llm])
    (ent,) = merged.records[0].entities
    assert ent.score == 1.0 and merged.records[0].meta["merge"]["voters"] == ["kb", "llm:qwen"]
    lone = merge(None, [kb, SourceInput("llm.jsonl", [Record("r", text, ())], kind="llm")])
    assert lone.records[0].entities[0].score == 0.5  # the LLM saw the text and disagreed: one of two


def test_pick_looks_only_at_the_spans_it_overlaps(monkeypatch) -> None:
    """One 200,000-character text labelled with 62,500 entities kept annotate busy for 35 minutes: each new
    span was compared with every span kept before it. Now only with the kept spans it shares a character with;
    the result is the same as comparing every pair."""
    import random

    rng = random.Random(7)
    text = "x" * 400
    spans = [(s, s + rng.randint(1, 9)) for s in (rng.randrange(0, 390) for _ in range(300))]
    cands = [Candidate(Entity(s, e, rng.choice("ab"), text[s:e])) for s, e in spans]
    compatible = lambda k, n: k.entity.label == n.entity.label == "b"  # noqa: E731
    naive_kept: list[Candidate] = []
    naive_rejected = []
    for c in cands:  # the definition: the first kept one it overlaps and may not sit beside
        w = next((k for k in naive_kept if k.entity.overlaps(c.entity) and not compatible(k, c)), None)
        naive_kept.append(c) if w is None else naive_rejected.append((c, w))
    assert pick(cands, compatible) == (naive_kept, naive_rejected)

    calls = {"n": 0}
    real = Entity.overlaps

    def counted(self, other):
        calls["n"] += 1
        return real(self, other)

    monkeypatch.setattr(Entity, "overlaps", counted)
    many = [Candidate(Entity(i, i + 1, "a", "x")) for i in range(3000)]  # disjoint: all kept
    kept, _ = pick(many)
    assert len(kept) == 3000 and calls["n"] < 10_000  # comparing every pair: 4.5 million
