"""Splits: deterministic, exact, nested, leak-free; dedup and the leakage check."""

from __future__ import annotations

import random

import pytest

from nerwheel.records import Entity, Record
from nerwheel.stages.split import (
    dedup,
    drop_leaks,
    find_leaks,
    nested_fractions,
    normalize_text,
    parse_fractions,
    parse_ratio,
    split_dataset,
    split_records,
)


def make(n: int, prefix: str = "地址") -> list[Record]:
    return [Record(f"id{i}", f"{prefix}{i}号") for i in range(n)]


def ids(rs: list[Record]) -> list[str]:
    return [r.id for r in rs]


def test_same_seed_same_split_and_independent_of_input_order() -> None:
    recs = make(200)
    a = split_records(recs, "8:2", seed=7)
    shuffled = recs[:]
    random.Random(1).shuffle(shuffled)
    b = split_records(shuffled, "8:2", seed=7)
    assert set(ids(a["train"])) == set(ids(b["train"])) and set(ids(a["dev"])) == set(ids(b["dev"]))
    c = split_records(recs, "8:2", seed=8)
    assert set(ids(a["dev"])) != set(ids(c["dev"]))
    assert ids(a["train"]) == [r.id for r in recs if r.id in set(ids(a["train"]))]  # input order kept


@pytest.mark.parametrize("n,ratio,sizes", [
    (100, "8:2", {"train": 80, "dev": 20}),
    (10, "80:10:10", {"train": 8, "dev": 1, "test": 1}),
    (7, "0.8:0.2", {"train": 6, "dev": 1}),
    (1, "8:2", {"train": 1, "dev": 0}),
    (0, "8:2", {"train": 0, "dev": 0}),
])
def test_sizes_are_exact(n: int, ratio: str, sizes: dict[str, int]) -> None:
    parts = split_records(make(n), ratio, seed=0)
    assert {k: len(v) for k, v in parts.items()} == sizes
    assert sorted(ids(sum(parts.values(), []))) == sorted(ids(make(n)))


def test_identical_texts_never_straddle_parts() -> None:
    recs = make(50) + [Record(f"dup{i}", " 地址3号 ") for i in range(5)] + [Record("fw", "地址１２号")]
    parts = split_records(recs, "1:1", seed=3)
    for name, other in (("train", "dev"), ("dev", "train")):
        assert find_leaks(parts[name], parts[other]) == []


def test_nested_fractions_contain_each_other() -> None:
    recs = make(41)
    subs = nested_fractions(recs, "1.0,0.25,0.5", seed=2)
    assert list(subs) == [0.25, 0.5, 1.0]
    assert [len(v) for v in subs.values()] == [11, 21, 41]
    assert set(ids(subs[0.25])) <= set(ids(subs[0.5])) <= set(ids(subs[1.0]))
    assert nested_fractions(recs, "0.25", seed=2)[0.25] == subs[0.25]
    assert set(ids(nested_fractions(recs, "0.25", seed=3)[0.25])) != set(ids(subs[0.25]))


@pytest.mark.parametrize("bad", ["8", "8:x", "-1:2", "0:0", ""])
def test_bad_ratio_is_explained(bad: str) -> None:
    with pytest.raises(ValueError, match="ratio"):
        parse_ratio(bad)


@pytest.mark.parametrize("bad", ["0", "1.5", "a", ""])
def test_bad_fractions_are_explained(bad: str) -> None:
    with pytest.raises(ValueError, match="fractions"):
        parse_fractions(bad)


def test_names_must_match_the_ratio() -> None:
    with pytest.raises(ValueError, match="need 3 distinct names"):
        split_records(make(5), "8:1:1", names=["a", "b"])
    with pytest.raises(ValueError, match="explicit names"):
        split_records(make(5), "1:1:1:1")
    assert list(split_records(make(5), "1:1:1:1", names="abcd")) == ["a", "b", "c", "d"]


def test_dedup_keeps_first_and_counts_conflicting_labels() -> None:
    t = "浙江省"
    a = Record("a", t, (Entity.at(t, 0, 3, "prov"),))
    b = Record("b", t)
    c = Record("c", t, (Entity.at(t, 0, 3, "prov"),))
    d = dedup([a, b, Record("x", "x"), c])
    assert ids(d.records) == ["a", "x"] and ids(d.duplicates) == ["b", "c"] and d.conflicts == 1
    assert ids(dedup([Record("p", "a b"), Record("q", " a  b")], normalize=True).records) == ["p"]
    assert len(dedup([Record("p", "a b"), Record("q", " a  b")]).records) == 2


def test_leakage_check_normalises_whitespace_and_width() -> None:
    assert normalize_text(" 朝阳区\u3000０号\n ") == "朝阳区 0号"
    train = [Record("t1", "朝阳区 0号"), Record("t2", "海淀区"), Record("t3", "朝阳区\t0号 ")]
    evaluation = [Record("e1", "朝阳区  ０号")]
    assert ids(find_leaks(train, evaluation)) == ["t1", "t3"]
    kept, leaked = drop_leaks(train, evaluation)
    assert ids(kept) == ["t2"] and ids(leaked) == ["t1", "t3"]


def test_split_dataset_manifest_reconciles() -> None:
    recs = make(30) + [Record("dup", "地址1号")]
    res = split_dataset(recs, "8:2", "0.5,1", seed=0)
    m = res.manifest()
    assert m["parts"] == {"train": 24, "dev": 6} and m["duplicates_dropped"] == 1 and m["leaks"] == 0
    assert m["subsets"] == {"train_50pct": 12, "train_100pct": 24}
    assert res.subsets[1.0] == res.parts["train"]
