"""The flywheel commands on a real (micro) trained model and the real knowledge base.

One model is trained per module (about 3 s on one core); it is deliberately
under-trained, so model and teacher disagree and every path has work to do.
"""

import json
import random
import re

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.labels import ADDRESS_LABELS
from nerwheel.records import Entity, Record

PROVS = ["浙江省", "江苏省", "广东省", "四川省"]
CITIES = ["杭州市", "南京市", "广州市", "成都市"]
DISTRICTS = ["西湖区", "鼓楼区", "天河区", "武侯区"]
ROADS = ["文三路", "中山路", "人民路", "建设路"]


def make(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        parts = [(rng.choice(PROVS), "prov"), (rng.choice(CITIES), "city"), (rng.choice(DISTRICTS), "district"),
                 (rng.choice(ROADS), "road"), (f"{rng.randint(1, 99)}号", "roadno")]
        text, ents = "", []
        for piece, label in parts:
            ents.append(Entity(len(text), len(text) + len(piece), label, piece))
            text += piece
        out.append(Record(f"r{seed}-{i}", text, tuple(ents)))
    return out


def write(path, records):
    from nerwheel.formats import write_records

    write_records(records, path)
    return path


def run(*args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, res.output + repr(res.exception)
    return res


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from nerwheel.model.config import validate
    from nerwheel.stages.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("flywheel-model")
    cfg = validate({
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "training": {"epochs": 3, "batch_size": 16, "sequence_length": 48, "stride": 8, "threads": 1},
        "output": {"output_dir": str(tmp), "model_name": "prod", "timestamp": False, "save_total_limit": 0,
                   "plots": False},
    })
    data = make(80, seed=1)
    model = train(cfg, train_records=data[:60], dev_records=data[60:])
    yield {"model": model, "train": write(tmp / "train.jsonl", data[:60]), "tmp": tmp}
    torch.set_num_threads(before)


def test_feedback_cli_end_to_end_with_review_round_trip(micro, tmp_path):
    # live texts go beyond the training templates (a place name after the number): the KB labels it, the model cannot
    traffic = [Record(r.id, r.text + "阳光小区", ()) for r in make(12, seed=5)]
    evaluation = traffic[:2]
    inp = write(tmp_path / "traffic.jsonl", traffic)
    ev = write(tmp_path / "eval.jsonl", evaluation)
    out, ls = tmp_path / "fb.jsonl", tmp_path / "review.json"
    res = run("feedback", "--model", micro["model"], "--teacher", "kb", "--input", inp, "--out", out,
              "--replay", micro["train"], "--replay-ratio", "0.5", "--holdout", ev, "--labelstudio", ls)
    rep = json.loads((tmp_path / "fb.jsonl.report.json").read_text(encoding="utf-8"))
    assert rep["holdout_dropped"] == 2 and rep["texts"] == 10
    assert rep["agreed"] + rep["disagreed"] + rep["teacher_failed"] == 10
    assert sum(rep["by_kind"].values()) >= rep["disagreed"]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    roles = [r["meta"]["feedback"]["role"] for r in rows]
    assert roles.count("disagreement") == rep["disagreed"] and roles.count("replay") == rep["replay"]
    assert rep["replay"] == round(0.5 * rep["disagreed"])
    assert not {r["text"] for r in rows} & {r.text for r in evaluation}
    assert "disagreed" in res.output

    assert rep["disagreed"] > 0, rep
    tasks = json.loads(ls.read_text(encoding="utf-8"))
    assert len(tasks) == rep["disagreed"]
    assert {p["model_version"] for t in tasks for p in t["predictions"]} <= {"kb", "model:prod"}
    assert any(p["model_version"] == "kb" for p in tasks[0]["predictions"])
    # the labelling config offers every label of the schema (the KB's and the model's), not only those proposed
    config_xml = (tmp_path / "review.label_config.xml").read_text(encoding="utf-8")
    offered = set(re.findall(r'<Label value="([^"]+)"/>', config_xml))
    proposed = {r["value"]["labels"][0] for t in tasks for p in t["predictions"] for r in p["result"]}
    assert offered == set(ADDRESS_LABELS) and proposed < offered
    # a reviewer accepts the KB's proposal on the first task only
    kb = next(p for p in tasks[0]["predictions"] if p["model_version"] == "kb")
    tasks[0]["annotations"] = [{"id": 1, "completed_by": 7, "result": kb["result"]}]
    ls.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    run("feedback", "import", ls, "--out", gold)
    (row,) = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines()]
    assert {e["source"] for e in row["entities"]} == {"gold:review"}
    assert len(row["entities"]) == len(kb["result"])
    unreviewed = (tmp_path / "gold.jsonl.rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(unreviewed) == len(tasks) - 1


def test_feedback_cli_usage_errors(micro, tmp_path):
    res = run("feedback", "--model", micro["model"], code=2)
    assert "missing --input, --out: the diff takes `nerwheel feedback --model MODEL --input TEXTS --out FILE" \
        in res.output and "`nerwheel feedback import REVIEWED --out FILE`" in res.output
    usage = run("feedback", "--help").output.splitlines()
    assert usage[:2] == ["Usage: cli feedback --model MODEL --input TEXTS --out FILE [OPTIONS]",
                         "   or: cli feedback import REVIEWED --out FILE"]
    inp = write(tmp_path / "t.jsonl", make(2, seed=9))
    res = run("feedback", "--model", micro["model"], "--input", inp, "--out", tmp_path / "o.jsonl",
              "--teacher", "llm", code=2)
    assert "needs an LLM endpoint and a model name (CLI: --llm-url and --llm-model" in res.output


def test_pseudo_label_cli(micro, tmp_path):
    texts = [r.with_entities(()) for r in make(8, seed=7)]
    inp = write(tmp_path / "texts.jsonl", texts)
    ev = write(tmp_path / "eval.jsonl", texts[:1])
    out, report = tmp_path / "pl.jsonl", tmp_path / "pl.json"
    run("pseudo-label", inp, "--model", micro["model"], "--out", out, "--threshold", "0", "--exclude", ev,
        "--report", report)
    rep = json.loads(report.read_text())
    assert rep["texts"] == 7 and rep["excluded_eval_texts"] == 1 and rep["entities_dropped"] == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(e["source"] == "model:prod" and 0 <= e["score"] <= 1 for r in rows for e in r["entities"])
    scores = sorted(e["score"] for r in rows for e in r["entities"])
    assert scores, "the micro model predicts spans on its own training templates"
    cut = scores[len(scores) // 2]  # a threshold inside the scores keeps exactly the spans at or above it
    run("pseudo-label", inp, "--model", micro["model"], "--out", out, "--threshold", cut, "--exclude", ev,
        "--report", report)
    rep = json.loads(report.read_text())
    assert rep["entities_kept"] == sum(1 for s in scores if s >= cut)
    assert rep["entities_kept"] + rep["entities_dropped"] == len(scores)
    res = run("pseudo-label", inp, "--model", micro["model"], "--out", out, "--threshold", "1.5", code=2)
    assert "threshold" in res.output


def test_gate_cli_evaluates_model_dirs_on_the_eval_set(micro, tmp_path):
    ev = write(tmp_path / "eval.jsonl", make(10, seed=11))
    out = tmp_path / "decision.json"
    res = run("gate", "--candidate", micro["model"], "--data", ev, "--out", out)
    assert "no production model" in res.output
    assert (tmp_path / "gate-eval" / "candidate" / "metrics.json").is_file()
    res = run("gate", "--candidate", micro["model"], "--production", micro["model"], "--data", ev, "--out", out,
              code=3)
    dec = json.loads(out.read_text())
    assert dec["verdict"] == "refuse" and dec["overall"]["delta"] == 0.0
    assert "below min_delta" in res.output
