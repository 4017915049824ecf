"""Fixtures for the embedding task's tests: small corpora and a tiny encoder, all made here.

No external corpora: texts are written below, the encoder is a 2-layer,
32-wide BERT made from config (see embed_helpers.py), trained once per session
where a test needs a trained model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from embed_helpers import PARAGRAPHS, char_counter, tiny_encoder_dir


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs torch on one thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "kb.txt"
    path.write_text("\n".join(PARAGRAPHS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """An untrained tiny encoder (a Hugging Face folder) whose vocabulary covers the test texts."""
    return tiny_encoder_dir(tmp_path_factory.mktemp("tiny") / "enc", PARAGRAPHS)


@pytest.fixture(scope="session")
def ict_pairs(tmp_path_factory, corpus_file) -> Path:
    """split -> pairs (inverse cloze) of the test corpus, as the CLI writes them."""
    from nerwheel.tasks.embed.beir import read_corpus
    from nerwheel.tasks.embed.pairs import PairsConfig, make_pairs, write_pairs
    from nerwheel.tasks.embed.passages import SplitConfig, split_corpus, write_split

    root = tmp_path_factory.mktemp("pipeline")
    split = split_corpus([corpus_file], char_counter, SplitConfig(max_tokens=40, min_tokens=2))
    write_split(split, root / "split")
    result = make_pairs(read_corpus(root / "split"), PairsConfig(teacher="ict", queries_per_passage=2))
    write_pairs(result, root / "pairs")
    return root / "pairs"


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, tiny_dir, ict_pairs) -> Path:
    """The tiny encoder fine-tuned for two epochs on the inverse-cloze pairs (a sentence-transformers folder,
    with query/passage prompts of its own so every consumer has to honour them)."""
    from nerwheel.tasks.embed.train import EmbedTrainConfig, train

    cfg = EmbedTrainConfig(model=str(tiny_dir), epochs=2, batch_size=8, learning_rate=1e-3, max_seq_length=64,
                           eval_batch_size=32, seed=1, query_prompt="q: ", passage_prompt="p: ")
    return train(cfg, ict_pairs, tmp_path_factory.mktemp("trained") / "ft")
