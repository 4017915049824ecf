"""The functions behind the embedding DAG's components, called directly (no cluster), and the DAG's compile."""

from __future__ import annotations

import json

import pytest


def test_steps_split_pairs_expand_train_evaluate(tmp_path, corpus_file, tiny_dir):
    from nerwheel.tasks.embed import steps

    s = steps.split(corpus_uri=str(corpus_file), max_tokens=40, ratio="8:2", seed=0, tokenizer=str(tiny_dir),
                    split_path=str(tmp_path / "split"), report_path=str(tmp_path / "split.html"))
    assert s["passages_written"] == s["passages_train"] + s["passages_val"] > 0
    p = steps.pairs(split_path=str(tmp_path / "split"), teacher="ict", queries_per_passage=2, seed=0,
                    llm_endpoint="", llm_model="", llm_max_tokens=64, pairs_path=str(tmp_path / "pairs"),
                    report_path=str(tmp_path / "pairs.html"))
    assert p["queries_train"] > 0 and p["queries_val"] > 0
    with pytest.raises(ValueError, match="llm_endpoint and llm_model"):
        steps.pairs(split_path=str(tmp_path / "split"), teacher="llm", queries_per_passage=2, seed=0,
                    llm_endpoint="", llm_model="", llm_max_tokens=64, pairs_path=str(tmp_path / "x"),
                    report_path=str(tmp_path / "x.html"))

    # no expansion: the base artifact names the backbone; with words: an expanded model
    steps.expand(pairs_path=str(tmp_path / "pairs"), backbone=str(tiny_dir), expand_words=0, words_uri="",
                 base_path=str(tmp_path / "base0"), report_path=str(tmp_path / "e0.html"))
    assert json.loads((tmp_path / "base0" / steps.BASE_FILE).read_text()) == {"model": str(tiny_dir),
                                                                              "expanded": False}
    words = tmp_path / "words.txt"
    words.write_text("链条\n变速器\n", encoding="utf-8")
    e = steps.expand(pairs_path=str(tmp_path / "pairs"), backbone=str(tiny_dir), expand_words=0,
                     words_uri=str(words), base_path=str(tmp_path / "base1"), report_path=str(tmp_path / "e1.html"))
    assert e["words_added"] == 2 and (tmp_path / "base1" / "model" / "modules.json").is_file()

    (tmp_path / "model").mkdir()  # KFP hands out an empty folder
    t = steps.train(pairs_path=str(tmp_path / "pairs"), base_path=str(tmp_path / "base1"), epochs=1, seed=0,
                    overrides="batch_size=8; learning_rate=0.001; max_seq_length=48", model_path=str(tmp_path / "model"),
                    report_path=str(tmp_path / "train.html"), backbone=str(tiny_dir))
    assert t["steps"] >= 1 and 0.0 <= t["val_ndcg_at_10"] <= 1.0
    card = json.loads((tmp_path / "model" / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["base"] == str(tmp_path / "base1" / "model") and card["vocab_size"] > 0
    with pytest.raises(ValueError, match="own pipeline parameter"):
        steps.train(pairs_path=str(tmp_path / "pairs"), base_path=str(tmp_path / "base1"), epochs=1, seed=0,
                    overrides="epochs=3", model_path=str(tmp_path / "m2"), report_path=str(tmp_path / "t2.html"))

    v = steps.evaluate(model_path=str(tmp_path / "model"), pairs_path=str(tmp_path / "pairs"), eval_uri="",
                       production_model_uri="", repository_uri="", model_name="nerwheel-embed",
                       production_from_repository=True, scores_path=str(tmp_path / "scores.json"),
                       production_scores_path=str(tmp_path / "prod.json"), report_path=str(tmp_path / "ev.html"))
    scores = json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))
    assert scores["task"] == "embed" and scores["overall"]["ndcg@10"] == pytest.approx(v["ndcg_at_10"])
    assert scores["n_queries"] == p["queries_val"] and scores["input"]["rejected"] == 0
    prod = json.loads((tmp_path / "prod.json").read_text(encoding="utf-8"))
    assert prod["metrics"] is None and prod["how"] == "none"


def test_embed_dag_compiles_with_every_stage(tmp_path):
    import yaml
    from kfp import compiler

    from nerwheel.tasks.embed.pipeline import STAGES, pipeline

    out = tmp_path / "embed.yaml"
    compiler.Compiler().compile(pipeline, str(out))
    spec, *platform = yaml.safe_load_all(out.read_text(encoding="utf-8"))  # the platform spec (secrets, GPU) follows
    assert platform
    assert spec["pipelineInfo"]["name"] == "nerwheel-embed"
    dag = spec["root"]["dag"]["tasks"]
    assert set(STAGES[:6]) <= set(dag)
    assert dag["embed-train"]["dependentTasks"] == ["embed-expand", "embed-pairs"]
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"export", "deploy"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["backbone"]["defaultValue"] == "e5-small" and params["teacher"]["defaultValue"] == "ict"
