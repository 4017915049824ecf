"""Hand-written chat messages for the classifier tests (no external corpora), shared by the classifier and
serving tests: three classes (low_value / normal / interrupt), some with the previous turn as context."""

from __future__ import annotations

import json
import random
from pathlib import Path

LABELS = ("low_value", "normal", "interrupt")
_LOW = ["好的", "嗯嗯", "哈哈", "收到", "谢谢", "ok", "在吗", "嗯"]
_NORMAL = ["请问明天北京的天气怎么样", "帮我查一下订单物流", "这个商品还有库存吗", "我想修改收货地址", "怎么申请退款",
           "发票怎么开", "能便宜点吗"]
_INTERRUPT = ["等一下，停", "先别说了，我有急事", "打断一下，紧急情况", "停停停，换个问题", "不对，重来", "暂停！"]
_CONTEXT = ["", "", "你好，有什么可以帮你？", "请稍等，正在为您查询。"]


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice([0, 0, 1, 1, 1, 2])
        pool = (_LOW, _NORMAL, _INTERRUPT)[label]
        rows.append({"message": rng.choice(pool) + rng.choice(["", "。", "！"]), "context": rng.choice(_CONTEXT),
                     "label": label})
    return rows


def tiny_yaml(**training) -> dict:
    """The users' YAML shape, sized for a test (a 1-layer, 32-wide tiny backbone)."""
    return {
        "model": {"name": "tiny", "num_labels": 3, "max_length": 32, "dropout": 0.1,
                  "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "training": {"epochs": 12, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.1,
                     "gradient_accumulation_steps": 1, "fp16": False, "threads": 1, **training},
        "optimizer": {"weight_decay": 0.01, "adam_epsilon": 1e-8},
        "scheduler": {"type": "linear", "num_warmup_steps": 0},
        "early_stopping": {"patience": 50, "min_delta": 0.001},
        "logging": {"steps": 5, "eval_steps": 10},
        "output": {"save_total_limit": 2, "save_strategy": "steps", "save_steps": 10, "timestamp": False},
    }




def write_message_files(d: Path) -> dict[str, Path]:
    """train.json (a JSON array with integer labels), labels.json beside it, eval.jsonl (string labels)."""
    (d / "train.json").write_text(json.dumps(make_rows(160, 1), ensure_ascii=False, indent=1), encoding="utf-8")
    (d / "labels.json").write_text(json.dumps({str(i): n for i, n in enumerate(LABELS)}), encoding="utf-8")
    with (d / "eval.jsonl").open("w", encoding="utf-8") as f:
        for r in make_rows(40, 2):
            f.write(json.dumps({**r, "label": LABELS[r["label"]]}, ensure_ascii=False) + "\n")
    return {"train": d / "train.json", "labels": d / "labels.json", "eval": d / "eval.jsonl", "dir": d}


def train_tiny_classifier(train_file: Path, out: Path, name: str = "tiny", **training) -> Path:
    from nerwheel.tasks.classify.config import validate
    from nerwheel.tasks.classify.train import train

    raw = tiny_yaml(**training)
    raw["data"] = {"train_file": str(train_file)}
    raw["output"].update(output_dir=str(out), model_name=name)
    return train(validate(raw))
