"""Readers for every message format, and every reject kind: read = accepted + rejected, with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nerwheel.formats.base import FormatError
from nerwheel.tasks.classify.formats import detect, read_messages
from nerwheel.tasks.classify.records import LabelError, LabelSet

LABELS = LabelSet(("low_value", "normal", "interrupt"))


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_json_array_with_int_labels_and_labels_json_beside(tmp_path: Path):
    _write(tmp_path / "labels.json", '{"0": "low_value", "1": "normal", "2": "interrupt"}')
    path = _write(tmp_path / "train.json", '[\n{\n"message": "好的",\n"context": "你好",\n"label": 0\n},\n'
                  '{"message": "停一下", "context": "", "label": 2}\n]\n')
    assert detect(path) == "json"
    rr = read_messages(path)
    assert rr.read == 2 and not rr.rejects
    a, b = rr.records
    assert (a.message, a.context, a.label, a.id) == ("好的", "你好", "low_value", "train:1")
    assert (b.label, rr.lines) == ("interrupt", [2, 7])


@pytest.mark.parametrize("fmt, text", [
    ("jsonl", '{"id": "a", "message": "好的", "context": "你好", "label": "low_value"}\n'
              '{"id": "b", "message": "停", "label": 2}\n'),
    ("csv", 'id,message,context,label\na,好的,你好,low_value\nb,停,,2\n'),
    ("tsv", 'id\tmessage\tcontext\tlabel\na\t好的\t你好\tlow_value\nb\t停\t\t2\n'),
])
def test_jsonl_csv_tsv_with_string_and_integer_labels(tmp_path: Path, fmt: str, text: str):
    path = _write(tmp_path / f"in.{fmt}", text)
    assert detect(path) == fmt
    rr = read_messages(path, labels=LABELS)
    assert [(m.id, m.message, m.context, m.label) for m in rr.records] == [
        ("a", "好的", "你好", "low_value"), ("b", "停", "", "interrupt")]
    assert rr.lines == [1, 2] if fmt == "jsonl" else rr.lines == [2, 3]


def test_text_lines_are_unlabelled_messages(tmp_path: Path):
    path = _write(tmp_path / "live.txt", "好的\n\n帮我查订单\n")
    rr = read_messages(path)
    assert (rr.format, [(m.message, m.label) for m in rr.records], rr.lines) == (
        "text", [("好的", None), ("帮我查订单", None)], [1, 3])


def test_every_reject_kind_names_file_line_and_reason(tmp_path: Path):
    lines = [
        '{"id": "1", "message": "好的", "label": "normal"}',       # 1 ok
        '{"id": "2", "message": "   ", "label": "normal"}',        # 2 empty
        '{"id": "3", "message": "嗯", "label": "spam"}',           # 3 unknown label name
        '{"id": "4", "message": "嗯", "label": 7}',                # 4 index out of range
        '{"id": "5", "message": 12, "label": 1}',                  # 5 wrong type
        '{"id": "6", "message": "' + "长" * 5000 + '", "label": 1}',  # 6 over-length
        '{"id": "1", "message": "又一个", "label": 1}',            # 7 duplicate id
        '{"id": "8", "message": "嗯", "label": true}',             # 8 wrong label type
        '{"id": "9", "message": "嗯", ',                           # 9 broken JSON
        '{"text": "text works as message", "label": 1}',           # 10 ok
        '["not", "an", "object"]',                                 # 11 schema
    ]
    path = _write(tmp_path / "bad.jsonl", "\n".join(lines) + "\n")
    with path.open("ab") as f:
        f.write(b'{"message": "\xff\xfe", "label": 1}\n')            # 12 utf8
    rr = read_messages(path, labels=LABELS)
    assert rr.read == 12 == len(rr.records) + len(rr.rejects)
    assert [m.id for m in rr.records] == ["1", "bad:10"]
    kinds = {r.line: r.kind for r in rr.rejects}
    assert kinds == {2: "empty", 3: "unknown-label", 4: "label", 5: "schema", 6: "length", 7: "duplicate-id",
                     8: "schema", 9: "json", 11: "schema", 12: "utf8"}
    for r in rr.rejects:
        assert r.file == str(path) and r.reason
    assert "spam" in next(r.reason for r in rr.rejects if r.line == 3)


def test_broken_array_element_is_one_reject_and_reading_goes_on(tmp_path: Path):
    path = _write(tmp_path / "a.json", '[\n{"message": "好", "label": 0},\n{"message": "坏", "label": },\n'
                  '{"message": "也好", "label": 1}\n]\n')
    rr = read_messages(path, labels=LABELS)
    assert [m.message for m in rr.records] == ["好", "也好"]
    assert [(r.line, r.kind) for r in rr.rejects] == [(3, "json")]
    assert rr.read == 3


def test_unlabelled_training_data_is_rejected_when_labels_are_required(tmp_path: Path):
    path = _write(tmp_path / "t.jsonl", '{"message": "好的"}\n{"message": "嗯", "label": 0}\n')
    rr = read_messages(path, labels=LABELS, require_label=True)
    assert [(r.line, r.kind) for r in rr.rejects] == [(1, "label")]


def test_whole_file_problems_are_clear_errors(tmp_path: Path):
    with pytest.raises(FormatError, match="no such file"):
        read_messages(tmp_path / "missing.json")
    with pytest.raises(FormatError, match="header row must name a 'message'"):
        read_messages(_write(tmp_path / "x.csv", "a,b\n1,2\n"), "csv")
    with pytest.raises(FormatError, match="unknown message format"):
        read_messages(_write(tmp_path / "y.txt", "x\n"), "xml")
    with pytest.raises(LabelError, match="without gaps"):
        LabelSet.from_mapping({"0": "a", "2": "b"})
    with pytest.raises(LabelError, match="unique"):
        LabelSet(("a", "a"))
    # a binary file is read line by line: every undecodable line is a reject, never a crash
    rr = read_messages(_write(tmp_path / "bin.dat", bytes(range(256)) * 4))
    assert rr.read == len(rr.rejects) + len(rr.records) and rr.rejects


def test_label_set_round_trips_labels_json(tmp_path: Path):
    path = LABELS.write(tmp_path)
    assert json.loads(path.read_text()) == {"0": "low_value", "1": "normal", "2": "interrupt"}
    assert LabelSet.read(path) == LABELS
