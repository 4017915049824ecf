"""Rebuild seed.jsonl, eval.jsonl and traffic.txt from the hand-written addresses.txt.

    python -m nerwheel.data.sample.build      (deterministic; the files are committed)

addresses.txt holds one address per line as ``text/label`` pieces (bare or
``text/-`` pieces are unlabelled). The seed and eval sections become span JSONL
with offsets computed here, checked (labels in ADDRESS_LABELS, no text in both
sections, no duplicates). traffic.txt is unlabelled "live traffic": addresses
recombined from the same pieces (a piece swapped for another of its type,
provinces dropped, a few typing habits such as spaces and prefixes), none equal
to a seed or eval text.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from nerwheel.labels import ADDRESS_LABELS
from nerwheel.records import Entity, Record

HERE = Path(__file__).parent
N_TRAFFIC = 300
PREFIXES = ("", "", "", "", "收货地址：", "地址:", "送到", "寄到 ")
SUFFIXES = ("", "", "", "", "", " 电话联系", "（放门卫）", " 快递柜", "，工作日送")

Piece = tuple[str, str | None]


def parse(path: Path = HERE / "addresses.txt") -> dict[str, list[list[Piece]]]:
    sections: dict[str, list[list[Piece]]] = defaultdict(list)
    current = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current is None:
            raise ValueError(f"{path}:{number}: address before any [section] header")
        pieces: list[Piece] = []
        for token in line.split():
            text, _, label = token.partition("/")
            if label and label != "-" and label not in ADDRESS_LABELS:
                raise ValueError(f"{path}:{number}: unknown label {label!r} in {token!r}")
            pieces.append((text, label if label and label != "-" else None))
        sections[current].append(pieces)
    return sections


def to_record(rid: str, pieces: list[Piece]) -> Record:
    text, ents = "", []
    for piece, label in pieces:
        if label:
            ents.append(Entity(len(text), len(text) + len(piece), label, piece))
        text += piece
    return Record(rid, text, tuple(ents))


def traffic(all_pieces: list[list[Piece]], forbidden: set[str], rng: random.Random) -> list[str]:
    pool: dict[str, list[str]] = defaultdict(list)
    for pieces in all_pieces:
        for text, label in pieces:
            if label:
                pool[label].append(text)
    out: list[str] = []
    seen = set(forbidden)
    while len(out) < N_TRAFFIC:
        skeleton = rng.choice(all_pieces)
        pieces = []
        for text, label in skeleton:
            if label in ("road", "roadno", "poi", "houseno", "floorno", "roomno", "cellno") and rng.random() < 0.35:
                text = rng.choice(pool[label])
            pieces.append((text, label))
        if pieces and pieces[0][1] == "prov" and rng.random() < 0.3:
            pieces = pieces[1:]
        sep = " " if rng.random() < 0.1 else ""
        body = sep.join(t for t, _ in pieces)
        line = f"{rng.choice(PREFIXES)}{body}{rng.choice(SUFFIXES)}"
        if body not in seen and line not in seen:
            seen.update((body, line))
            out.append(line)
    return out


def build() -> dict[str, int]:
    sections = parse()
    seed = [to_record(f"seed-{i + 1:03d}", p) for i, p in enumerate(sections["seed"])]
    evals = [to_record(f"eval-{i + 1:03d}", p) for i, p in enumerate(sections["eval"])]
    for name, recs in (("seed", seed), ("eval", evals)):
        texts = [r.text for r in recs]
        dups = {t for t in texts if texts.count(t) > 1}
        if dups:
            raise ValueError(f"duplicate {name} texts: {sorted(dups)}")
    both = {r.text for r in seed} & {r.text for r in evals}
    if both:
        raise ValueError(f"texts in both seed and eval: {sorted(both)}")
    lines = traffic(sections["seed"] + sections["eval"], {r.text for r in seed + evals}, random.Random(20240601))
    for name, recs in (("seed.jsonl", seed), ("eval.jsonl", evals)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
    (HERE / "traffic.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"seed": len(seed), "eval": len(evals), "traffic": len(lines)}


if __name__ == "__main__":
    print(build())
