"""Issue 17: the gate and the pipeline's evaluate step judge gold labels as ``nerwheel evaluate`` does.

A gold record carrying a label no scored model knows (``STREETX``) is a counted reject with its line
(read = accepted + rejected), not a silent miss that lowers recall; the label set used is reported. With
two models the set is either model's labels: a label only production knows is kept, so the candidate
missing it stays visible to the gate.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nerwheel.formats import write_records
from nerwheel.model.card import ModelCard


def _gold(path: Path, records, *extra: dict) -> Path:
    write_records(records, path)
    with path.open("a", encoding="utf-8") as f:
        for row in extra:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


STREETX = {"text": "杭州市文三路", "entities": [{"start": 3, "end": 6, "label": "STREETX"}]}
ADMIN = {"text": "西湖区人民政府", "entities": [{"start": 0, "end": 7, "label": "admin"}]}


def _gate(*args):
    from nerwheel.cli import cli

    return CliRunner().invoke(cli, ["gate", *(str(a) for a in args)], catch_exceptions=False)


def test_gate_rejects_gold_labels_no_model_knows(tiny_model: Path, address_data, tmp_path: Path):
    gold = _gold(tmp_path / "eval.jsonl", address_data["test"][:10], STREETX)  # line 11: a typo'd label
    out = tmp_path / "decision.json"
    res = _gate("--candidate", tiny_model, "--production", tiny_model, "--data", gold, "--out", out)
    assert res.exit_code == 3, res.output  # same model both sides: refused on min_delta, not on the eval set
    labels = sorted(ModelCard.read(tiny_model).labels)
    source = f"the model ({tiny_model}) and the model ({tiny_model})"
    dec = json.loads(out.read_text(encoding="utf-8"))
    assert dec["input"] == {"read": 11, "accepted": 10, "rejected": 1}
    assert dec["label_set"] == {"source": source, "labels": labels}
    for side in ("candidate", "production"):
        assert dec[side]["input"] == {"read": 11, "accepted": 10, "rejected": 1} and dec[side]["n_records"] == 10
        assert dec[side]["label_set"] == {"source": source, "labels": labels}
        assert "STREETX" not in dec[side]["per_type"]
        (reject,) = [json.loads(x) for x in (tmp_path / "gate-eval" / side / "rejects.jsonl").read_text(
            encoding="utf-8").splitlines()]
        assert (reject["file"], reject["line"], reject["kind"]) == (str(gold), 11, "unknown-label")
        assert "unknown label 'STREETX'" in reject["reason"]
    assert f"labels checked ({len(labels)}, from {source})" in res.stderr
    assert "read 11 = accepted 10 + rejected 1" in res.stderr

    # a line the reader refuses still stops the gate: it needs the whole fixed eval set
    broken = _gold(tmp_path / "broken.jsonl", address_data["test"][:3], {"text": 3})
    res = _gate("--candidate", tiny_model, "--data", broken, "--out", tmp_path / "d2.json")
    assert res.exit_code == 1 and "1 eval lines were rejected" in res.output


def test_gate_keeps_gold_labels_only_production_knows(tiny_model: Path, span_model: Path, address_data,
                                                      tmp_path: Path):
    """``admin`` is the span model's, not the CRF's: kept and scored (the candidate's miss on it counts);
    ``STREETX`` is neither model's: rejected for both."""
    assert "admin" not in ModelCard.read(tiny_model).labels and "admin" in ModelCard.read(span_model).labels
    gold = _gold(tmp_path / "eval.jsonl", address_data["test"][:8], ADMIN, STREETX)
    out = tmp_path / "decision.json"
    _gate("--candidate", tiny_model, "--production", span_model, "--data", gold, "--out", out)
    dec = json.loads(out.read_text(encoding="utf-8"))
    assert dec["input"] == {"read": 10, "accepted": 9, "rejected": 1}
    assert set(dec["label_set"]["labels"]) == set(ModelCard.read(tiny_model).labels) | set(
        ModelCard.read(span_model).labels)
    assert dec["candidate"]["per_type"]["admin"]["strict"]["support"] == 1
    assert dec["candidate"]["per_type"]["admin"]["strict"]["f1"] == 0.0


def test_pipeline_evaluate_step_rejects_gold_labels_no_model_knows(tiny_model: Path, address_data,
                                                                   tmp_path: Path):
    from nerwheel.components.steps import evaluate

    gold = _gold(tmp_path / "eval.jsonl", address_data["test"][:10], STREETX)
    evaluate.run(model_path=str(tiny_model), eval_uri=str(gold), production_model_uri=str(tiny_model),
                 repository_uri="", model_name="nerwheel", production_from_repository=False,
                 scores_path=str(tmp_path / "scores"), production_scores_path=str(tmp_path / "production"),
                 report_path=str(tmp_path / "report.html"))
    labels = sorted(ModelCard.read(tiny_model).labels)
    source = f"the model ({tiny_model}) and the model ({tiny_model})"
    candidate = json.loads((tmp_path / "scores").read_text(encoding="utf-8"))
    production = json.loads((tmp_path / "production").read_text(encoding="utf-8"))["metrics"]
    for metrics in (candidate, production):
        assert metrics["input"] == {"read": 11, "accepted": 10, "rejected": 1} and metrics["n_records"] == 10
        assert metrics["label_set"] == {"source": source, "labels": labels}
        assert "STREETX" not in metrics["per_type"]
    assert f"labels checked ({len(labels)}, from" in (tmp_path / "report.html").read_text(encoding="utf-8")
