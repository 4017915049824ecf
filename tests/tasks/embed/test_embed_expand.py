"""embed expand: new token ids, rows initialised as the mean of the old sub-token rows, reload, mining."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from tokenizers import Tokenizer

from nerwheel.errors import DataError
from nerwheel.tasks.embed.expand import expand_vocabulary, mine_words, read_words


def test_expansion_adds_ids_initialises_rows_and_reloads(tmp_path, tiny_dir):
    from transformers import AutoTokenizer, BertModel

    from nerwheel.tasks.embed.model import load_encoder

    old_tok = AutoTokenizer.from_pretrained(tiny_dir)
    old_rows = BertModel.from_pretrained(tiny_dir).get_input_embeddings().weight.detach().clone()
    words = ["链条", "变速器", "链条", "车", "链条鑫", "two words"]  # dup, one token, unknown char, a space
    corpus = ["自行车的链条需要上油，变速器要调准。", "链条生锈了。"]
    report = expand_vocabulary(str(tiny_dir), words, tmp_path / "x", corpus=corpus)

    n = len(old_tok)
    assert [a["word"] for a in report.added] == ["链条", "变速器"]
    assert [a["id"] for a in report.added] == [n, n + 1] and report.vocab_after == n + 2
    assert report.skipped == {"duplicate": ["链条"], "already-one-token": ["车"], "unknown-characters": ["链条鑫"],
                              "empty-or-has-space": ["two words"]}
    model = load_encoder(str(tmp_path / "x"))
    rows = model[0].auto_model.get_input_embeddings().weight.detach()
    assert rows.shape[0] == n + 2
    for added in report.added:
        pieces = old_tok(added["word"], add_special_tokens=False)["input_ids"]
        assert added["piece_ids"] == pieces and len(pieces) == len(added["word"])
        assert torch.allclose(rows[added["id"]], old_rows[pieces].mean(dim=0), atol=1e-6)
    assert torch.equal(rows[:n], old_rows)  # old rows untouched
    for tok in (model.tokenizer, AutoTokenizer.from_pretrained(tmp_path / "x")):
        assert "链条" in tok.tokenize("自行车链条生锈") and "变速器" in tok.tokenize("调变速器")
    raw = Tokenizer.from_file(str(tmp_path / "x" / "tokenizer.json"))  # what the ONNX export ships
    assert raw.encode("调变速器", add_special_tokens=False).tokens == ["调", "变速器"]
    c = report.corpus
    assert c["tokens_after"] == c["tokens_before"] - 4 and c["texts_shortened"] == 2


def test_expansion_refuses_what_it_cannot_do(tmp_path, tiny_dir):
    with pytest.raises(DataError, match="no words"):
        expand_vocabulary(str(tiny_dir), [], tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        expand_vocabulary(str(tiny_dir), ["链条"], tmp_path / "b")
    words = tmp_path / "w.tsv"
    words.write_text("# comment\nword\tcount\n链条\t5\n\n变速器\n", encoding="utf-8")
    assert read_words(words) == ["链条", "变速器"]
    words.write_bytes("链条".encode("gbk"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_words(words)


def test_mining_proposes_a_planted_domain_word(tiny_dir):
    from embed_helpers import PARAGRAPHS

    contexts = ["调{}", "{}坏了", "换一个{}吧", "这个{}很好", "前{}和后{}", "{}要调准", "新{}", "{}的价格"]
    texts = [c.format("拨链器", "拨链器") + "。" for c in contexts] * 2 + PARAGRAPHS * 2
    cands = mine_words(str(tiny_dir), texts, 5, min_count=3)
    words = [c.word for c in cands]
    assert "拨链器" in words
    assert not {"拨链", "链器"} & set(words)  # fragments of the word are not proposed on their own
    top = cands[words.index("拨链器")]
    assert top.pieces == 3 and top.saved == top.count * 2


def test_cli_mine_then_expand(tmp_path, tiny_dir, corpus_file):
    from nerwheel.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["embed", "expand", "--model", str(tiny_dir), "--mine", "5", "--corpus",
                              str(corpus_file), "--out", str(tmp_path / "m"), "--min-count", "2"])
    assert res.exit_code == 0, res.output
    cands = tmp_path / "m" / "candidates.tsv"
    assert cands.is_file() and read_words(cands)
    res = runner.invoke(cli, ["embed", "expand", "--model", str(tiny_dir), "--words", str(cands), "--corpus",
                              str(corpus_file), "--out", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    assert "added" in res.output and (tmp_path / "x" / "modules.json").is_file()
    both = runner.invoke(cli, ["embed", "expand", "--model", str(tiny_dir), "--out", str(tmp_path / "y")])
    assert both.exit_code == 2 and "exactly one of --words" in both.output
