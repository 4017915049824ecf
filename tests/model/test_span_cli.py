"""The span head from the command line: train --head span, predict/evaluate/pseudo-label --nested --extensions."""

from __future__ import annotations

import json

from click.testing import CliRunner

from model_synth import FUSED_LABELS, make_fused
from nerwheel.formats import write_records
from nerwheel.model.card import ModelCard


def _run(*args):
    from nerwheel.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_train_head_span_keeps_overlapping_spans(tmp_path):
    write_records(make_fused(40, seed=3), tmp_path / "fusion.jsonl")
    res = _run("train", "--model-id", "tiny", "--head", "span", "--train", tmp_path / "fusion.jsonl", "--epochs", 1,
               "--sequence-length", 32, "--output-dir", tmp_path / "runs", "--model-name", "span",
               "--set", "model.tiny.hidden_size=32", "--set", "model.tiny.num_layers=1", "--set",
               "model.tiny.num_heads=2", "--set", "model.tiny.intermediate_size=64", "--set", "training.stride=8",
               "--set", "model.span.max_width=10", "--set", "output.plots=false", "--set", "output.timestamp=false",
               "--set", f"data.labels=[{', '.join(FUSED_LABELS)}]")
    assert res.exit_code == 0, res.output
    card = ModelCard.read(tmp_path / "runs" / "span")
    assert card.head == "span" and card.span["max_width"] == 10 and "kb:road" in card.span["extensions"]
    assert card.data["validation"]["overlap_spans_dropped"] == 0
    assert "keep-longest" not in res.stderr  # nothing dropped, so no report of dropped spans
    n = card.data["validation"]["records with overlapping or nested entities kept (keep)"]
    assert n > 30 and f"span head: {n} training records hold overlapping or nested spans, all kept" in res.stderr


def test_predict_nested_and_extensions_on_request(span_model, fusion_data, tmp_path):
    texts = [r.text for r in fusion_data["test"][:12]]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    res = _run("predict", tmp_path / "in.txt", "--model", span_model, "--out", tmp_path / "flat.jsonl")
    assert res.exit_code == 0, res.output
    flat = _rows(tmp_path / "flat.jsonl")
    assert [r["text"] for r in flat] == texts
    assert not any(":" in e["label"] for r in flat for e in r["entities"])
    res = _run("predict", tmp_path / "in.txt", "--model", span_model, "--out", tmp_path / "all.jsonl", "--nested",
               "--extensions")
    assert res.exit_code == 0, res.output
    both = _rows(tmp_path / "all.jsonl")
    labels = {e["label"] for r in both for e in r["entities"]}
    assert {"admin", "prov", "kb:road", "pos:ns"} <= labels
    assert sum(len(r["entities"]) for r in both) > sum(len(r["entities"]) for r in flat)
    res = _run("predict", tmp_path / "in.txt", "--url", "127.0.0.1:1", "--nested")
    assert res.exit_code == 2 and "decode a local span-head model" in res.output


def test_evaluate_and_pseudo_label_with_a_span_model(span_model, fusion_data, tmp_path):
    write_records(fusion_data["test"], tmp_path / "gold.jsonl")
    res = _run("evaluate", "--model", span_model, "--data", tmp_path / "gold.jsonl", "--out", tmp_path / "eval",
               "--nested")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["extension_spans_ignored"]["gold"] > 0 and metrics["overlapping_spans"]["gold"] > 0
    assert metrics["overall"]["strict"]["f1"] >= 0.85

    (tmp_path / "synthetic.txt").write_text("\n".join(r.text for r in fusion_data["dev"][:20]) + "\n",
                                            encoding="utf-8")
    res = _run("pseudo-label", tmp_path / "synthetic.txt", "--model", span_model, "--out", tmp_path / "pl.jsonl",
               "--threshold", "0.8", "--extensions", "--nested")
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "pl.jsonl")
    ents = [e for r in rows for e in r["entities"]]
    assert rows and all(e["score"] >= 0.8 for e in ents)
    assert any(e["label"].startswith("kb:") for e in ents) and any(e["label"] == "admin" for e in ents)


def test_a_crf_model_refuses_nested_on_the_command_line(tiny_model, tmp_path):
    (tmp_path / "in.txt").write_text("杭州市西湖区\n", encoding="utf-8")
    res = _run("predict", tmp_path / "in.txt", "--model", tiny_model, "--nested")
    assert res.exit_code == 1 and "nested spans need a span head" in res.output


def test_data_validate_keeps_overlaps_for_a_span_head(tmp_path):
    write_records(make_fused(10, seed=1), tmp_path / "fusion.jsonl")
    labels = ",".join(FUSED_LABELS)
    res = _run("data", "validate", tmp_path / "fusion.jsonl", "--overlaps", "keep", "--labels", labels)
    assert res.exit_code == 0, res.output
    assert "read 10 = accepted 10 + rejected 0" in res.output
    res = _run("data", "validate", tmp_path / "fusion.jsonl", "--rejects", tmp_path / "rejects.jsonl", "--labels",
               labels)
    assert "accepted 0 + rejected 10" in res.output and len(_rows(tmp_path / "rejects.jsonl")) == 10


def test_tag_path_options_on_a_span_head_fail_in_one_line(span_model, tmp_path):
    """--n-best and --decode search tag paths; a span head has none, and says so instead of a traceback."""
    (tmp_path / "in.txt").write_text("浙江省杭州市西湖区文三路100号\n", encoding="utf-8")
    for flags, words in ((("--n-best", 3), "n-best readings are tag paths of a CRF or softmax head"),
                         (("--decode", "beam"), "a span head selects spans, it has no tag path")):
        res = _run("predict", tmp_path / "in.txt", "--model", span_model, "--out", tmp_path / "o.jsonl", *flags)
        assert res.exit_code == 1 and words in res.output, res.output
        assert "Traceback" not in res.output
