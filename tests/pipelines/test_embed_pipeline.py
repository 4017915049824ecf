"""The embedding task's DAG: compiles with the task (edges, the gate condition, GPU on train), and runs locally
end to end on the bundled sample corpus (a tiny encoder made here stands in for e5-small, for speed); a second
run is gated against the version the first one deployed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from task_dag import assert_task_dag, compile_task

from nerwheel.cli import cli


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any]]:
    return compile_task("embed", tmp_path_factory.mktemp("ir") / "embed.yaml")


def test_dag_compiles_with_the_task(spec) -> None:
    assert_task_dag(spec, name="nerwheel-embed",
                    line=("embed-split", "embed-pairs", "embed-expand", "embed-train", "embed-evaluate"),
                    train="embed-train", teacher="embed-pairs",
                    defaults={"backbone": "e5-small", "teacher": "ict", "model_name": "nerwheel-embed"})


def test_every_task_has_a_time_limit_and_training_never_retries(spec) -> None:
    """The NER stage doing the same work sets each policy: pairs (an LLM teacher) retries like annotate."""
    from pipeline_limits import assert_limits

    assert_limits(spec, {"embed-split": "merge", "embed-pairs": "annotate", "embed-expand": "merge",
                         "embed-train": "train", "embed-evaluate": "evaluate", "gate": "gate", "export": "export",
                         "deploy": "deploy"})
    assert spec[0]["root"]["dag"]["tasks"]["embed-pairs"]["retryPolicy"]["maxRetryCount"] >= 3


def test_list_params_names_the_embedding_parameters() -> None:
    res = CliRunner().invoke(cli, ["compile", "--task", "embed", "--list-params"])
    assert res.exit_code == 0 and "corpus_uri" in res.output and "expand_words" in res.output


@pytest.mark.slow
def test_run_embed_on_the_bundled_corpus_twice(tmp_path: Path) -> None:
    from embed_helpers import tiny_encoder_dir

    from nerwheel.data.sample import sample_path
    from nerwheel.tasks.embed.steps import SAMPLE_CORPUS

    corpus = sample_path(SAMPLE_CORPUS).read_text(encoding="utf-8").splitlines()
    encoder = tiny_encoder_dir(tmp_path / "tiny", corpus)
    args = ["run", "--task", "embed", "--out", str(tmp_path / "run"), "--backbone", str(encoder), "--json",
            "--set", "train_overrides=batch_size=16; learning_rate=0.001; max_seq_length=80"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["task"] == "embed" and s["verdict"] == "promote" and s["score_name"] == "nDCG@10"
    assert set(s["tasks"].values()) == {"SUCCESS"}
    assert s["metrics"]["task"] == "embed" and 0 <= s["strict_f1"] <= 1 and s["metrics"]["n_queries"] > 0
    version = tmp_path / "run" / "triton-repository" / "nerwheel-embed" / "1"
    assert {"model.onnx", "nerwheel.json", "tokenizer.json", "model.py"} <= {p.name for p in version.iterdir()}
    cfg = (tmp_path / "run" / "triton-repository" / "nerwheel-embed" / "config.pbtxt").read_text()
    assert "EMBEDDING" in cfg and "encoder" in cfg
    run_dir = Path(s["run_dir"])
    assert (run_dir / "embed-pairs" / "pairs" / "qrels" / "val.tsv").is_file()
    assert json.loads((run_dir / "embed-train" / "model" / "nerwheel.json").read_text())["task"] == "embed"

    again = CliRunner().invoke(cli, args)  # the same data and seeds: gated against version 1, on the same queries
    assert again.exit_code == 0, again.output
    s2 = json.loads(again.stdout)
    assert s2["production"].endswith("nerwheel-embed/1")
    assert not any("not comparable" in r for r in s2["reasons"])
