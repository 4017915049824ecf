"""The small, fast training config the model tests share.

A plain module (not conftest.py), so test files import it by a name no other
test folder uses: ``from conftest import ...`` picks whichever conftest pytest
loaded last when several test folders are given on the command line.
"""

from __future__ import annotations

from pathlib import Path

from nerwheel.model.config import TrainConfig, validate

TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}
#: The span head the span tests train (model.head: span), small like TINY.
SPAN_MODEL = {"head": "span", "span": {"max_width": 12, "size": 32}}
#: model section of a small bert-moe-qwen2: the TINY BERT, 4 experts (top 2), 2 Qwen2 layers of width 64, beam search.
HYBRID_MODEL = {
    "model_id": "bert-moe-qwen2", "decode": "beam", "beam_size": 4,
    "hybrid": {"qwen2_hidden_size": 64, "qwen2_intermediate_size": 128, "qwen2_num_layers": 2, "qwen2_num_heads": 4,
               "qwen2_num_kv_heads": 2, "num_experts": 4, "top_k": 2},
}


def tiny_config(out: Path, name: str, **sections: dict) -> TrainConfig:
    """A small, fast config (one thread: small ops are much faster than with two busy cores)."""
    base = {
        "model": {"tiny": TINY},
        "training": {"epochs": 8, "batch_size": 16, "sequence_length": 64, "stride": 16, "threads": 1},
        "output": {"output_dir": str(out), "model_name": name, "timestamp": False, "save_total_limit": 0,
                   "plots": False},
    }
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values}
    return validate(base)
