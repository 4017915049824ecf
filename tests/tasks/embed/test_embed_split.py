"""embed split: sentence stops, the token limit, cutting and dropping, counts that reconcile, bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from embed_helpers import char_counter

from nerwheel.errors import DataError
from nerwheel.tasks.embed.passages import SplitConfig, passage_id, sentences, split_corpus


@pytest.mark.parametrize(("line", "expected"), [
    ("第一句。第二句！第三句？第四句；第五句", ["第一句。", "第二句！", "第三句？", "第四句；", "第五句"]),
    ("他说：“走吧。”然后走了。", ["他说：“走吧。”", "然后走了。"]),  # closing quotes stay with their sentence
    ("真的吗？！当然。", ["真的吗？！", "当然。"]),  # runs of stops stay together
    ("Version 3.14 is out. Try it!", ["Version 3.14 is out.", "Try it!"]),  # no stop inside a number
    ("Made in the U.S.A today. Done", ["Made in the U.S.A today.", "Done"]),
    ("Really?Yes.", ["Really?Yes."]),  # ASCII stops need a space or the end after them
    ("  前后有空格。  ", ["前后有空格。"]),
    ("。", ["。"]),
    ("", []),
])
def test_sentence_stops(line, expected):
    assert sentences(line) == expected


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_passages_merge_within_the_limit_and_never_cross_a_line(tmp_path):
    # 5 characters per sentence (one token each with the character counter)
    f = _write(tmp_path, "a.txt", "一二三四。五六七八。九十百千。\n甲乙丙丁。\n")
    result = split_corpus([f], char_counter, SplitConfig(max_tokens=10, min_tokens=1))
    texts = sorted(r.text for part in result.passages.values() for r in part)
    assert texts == sorted(["一二三四。五六七八。", "九十百千。", "甲乙丙丁。"])
    assert all(len(char_counter([t])[0]) <= 10 for t in texts)


def test_long_sentence_is_cut_at_token_boundaries_or_dropped(tmp_path):
    long = "长" * 25 + "。"
    f = _write(tmp_path, "a.txt", f"短句。{long}\n")
    cut = split_corpus([f], char_counter, SplitConfig(max_tokens=10, min_tokens=1, long="cut"))
    pieces = sorted((r.text for p in cut.passages.values() for r in p), key=len)
    # 26 tokens -> 10 + 10 + 6; the two identical pieces are one passage (the second a counted duplicate)
    assert pieces == ["短句。", "长" * 5 + "。", "长" * 10]
    assert cut.report.sentences == {"read": 2, "whole": 1, "cut": 1, "dropped_long": 0, "pieces_from_cuts": 3}
    assert cut.report.passages["duplicates"] == 1
    dropped = split_corpus([f], char_counter, SplitConfig(max_tokens=10, min_tokens=1, long="drop"))
    assert [r.text for p in dropped.passages.values() for r in p] == ["短句。"]
    assert dropped.report.sentences["dropped_long"] == 1


def test_counts_reconcile_on_a_mixed_corpus(tmp_path):
    _write(tmp_path, "good.txt", "第一段的第一句话。第一段的第二句话。\n\n   \n第二段。\n第一段的第一句话。第一段的第二句话。\n"
                                        "短。\n")
    bad_line = tmp_path / "gbk.txt"
    bad_line.write_bytes("正常的一行文字。\n".encode() + "坏行".encode("gbk") + b"\n")
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    result = split_corpus([tmp_path], char_counter, SplitConfig(max_tokens=12, min_tokens=3))
    r = result.report
    r.check()
    assert r.files == {"read": 2, "rejected": 1}
    assert r.lines == {"read": 8, "blank": 2, "used": 5, "rejected": 1}
    # passages made: 2 (first paragraph, twice) + 第二段 + 短 + 正常的一行文字 = 6 before filtering
    assert r.passages["made"] == 7
    assert r.passages["duplicates"] == 2 and r.passages["short"] == 1  # the repeated paragraph; "短。"
    assert r.passages["written"] == 4 == r.passages["train"] + r.passages["val"]
    kinds = sorted(x.kind for x in result.rejects)
    assert kinds == ["binary", "utf8"]
    utf8 = next(x for x in result.rejects if x.kind == "utf8")
    assert utf8.file.endswith("gbk.txt") and utf8.line == 2 and "UTF-8" in utf8.reason


def test_split_is_deterministic_exact_and_order_independent(tmp_path):
    lines = [f"这是第{i}段，内容各不相同，编号{i}。" for i in range(50)]
    a = _write(tmp_path, "a.txt", "\n".join(lines[:25]))
    b = _write(tmp_path, "b.txt", "\n".join(lines[25:]))
    one = split_corpus([a, b], char_counter, SplitConfig(max_tokens=40))
    two = split_corpus([b, a], char_counter, SplitConfig(max_tokens=40))
    ids = {k: sorted(r.id for r in v) for k, v in one.passages.items()}
    assert ids == {k: sorted(r.id for r in v) for k, v in two.passages.items()}
    assert (len(ids["train"]), len(ids["val"])) == (40, 10)
    assert all(r.id == passage_id(r.text) for p in one.passages.values() for r in p)
    other = split_corpus([a, b], char_counter, SplitConfig(max_tokens=40, seed=7))
    assert sorted(r.id for r in other.passages["val"]) != ids["val"]


def test_e5_tokenizer_limit_holds(tmp_path):
    from nerwheel.tasks.embed.model import token_counter

    text = "糖尿病患者应当控制碳水化合物的摄入，并且规律地监测血糖。" * 6
    f = _write(tmp_path, "a.txt", text + "\n")
    counter = token_counter("e5-small")
    result = split_corpus([f], counter, SplitConfig(max_tokens=24))
    for r in (r for p in result.passages.values() for r in p):
        assert len(counter([r.text])[0]) <= 24


def test_empty_or_useless_corpus_is_a_clear_error(tmp_path):
    empty = _write(tmp_path, "empty.txt", "")
    with pytest.raises(DataError, match=r"corpus is empty: .*empty.txt hold\(s\) 0 bytes"):
        split_corpus([empty], char_counter)
    with pytest.raises(DataError, match="no passages: 1 file"):
        split_corpus([_write(tmp_path, "blank.txt", "\n  \n\n")], char_counter)
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="corpus is empty"):
        split_corpus([tmp_path / "folder"], char_counter)
    binary = tmp_path / "only.bin"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(DataError, match="binary file"):
        split_corpus([binary], char_counter)
    with pytest.raises(DataError, match="max_bytes"):
        split_corpus([_write(tmp_path, "big.txt", "字" * 100)], char_counter, SplitConfig(max_bytes=50))
    with pytest.raises(DataError, match=r"more than max_passages 1 .*--max-passages"):
        split_corpus([_write(tmp_path, "two.txt", "第一段的一句话。\n第二段的一句话。\n")], char_counter,
                     SplitConfig(max_passages=1, min_tokens=1))
    with pytest.raises(ValueError, match="two positive parts"):
        SplitConfig(ratio="8:1:1")
    with pytest.raises(ValueError, match="min_tokens 20 is above max_tokens 10"):
        SplitConfig(max_tokens=10, min_tokens=20)


def test_cli_split_writes_corpus_report_and_rejects(tmp_path, corpus_file):
    from nerwheel.cli import cli

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "kb.txt").write_text(corpus_file.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "in" / "scan.pdf").write_bytes(b"%PDF-1.4\x00binary")
    res = CliRunner().invoke(cli, ["embed", "split", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                   "--max-tokens", "48", "--ratio", "3:1"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "out" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(set(r) >= {"_id", "text", "split", "source"} for r in rows)
    report = json.loads((tmp_path / "out" / "split.json").read_text(encoding="utf-8"))
    assert report["passages"]["written"] == len(rows) and report["files"] == {"read": 1, "rejected": 1}
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text(encoding="utf-8")
    assert "scan.pdf" in rejects and "binary" in rejects
    bad = CliRunner().invoke(cli, ["embed", "split", str(tmp_path / "in" / "scan.pdf"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "binary file" in bad.output and "Traceback" not in bad.output
    capped = CliRunner().invoke(cli, ["embed", "split", str(tmp_path / "in"), "--out", str(tmp_path / "y"),
                                      "--max-tokens", "48", "--max-passages", "1"])
    assert capped.exit_code == 1 and "--max-passages" in capped.output and not (tmp_path / "y").exists()
