"""``nerwheel data ...`` through click's CliRunner: summaries that reconcile, files written, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.formats import read_records, read_rejects


def run(*args: str, ok: bool = True) -> str:
    res = CliRunner().invoke(cli, ["data", *args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res.output if ok else f"{res.exit_code}\n{res.output}"


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    rows = [
        {"id": "a", "text": "浙江省杭州市", "entities": [{"start": 0, "end": 3, "label": "prov", "text": "浙江省"},
                                                  {"start": 3, "end": 6, "label": "city", "text": "杭州市"}]},
        {"text": "杭州市九堡镇", "entities": [{"start": 0, "end": 3, "label": "city"}, {"start": 3, "end": 6, "label": "town"}]},
        {"text": "九堡镇", "entities": [{"start": 0, "end": 3, "label": "town"}, {"start": 1, "end": 3, "label": "poi"}]},
        {"text": ""},
        {"text": "北京市", "entities": [{"start": 0, "end": 3, "label": "省份"}]},
    ]
    p = tmp_path / "in.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{oops\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("sub", [[], ["validate"], ["convert"], ["stats"], ["split"]])
def test_help_everywhere(sub: list[str]) -> None:
    out = run(*sub, "--help")
    assert "Usage:" in out


def test_validate_prints_a_reconciling_summary_and_writes_rejects(data_file: Path, tmp_path: Path) -> None:
    rej = tmp_path / "rej.jsonl"
    out = run("validate", str(data_file), "--rejects", str(rej))
    assert f"{data_file} (spans): read 6 = accepted 2 + rejected 4" in out
    assert "rejected by kind: empty 1, json 1, overlap 1, unknown-label 1" in out
    assert "labels checked (19, from the address task, the default): assist, cellno, city," in out
    assert f"rejects: 4 written to {rej}" in out
    rows = read_rejects(rej)
    assert [(r.line, r.kind) for r in rows] == [(3, "overlap"), (4, "empty"), (5, "unknown-label"), (6, "json")]
    assert all(r.file == str(data_file) for r in rows)


def test_validate_label_policies_and_output(data_file: Path, tmp_path: Path) -> None:
    lm = tmp_path / "map.json"
    lm.write_text(json.dumps({"省份": "prov"}, ensure_ascii=False), encoding="utf-8")
    acc = tmp_path / "ok.jsonl"
    out = run("validate", str(data_file), "--labels", "prov,city,town,poi", "--label-map", str(lm),
              "--overlaps", "keep-longest", "--rejects", str(tmp_path / "r.jsonl"), "--output", str(acc))
    assert "read 6 = accepted 4 + rejected 2" in out and "entity labels mapped: 1" in out
    assert "overlapping entities dropped (keep-longest): 1" in out
    assert [r.labels for r in read_records(acc).records][-1] == ["prov"]
    out = run("validate", str(data_file), "--labels", "prov,city,town", "--rejects", str(tmp_path / "r2.jsonl"))
    assert "read 6 = accepted 2 + rejected 4" in out and "unknown-label 2" in out


def test_validate_strict_fails_fast(data_file: Path) -> None:
    out = run("validate", str(data_file), "--strict", ok=False)
    code, text = out.split("\n", 1)
    assert code == "1" and f"Error: {data_file}:3: entities town[0:3] '九堡镇' and poi[1:3] '堡镇' overlap" in text


def test_validate_default_rejects_path_is_in_the_working_dir(data_file: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run("validate", str(data_file))
    assert f"written to {tmp_path / 'in.rejects.jsonl'}" in out and (tmp_path / "in.rejects.jsonl").exists()


def test_convert_to_conll_and_back(data_file: Path, tmp_path: Path) -> None:
    conll = tmp_path / "out" / "x.conll"
    out = run("convert", str(data_file), str(conll), "--to", "conll", "-w", "scheme=BIOES", "--labels", "any")
    assert "read 6 = written 3 + rejected 3 (1 unreadable, 2 not expressible in conll)" in out
    rejects = read_rejects(Path(str(conll) + ".rejects.jsonl"))
    assert [(r.file, r.line, r.kind) for r in rejects] == [(str(data_file), 3, "unexpressible"),
                                                           (str(data_file), 4, "unexpressible"),
                                                           (str(data_file), 6, "json")]
    assert "overlaps" in rejects[0].reason and "empty" in rejects[1].reason
    schema = json.loads((tmp_path / "out" / "schema.json").read_text(encoding="utf-8"))
    assert schema["scheme"] == "BIOES" and set(schema["labels"]) == {"prov", "city", "town", "省份"}
    back = tmp_path / "back.jsonl"
    run("convert", str(conll), str(back), "--to", "spans")
    recs = read_records(back).records
    assert [r.text for r in recs] == ["浙江省杭州市", "杭州市九堡镇", "北京市"]
    assert [e.key for e in recs[0].entities] == [(0, 3, "prov"), (3, 6, "city")]


def test_convert_strict_refuses_unexpressible_records(data_file: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(data_file.read_text(encoding="utf-8").splitlines()[:3]) + "\n", encoding="utf-8")
    out = run("convert", str(good), str(tmp_path / "x.conll"), "--to", "conll", "--strict", ok=False)
    assert out.startswith("1\n") and f"{good}:3: record" in out and "overlaps" in out and "nothing written" in out
    assert not (tmp_path / "x.conll").exists()
    out = run("convert", str(data_file), str(tmp_path / "y.conll"), "--to", "conll", "--strict", ok=False)
    assert f"{data_file}:3: record" in out  # the first problem in file order, though line 6 is unreadable


def test_stats_json_and_text(data_file: Path) -> None:
    d = json.loads(run("stats", str(data_file), "--json", "--labels", "any"))
    assert d["records"] == 5 and d["entities"] == 7 and d["input"]["rejected"] == 1
    assert d["per_label"]["city"] == {"entities": 2, "records": 2, "mean_length": 3.0}
    assert d["text_length"] == {"min": 0, "p50": 3, "p90": 6, "p99": 6, "max": 6, "mean": 3.6}
    assert {"labels": ["city", "prov"], "records": 1} in d["cooccurrence"] and d["overlapping_records"] == 1
    text = run("stats", str(data_file), "--labels", "any")
    assert "text length (chars): min 0  p50 3  p90 6" in text and "city + prov: 1" in text
    assert "labels: any, not checked (from --labels)" in text


STREETX = {"text": "文三路", "entities": [{"start": 0, "end": 3, "label": "STREETX"}]}


@pytest.mark.parametrize("command", ["validate", "convert", "stats"])
def test_an_unknown_label_is_a_reject_by_default_and_the_summary_names_the_label_set(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STREETX (a typo) used to pass validate, convert and stats silently and become a class of the model."""
    monkeypatch.chdir(tmp_path)  # validate writes its rejects to the working folder
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "杭州市", "entities": [{"start": 0, "end": 3, "label": "city"}]}) + "\n"
                   + json.dumps(STREETX, ensure_ascii=False) + "\n", encoding="utf-8")
    extra = [str(tmp_path / "o.conll"), "--to", "conll"] if command == "convert" else []
    out = run(command, str(src), *extra)
    assert ("read 2 = written 1 + rejected 1" if command == "convert" else "read 2 = accepted 1 + rejected 1") in out
    assert "labels checked (19, from the address task, the default)" in out
    out = run(command, str(src), *extra, "--labels", "city,STREETX")
    assert "rejected 0" in out and "labels checked (2, from --labels): STREETX, city" in out
    out = run(command, str(src), *extra, "--labels", "any")
    assert "rejected 0" in out and "labels: any, not checked" in out


def test_an_unknown_label_reject_says_which_label_and_which_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(STREETX, ensure_ascii=False) + "\n", encoding="utf-8")
    run("validate", str(src), "--rejects", str(tmp_path / "r.jsonl"))
    (rej,) = read_rejects(tmp_path / "r.jsonl")
    assert (rej.line, rej.kind) == (1, "unknown-label")
    assert "unknown label 'STREETX'" in rej.reason and "prov" in rej.reason


def test_a_conll_schema_is_the_label_set(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps({"scheme": "BIO", "labels": ["prov", "STREETX"]}))
    (tmp_path / "d.conll").write_text("文\tB-STREETX\n三\tI-STREETX\n", encoding="utf-8")
    out = run("validate", str(tmp_path / "d.conll"))
    assert "accepted 1 + rejected 0" in out and f"labels checked (2, from the CoNLL schema of {tmp_path / 'd.conll'})" in out


def test_split_writes_parts_subsets_and_manifest(tmp_path: Path) -> None:
    src = tmp_path / "many.txt"
    src.write_text("".join(f"第{i}条地址\n" for i in range(40)) + "第1条地址\n", encoding="utf-8")
    out_dir = tmp_path / "split"
    out = run("split", str(src), "--out", str(out_dir), "--seed", "3", "--fractions", "0.25,0.5,1")
    assert "parts: train 32, dev 8" in out and "dedup: 1 duplicate" in out and "leaks between train" in out
    m = json.loads((out_dir / "split.json").read_text())
    assert m["parts"] == {"train": 32, "dev": 8} and m["subsets"]["train_25pct"] == 8 and m["format"] == "text"
    sub = {f.name for f in out_dir.iterdir()}
    assert {"train.jsonl", "dev.jsonl", "train_25pct.jsonl", "train_50pct.jsonl", "train_100pct.jsonl"} <= sub
    again = tmp_path / "again"
    run("split", str(src), "--out", str(again), "--seed", "3", "--fractions", "0.25,0.5,1")
    assert (again / "dev.jsonl").read_bytes() == (out_dir / "dev.jsonl").read_bytes()
    small = {r.id for r in read_records(out_dir / "train_25pct.jsonl").records}
    assert small <= {r.id for r in read_records(out_dir / "train_50pct.jsonl").records}


@pytest.mark.parametrize("args,message", [
    (["validate", "MISSING"], "does not exist"),
    (["split", "IN", "--out", "OUT", "--ratio", "8"], "invalid ratio '8'"),
    (["validate", "IN", "--unknown-labels", "map"], "--unknown-labels map needs --label-map"),
    (["validate", "IN", "-o", "scheme"], "'scheme' is not KEY=VALUE"),
    (["validate", "IN", "-o", "scheme=BIO"], "format 'spans' has no read option 'scheme'"),
    (["convert", "IN", "OUT", "--to", "conll", "-w", "scheme=XYZ"], "Invalid tagging scheme: 'XYZ'"),
])
def test_errors_exit_nonzero_with_a_clear_message(data_file: Path, tmp_path: Path, args: list[str],
                                                  message: str) -> None:
    args = [str(data_file) if a == "IN" else str(tmp_path / "o") if a in ("OUT",) else a for a in args]
    out = run(*args, ok=False)
    code, text = out.split("\n", 1)
    assert code in ("1", "2") and message in text, text
