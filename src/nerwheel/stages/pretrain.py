"""Domain-adaptive pretraining: continue masked-language-model training of an encoder on unlabelled in-domain text.

``nerwheel pretrain --model e5-small --texts TRAFFIC --out DIR`` writes a
Hugging Face encoder directory (``config.json``, ``model.safetensors``,
``tokenizer.json``) that ``nerwheel train --model-id DIR`` takes like any
backbone, plus ``pretrain.json``: what was read and used, the masking, the
loss curve. Why: a general multilingual encoder has seen few addresses;
a few passes of MLM over the flywheel's own traffic move it toward the
domain before any label is spent (Gururangan et al., 2020, "Don't stop
pretraining"). ``tiny`` works too: it is then pretrained from scratch on the
traffic, with a character vocabulary made from it.

Every line of the texts file is used or rejected (reader rejects, blank
texts, repeats), ``read = used + rejected``; rejects go to
``pretrain_rejects.jsonl``. Masking: :mod:`nerwheel.model.mlm`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from nerwheel.errors import DataError
from nerwheel.model.config import ModelSettings, Section
from nerwheel.model.layout import PRETRAIN_REPORT

__all__ = ["PretrainConfig", "pretrain", "PRETRAIN_REPORT", "PRETRAIN_REJECTS"]

log = logging.getLogger(__name__)

PRETRAIN_REJECTS = "pretrain_rejects.jsonl"


class PretrainSettings(Section):
    """The MLM loop."""

    epochs: int = Field(1, ge=1, description="passes over the texts")
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimiser steps")
    batch_size: int = Field(32, ge=1, description="windows per step")
    learning_rate: float | None = Field(None, gt=0, description="[5e-4 for tiny, 5e-5 for a pretrained encoder]")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of steps with a rising learning rate")
    sequence_length: int = Field(64, ge=8, description="tokens per window, special tokens included")
    mask_ratio: float = Field(0.15, gt=0, lt=1, description="share of content tokens masked")
    masking: Literal["char", "span"] = Field(
        "span", description="char (each character on its own) or span (runs of characters, mean span_mean)")
    span_mean: float = Field(3.0, ge=1, description="mean masked-span length for masking: span")
    max_records: int | None = Field(None, gt=0, description="use at most this many texts (the first ones)")
    seed: int = Field(42, description="masking, order and initialisation")
    threads: int = Field(0, ge=0, description="torch CPU threads (0: leave as is)")


class PretrainConfig(Section):
    """``nerwheel pretrain``'s settings: the encoder, the texts, the loop, the output folder."""

    model: ModelSettings = Field(default_factory=ModelSettings, description="the encoder (model_id, tiny, cache_dir)")
    texts: str | None = Field(None, description="unlabelled in-domain texts (any format nerwheel reads)")
    out: str | None = Field(None, description="output folder (a backbone for train --model-id)")
    training: PretrainSettings = Field(default_factory=PretrainSettings, description="the MLM loop")


def _texts(path: str, max_records: int | None) -> tuple[list[str], list[Any], int]:
    """Distinct non-blank texts of ``path`` and the rejects (with line and reason) of everything else."""
    from nerwheel.formats import read_records
    from nerwheel.formats.base import Reject

    result = read_records(path)
    rejects = list(result.rejects)
    seen: dict[str, int] = {}
    texts: list[str] = []
    for line, rec in result.located():
        text = rec.text.strip()
        why = ("blank", "blank text") if not text else (
            ("duplicate", f"same text as line {seen[text]}") if text in seen else
            ("over-limit", f"beyond training.max_records={max_records}") if max_records and len(texts) >= max_records
            else None)
        if why:
            rejects.append(Reject(path, line, why[1], json.dumps({"text": rec.text}, ensure_ascii=False), kind=why[0]))
            continue
        seen[text] = line
        texts.append(text)
    rejects.sort(key=lambda r: r.line)
    return texts, rejects, result.read


def pretrain(config: PretrainConfig) -> Path:
    """Run MLM over ``config.texts`` and save the encoder to ``config.out``; returns that folder."""
    import torch

    from nerwheel.formats import write_rejects
    from nerwheel.model.backbones import load_backbone, save_tokenizer
    from nerwheel.model.encoding import TextEncoder
    from nerwheel.model.loop import seed_everything, torch_threads
    from nerwheel.model.mlm import MaskSettings, MlmHead, collate_mlm, ordinary_id_range
    from nerwheel.model.optim import lr_factor
    from nerwheel.storage import sha256_file

    if not config.texts:
        raise DataError("no texts to pretrain on: set texts", field="texts")
    if not config.out:
        raise DataError("no output folder: set out", field="out")
    t = config.training
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: already exists and is not empty; choose another --out")
    texts, rejects, read = _texts(config.texts, t.max_records)
    if not texts:
        raise DataError(f"{config.texts}: no usable text ({len(rejects)} rejected)", field="texts")
    seed_everything(t.seed)
    backbone = load_backbone(config.model, texts=texts, sequence_length=t.sequence_length)
    encoder_model: Any = backbone.encoder
    if encoder_model is None:
        raise DataError(f"model.model_id={config.model.model_id!r} is a trained tagger, not an encoder; pretrain "
                        "an encoder (tiny, e5-small, a Hugging Face directory)", field="model.model_id")
    text_encoder = TextEncoder(backbone.tokenizer, sequence_length=t.sequence_length, stride=0,
                               pad_id=backbone.pad_id)
    mask_token = backbone.special_tokens.get("mask_token")
    mask_id = backbone.tokenizer.token_to_id(mask_token) if mask_token else None
    if mask_id is None:
        raise DataError(f"backbone {backbone.name}: its tokenizer has no mask token", field="model.model_id")
    windows = [text_encoder.input_ids(enc, w) for enc in text_encoder.encode_batch(texts)
               for w in text_encoder.windows(len(enc)) if len(enc)]
    specials = sorted({*text_encoder.prefix, *text_encoder.suffix, backbone.pad_id, mask_id})
    settings = MaskSettings(mask_id=mask_id, vocab_size=backbone.tokenizer.get_vocab_size(), ratio=t.mask_ratio,
                            masking=t.masking, span_mean=t.span_mean,
                            random_ids=ordinary_id_range(specials, backbone.tokenizer.get_vocab_size()))
    head = MlmHead(encoder_model)
    params = [p for p in [*encoder_model.parameters(), *head.parameters()] if p.requires_grad]
    lr = t.learning_rate or (5e-4 if backbone.name == "tiny" else 5e-5)
    optimizer = torch.optim.AdamW(list(dict.fromkeys(params)), lr=lr, weight_decay=0.01)
    steps_per_epoch = -(-len(windows) // t.batch_size)
    total = min(steps_per_epoch * t.epochs, t.max_steps or 10**12)
    warmup = int(round(total * t.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total=total, warmup=warmup,
                                                                                  kind="linear"))
    rng = np.random.default_rng(t.seed)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    curve: list[dict[str, float]] = []
    step, start = 0, time.perf_counter()
    encoder_model.train()
    with torch_threads(t.threads):
        for epoch in range(1, t.epochs + 1):
            order = rng.permutation(len(windows))
            running, n = 0.0, 0
            for b in range(0, len(order), t.batch_size):
                if step >= total:
                    break
                batch = collate_mlm([windows[i] for i in order[b : b + t.batch_size]], pad_id=backbone.pad_id,
                                    special_ids=specials, settings=settings, rng=rng)
                x = {k: torch.from_numpy(v) for k, v in batch.items()}
                hidden = encoder_model(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state
                logits = head(hidden)
                loss = loss_fn(logits.view(-1, logits.shape[-1]), x["labels"].view(-1))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                running, n = running + float(loss.detach()), n + 1
                if step % 50 == 0 or step == total:
                    curve.append({"step": step, "epoch": epoch, "loss": running / n})
                    log.info("pretrain step %d/%d loss %.4f", step, total, running / n)
                    running, n = 0.0, 0
            if n:
                curve.append({"step": step, "epoch": epoch, "loss": running / n})
    out.mkdir(parents=True, exist_ok=True)
    encoder_model.save_pretrained(str(out))
    save_tokenizer(backbone.tokenizer, backbone.special_tokens, out, max_length=t.sequence_length)
    write_rejects(rejects, out / PRETRAIN_REJECTS)
    report = {
        "backbone": backbone.name, "texts": {"path": config.texts, "sha256": sha256_file(config.texts), "read": read,
                                             "used": len(texts), "rejected": len(rejects)},
        "windows": len(windows), "steps": step, "seconds": round(time.perf_counter() - start, 1),
        "learning_rate": lr, "masking": {"kind": t.masking, "ratio": t.mask_ratio, "span_mean": t.span_mean},
        "loss": curve, "config": config.model_dump(mode="json"),
    }
    (out / PRETRAIN_REPORT).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return out
