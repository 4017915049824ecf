"""Rebuild seed.jsonl, eval.jsonl, traffic.txt and labels.json from the hand-written messages.txt and contexts.txt.

    python -m nerwheel.tasks.classify.sample.build      (deterministic; the files are committed)

Each labelled message is split between seed (about 55%) and eval (the rest)
per class, so no message text is in both; each gets a context (the previous
turn) or none, drawn with a fixed seed. traffic.txt is unlabelled live traffic:
messages recombined with light typing habits (repeated punctuation, a trailing
particle), none equal to a seed or eval message.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
LABELS = ("low_value", "normal", "interrupt")
N_TRAFFIC = 240


def _lines(name: str) -> list[str]:
    return [ln for ln in (HERE / name).read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def build() -> dict[str, int]:
    rng = random.Random(20261201)
    contexts = _lines("contexts.txt")
    by_label: dict[str, list[str]] = {lab: [] for lab in LABELS}
    for line in _lines("messages.txt"):
        label, message = line.split("\t")
        assert label in LABELS, line
        by_label[label].append(message)
    seed, evals = [], []
    for label, messages in by_label.items():
        shuffled = messages[:]
        rng.shuffle(shuffled)
        cut = round(len(shuffled) * 0.55)
        for i, m in enumerate(shuffled):
            row = {"message": m, "context": rng.choice(contexts + [""] * 3), "label": label}
            (seed if i < cut else evals).append(row)
    rng.shuffle(seed)
    rng.shuffle(evals)
    for part, rows in (("seed", seed), ("eval", evals)):
        with (HERE / f"{part}.jsonl").open("w", encoding="utf-8") as f:
            for i, r in enumerate(rows, start=1):
                f.write(json.dumps({"id": f"{part}-{i:03d}", **r}, ensure_ascii=False) + "\n")
    known = {r["message"] for r in seed + evals}
    all_messages = [m for ms in by_label.values() for m in ms]
    traffic: list[str] = []
    while len(traffic) < N_TRAFFIC:
        m = rng.choice(all_messages) + rng.choice(["", "", "呀", "哈", "。。", "！！", "吧", "~"])
        if m not in known:
            traffic.append(m)
    (HERE / "traffic.txt").write_text("\n".join(traffic) + "\n", encoding="utf-8")
    (HERE / "labels.json").write_text(json.dumps({str(i): n for i, n in enumerate(LABELS)}) + "\n", encoding="utf-8")
    return {"seed": len(seed), "eval": len(evals), "traffic": len(traffic)}


if __name__ == "__main__":
    print(build())
