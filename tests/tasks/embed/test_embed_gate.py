"""The shared gate on the embedding task's metrics: nDCG@10 decides with the usual policy; recall@10 and MRR@10
may not fall by more than max(max_type_drop, noise_spans / queries); the CLI reads the task from metrics.json."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nerwheel.stages.gate import GateError, GatePolicy, gate
from nerwheel.tasks import get_task


def _metrics(ndcg: float, recall: float, mrr: float, n: int = 200) -> dict:
    return {"task": "embed", "overall": {"ndcg@10": ndcg, "recall@10": recall, "mrr@10": mrr, "recall@1": 0.1},
            "n_queries": n, "n_corpus": 900}


@pytest.mark.parametrize(("candidate", "production", "verdict", "why"), [
    (_metrics(0.62, 0.80, 0.55), _metrics(0.60, 0.80, 0.55), "promote", "meets min_delta"),
    (_metrics(0.602, 0.80, 0.55), _metrics(0.60, 0.80, 0.55), "refuse", "below min_delta"),
    (_metrics(0.70, 0.70, 0.55), _metrics(0.60, 0.80, 0.55), "refuse", "metric 'recall@10' fell"),
    (_metrics(0.70, 0.795, 0.55), _metrics(0.60, 0.80, 0.55), "promote", "no metric fell"),  # within 0.02
    (_metrics(0.70, 0.80, 0.55, n=150), _metrics(0.60, 0.80, 0.55), "refuse", "not comparable"),
    (_metrics(0.70, 0.80, 0.55), None, "promote", "no production model"),
])
def test_gate_on_ndcg_with_the_usual_policy(candidate, production, verdict, why):
    decision = gate(candidate, production, GatePolicy(), scores=get_task("embed").gate_scores)
    assert decision.verdict == verdict and any(why in r for r in decision.reasons), decision.reasons


def test_small_eval_sets_get_the_noise_floor():
    # 20 queries: 2 flipping is noise (2/20 = 0.1), a 0.05 fall of recall@10 passes, a 0.15 fall does not
    pol, scores = GatePolicy(), get_task("embed").gate_scores
    assert gate(_metrics(0.7, 0.75, 0.5, 20), _metrics(0.6, 0.8, 0.5, 20), pol, scores=scores).promote
    assert not gate(_metrics(0.7, 0.65, 0.5, 20), _metrics(0.6, 0.8, 0.5, 20), pol, scores=scores).promote


def test_unreadable_metrics_name_the_field():
    with pytest.raises(GateError, match=r"candidate metrics: missing overall.ndcg@10"):
        gate({"task": "embed", "overall": {}}, None, scores=get_task("embed").gate_scores)


def test_gate_cli_reads_the_task_from_metrics_json(tmp_path):
    from nerwheel.cli import cli

    (tmp_path / "c.json").write_text(json.dumps(_metrics(0.65, 0.8, 0.55)), encoding="utf-8")
    (tmp_path / "p.json").write_text(json.dumps(_metrics(0.60, 0.8, 0.55)), encoding="utf-8")
    res = CliRunner().invoke(cli, ["gate", "--candidate", str(tmp_path / "c.json"), "--production",
                                   str(tmp_path / "p.json"), "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    assert "PROMOTE: overall nDCG@10 0.6000 -> 0.6500" in res.output
    refused = CliRunner().invoke(cli, ["gate", "--candidate", str(tmp_path / "p.json"), "--production",
                                       str(tmp_path / "c.json"), "--out", str(tmp_path / "d2.json")])
    assert refused.exit_code == 3 and "below min_delta" in refused.output


def test_record_commands_name_the_embed_commands(tmp_path):
    from nerwheel.cli import cli

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "nerwheel.json").write_text('{"task": "embed"}', encoding="utf-8")
    (tmp_path / "x.txt").write_text("链条\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["predict", "--model", str(tmp_path / "m"), str(tmp_path / "x.txt")])
    assert res.exit_code == 1 and "nerwheel embed encode" in res.output
    res = CliRunner().invoke(cli, ["train", "--task", "embed", "--create-config", str(tmp_path / "embed.yaml")])
    assert res.exit_code == 0, res.output
    from nerwheel.tasks.embed.train import load_train_config

    assert load_train_config(tmp_path / "embed.yaml").model == "e5-small"  # the written defaults load back
