"""The sharded steps and their fan-in, called directly (no KFP): N shards gathered in any order give exactly what
one task over the whole traffic gives, the counts reconcile, and a missing, repeated or foreign shard is refused."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from nerwheel.components.data import RECORDS_FILE, REJECTS_FILE, read_artifact, sample_path
from nerwheel.components.steps import annotate, feedback, gather, pseudo_label, shard
from nerwheel.records import Entity, Record
from nerwheel.shards import ShardError


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled traffic with blank lines, a line that is not UTF-8 and one eval text mixed in."""
    lines = sample_path("texts").read_bytes().splitlines()[:120]
    lines[10:10] = [b"", b"\xff\xfe not utf-8"]
    lines[50:50] = [b"   "]
    evaluation = json.loads(sample_path("eval").read_text(encoding="utf-8").splitlines()[0])["text"]
    lines[70:70] = [evaluation.encode()]
    path = tmp_path_factory.mktemp("traffic") / "traffic.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def kfp_item(s: dict) -> dict:
    """A plan item as a KFP loop hands it to a task: numbers arrive as floats."""
    return {k: float(v) if isinstance(v, int) else v for k, v in s.items()}


def plan(traffic: Path, n: int, tmp: Path) -> tuple[list[dict], Path]:
    out = tmp / f"plan-{n}"
    return shard.run(texts_uri=str(traffic), shards=n, plan_path=str(out)), out


def run_gather(parts: list[Path], plan_path: Path, out: Path, **kw) -> dict:
    return gather.run(part_paths=[str(p) for p in parts], plan_path=str(plan_path), out_path=str(out),
                      report_path=str(out.with_suffix(".html")), **kw)


def test_annotate_shards_gathered_in_any_order_equal_one_task(traffic: Path, tmp_path: Path) -> None:
    kw = {"texts_uri": str(traffic), "seed_uri": "", "teacher": "kb", "llm_endpoint": "", "llm_model": ""}
    whole = annotate.run(**kw, out_path=str(tmp_path / "whole"), report_path=str(tmp_path / "whole.html"))
    items, plan_path = plan(traffic, 3, tmp_path)
    assert len(items) == 3
    parts = []
    for i, item in enumerate(items):
        out = tmp_path / f"part-{i}"
        annotate.run(**kw, shard=kfp_item(item), out_path=str(out), report_path=str(out) + ".html")
        parts.append(out)
    parts = [parts[2], parts[0], parts[1]]  # KFP collects in any order
    totals = run_gather(parts, plan_path, tmp_path / "gathered")

    for name in (RECORDS_FILE, REJECTS_FILE):
        assert (tmp_path / "gathered" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    ids = [r.id for r in read_artifact(tmp_path / "gathered")]
    assert ids == sorted(ids, key=lambda i: int(i.rsplit(":", 1)[1])), "input order"
    # read = accepted + rejected over all shards, and equal to the whole-file task's counts
    assert totals["read"] == totals["accepted"] + totals["rejected"] == whole["texts"] + whole["texts_rejected"]
    assert totals["accepted"] == whole["labelled"] and totals["sum_entities"] == whole["entities"]
    summary = json.loads((tmp_path / "gathered" / gather.SUMMARY_FILE).read_text())
    assert summary["totals"]["order"] == [1, 2, 0] and summary["records"] == whole["labelled"]
    assert [s["index"] for s in summary["shards"]] == [0, 1, 2]


def test_gather_refuses_parts_that_do_not_add_up(traffic: Path, tmp_path: Path) -> None:
    items, plan_path = plan(traffic, 2, tmp_path)
    kw = {"texts_uri": str(traffic), "seed_uri": "", "teacher": "kb", "llm_endpoint": "", "llm_model": ""}
    parts = []
    for i, item in enumerate(items):
        out = tmp_path / f"p{i}"
        annotate.run(**kw, shard=item, out_path=str(out), report_path=str(out) + ".html")
        parts.append(out)
    with pytest.raises(ShardError, match=r"shard\(s\) 1 of 2 reported nothing"):
        run_gather(parts[:1], plan_path, tmp_path / "g1")
    with pytest.raises(ShardError, match="shard 0 reported twice"):
        run_gather([parts[0], parts[0], parts[1]], plan_path, tmp_path / "g2")
    _, other_plan = plan(traffic, 3, tmp_path)
    with pytest.raises(ShardError, match="the plan has 3 shards"):
        run_gather(parts, other_plan, tmp_path / "g3")
    # a part whose records file lost a line is caught by its own count
    lines = (parts[1] / RECORDS_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    (parts[1] / RECORDS_FILE).write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(ShardError, match="records, but its shard.json says"):
        run_gather(parts, plan_path, tmp_path / "g4")


def test_a_shard_of_another_file_is_refused(traffic: Path, tmp_path: Path) -> None:
    items, _ = plan(traffic, 2, tmp_path)
    other = tmp_path / "other.txt"
    other.write_bytes(traffic.read_bytes())
    with pytest.raises(ValueError, match="the shard is of .*traffic.txt, but the step was given texts_uri"):
        annotate.run(texts_uri=str(other), shard=items[0], seed_uri="", teacher="kb", llm_endpoint="", llm_model="",
                     out_path=str(tmp_path / "x"), report_path=str(tmp_path / "x.html"))


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small production export: a tiny model trained on generated addresses, exported to ONNX."""
    from nerwheel.model.config import validate
    from nerwheel.stages.export import export
    from nerwheel.stages.train import train

    rng = random.Random(2)
    parts = [("浙江省", "prov"), ("杭州市", "city"), ("西湖区", "district"), ("江苏省", "prov"), ("南京市", "city"),
             ("鼓楼区", "district"), ("文三路", "road"), ("中山路", "road")]
    records = []
    for i in range(160):
        chosen = [parts[rng.randrange(0, 3) + 3 * rng.randrange(2)], parts[6 + rng.randrange(2)]]
        text, ents = "", []
        for piece, label in chosen:
            ents.append(Entity(len(text), len(text) + len(piece), label, piece))
            text += piece
        text += f"{rng.randint(1, 99)}号"
        records.append(Record(f"r{i}", text, tuple(ents)))
    out = tmp_path_factory.mktemp("production")
    cfg = validate({"model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
                    "training": {"epochs": 2, "batch_size": 16, "sequence_length": 48, "stride": 16, "threads": 1},
                    "output": {"output_dir": str(out), "model_name": "prod", "timestamp": False,
                               "save_total_limit": 0, "plots": False}})
    model = train(cfg, train_records=records[:140], dev_records=records[140:])
    export(model, out / "export")
    return out / "export"


def loop_turn(traffic: Path, production: Path, n: int, tmp: Path) -> tuple[dict, Path]:
    """The production branch of one run with ``n`` shards: feedback -> pseudo-label per shard, then the fan-in."""
    items, plan_path = plan(traffic, n, tmp)
    parts, extras = [], []
    for i, item in enumerate(items):
        fb, pl = tmp / f"fb-{n}-{i}", tmp / f"pl-{n}-{i}"
        feedback.run(texts_uri=str(traffic), shard=kfp_item(item), production_uri=str(production), teacher="kb",
                     llm_endpoint="", llm_model="", llm_max_tokens=64, seed_uri="", eval_uri="", llm_cache_uri="",
                     out_path=str(fb), report_path=str(fb) + ".html")
        pseudo_label.run(feedback_path=str(fb), production_uri=str(production), threshold=0.5, out_path=str(pl),
                         report_path=str(pl) + ".html")
        parts.append(fb)
        extras.append(pl)
    out = tmp / f"gathered-{n}"
    totals = run_gather(parts[::-1], plan_path, out, extra_paths=[str(p) for p in extras[::-1]], replay_ratio=0.5,
                        seed=7)
    return totals, out


def test_the_feedback_loop_sharded_is_the_same_as_unsharded(traffic: Path, production: Path, tmp_path: Path) -> None:
    one, out1 = loop_turn(traffic, production, 1, tmp_path)
    three, out3 = loop_turn(traffic, production, 3, tmp_path)
    assert (out1 / RECORDS_FILE).read_bytes() == (out3 / RECORDS_FILE).read_bytes()
    for key in ("read", "accepted", "rejected", "records", "replay", "sum_disagreed", "sum_agreed",
                "sum_teacher_failed", "sum_holdout_dropped"):
        assert one[key] == three[key], key
    assert three["read"] == three["accepted"] + three["rejected"]
    assert three["sum_holdout_dropped"] == 1, "the eval text in the traffic never reaches training"
    assert three["sum_agreed"] + three["sum_disagreed"] + three["sum_teacher_failed"] + \
        three["sum_holdout_dropped"] == three["accepted"]
    records = read_artifact(out3)
    roles = [(r.meta.get("feedback") or {}).get("role") or ("pseudo" if "pseudo_label" in r.meta else None)
             for r in records]
    n_dis = roles.count("disagreement")
    assert n_dis == three["sum_disagreed"] > 0
    assert roles.count("replay") == three["replay"] == min(round(0.5 * n_dis), int(three["sum_agreed"]))
    assert roles.count("pseudo") == three["extra_records"]
    assert roles == sorted(roles, key=["disagreement", "replay", "pseudo"].index), "disagreements, replay, pseudo"
    unlabelled = {r.text for r in read_artifact(out3, "unlabelled.jsonl")}
    pseudo = [r for r, role in zip(records, roles) if role == "pseudo"]
    assert all(r.text in unlabelled and all(e.source.startswith("model:") for e in r.entities) for r in pseudo)
