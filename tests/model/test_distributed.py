"""Training under torch.distributed: 2 processes (torchrun, gloo on CPU) reach the single-process F1 within
noise on the same fixture, write every checkpoint and history line once, and log from rank 0 only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from model_config import tiny_config
from model_synth import make_mixed
from nerwheel.formats import write_records
from nerwheel.model.distributed import Dist, from_env, launch_local, split_batch


def test_ranks_take_disjoint_slices_that_cover_the_global_batch() -> None:
    idx = np.arange(7)
    parts = [split_batch(idx, Dist(r, 2)) for r in range(2)]
    assert np.concatenate(parts).tolist() == idx.tolist() and abs(len(parts[0]) - len(parts[1])) <= 1
    assert split_batch(idx, Dist()).tolist() == idx.tolist()
    tiny = [split_batch(np.array([5]), Dist(r, 3)).tolist() for r in range(3)]
    assert tiny == [[5], [5], [5]], "a batch smaller than the world still gives every rank a row"
    assert from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Dist(1, 2, 1)
    assert from_env({}) == Dist(0, 1, 0) and not Dist().enabled


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ddp-data")
    recs = make_mixed(360, seed=11)
    write_records(recs[:280], out / "train.jsonl")
    write_records(recs[280:], out / "dev.jsonl")
    return {"train": out / "train.jsonl", "dev": out / "dev.jsonl", "out": out}


def config(files: dict[str, Path], name: str):
    return tiny_config(files["out"], name, data={"train_file": str(files["train"]), "dev_file": str(files["dev"])},
                       training={"epochs": 5, "threads": 1, "learning_rate": 3e-3},
                       output={"save_strategy": "epoch", "save_total_limit": 10},
                       early_stopping={"patience": 10})


def dev_f1(model_dir: Path) -> float:
    card = json.loads((model_dir / "nerwheel.json").read_text(encoding="utf-8"))
    return card["metrics"]["dev"]["overall"]["strict"]["f1"]


@pytest.mark.slow
def test_two_gloo_processes_train_like_one(fixture_files: dict[str, Path], capfd: pytest.CaptureFixture) -> None:
    from nerwheel.stages.train import train

    single = train(config(fixture_files, "single"))
    capfd.readouterr()
    ddp = launch_local(config(fixture_files, "ddp"), nproc=2)
    logs = capfd.readouterr()
    text = logs.out + logs.err

    assert ddp == fixture_files["out"] / "ddp" and (ddp / "model.safetensors").is_file()
    f1_single, f1_ddp = dev_f1(single), dev_f1(ddp)
    assert f1_single > 0.6, "the fixture is learnable in 5 epochs"
    assert abs(f1_ddp - f1_single) <= 0.06, (f1_single, f1_ddp)

    # checkpoints and history written once, by rank 0
    history = (ddp / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["epoch"] for line in history] == list(range(1, 6))
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == [f"epoch-{i}" for i in range(1, 6)]
    assert not list(ddp.rglob("*.tmp*")), "no half-written files from a second writer"
    # the same optimisation: as many optimiser steps as the single-process run (the global batch is split)
    steps = [json.loads(line)["step"] for line in history]
    assert steps == [json.loads(line)["step"]
                     for line in (single / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]

    # one log: each epoch's line once (rank 1 is quiet), and both processes did run
    for epoch in range(1, 6):
        assert len(re.findall(rf"nerwheel\.model\.loop: epoch {epoch}: loss", text)) == 1, text[-3000:]
    assert len(re.findall(r"training tiny \(crf head", text)) == 1


@pytest.mark.slow
def test_train_cli_gpus_per_node_runs_that_many_processes(fixture_files: dict[str, Path], tmp_path: Path) -> None:
    """`nerwheel train --gpus-per-node 2`: two DDP processes (gloo here), one model folder, one log."""
    import yaml
    from click.testing import CliRunner

    from nerwheel.cli import cli

    cfg = config(fixture_files, "cli-ddp").model_copy(deep=True)
    path = tmp_path / "train.yaml"
    data = cfg.model_dump(mode="json")
    data["training"]["epochs"] = 1
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    res = CliRunner().invoke(cli, ["train", "--config", str(path), "--gpus-per-node", "2"])
    assert res.exit_code == 0, res.output
    model_dir = Path(res.output.strip().splitlines()[-1])
    assert model_dir == fixture_files["out"] / "cli-ddp" and (model_dir / "model.safetensors").is_file()
    assert len((model_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) == 1

    refused = CliRunner().invoke(cli, ["train", "--config", str(path), "--gpus-per-node", "0"])
    assert refused.exit_code == 2 and "--gpus-per-node" in refused.output
