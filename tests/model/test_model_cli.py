"""`nerwheel train | evaluate | export | predict` end to end, on the shared tiny model and small files."""

from __future__ import annotations

import json
import re
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


def test_export_int8_without_gold_reports_agreement_not_an_f1_change(tiny_model, tmp_path, address_data):
    """No --eval: the int8 figure is agreement with fp32, and the report says so in keys and words."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model, ignore=shutil.ignore_patterns("checkpoints"))
    write_records(address_data["test"], tmp_path / "eval.jsonl")
    res = _run("export", "--model", model, "--quantize", "int8")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["parity"]["entities_identical"] is True and report["fp32"] is None
    i8 = report["int8"]
    assert i8["gold_records"] == 0 and 0.9 <= i8["agreement_f1_vs_fp32"] <= 1.0
    assert not {"gold_f1", "gold_f1_change"} & set(i8) and "no gold records given" in i8["note"]
    assert any("no gold records given" in n and "no F1 change" in n for n in report["notes"])
    assert (model / "onnx" / "model.onnx").is_file() and (model / "onnx" / "model.int8.onnx").is_file()
    res = _run("predict", tmp_path / "eval.jsonl", "--model", model, "--out", tmp_path / "p.jsonl")
    assert res.exit_code == 0 and "OnnxTagger" in res.output
    res = _run("export", "--model", model)
    assert res.exit_code == 1 and "exists" in res.output


def test_evaluate_writes_every_report(tiny_model, tmp_path, address_data):
    gold = tmp_path / "gold.jsonl"
    write_records(address_data["test"], gold)
    with gold.open("a", encoding="utf-8") as f:  # lines 81, 82: unreadable gold must be counted and listed
        f.write('{"text": "杭州市", "entities": [{"start": 0, "end": 9, "label": "city"}]}\n{not json\n')
    out = tmp_path / "eval"
    res = _run("evaluate", "--model", tiny_model, "--data", gold, "--out", out)
    assert res.exit_code == 0, res.output
    assert {"metrics.json", "report.txt", "errors.jsonl", "predictions.jsonl", "rejects.jsonl", "f1_by_type.png",
            "confusion.png"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    n = len(address_data["test"])
    assert metrics["input"] == {"read": n + 2, "accepted": n, "rejected": 2}
    assert f"read {n + 2} = accepted {n} + rejected 2" in res.stderr
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["file"], r["line"]) for r in rejects] == [(str(gold), n + 1), (str(gold), n + 2)]
    assert all(r["reason"] for r in rejects) and "offsets" in rejects[0]["reason"]
    assert metrics["n_records"] == n and metrics["overall"]["strict"]["f1"] >= 0.95
    assert "micro avg" in (out / "report.txt").read_text(encoding="utf-8")
    for line in (out / "errors.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert row["error"] in ("false_positive", "false_negative") and "[" in row["context"]


def test_evaluate_rejects_gold_labels_the_model_does_not_know(tiny_model, tmp_path, address_data):
    """Issue 17: a gold label outside the model's label set (STREETX) is a counted reject with its line, not a
    silent miss that lowers recall; the summary, metrics.json and report.txt name the label set used."""
    gold = tmp_path / "gold.jsonl"
    write_records(address_data["test"][:10], gold)
    with gold.open("a", encoding="utf-8") as f:  # line 11: a typo'd label; line 12: an extension label, kept
        f.write(json.dumps({"text": "杭州市文三路", "entities": [{"start": 3, "end": 6, "label": "STREETX"}]},
                           ensure_ascii=False) + "\n")
        f.write(json.dumps({"text": "杭州市文三路", "entities": [{"start": 0, "end": 3, "label": "city"},
                                                              {"start": 0, "end": 3, "label": "kb:city"}]},
                           ensure_ascii=False) + "\n")
    out = tmp_path / "eval"
    res = _run("evaluate", "--model", tiny_model, "--data", gold, "--out", out)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["input"] == {"read": 12, "accepted": 11, "rejected": 1} and metrics["n_records"] == 11
    (reject,) = [json.loads(x) for x in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert (reject["file"], reject["line"], reject["kind"]) == (str(gold), 11, "unknown-label")
    assert "unknown label 'STREETX'" in reject["reason"] and "city" in reject["reason"]
    labels = sorted(ModelCard.read(tiny_model).labels)
    assert metrics["label_set"] == {"source": f"the model ({tiny_model})", "labels": labels}
    assert "STREETX" not in metrics["per_type"]
    line = f"labels checked ({len(labels)}, from the model ({tiny_model})): {', '.join(labels)}"
    assert line in (out / "report.txt").read_text(encoding="utf-8") and line in res.stderr
    assert "read 12 = accepted 11 + rejected 1" in res.stderr


def test_predict_needs_exactly_one_model_source(tmp_path):
    (tmp_path / "in.txt").write_text("杭州市\n", encoding="utf-8")
    res = _run("predict", tmp_path / "in.txt", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "exactly one" in res.output
    res = _run("predict", tmp_path / "in.txt", "--model", tmp_path, "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 1 and "neither an export" in res.output


def test_evaluate_with_every_gold_line_rejected_fails_and_keeps_the_rejects(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"text": 3}\n{"text": "杭州", "entities": [{"start": 0}]}\n', encoding="utf-8")
    res = _run("evaluate", "--model", tmp_path / "no-model", "--data", gold, "--out", tmp_path / "eval")
    assert res.exit_code == 1 and "no records to evaluate" in res.output and "2 lines rejected" in res.output
    rows = (tmp_path / "eval" / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["line"] for r in rows] == [1, 2]


def test_train_writes_rejects_and_reconciles_every_input_file(tmp_path):
    """Bad lines of --train/--dev/--test and overlap-dropped spans end up in files and counts, not nowhere."""
    train_file, dev_file, test_file = tmp_path / "train.jsonl", tmp_path / "dev.jsonl", tmp_path / "test.jsonl"
    write_records(make_records(24, seed=2), train_file)
    write_records(make_records(8, seed=3), dev_file)
    write_records(make_records(4, seed=4), test_file)
    with train_file.open("a", encoding="utf-8") as f:
        f.write("{broken json\n")  # line 25: reader reject
        f.write('{"text": "   ", "entities": []}\n')  # line 26: blank text, refused by the tag policy
        f.write('{"text": "浙江省杭州市", "entities": [{"start": 0, "end": 6, "label": "city"}, '
                '{"start": 0, "end": 3, "label": "prov"}]}\n')  # line 27: accepted, prov dropped (keep-longest)
    with dev_file.open("a", encoding="utf-8") as f:
        f.write('{"text": "杭州", "entities": [{"start": 1, "end": 5, "label": "city"}]}\n')  # line 9
    with test_file.open("a", encoding="utf-8") as f:
        f.write("[]\n")  # line 5
    runs = tmp_path / "runs"
    res = _run("train", "--train", train_file, "--dev", dev_file, "--test", test_file, "--output-dir", runs,
               "--model-name", "m", "--epochs", "1", "--sequence-length", "32", "--set", "training.stride=8",
               "--set", "training.threads=1", "--set", "output.plots=false", "--set", "model.tiny.hidden_size=32",
               "--set", "model.tiny.num_layers=1", "--set", "model.tiny.num_heads=2",
               "--set", "model.tiny.intermediate_size=64")
    assert res.exit_code == 0, res.output
    (model_dir,) = runs.iterdir()
    data = ModelCard.read(model_dir).data
    assert {k: data["train_file"][k] for k in ("read", "accepted", "rejected")} == {
        "read": 27, "accepted": 25, "rejected": 2}
    assert {k: data["dev_file"][k] for k in ("read", "accepted", "rejected")} == {
        "read": 9, "accepted": 8, "rejected": 1}
    assert {k: data["test_file"][k] for k in ("read", "accepted", "rejected")} == {
        "read": 5, "accepted": 4, "rejected": 1}
    assert data["validation"]["overlap_spans_dropped"] == 1 and data["validation"]["overlap_records_affected"] == 1
    assert data["train_records"] + data["dev_records"] == 25 + 8
    rejects = [json.loads(line) for line in (model_dir / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((r["file"], r["line"], r["kind"]) for r in rejects) == sorted([
        (str(train_file), 25, "json"), (str(train_file), 26, "empty"), (str(dev_file), 9, "offsets"),
        (str(test_file), 5, rejects[-1]["kind"])])
    assert all(r["reason"] for r in rejects)
    (dropped,) = [json.loads(line) for line in (model_dir / "dropped_spans.jsonl").read_text().splitlines()]
    assert (dropped["line"], dropped["dropped"]["label"], dropped["kept"][0]["label"]) == (27, "prov", "city")
    for line in (f"train {train_file}: read 27 = accepted 25 + rejected 2",
                 f"dev {dev_file}: read 9 = accepted 8 + rejected 1",
                 f"test {test_file}: read 5 = accepted 4 + rejected 1",
                 "rejected: 4 records", "keep-longest: 1 overlapping spans dropped from 1 training records"):
        assert line in res.stderr
    assert res.stdout.strip() == str(model_dir)


def test_predict_without_out_writes_jsonl_to_stdout(tiny_model, tmp_path):
    """`nerwheel predict --model M INPUT`: records on stdout in input order; summaries and rejects on stderr."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "浙江省杭州市西湖区文三路100号"}\n{"text": 5}\n{"text": "南京市鼓楼区中山路"}\n'
                   '{"text": "广州市天河区建设路12号"}\n', encoding="utf-8")
    res = _run("predict", src, "--model", tiny_model)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["浙江省杭州市西湖区文三路100号", "南京市鼓楼区中山路", "广州市天河区建设路12号"]
    assert {"label": "city", "text": "南京市"}.items() <= rows[1]["entities"][0].items()
    assert "wrote 3 records to stdout" in res.stderr and f"{src}:2:" in res.stderr and "read 4" in res.stderr
    res = _run("predict", src, "--model", tiny_model, "--rejects", tmp_path / "bad.jsonl")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 3
    assert [json.loads(r)["line"] for r in (tmp_path / "bad.jsonl").read_text().splitlines()] == [2]


HF_STYLE = """\
model:
  name: tiny
  num_labels: {num_labels}
  max_length: 32
  tiny: {{hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}
training:
  epochs: 2
  batch_size: 8
  learning_rate: 2.0e-5
  stride: 8
  threads: 1
scheduler:
  num_warmup_steps: 2
early_stopping:
  patience: 10
logging:
  steps: 2
  eval_steps: 3
output:
  output_dir: {out}
  model_name: hf
  timestamp: false
  save_strategy: steps
  save_steps: 3
  save_total_limit: 2
  plots: false
"""


def test_train_honours_a_hugging_face_yaml_verbatim(tmp_path, caplog):
    """name/num_labels/max_length, num_warmup_steps, logging.steps/eval_steps and step-based saving all take effect;
    a fine-tuning learning rate on tiny is warned about."""
    from nerwheel.labels import TagSet

    records = make_records(40, seed=5)
    write_records(records, tmp_path / "train.jsonl")
    n_tags = len(TagSet.from_records(records).tags)
    cfg = tmp_path / "hf.yaml"
    cfg.write_text(HF_STYLE.format(num_labels=n_tags, out=tmp_path / "runs"), encoding="utf-8")
    with caplog.at_level("WARNING", logger="nerwheel.stages.train"):
        res = _run("train", "--config", cfg, "--train", tmp_path / "train.jsonl")
    assert res.exit_code == 0, res.output
    assert "training.learning_rate=2e-05 is outside the usual range: the tiny backbone is trained from scratch and " \
           "usually takes 1e-4 to 3e-3 (default 1e-3)" in caplog.text
    model_dir = tmp_path / "runs" / "hf"
    card = ModelCard.read(model_dir)
    assert card.sequence_length == 32 and card.training["scheduler"]["warmup_steps"] == 2
    assert len(card.tags) == n_tags
    epochs = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    steps_per_epoch = epochs[0]["step"]  # 36 train records (4 carved out for dev) in batches of 8: 5 steps
    assert steps_per_epoch == 5 and [e["step"] for e in epochs] == [5, 10]
    rows = [json.loads(x) for x in (model_dir / "steps.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == [2, 4, 6, 8, 10]
    assert [r["step"] for r in rows if "dev" in r] == [3, 6, 9]
    kept = sorted(p.name for p in (model_dir / "checkpoints").iterdir())
    assert len(kept) == 2 and set(kept) <= {"step-3", "step-6", "step-9"} and "step-9" in kept


def test_evaluate_on_unlabelled_data_fails_and_says_what_to_do(tiny_model, tmp_path):
    (tmp_path / "plain.txt").write_text("浙江省杭州市西湖区文三路100号\n南京市鼓楼区中山路\n", encoding="utf-8")
    res = _run("evaluate", "--model", tiny_model, "--data", tmp_path / "plain.txt", "--out", tmp_path / "ev")
    assert res.exit_code == 1, res.output
    assert "no gold labels to score against: none of the 2 records has an entity; evaluate needs labelled data" \
        in res.output and "use `nerwheel predict` to tag unlabelled text" in res.output
    assert not (tmp_path / "ev" / "metrics.json").exists()


def test_progress_bars_on_a_non_tty_stream_only_when_forced(tiny_model, tmp_path):
    """stderr here is not a terminal: no bar by default; --progress (or NERWHEEL_PROGRESS=1) forces them."""
    texts = tmp_path / "in.txt"
    texts.write_text("".join(f"浙江省杭州市西湖区文三路{i}号\n" for i in range(300)), encoding="utf-8")
    args = ["predict", str(texts), "--model", str(tiny_model), "--out", str(tmp_path / "out.jsonl")]
    from nerwheel.cli import cli

    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 0 and "%|" not in plain.stderr, plain.stderr
    forced = CliRunner().invoke(cli, ["--progress", *args])
    assert forced.exit_code == 0, forced.output
    final = [ln for ln in re.split(r"[\r\n]", forced.stderr) if ln.startswith("predict: 100%|")]
    assert final and "300/300" in final[-1] and "text/s]" in final[-1], forced.stderr  # count, rate
    assert forced.stdout == ""  # bars never touch stdout (span JSONL goes there without --out)
    by_env = CliRunner().invoke(cli, args, env={"NERWHEEL_PROGRESS": "1"})
    assert "predict: 100%|" in by_env.stderr
    quiet = CliRunner().invoke(cli, ["--quiet", *args], env={"NERWHEEL_PROGRESS": "1"})
    assert quiet.exit_code == 0 and "%|" not in quiet.stderr
    both = CliRunner().invoke(cli, ["--quiet", "--progress", *args])
    assert both.exit_code == 2 and "--quiet cannot be combined with --verbose or --progress" in both.output


def test_annotate_and_evaluate_show_progress_when_forced(tiny_model, tmp_path, address_data):
    from nerwheel.cli import cli

    (tmp_path / "texts.txt").write_text("浙江省杭州市西湖区文三路100号\n南京市鼓楼区中山路\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["--progress", "annotate", str(tmp_path / "texts.txt"), "--out",
                                   str(tmp_path / "kb.jsonl")])
    assert res.exit_code == 0 and re.search(r"kb: 100%\|.*\| 2/2 \[", res.stderr), res.stderr
    write_records(address_data["test"][:20], tmp_path / "gold.jsonl")
    res = CliRunner().invoke(cli, ["--progress", "evaluate", "--model", str(tiny_model), "--data",
                                   str(tmp_path / "gold.jsonl"), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0 and re.search(r"evaluate: 100%\|.*\| 20/20 \[", res.stderr), res.stderr


def test_train_unlabeled_adds_kb_labelled_traffic_and_accounts_for_every_line(tmp_path):
    """`train --unlabeled`: the knowledge base labels traffic; read = used + rejected, rejects with line and reason."""
    gold = make_records(40, seed=2)
    train_file, traffic = tmp_path / "train.jsonl", tmp_path / "traffic.jsonl"
    write_records(gold[:30], train_file)
    dev_file = tmp_path / "dev.jsonl"
    write_records(gold[30:], dev_file)
    lines = [json.dumps({"id": f"t{i}", "text": r.text}, ensure_ascii=False) for i, r in enumerate(make_records(
        20, seed=8))]
    lines += [json.dumps({"text": gold[31].text}, ensure_ascii=False),  # line 21: a dev text, never trained on
              json.dumps({"text": gold[0].text}, ensure_ascii=False),  # line 22: already gold
              "{broken"]  # line 23: unreadable
    traffic.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = tmp_path / "runs"
    res = _run("train", "--train", train_file, "--dev", dev_file, "--unlabeled", traffic, "--output-dir", runs,
               "--model-name", "m", "--epochs", "2", "--sequence-length", "32", "--set", "training.stride=8",
               "--set", "training.threads=1", "--set", "output.plots=false", "--set", "model.tiny.hidden_size=32",
               "--set", "model.tiny.num_layers=1", "--set", "model.tiny.num_heads=2",
               "--set", "model.tiny.intermediate_size=64", "--set", "unlabeled.curriculum=anneal")
    assert res.exit_code == 0, res.output
    (model_dir,) = runs.iterdir()
    u = ModelCard.read(model_dir).data["unlabeled"]
    assert u["read"] == 23 and u["read"] == u["used"] + u["rejected"] and u["teacher"] == "kb"
    assert u["used"] >= 15 and u["teacher_windows"] == u["used"] and u["gold_windows"] >= 27
    assert u["teacher_weight_by_epoch"] == [0.5, 0.0]  # anneal: the last epoch trains on gold alone
    rejects = [json.loads(x) for x in (model_dir / "unlabeled_rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rejects) == u["rejected"] and all(r["reason"] for r in rejects)
    kinds = {r["line"]: r["kind"] for r in rejects}
    assert kinds[21] == "eval-text" and kinds[22] == "in-gold" and 23 in kinds
    assert f"unlabeled {traffic}: read 23 = used {u['used']} + rejected {u['rejected']}" in res.stderr

def test_predict_rejects_texts_over_the_length_limit(tiny_model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("南京市鼓楼区中山路\n" + "南京市" * 1000 + "\n广州市天河区\n", encoding="utf-8")
    res = _run("predict", src, "--model", tiny_model, "--out", tmp_path / "p.jsonl")
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2
    (row,) = [json.loads(r) for r in (tmp_path / "p.jsonl.rejects.jsonl").read_text().splitlines()]
    assert (row["line"], row["kind"]) == (2, "too-long") and "over the limit of 2048" in row["reason"]
    res = _run("predict", src, "--model", tiny_model, "--out", tmp_path / "p.jsonl", "--max-length", "6")
    assert res.exit_code == 0 and len((tmp_path / "p.jsonl").read_text().splitlines()) == 1
