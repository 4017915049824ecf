"""`nerwheel train | evaluate | export | predict` end to end, on the shared tiny model and small files."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from model_synth import make_records
from nerwheel.formats import write_records
from nerwheel.model.card import ModelCard


def _run(*args):
    from nerwheel.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return res


def test_train_from_ini_with_timestamped_folder(tmp_path):
    write_records(make_records(30, seed=2), tmp_path / "train.jsonl")
    ini = tmp_path / "c.ini"
    ini.write_text(
        "[model]\nmodel_id = tiny\n[model.tiny]\nhidden_size = 32\nnum_layers = 1\nnum_heads = 2\n"
        "intermediate_size = 64\n[data]\ntrain_file = " + str(tmp_path / "train.jsonl") + "\n"
        "[training]\nmax_epochs = 1\nbatch_size = 8\nsequence_length = 32\nstride = 8\nthreads = 1\n"
        "[output]\noutput_dir = " + str(tmp_path / "runs") + "\nmodel_name = addr\nplots = false\n",
        encoding="utf-8")
    res = _run("train", "--config", ini, "--set", "model.head=softmax")
    assert res.exit_code == 0, res.output
    (model_dir,) = (tmp_path / "runs").iterdir()
    assert model_dir.name.startswith("addr-") and len(model_dir.name) == len("addr-20240101-000000")
    assert res.stdout.strip() == str(model_dir)
    card = ModelCard.read(model_dir)
    assert card.head == "softmax" and card.data["dev_split"]["ratio"] == 0.1


def test_predict_plain_text_in_input_order(tiny_model, tmp_path):
    texts = ["浙江省杭州市西湖区文三路100号", "南京市鼓楼区中山路", "", "广州市天河区建设路12号国贸大厦"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    res = _run("predict", tmp_path / "in.txt", "--model", tiny_model, "--out", tmp_path / "out.jsonl")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == [t for t in texts if t]  # the text reader skips blank lines
    assert {"label": "city", "text": "南京市"}.items() <= rows[1]["entities"][0].items()
    assert all(0 < e["score"] <= 1 for r in rows for e in r["entities"])


def test_export_into_model_folder_then_predict_prefers_onnx(tiny_model, tmp_path, address_data):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model, ignore=shutil.ignore_patterns("checkpoints"))
    write_records(address_data["test"], tmp_path / "eval.jsonl")
    res = _run("export", "--model", model, "--eval", tmp_path / "eval.jsonl")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["parity"]["entities_identical"] is True
    assert (model / "onnx" / "model.onnx").is_file()
    res = _run("predict", tmp_path / "eval.jsonl", "--model", model, "--out", tmp_path / "p.jsonl")
    assert res.exit_code == 0 and "OnnxTagger" in res.output
    res = _run("export", "--model", model)
    assert res.exit_code == 1 and "exists" in res.output


def test_evaluate_writes_every_report(tiny_model, tmp_path, address_data):
    write_records(address_data["test"], tmp_path / "gold.jsonl")
    out = tmp_path / "eval"
    res = _run("evaluate", "--model", tiny_model, "--data", tmp_path / "gold.jsonl", "--out", out)
    assert res.exit_code == 0, res.output
    assert {"metrics.json", "report.txt", "errors.jsonl", "predictions.jsonl", "f1_by_type.png",
            "confusion.png"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_records"] == len(address_data["test"]) and metrics["overall"]["strict"]["f1"] >= 0.95
    assert "micro avg" in (out / "report.txt").read_text(encoding="utf-8")
    for line in (out / "errors.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert row["error"] in ("false_positive", "false_negative") and "[" in row["context"]


def test_predict_needs_exactly_one_model_source(tmp_path):
    (tmp_path / "in.txt").write_text("杭州市\n", encoding="utf-8")
    res = _run("predict", tmp_path / "in.txt", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "exactly one" in res.output
    res = _run("predict", tmp_path / "in.txt", "--model", tmp_path, "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 1 and "neither an export" in res.output
