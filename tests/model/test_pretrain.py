"""Domain-adaptive pretraining: MLM masking and collation, and `nerwheel pretrain` -> a backbone `train` takes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from model_config import tiny_config
from model_synth import make_mixed
from nerwheel.model.backbones import adapted_from
from nerwheel.model.data import IGNORE
from nerwheel.model.mlm import MaskSettings, collate_mlm, mask_batch, ordinary_id_range

SPECIALS = (0, 1, 2, 3)  # pad, unk, cls, sep ... as the tests' vocabulary has them; mask id 4


def _rows(rng, n=64, length=40):
    return [np.concatenate([[2], rng.integers(10, 500, size=int(rng.integers(5, length))), [3]]) for _ in range(n)]


@pytest.mark.parametrize("masking", ["char", "span"])
def test_masking_picks_the_share_of_content_tokens_and_follows_80_10_10(masking):
    rng = np.random.default_rng(0)
    settings = MaskSettings(mask_id=4, vocab_size=500, ratio=0.15, masking=masking, span_mean=3.0,
                            random_ids=(10, 500))
    rows = _rows(rng, n=400)
    batch = collate_mlm(rows, pad_id=0, special_ids=SPECIALS, settings=settings, rng=rng)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    original = np.zeros_like(ids)
    for i, r in enumerate(rows):
        original[i, : len(r)] = r
        assert mask[i].sum() == len(r)
    chosen = labels != IGNORE
    content = (mask == 1) & ~np.isin(original, SPECIALS)
    assert not (chosen & ~content).any()  # special tokens and padding are never chosen
    assert np.array_equal(labels[chosen], original[chosen])  # labels are the original ids
    per_row = chosen.sum(1) / content.sum(1)
    assert abs(per_row.mean() - 0.15) < 0.03  # the share, row by row (at least one per row)
    assert (chosen.sum(1) >= 1).all()
    masked = (ids == 4) & chosen
    same = (ids == original) & chosen
    n = chosen.sum()
    assert abs(masked.sum() / n - 0.8) < 0.04 and abs(same.sum() / n - 0.1) < 0.04
    assert np.array_equal(ids[~chosen], original[~chosen])  # nothing else changes
    assert ((ids[chosen & ~masked & ~same] >= 10) & (ids[chosen & ~masked & ~same] < 500)).all()


def test_span_masking_masks_runs_and_char_masking_scattered_tokens():
    def mean_run(masking):
        rng = np.random.default_rng(1)
        settings = MaskSettings(mask_id=4, vocab_size=500, ratio=0.3, masking=masking, span_mean=4.0)
        ids = np.concatenate([[[2]] * 300, rng.integers(10, 500, size=(300, 60)), [[3]] * 300], axis=1)
        special = np.isin(ids, SPECIALS)
        _, labels = mask_batch(ids, special, settings, rng)
        runs = []
        for row in labels != IGNORE:
            edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
            runs += list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
        return float(np.mean(runs))

    assert mean_run("span") > 2.0 > mean_run("char")


def test_masking_is_seeded():
    settings = MaskSettings(mask_id=4, vocab_size=500)
    rows = _rows(np.random.default_rng(2), n=8)
    a = collate_mlm(rows, pad_id=0, special_ids=SPECIALS, settings=settings, rng=np.random.default_rng(7))
    b = collate_mlm(rows, pad_id=0, special_ids=SPECIALS, settings=settings, rng=np.random.default_rng(7))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_pretrain_cli_writes_a_backbone_that_train_takes(tmp_path):
    from nerwheel.cli import cli
    from nerwheel.model.card import ModelCard
    from nerwheel.stages.train import train

    recs = make_mixed(200, seed=21)
    texts = tmp_path / "traffic.jsonl"
    distinct = list(dict.fromkeys(r.text for r in recs[:160]))[:140]
    lines = [json.dumps({"id": str(i), "text": t}, ensure_ascii=False) for i, t in enumerate(distinct)]
    lines += [json.dumps({"text": distinct[0]}, ensure_ascii=False), json.dumps({"text": "  "}), "{broken"]
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "dapt"
    res = CliRunner().invoke(cli, ["pretrain", "--model", "tiny", "--texts", str(texts), "--out", str(out),
                                   "--epochs", "3", "--set", "training.batch_size=16",
                                   "--set", "training.sequence_length=48", "--set", "training.threads=1",
                                   "--set", "model.tiny.hidden_size=32", "--set", "model.tiny.num_layers=1",
                                   "--set", "model.tiny.num_heads=2", "--set", "model.tiny.intermediate_size=64"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out)
    report = json.loads((out / "pretrain.json").read_text(encoding="utf-8"))
    t = report["texts"]
    assert len(distinct) == 140 and (t["read"], t["used"], t["rejected"]) == (143, 140, 3)
    rejects = [json.loads(x) for x in (out / "pretrain_rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((r["line"], r["kind"]) for r in rejects)[:2] == [(141, "duplicate"), (142, "blank")]
    assert report["loss"][-1]["loss"] < report["loss"][0]["loss"]  # it learned something about the texts
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}

    cfg = tiny_config(tmp_path / "runs", "from-dapt", model={"model_id": str(out)},
                      training={"epochs": 1, "sequence_length": 48, "learning_rate": 1e-3})
    model_dir = train(cfg, train_records=recs[160:190], dev_records=recs[190:])
    card = ModelCard.read(model_dir)
    assert adapted_from(str(out)) == "tiny" and adapted_from(str(tmp_path)) is None
    assert card.backbone == str(out) and 0 <= card.metrics["dev"]["overall"]["strict"]["f1"] <= 1

    again = CliRunner().invoke(cli, ["pretrain", "--texts", str(texts), "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_random_replacements_come_from_ordinary_ids_wherever_the_specials_sit():
    assert ordinary_id_range([0, 100, 101, 102, 103], 21128) == (104, 21128)  # BERT: specials first
    assert ordinary_id_range([0, 1, 2, 3, 3279], 3280) == (4, 3279)  # XLM-R / e5-small: <mask> is the last id
    with pytest.raises(ValueError, match="no ordinary token ids"):
        ordinary_id_range([0, 1, 2], 3)


def test_pretrain_takes_e5_small_whose_mask_token_is_the_last_id(tmp_path):
    """`nerwheel pretrain --model e5-small` stopped at its first batch (low >= high drawing random ids)."""
    from nerwheel.cli import cli

    texts = tmp_path / "traffic.txt"
    texts.write_text("\n".join(dict.fromkeys(r.text for r in make_mixed(40, seed=5))) + "\n", encoding="utf-8")
    out = tmp_path / "dapt-e5"
    res = CliRunner().invoke(cli, ["pretrain", "--model", "e5-small", "--texts", str(texts), "--out", str(out),
                                   "--max-steps", "2", "--set", "training.batch_size=8",
                                   "--set", "training.sequence_length=32", "--set", "training.threads=1",
                                   "--set", f"model.cache_dir={tmp_path / 'e5cache'}"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "pretrain.json").read_text(encoding="utf-8"))
    assert len(report["loss"]) >= 1 and all(np.isfinite(x["loss"]) for x in report["loss"])
    assert adapted_from(str(out)) == "e5-small"  # so train gives it e5-small's measured schedule
