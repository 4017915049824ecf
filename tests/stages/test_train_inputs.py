"""What train accepts from its input files, before any model is built: limits and label sets, counted."""

from __future__ import annotations

import json
from pathlib import Path

from nerwheel.model.config import TrainConfig
from nerwheel.stages.train import resolve_inputs


def ents(text: str, *spans: tuple[int, int, str]) -> dict:
    return {"text": text, "entities": [{"start": a, "end": b, "label": lab} for a, b, lab in spans]}


def jsonl(path: Path, *rows: dict) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_train_rejects_texts_over_the_configured_length(tmp_path: Path) -> None:
    """A 1.7M-character record once went into training and stalled it; now it is a counted reject."""
    long = ents("浙江省" + "路" * 3000, (0, 3, "prov"))
    train = jsonl(tmp_path / "t.jsonl", ents("浙江省杭州市", (0, 3, "prov")), long, ents("杭州市", (0, 3, "city")))
    dev = jsonl(tmp_path / "d.jsonl", ents("杭州市", (0, 3, "city")), long)
    inputs = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": train, "dev_file": dev}}))
    assert len(inputs.train) == 2 and len(inputs.dev) == 1
    assert [(Path(r.file).name, r.line, r.kind) for r in inputs.rejects] == [("t.jsonl", 2, "too-long"),
                                                                             ("d.jsonl", 2, "too-long")]
    assert "3003 characters, over the limit of 2048" in inputs.rejects[0].reason
    fp = inputs.fingerprints
    assert fp["train_file"]["rejected_by_kind"] == {"too-long": 1} and fp["dev_file"]["rejected"] == 1
    short = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": train, "max_text_length": 5}}))
    assert [r.line for r in short.rejects] == [1, 2]
    unlimited = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": train, "max_text_length": 0}}))
    assert unlimited.rejects == []


def test_train_rejects_unknown_labels_by_default_and_records_the_label_set(tmp_path: Path) -> None:
    """STREETX once went into the model's label set; now the task's labels judge it unless data.labels says."""
    train = jsonl(tmp_path / "t.jsonl", ents("浙江省杭州市", (0, 3, "prov")), ents("文三路", (0, 3, "STREETX")))
    dev = jsonl(tmp_path / "d.jsonl", ents("杭州市", (0, 3, "city")), ents("文三路", (0, 3, "STREETX")))
    inputs = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": train, "dev_file": dev}}))
    assert [(Path(r.file).name, r.line, r.kind) for r in inputs.rejects] == [("t.jsonl", 2, "unknown-label"),
                                                                             ("d.jsonl", 2, "unknown-label")]
    assert "unknown label 'STREETX'" in inputs.rejects[0].reason and "data.labels" in inputs.rejects[0].reason
    assert inputs.fingerprints["label_set"]["source"] == "the address task, the default"
    explicit = resolve_inputs(TrainConfig.model_validate(
        {"data": {"train_file": train, "dev_file": dev, "labels": ["prov", "city", "STREETX"]}}))
    assert explicit.rejects == [] and explicit.fingerprints["label_set"] == {
        "source": "data.labels", "labels": ["STREETX", "city", "prov"]}
    anything = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": train, "labels": "any"}}))
    assert anything.rejects == [] and anything.fingerprints["label_set"]["labels"] == "any"


def test_extension_labels_are_not_judged_as_targets(tmp_path: Path) -> None:
    """kb:city / pos:n are auxiliary outputs in their own namespace (a span head learns them beside the targets)."""
    train = jsonl(tmp_path / "t.jsonl", ents("浙江省杭州市", (0, 3, "prov"), (3, 6, "kb:city"), (0, 2, "pos:ns")))
    inputs = resolve_inputs(TrainConfig.model_validate({"data": {"train_file": train}, "model": {"head": "span"}}))
    assert inputs.rejects == [] and len(inputs.train) + len(inputs.dev) == 1
