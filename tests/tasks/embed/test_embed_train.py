"""embed train / evaluate / export / encode with a tiny encoder made in the test."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from nerwheel.tasks.embed.beir import RetrievalData, read_beir
from nerwheel.errors import ConfigError, DataError
from nerwheel.tasks.embed.train import EmbedTrainConfig, load_train_config, training_rows


def test_grades_become_repeats_and_judged_negatives():
    data = RetrievalData(corpus={"a": "A", "b": "B", "c": "C", "d": "D"}, queries={"q": "Q", "r": "R", "s": "S"},
                         qrels={"train": {"q": {"a": 3, "b": 1, "c": 0}, "r": {"d": 1}, "s": {"c": 0}}})
    rows = training_rows(data, "train", EmbedTrainConfig())
    # q: a (grade 3) three times, b once, each with the judged negative c; r: one plain pair; s: no positive
    assert rows.triplets == [("Q", "A", "C")] * 3 + [("Q", "B", "C")]
    assert rows.pairs == [("R", "D")]
    assert rows.counts["queries"] == 2 and rows.counts["queries_without_positive"] == 1
    flat = training_rows(data, "train", EmbedTrainConfig(grade_repeat=1, judged_negatives=False))
    assert flat.pairs == [("Q", "A"), ("Q", "B"), ("R", "D")] and not flat.triplets
    strict = training_rows(data, "train", EmbedTrainConfig(min_positive_grade=2))
    assert strict.triplets == [("Q", "A", "B"), ("Q", "A", "C")]  # grade 1 is now a negative
    assert len(training_rows(data, "train", EmbedTrainConfig(max_train_rows=2))) == 2
    with pytest.raises(DataError, match="nothing to train on"):
        training_rows(data, "train", EmbedTrainConfig(min_positive_grade=4))


def test_config_file_and_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 5\nbatch_size: 8\n", encoding="utf-8")
    cfg = load_train_config(f, {"batch_size": 4, "seed": None})
    assert (cfg.epochs, cfg.batch_size, cfg.seed) == (5, 4, 42)
    f.write_text("epochz: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml: bad training setting \(epochz: Extra inputs"):
        load_train_config(f)


def test_trained_model_is_a_sentence_transformers_folder_with_its_card(trained_dir, ict_pairs):
    from sentence_transformers import SentenceTransformer

    for name in ("modules.json", "config_sentence_transformers.json", "1_Pooling/config.json", "2_Normalize",
                 "model.safetensors", "tokenizer.json", "nerwheel.json", "metrics.jsonl"):
        assert (trained_dir / name).exists(), name
    assert not (trained_dir / "checkpoints").exists()
    card = json.loads((trained_dir / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["task"] == "embed" and card["prompts"] == {"query": "q: ", "document": "p: "}
    m = card["metrics"]
    history = [json.loads(x) for x in (trained_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(history) == m["evaluations"] >= 1
    # the model saved is the best evaluation's (train() checks it and raises otherwise)
    assert m["val"]["ndcg@10"] == pytest.approx(max(h["ndcg@10"] for h in history), abs=1e-6)
    assert m["val"]["queries"] == len(read_beir(ict_pairs).qrels["val"])
    model = SentenceTransformer(str(trained_dir), device="cpu")  # any consumer rebuilds it from modules.json
    assert model.prompts == {"query": "q: ", "document": "p: "}
    v = model.encode_query(["链条多久上油"])
    assert v.shape == (1, 32) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_evaluate_side_by_side_keyed_by_model_as_given(tmp_path, trained_dir, tiny_dir, ict_pairs):
    from nerwheel.cli import cli

    out = tmp_path / "scores.json"
    res = CliRunner().invoke(cli, ["embed", "evaluate", "--model", str(trained_dir), "--model", str(tiny_dir),
                                   "--beir", str(ict_pairs), "--split", "val", "--out", str(out)])
    assert res.exit_code == 0, res.output
    scores = json.loads(out.read_text(encoding="utf-8"))
    assert list(scores) == [str(trained_dir), str(tiny_dir)]
    for s in scores.values():
        assert set(s) >= {"ndcg@10", "recall@1", "recall@5", "recall@10", "recall@100", "mrr@10"}
        assert 0.0 <= s["recall@1"] <= s["recall@5"] <= s["recall@10"] <= s["recall@100"] <= 1.0
    card = json.loads((trained_dir / "nerwheel.json").read_text(encoding="utf-8"))
    assert scores[str(trained_dir)]["ndcg@10"] == pytest.approx(card["metrics"]["val"]["ndcg@10"], abs=1e-6)
    header = next(line for line in res.output.splitlines() if line.startswith("model "))
    assert header.split()[1:4] == ["ndcg@10", "mrr@10", "recall@1"]
    missing = CliRunner().invoke(cli, ["embed", "evaluate", "--model", str(tiny_dir), "--beir", str(ict_pairs)])
    assert missing.exit_code == 1 and "qrels splits" in missing.output and "val" in missing.output


def test_export_parity_int8_and_encode(tmp_path, trained_dir, ict_pairs):
    from nerwheel.cli import cli
    from nerwheel.tasks.embed.export import export_encoder
    from nerwheel.tasks.embed.runtime import OnnxEncoder, TorchEncoder, load_runtime

    report = export_encoder(trained_dir, tmp_path / "onnx", "int8")
    assert report.parity["min_cosine"] >= 0.9999 and not report.parity["failures"]
    assert report.files == ["model.int8.onnx", "model.onnx", "nerwheel.json", "tokenizer.json"]
    assert report.int8["cosine_vs_fp32_min"] > 0.95
    onnx, torch_ = OnnxEncoder(tmp_path / "onnx"), TorchEncoder(trained_dir)
    assert onnx.session.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
    texts = ["链条多久上一次油？", "The shop opens at nine.", "刹车" * 100]  # the last one is truncated
    for kind in ("query", "document", None):
        a, b = onnx.encode(texts, kind=kind), torch_.encode(texts, kind=kind)
        assert (a * b).sum(axis=1) == pytest.approx(np.ones(3), abs=1e-4)
    assert not np.allclose(onnx.encode(texts[:1], kind="query"), onnx.encode(texts[:1], kind="document"))
    assert isinstance(load_runtime(str(tmp_path / "onnx")), OnnxEncoder)
    # the export scores like the model it came from (one retrieval path for every runtime)
    from nerwheel.tasks.embed.evaluate import evaluate_models

    both = evaluate_models([str(trained_dir), str(tmp_path / "onnx")], read_beir(ict_pairs), "val")
    torch_s, onnx_s = both.values()
    assert onnx_s["ndcg@10"] == pytest.approx(torch_s["ndcg@10"], abs=1e-3) and onnx_s["queries"] > 0
    with pytest.raises(FileExistsError, match="not empty"):
        export_encoder(trained_dir, tmp_path / "onnx")

    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(texts) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["embed", "encode", str(lines), "--model", str(tmp_path / "onnx"), "--kind", "query",
                                   "--out", str(tmp_path / "v.npy")])
    assert res.exit_code == 0, res.output
    assert np.allclose(np.load(tmp_path / "v.npy"), onnx.encode(texts, kind="query"), atol=1e-6)


def test_export_refuses_modules_it_cannot_put_in_the_graph(tmp_path, tiny_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

    from nerwheel.tasks.embed.export import export_encoder

    enc = Transformer(str(tiny_dir))
    SentenceTransformer(modules=[enc, Pooling(32, pooling_mode="max"), Dense(32, 8)]).save(str(tmp_path / "m"))
    with pytest.raises(ConfigError, match="cannot export modules"):
        export_encoder(tmp_path / "m", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_train_reports_base_and_fine_tuned(tmp_path, tiny_dir, ict_pairs, caplog):
    from nerwheel.cli import cli

    caplog.set_level(logging.INFO, logger="nerwheel.tasks.embed.train")
    res = CliRunner().invoke(cli, ["embed", "train", "--model", str(tiny_dir), "--pairs", str(ict_pairs), "--out",
                                   str(tmp_path / "ft"), "--epochs", "1", "--batch-size", "8", "--max-seq-length",
                                   "48", "--set", "learning_rate=0.001", "--set", "max_val_queries=5"])
    assert res.exit_code == 0, res.output
    assert "validation nDCG@10" in res.output and "(base " in res.output
    assert res.stdout.strip() == str(tmp_path / "ft"), "stdout carries only the model folder"
    assert "eval_val_cosine_ndcg@10" in caplog.text, "the per-evaluation figures go to the log"
    again = CliRunner().invoke(cli, ["embed", "train", "--model", str(tiny_dir), "--pairs", str(ict_pairs), "--out",
                                     str(tmp_path / "ft")])
    assert again.exit_code == 1 and "not empty" in again.output
    bad = CliRunner().invoke(cli, ["embed", "train", "--model", str(tmp_path), "--pairs", str(ict_pairs), "--out",
                                   str(tmp_path / "z")])
    assert bad.exit_code == 1 and "not a model folder" in bad.output


@pytest.mark.slow
def test_evaluate_e5_small_means_the_pretrained_encoder(tmp_path, monkeypatch):
    """``--model e5-small`` is multilingual-e5-small itself (full vocabulary, e5's prompts): on obvious queries it
    ranks the answering passage first, and its scores are keyed by the name as given."""
    from nerwheel.cli import cli
    from nerwheel.tasks.embed.beir import write_beir
    from nerwheel.tasks.embed.model import E5_PROMPTS, prompts_of

    monkeypatch.setenv("NERWHEEL_CACHE", str(tmp_path / "cache"))  # the conversion stays in this test's folder
    assert prompts_of("e5-small") == E5_PROMPTS
    corpus = {"d1": "绿茶适合用八十度左右的水冲泡，水太烫会把嫩芽烫熟。", "d2": "自行车链条每骑五百公里要上一次油。",
              "d3": "The museum is closed on Mondays and opens at ten on other days.",
              "d4": "头盔受过一次严重撞击后就应该更换，不能再继续使用。"}
    queries = {"q1": "泡绿茶用多少度的水", "q2": "链条多久上油", "q3": "When does the museum open?",
               "q4": "摔过的头盔还能戴吗"}
    write_beir(tmp_path / "beir", RetrievalData(corpus=corpus, queries=queries,
                                                qrels={"test": {f"q{i}": {f"d{i}": 1} for i in range(1, 5)}}))
    out = tmp_path / "e5.json"
    res = CliRunner().invoke(cli, ["embed", "evaluate", "--model", "e5-small", "--beir", str(tmp_path / "beir"),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    scores = json.loads(out.read_text(encoding="utf-8"))
    assert list(scores) == ["e5-small"]
    assert scores["e5-small"]["recall@1"] == 1.0 and scores["e5-small"]["ndcg@10"] == pytest.approx(1.0)
