import json

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.stages.gate import EXIT_REFUSE


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_merge_cli_with_kinds_report_and_rejects(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", [
        {"id": "g1", "text": "北京市朝阳区", "entities": [{"start": 0, "end": 3, "label": "city"}]},
    ])
    kb = write_jsonl(tmp_path / "kb.jsonl", [
        {"id": "x", "text": "北京市朝阳区", "entities": [{"start": 0, "end": 3, "label": "prov"}]},
        {"id": "k2", "text": "上海市", "entities": [{"start": 0, "end": 3, "label": "city"}]},
        {"id": "bad", "text": "坏", "entities": [{"start": 0, "end": 5, "label": "city"}]},
    ])
    out, report = tmp_path / "merged.jsonl", tmp_path / "report.json"
    res = run("merge", "--gold", gold, "--extra", f"kb={kb}", "--out", out, "--report", report)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], [(e["label"], e["source"]) for e in r["entities"]]) for r in rows] == [
        ("g1", [("city", "gold")]), ("k2", [("city", "kb")])]
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["conflicts"]["type"] == 1 and rep["conflicts"]["source_only"] == 1
    assert rep["rejected_inputs"] == 1
    assert "out of range" in (tmp_path / "merged.jsonl.rejects.jsonl").read_text(encoding="utf-8")


def test_merge_cli_names_bad_config_and_unranked_kind(tmp_path):
    kb = write_jsonl(tmp_path / "kb.jsonl", [{"text": "上海市", "entities": [{"start": 0, "end": 3, "label": "city"}]}])
    res = CliRunner().invoke(cli, ["merge", "--extra", f"rules={kb}", "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1 and "kind 'rules' is not in the precedence" in res.output
    cfg = tmp_path / "merge.yaml"
    cfg.write_text("min_agreemnt: 2\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["merge", "--extra", f"kb={kb}", "--out", str(tmp_path / "o.jsonl"),
                                   "--config", str(cfg)])
    assert res.exit_code == 2 and "min_agreemnt" in res.output


def metrics(f1, per_type):
    return {"overall": {"strict": {"precision": f1, "recall": f1, "f1": f1}},
            "per_type": {k: {"strict": {"precision": v, "recall": v, "f1": v, "support": 50}} for k, v in per_type.items()},
            "n_records": 40}


def test_gate_cli_exit_codes_and_decision_record(tmp_path):
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps(metrics(0.80, {"road": 0.8, "city": 0.9})))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(metrics(0.85, {"road": 0.88, "city": 0.9})))
    worse_city = tmp_path / "bad.json"
    worse_city.write_text(json.dumps(metrics(0.85, {"road": 0.95, "city": 0.8})))

    out = tmp_path / "decision.json"
    res = run("gate", "--candidate", good, "--production", prod, "--out", out)
    assert res.exit_code == 0 and res.output.startswith("PROMOTE")
    dec = json.loads(out.read_text())
    assert dec["verdict"] == "promote" and abs(dec["per_type"]["road"]["delta"] - 0.08) < 1e-9
    assert dec["production"]["overall"]["strict"]["f1"] == 0.80

    res = CliRunner().invoke(cli, ["gate", "--candidate", str(worse_city), "--production", str(prod), "--out", str(out)])
    assert res.exit_code == EXIT_REFUSE == 3 and "type 'city'" in res.output
    assert json.loads(out.read_text())["verdict"] == "refuse"

    res = CliRunner().invoke(cli, ["gate", "--candidate", str(good), "--production", str(prod), "--min-delta", "0.1",
                                   "--out", str(out)])
    assert res.exit_code == 3 and "below min_delta 0.1" in res.output

    res = run("gate", "--candidate", good, "--out", out)  # only an omitted --production means the first model
    assert res.exit_code == 0 and "no production model" in res.output
    assert json.loads(out.read_text())["production"] is None


def test_gate_cli_refuses_a_production_path_that_does_not_exist(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(metrics(0.85, {"road": 0.88})))
    out = tmp_path / "decision.json"
    missing = tmp_path / "prod-typo" / "metrics.json"
    for production in (missing, ""):
        res = CliRunner().invoke(cli, ["gate", "--candidate", str(good), "--production", str(production),
                                       "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert f"{production} does not exist; omit --production for the first model" in res.output
        assert "PROMOTE" not in res.output and not out.exists()  # no decision record, certainly no promotion


def test_gate_cli_checks_small_types_by_default_and_min_support_opts_out(tmp_path):
    def with_small(f1_small):
        m = metrics(0.85, {"road": 0.88})
        m["per_type"]["rare"] = {"strict": {"precision": f1_small, "recall": f1_small, "f1": f1_small, "support": 19}}
        return m

    prod, cand = tmp_path / "prod.json", tmp_path / "cand.json"
    prod.write_text(json.dumps(with_small(0.9) | {"overall": metrics(0.80, {})["overall"]}))
    cand.write_text(json.dumps(with_small(0.0)))
    res = CliRunner().invoke(cli, ["gate", "--candidate", str(cand), "--production", str(prod),
                                   "--out", str(tmp_path / "d.json")])
    assert res.exit_code == EXIT_REFUSE and "type 'rare'" in res.output and "noise floor of 2 spans" in res.output
    res = CliRunner().invoke(cli, ["gate", "--candidate", str(cand), "--production", str(prod), "--min-support", "20",
                                   "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 0 and "types under min_support 20 not enforced" in res.output


def test_gate_cli_needs_data_for_a_model_dir(tmp_path):
    (tmp_path / "model").mkdir()
    res = CliRunner().invoke(cli, ["gate", "--candidate", str(tmp_path / "model"), "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 2 and "give --data EVAL" in res.output


# -- feedback import: Label Studio's JSON and JSON-MIN exports; nothing usable is a failure --------------------
JSON_MIN = [
    {"id": 11, "text": "北京市朝阳区", "annotator": 3, "annotation_id": 21, "updated_at": "2024-05-01T10:00:00Z",
     "lead_time": 4.2, "label": [{"start": 0, "end": 3, "text": "北京市", "labels": ["city"]},
                                 {"start": 3, "end": 6, "text": "朝阳区", "labels": ["district"]}]},
    {"id": 12, "text": "上海市浦东新区", "annotator": 3, "annotation_id": 22, "lead_time": 1.0},  # reviewed: no entity
    {"id": 13, "text": "未审的地址"},  # exported before anyone annotated it
]


def test_feedback_import_reads_a_json_min_export(tmp_path):
    path = tmp_path / "project-1-at-2024-05-01.json"
    path.write_text(json.dumps(JSON_MIN, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "gold.jsonl"
    res = CliRunner().invoke(cli, ["feedback", "import", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], [(e["label"], e["text"], e["source"]) for e in r["entities"]]) for r in rows] == [
        ("11", [("city", "北京市", "gold:review"), ("district", "朝阳区", "gold:review")]), ("12", [])]
    assert rows[0]["meta"]["review"] == {"task_id": 11, "annotation_id": 21, "annotator": 3,
                                         "updated_at": "2024-05-01T10:00:00Z"}
    (reject,) = [json.loads(x) for x in (tmp_path / "gold.jsonl.rejects.jsonl").read_text().splitlines()]
    assert reject["kind"] == "not-reviewed" and "has not been reviewed yet" in reject["reason"]


@pytest.mark.parametrize("tasks,hint", [
    ([{"data": {"text": "北京市"}, "predictions": [{"model_version": "kb", "result": []}]}],
     "submit the reviews in Label Studio (a task counts once it has an annotation), then export again"),
    ([{"task": 1, "region": "北京市"}], "export the project from Label Studio as JSON or JSON-MIN"),
])
def test_feedback_import_with_nothing_usable_fails_and_says_what_to_do(tmp_path, tasks, hint):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    res = CliRunner().invoke(cli, ["feedback", "import", str(path), "--out", str(tmp_path / "gold.jsonl")])
    assert res.exit_code == 1, res.output
    assert f"{path}: no reviewed task could be read (1 read, 1 rejected; first: " in res.output and hint in res.output
    assert "Traceback" not in res.output


def test_merge_vote_share_counts_a_source_given_by_kind_and_by_name_once(tmp_path):
    kb = write_jsonl(tmp_path / "kb.jsonl", [
        {"id": "a", "text": "浙江省杭州市", "entities": [{"start": 0, "end": 3, "label": "prov"}]}])
    llm = write_jsonl(tmp_path / "llm.jsonl", [
        {"id": "a", "text": "浙江省杭州市", "entities": [{"start": 0, "end": 3, "label": "prov", "source": "llm:qwen"}]}])
    out = tmp_path / "merged.jsonl"
    res = run("merge", "--extra", f"kb={kb}", "--extra", f"llm={llm}", "--out", out)
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(e["label"], e["score"]) for e in row["entities"]] == [("prov", 1.0)]
    assert row["meta"]["merge"]["voters"] == ["kb", "llm:qwen"]
