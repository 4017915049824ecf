"""The embedded sample data set: valid, disjoint, the sizes promised, and exactly what build.py makes."""

from __future__ import annotations

import json
import random

from nerwheel.data.sample import build, sample_path
from nerwheel.formats import read_records
from nerwheel.labels import ADDRESS_LABELS


def test_seed_and_eval_are_valid_labelled_and_disjoint() -> None:
    seed = read_records(sample_path("seed.jsonl"))
    ev = read_records(sample_path("eval.jsonl"))
    assert not seed.rejects and not ev.rejects
    assert len(seed.records) >= 120 and len(ev.records) >= 60
    texts = [r.text for r in seed.records] + [r.text for r in ev.records]
    assert len(set(texts)) == len(texts)
    labels = {e.label for r in seed.records + ev.records for e in r.entities}
    assert labels <= set(ADDRESS_LABELS)
    assert labels >= set(ADDRESS_LABELS) - {"detail"}  # every common type appears
    for r in seed.records + ev.records:
        assert r.entities and all(r.text[e.start:e.end] == e.text for e in r.entities)


def test_traffic_is_unlabelled_lines_not_equal_to_labelled_texts() -> None:
    lines = sample_path("traffic.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 300 and all(line.strip() for line in lines)
    labelled = {json.loads(x)["text"] for f in ("seed.jsonl", "eval.jsonl")
                for x in sample_path(f).read_text(encoding="utf-8").splitlines()}
    assert not labelled & set(lines)


def test_files_are_what_build_makes() -> None:
    sections = build.parse()
    seed = [build.to_record(f"seed-{i + 1:03d}", p) for i, p in enumerate(sections["seed"])]
    assert [r.to_dict() for r in seed] == [json.loads(x) for x in
                                           sample_path("seed.jsonl").read_text(encoding="utf-8").splitlines()]
    evals = [build.to_record(f"eval-{i + 1:03d}", p) for i, p in enumerate(sections["eval"])]
    lines = build.traffic(sections["seed"] + sections["eval"], {r.text for r in seed + evals},
                          random.Random(20240601))
    assert lines == sample_path("traffic.txt").read_text(encoding="utf-8").splitlines()


def test_sample_files_are_small() -> None:
    assert sum(sample_path(f).stat().st_size for f in ("seed.jsonl", "eval.jsonl", "traffic.txt")) < 100_000
