"""The functions behind the components, called directly (no KFP, no cluster) on small files made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nerwheel.components.data import RECORDS_FILE, REJECTS_FILE, read_artifact, resolve_uri, sample_path
from nerwheel.components.report import Report, bar_chart, line_chart
from nerwheel.records import Entity, Record

ADDR = "浙江省杭州市西湖区文三路90号"


def rec(rid: str, text: str, spans: list[tuple[str, str]]) -> dict:
    ents, pos = [], 0
    for piece, label in spans:
        start = text.index(piece, pos)
        ents.append({"start": start, "end": start + len(piece), "label": label, "text": piece})
        pos = start + len(piece)
    return {"id": rid, "text": text, "entities": ents}


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    seed = [rec("s1", ADDR, [("浙江省", "prov"), ("杭州市", "city"), ("西湖区", "district"), ("文三路", "road"),
                             ("90号", "roadno")]),
            rec("s2", "江苏省南京市鼓楼区中山路1号", [("江苏省", "prov"), ("南京市", "city"), ("鼓楼区", "district"),
                                                ("中山路", "road"), ("1号", "roadno")])]
    evaluation = [rec("e1", "四川省成都市武侯区人民南路4号", [("四川省", "prov"), ("成都市", "city"), ("武侯区", "district"),
                                                    ("人民南路", "road"), ("4号", "roadno")])]
    paths = {"seed": tmp_path / "seed.jsonl", "eval": tmp_path / "eval.jsonl", "texts": tmp_path / "traffic.txt"}
    paths["seed"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in seed)
                             + '{"id": "bad", "text": "abc", "entities": [{"start": 0, "end": 9, "label": "x", '
                               '"text": "abc"}]}\n', encoding="utf-8")
    paths["eval"].write_text(json.dumps(evaluation[0], ensure_ascii=False) + "\n", encoding="utf-8")
    # one traffic text is also an eval text: it must not reach the training set
    paths["texts"].write_text("广东省广州市天河区体育西路3号\n四川省成都市武侯区人民南路4号\n\n", encoding="utf-8")
    return paths


def test_empty_uri_means_the_bundled_sample() -> None:
    assert resolve_uri("s3://b/k.jsonl", "seed") == "s3://b/k.jsonl"
    with pytest.raises(ValueError, match="the sample data set has: seed, eval, texts"):
        sample_path("train")
    for role, name in (("seed", "seed.jsonl"), ("eval", "eval.jsonl"), ("texts", "traffic.txt")):
        path = sample_path(role)
        assert resolve_uri("", role) == str(path) and path.name == name and path.is_file()
        assert path.stat().st_size > 0


def test_annotate_synthesize_merge_chain(files: dict[str, Path], tmp_path: Path) -> None:
    from nerwheel.components.steps import annotate, merge, synthesize

    ann = annotate.run(texts_uri=str(files["texts"]), seed_uri=str(files["seed"]), teacher="kb", llm_endpoint="",
                       llm_model="", out_path=str(tmp_path / "ann"), report_path=str(tmp_path / "ann.html"))
    assert ann["texts"] == 2 and ann["labelled"] + ann["failed"] == ann["texts"]
    annotated = read_artifact(tmp_path / "ann")
    assert all(e.source == "kb" for r in annotated for e in r.entities) and ann["entities"] > 0

    syn = synthesize.run(annotated_path=str(tmp_path / "ann"), seed_uri=str(files["seed"]),
                         eval_uri=str(files["eval"]), n_short=10, n_long=5, seed=3, out_path=str(tmp_path / "syn"),
                         report_path=str(tmp_path / "syn.html"))
    synthetic = read_artifact(tmp_path / "syn")
    assert syn["records"] == len(synthetic) > 0
    assert "四川省成都市武侯区人民南路4号" not in {r.text for r in synthetic}

    m = merge.run(seed_uri=str(files["seed"]), annotated_path=str(tmp_path / "ann"),
                  synthetic_path=str(tmp_path / "syn"), teacher="kb", precedence="gold,kb,llm,synthetic",
                  eval_uri=str(files["eval"]), out_path=str(tmp_path / "merged"), report_path=str(tmp_path / "m.html"))
    merged = read_artifact(tmp_path / "merged")
    texts = {r.text for r in merged}
    assert ADDR in texts and "四川省成都市武侯区人民南路4号" not in texts  # gold kept, eval text dropped
    assert m["leaked_dropped"] == 1 and m["gold_rejected"] == 1 and m["records"] == len(merged)
    # nothing lost: the bad gold line and the leaked record are kept beside the records
    rejects = (tmp_path / "merged" / REJECTS_FILE).read_text().splitlines()
    assert len(rejects) == 1 and json.loads(rejects[0])["line"] == 3
    assert json.loads((tmp_path / "merged" / "leaked.jsonl").read_text())["text"] == "四川省成都市武侯区人民南路4号"
    assert (tmp_path / "merged" / RECORDS_FILE).is_file()
    for report in ("ann.html", "syn.html", "m.html"):
        html = (tmp_path / report).read_text()
        assert html.startswith("<!DOCTYPE html>") and "<svg" in html


def test_llm_teacher_needs_an_endpoint(files: dict[str, Path], tmp_path: Path) -> None:
    from nerwheel.components.steps import annotate

    with pytest.raises(ValueError, match=r"teacher 'llm' needs an LLM endpoint and a model name \(pipeline: llm_endpoint and llm_model\)"):
        annotate.run(texts_uri=str(files["texts"]), seed_uri="", teacher="llm", llm_endpoint="", llm_model="",
                     out_path=str(tmp_path / "a"), report_path=str(tmp_path / "a.html"))
    with pytest.raises(ValueError, match=r"unknown teacher\(s\) \['gpt'\]; choose from: kb, llm"):
        annotate.run(texts_uri=str(files["texts"]), seed_uri="", teacher="gpt", llm_endpoint="", llm_model="",
                     out_path=str(tmp_path / "a"), report_path=str(tmp_path / "a.html"))


def metrics(f1: float, per_type: dict[str, tuple[float, int]], n: int = 50) -> dict:
    return {"overall": {"strict": {"precision": f1, "recall": f1, "f1": f1}}, "n_records": n,
            "per_type": {t: {"strict": {"precision": v, "recall": v, "f1": v, "support": s}}
                         for t, (v, s) in per_type.items()}}


LIVE = {"uri": "s3://b/repo/nerwheel/3", "how": "live", "note": "version 3 of 'nerwheel', live in s3://b/repo"}
NONE = {"uri": None, "how": "none", "note": "s3://b/repo has no live version of 'nerwheel'"}


@pytest.mark.parametrize(
    ("candidate", "production", "promoted", "reason"),
    [
        (metrics(0.80, {"road": (0.8, 40)}), None, True,
         "no production model (s3://b/repo has no live version of 'nerwheel'): the first candidate is promoted"),
        (metrics(0.85, {"road": (0.85, 40)}), metrics(0.80, {"road": (0.80, 40)}), True, "meets min_delta"),
        (metrics(0.801, {"road": (0.8, 40)}), metrics(0.80, {"road": (0.80, 40)}), False, "below min_delta"),
        (metrics(0.90, {"road": (0.95, 40), "poi": (0.5, 40)}),
         metrics(0.80, {"road": (0.70, 40), "poi": (0.6, 40)}), False, "type 'poi'"),
        # a 19-span type collapsing is refused: no type is exempt by default
        (metrics(0.90, {"road": (0.95, 40), "poi": (0.0, 19)}),
         metrics(0.80, {"road": (0.70, 40), "poi": (0.9, 19)}), False, "the noise floor of 2 spans (0.1053)"),
    ],
)
def test_gate_step(candidate: dict, production: dict | None, promoted: bool, reason: str, tmp_path: Path) -> None:
    from nerwheel.components.steps import gate

    (tmp_path / "c.json").write_text(json.dumps(candidate))
    (tmp_path / "p.json").write_text(json.dumps({**(LIVE if production else NONE), "metrics": production}))
    got, scalars = gate.run(candidate_path=str(tmp_path / "c.json"), production_path=str(tmp_path / "p.json"),
                            min_delta=0.005, max_type_drop=0.02, noise_spans=2.0, min_support=0, metric="strict",
                            decision_path=str(tmp_path / "d.json"), report_path=str(tmp_path / "r.md"))
    assert got is promoted and scalars["promoted"] == float(promoted)
    decision = json.loads((tmp_path / "d.json").read_text())
    assert decision["verdict"] == ("promote" if promoted else "refuse")
    assert any(reason in r for r in decision["reasons"])
    assert decision["production_model"] == (LIVE if production else NONE)
    if production:
        assert decision["reasons"][0] == f"production: {LIVE['note']}"
    md = (tmp_path / "r.md").read_text()
    assert md.startswith(f"# Gate: **{decision['verdict']}**") and reason.strip("'") in md


def test_gate_report_shows_the_whole_policy_and_each_types_allowed_drop(tmp_path: Path) -> None:
    from nerwheel.components.steps import gate

    (tmp_path / "c.json").write_text(json.dumps(metrics(0.90, {"road": (0.95, 150), "poi": (0.0, 19),
                                                                "rare": (0.0, 2)})))
    (tmp_path / "p.json").write_text(json.dumps({**LIVE, "metrics": metrics(0.80, {"road": (0.70, 150),
                                                                                   "poi": (0.9, 19),
                                                                                   "rare": (1.0, 2)})}))
    promoted, _ = gate.run(candidate_path=str(tmp_path / "c.json"), production_path=str(tmp_path / "p.json"),
                           min_delta=0.01, max_type_drop=0.03, noise_spans=3.0, min_support=0, metric="strict",
                           decision_path=str(tmp_path / "d.json"),
                           report_path=str(tmp_path / "r.md"))
    md = (tmp_path / "r.md").read_text()
    assert not promoted
    for row in ("| metric | strict |", "| min_delta (required rise of overall F1) | 0.01 |", "| max_type_drop | 0.03 |",
                "| noise_spans | 3 |", "| min_support | 0 |"):
        assert row in md, row
    assert "Production model: `s3://b/repo/nerwheel/3`" in md
    # allowed drop per type: max(0.03, 3/150) = 0.03, max(0.03, 3/19) = 0.1579, max(0.03, 3/2) = 1.5
    assert "| road | 150 | 0.9500 | 0.7000 | 0.2500 | 0.0300 | yes | ok |" in md
    assert "| poi | 19 | 0.0000 | 0.9000 | -0.9000 | 0.1579 | yes | fell too far |" in md
    assert "| rare | 2 | 0.0000 | 1.0000 | -1.0000 | 1.5000 | yes | ok |" in md
    decision = json.loads((tmp_path / "d.json").read_text())
    assert decision["policy"] == {"min_delta": 0.01, "max_type_drop": 0.03, "noise_spans": 3.0, "min_support": 0,
                                  "metric": "strict"}
    assert decision["per_type"]["poi"]["allowed_drop"] == pytest.approx(3 / 19)


def test_gate_step_refuses_a_bare_metrics_file_as_the_production_record(tmp_path: Path) -> None:
    from nerwheel.components.steps import gate

    (tmp_path / "c.json").write_text(json.dumps(metrics(0.9, {"road": (0.9, 40)})))
    (tmp_path / "p.json").write_text(json.dumps(metrics(0.8, {"road": (0.8, 40)})))
    with pytest.raises(ValueError, match=r"p.json: expected the evaluate step's production record"):
        gate.run(candidate_path=str(tmp_path / "c.json"), production_path=str(tmp_path / "p.json"), min_delta=0.005,
                 max_type_drop=0.02, noise_spans=2.0, min_support=0, metric="strict",
                 decision_path=str(tmp_path / "d.json"), report_path=str(tmp_path / "r.md"))


def test_train_overrides_may_not_shadow_pipeline_parameters() -> None:
    from nerwheel.components.steps.train import parse_override_list

    assert parse_override_list("training.batch_size=16; model.tiny.hidden_size=32\nmodel.head=softmax") == [
        "training.batch_size=16", "model.tiny.hidden_size=32", "model.head=softmax"]
    assert parse_override_list("  ") == []
    with pytest.raises(ValueError, match="sets training.epochs, which has its own pipeline parameter"):
        parse_override_list("training.batch_size=8; training.epochs=3")
    with pytest.raises(ValueError, match="sets model.model_id"):
        parse_override_list("model.model_id=e5-small")
    with pytest.raises(ValueError, match=r"sets model.name \(model.model_id\), which has its own pipeline parameter"):
        parse_override_list("model.name=e5-small")  # the Hugging Face spelling of the same key


def test_evaluate_scalars_name_every_mode_and_type() -> None:
    from nerwheel.components.steps.evaluate import scalars

    m = {"overall": {k: {"precision": 0.5, "recall": 0.25, "f1": 1 / 3} for k in ("strict", "exact", "partial", "type")},
         "per_type": {"road": {"strict": {"f1": 0.9, "support": 3}}}, "n_records": 7}
    m["overall"]["token_accuracy"] = 0.75
    s = scalars(m)
    assert s["strict_f1"] == pytest.approx(1 / 3) and s["type_recall"] == 0.25 and s["f1_road"] == 0.9
    assert s["token_accuracy"] == 0.75 and s["n_records"] == 7.0
    assert len(s) == 4 * 3 + 3


def test_report_escapes_text_and_draws_inline_svg(tmp_path: Path) -> None:
    path = Report("a <b> & c").paragraph("<script>x</script>").raw(bar_chart({"road": 0.5, "<x>": 1.0})).raw(
        line_chart({"loss": [3.0, 2.0, 1.5]}, title="t")).table([(1, 0.12345, "z")], ("n", "f", "s")).write(
        tmp_path / "r.html")
    html = path.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;x&gt;" in html
    assert html.count("<svg") == 2 and "0.1235" in html and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # self-contained: no external references


def test_dataset_artifact_round_trip(tmp_path: Path) -> None:
    from nerwheel.components.data import write_dataset

    r = Record("a", ADDR, (Entity(0, 3, "prov", "浙江省"),))
    assert write_dataset(tmp_path / "ds", [r], leaked=[]) == 1
    assert read_artifact(tmp_path / "ds") == [r]
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [RECORDS_FILE]  # empty side sets are not written
