"""Shared fixtures for the model tests: one synthetic address set, trained tiny CRF / softmax / hybrid models, one
export, one tiny span model trained on fusion data (nested targets, overlapping extension labels), and one tiny
model that reads knowledge-base lexicon features.

Training happens once per session (about 10-25 s each on one core); every test
that needs a trained model reads the same directory and must not modify it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model_config import HYBRID_MODEL, SPAN_MODEL, tiny_config
from model_synth import FUSED_LABELS, make_fused, make_mixed


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs torch on one thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def address_data():
    recs = make_mixed(560, seed=3)
    return {"train": recs[:400], "dev": recs[400:480], "test": recs[480:]}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, address_data) -> Path:
    from nerwheel.stages.train import train

    out = tmp_path_factory.mktemp("models")
    cfg = tiny_config(out, "tiny-crf", output={"plots": True, "save_total_limit": 1})
    return train(cfg, train_records=address_data["train"], dev_records=address_data["dev"],
                 test_records=address_data["test"])


@pytest.fixture(scope="session")
def tiny_softmax_model(tmp_path_factory, address_data) -> Path:
    from nerwheel.stages.train import train

    cfg = tiny_config(tmp_path_factory.mktemp("models"), "tiny-softmax", model={"head": "softmax"})
    return train(cfg, train_records=address_data["train"], dev_records=address_data["dev"])


@pytest.fixture(scope="session")
def hybrid_model(tmp_path_factory, address_data) -> Path:
    """A small bert-moe-qwen2 model (tiny BERT -> 4 experts, top 2 -> 2 Qwen2 layers -> CRF), decoded by beam search."""
    from nerwheel.stages.train import train

    cfg = tiny_config(tmp_path_factory.mktemp("models"), "hybrid", model=HYBRID_MODEL, training={"epochs": 4})
    return train(cfg, train_records=address_data["train"], dev_records=address_data["dev"],
                 test_records=address_data["test"])


@pytest.fixture(scope="session")
def e5_model(tmp_path_factory, address_data) -> Path:
    """e5-small (XLM-R family, SentencePiece pieces, pruned to the data), one epoch: barely trained, but every
    runtime must still read it alike."""
    from nerwheel.stages.train import train

    cfg = tiny_config(tmp_path_factory.mktemp("models"), "e5", training={"epochs": 1},
                      model={"model_id": "e5-small", "cache_dir": str(tmp_path_factory.mktemp("e5cache"))})
    return train(cfg, train_records=address_data["train"][:60], dev_records=address_data["dev"][:20])


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_model, address_data):
    from nerwheel.stages.export import export

    out = tmp_path_factory.mktemp("exports") / "tiny-crf"
    report = export(tiny_model, out, quantize="int8", eval_records=address_data["test"])
    return out, report


@pytest.fixture(scope="session")
def fusion_data():
    recs = make_fused(480, seed=5)
    return {"train": recs[:360], "dev": recs[360:420], "test": recs[420:]}


@pytest.fixture(scope="session")
def span_model(tmp_path_factory, fusion_data) -> Path:
    from nerwheel.stages.train import train

    # stride 24: a window owns the tokens at least 12 = max_width tokens from its edges, so no span is cut off
    cfg = tiny_config(tmp_path_factory.mktemp("span"), "tiny-span", model=SPAN_MODEL,
                      training={"epochs": 10, "stride": 24}, data={"labels": list(FUSED_LABELS)})
    return train(cfg, train_records=fusion_data["train"], dev_records=fusion_data["dev"],
                 test_records=fusion_data["test"])


@pytest.fixture(scope="session")
def lexicon_model(tmp_path_factory):
    """A tiny CRF model trained with knowledge-base lexicon features (``model.lexicon``), and its test records."""
    from nerwheel.stages.train import train

    recs = make_mixed(260, seed=11)
    cfg = tiny_config(tmp_path_factory.mktemp("lex"), "tiny-lex", model={"lexicon": {"enabled": True}},
                      training={"epochs": 4})
    return train(cfg, train_records=recs[:200], dev_records=recs[200:230], test_records=recs[230:]), recs[230:]
