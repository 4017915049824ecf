"""A tiny, deterministic address data set for whole-pipeline runs (made here; no shared data).

Seed and eval are gold records assembled from parts, so every offset is exact;
traffic is unlabelled text from the same generator. Small on purpose: a pipeline
run in the test suite must finish in well under a minute of CPU.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PROVS = ["浙江省", "江苏省", "广东省", "四川省", "湖北省"]
CITIES = ["杭州市", "南京市", "广州市", "成都市", "武汉市", "宁波市"]
DISTRICTS = ["西湖区", "鼓楼区", "天河区", "武侯区", "江汉区", "鄞州区"]
ROADS = ["文三路", "中山路", "人民路", "解放大道", "建设路", "学院路"]

#: Training settings that keep the tiny backbone tiny (seconds per epoch on one core).
TINY_TRAIN = ("model.tiny.hidden_size=32; model.tiny.num_layers=1; model.tiny.num_heads=2; "
              "model.tiny.intermediate_size=64; training.batch_size=16; training.sequence_length=32; "
              "training.stride=8; output.plots=false")


def _record(rng: random.Random, rid: str) -> dict:
    parts = [(rng.choice(PROVS), "prov"), (rng.choice(CITIES), "city"), (rng.choice(DISTRICTS), "district"),
             (rng.choice(ROADS), "road"), (f"{rng.randint(1, 999)}号", "roadno")]
    if rng.random() < 0.4:
        parts = parts[1:]
    text, entities = "", []
    for piece, label in parts:
        entities.append({"start": len(text), "end": len(text) + len(piece), "label": label, "text": piece})
        text += piece
    return {"id": rid, "text": text, "entities": entities}


def write_tiny_dataset(folder: Path, *, seed: int = 7, n_seed: int = 40, n_eval: int = 12,
                       n_traffic: int = 12) -> dict[str, Path]:
    """Write seed.jsonl, eval.jsonl and traffic.txt into ``folder``; returns their paths by role."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()

    def unique(prefix: str, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            rec = _record(rng, f"{prefix}-{len(out)}")
            if rec["text"] not in seen:
                seen.add(rec["text"])
                out.append(rec)
        return out

    paths = {"seed": folder / "seed.jsonl", "eval": folder / "eval.jsonl", "texts": folder / "traffic.txt"}
    for role, n in (("seed", n_seed), ("eval", n_eval)):
        paths[role].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in unique(role, n)),
                               encoding="utf-8")
    paths["texts"].write_text("".join(r["text"] + "\n" for r in unique("traffic", n_traffic)), encoding="utf-8")
    return paths
