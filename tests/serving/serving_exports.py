"""Tiny trained models for serving tests, made here in seconds (no external corpora, no downloads).

:func:`train_tiny` trains the ``tiny`` backbone (one small layer) on generated
addresses and :func:`export_model` runs the real export stage, so the served
artifacts are exactly what ``nerwheel train`` + ``nerwheel export`` produce.
Version tests need two models that answer differently: the second one is
trained without ``roadno`` labels, so it never predicts them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.records import Entity, Record

PROVS = ["浙江省", "江苏省", "广东省", "四川省", "湖北省"]
CITIES = ["杭州市", "南京市", "广州市", "成都市", "武汉市", "宁波市"]
DISTRICTS = ["西湖区", "鼓楼区", "天河区", "武侯区", "洪山区", "余杭区"]
ROADS = ["文三路", "中山路", "人民路", "建设路", "珞喻路", "学院路"]

# Probe/sample texts: in and out of the training distribution (spaces, Latin, brackets, unseen characters).
TEXTS = (
    "浙江省杭州市西湖区文三路90号",
    "江苏省南京市鼓楼区中山路30号",
    "湖北省武汉市洪山区珞喻路1037号",
    "广州市天河区建设路",
    "四川省成都市武侯区人民路四段1号",
    "杭州市",
    "浙江省杭州市余杭区 文一西路 969号（阿里巴巴西溪园区）",
    "北京市朝阳区建国路88号SOHO现代城A座2301",
)
# Longer than one window of the tiny models (sequence_length 32): the CPU layout slides windows over it.
LONG_TEXT = "浙江省杭州市西湖区文三路90号华星时代广场A座1201室，转江苏省南京市鼓楼区中山路30号"


def make_records(n: int, seed: int = 0, drop: Iterable[str] = ()) -> list[Record]:
    rng, dropped = random.Random(seed), set(drop)
    out = []
    for i in range(n):
        parts = [(rng.choice(PROVS), "prov")] if rng.random() < 0.7 else []
        parts += [(rng.choice(CITIES), "city"), (rng.choice(DISTRICTS), "district"), (rng.choice(ROADS), "road")]
        if rng.random() < 0.8:
            parts.append((f"{rng.randint(1, 999)}号", "roadno"))
        text, ents = "", []
        for piece, label in parts:
            if label not in dropped:
                ents.append(Entity(len(text), len(text) + len(piece), label, piece))
            text += piece
        out.append(Record(id=f"syn-{seed}-{i}", text=text, entities=tuple(ents)))
    return out


#: model section of a small bert-moe-qwen2 (one-layer tiny BERT, 4 experts, one Qwen2 layer) decoded by beam search.
HYBRID = {"model_id": "bert-moe-qwen2", "decode": "beam", "beam_size": 3,
          "hybrid": {"qwen2_hidden_size": 32, "qwen2_intermediate_size": 64, "qwen2_num_layers": 1,
                     "qwen2_num_heads": 2, "qwen2_num_kv_heads": 1}}


def train_tiny(out_dir: Path, *, seed: int = 0, drop: Iterable[str] = (), epochs: int = 3,
               model: dict | None = None) -> Path:
    """A trained model folder (``nerwheel train`` output) of a one-layer ``tiny`` model; a few seconds on CPU.

    ``model`` overrides the model section (e.g. :data:`HYBRID`).
    """
    from nerwheel.model.config import TrainConfig
    from nerwheel.stages.train import train

    records = make_records(240, seed=seed, drop=drop)
    config = TrainConfig.model_validate({
        "model": {"model_id": "tiny",
                  "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
                  **(model or {})},
        "training": {"epochs": epochs, "batch_size": 16, "sequence_length": 32, "stride": 8, "threads": 1,
                     "learning_rate": 0.005, "seed": seed},
        "output": {"output_dir": str(out_dir), "model_name": f"{(model or {}).get('model_id', 'tiny')}-{seed}",
                   "timestamp": False, "plots": False},
    })
    return train(config, train_records=records[:200], dev_records=records[200:])


def export_model(model_dir: Path, out_dir: Path) -> Path:
    from nerwheel.stages.export import export

    return export(model_dir, out_dir, texts=list(TEXTS)).out_dir


def gpu_configs_before_nbest(name: str, version: int, options: Any = None, **kw: Any) -> dict[str, Any]:
    """The GPU layout as deployed before it offered ``NBEST``: decode and ensemble without it, three steps."""
    from nerwheel.serving.config import gpu_model_configs

    out = gpu_model_configs(name, version, options, **kw)
    for cfg in (out[f"{name}_decode"], out[name]):
        kept = [o for o in cfg.output if o.name != "NBEST"]
        del cfg.output[:]
        cfg.output.extend(kept)
    steps = [s for s in out[name].ensemble_scheduling.step if "NBEST" not in s.output_map]
    del out[name].ensemble_scheduling.step[:]
    out[name].ensemble_scheduling.step.extend(steps)
    return out


@dataclass
class Traffic:
    """What client threads saw while a block ran: answered requests, failures, model versions that answered."""

    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)


@contextmanager
def traffic_during(url: str, model: str, texts: Sequence[str], *, threads: int = 2,
                   settle_s: float = 0.3) -> Iterator[Traffic]:
    """Client threads send ``texts`` to ``model`` without retries for as long as the block runs (plus
    ``settle_s`` before and after), so a hot swap inside the block is seen exactly as live clients see it."""
    from nerwheel.serving.client import Client, ServingError

    seen, stop = Traffic(), threading.Event()

    def send() -> None:
        with Client(url, model=model, retries=0, timeout=30) as client:
            while not stop.is_set():
                try:
                    preds = client.infer(list(texts))
                    seen.ok += 1
                    seen.versions.update(p.model_version for p in preds)
                except ServingError as e:  # pragma: no cover - the failure swap tests guard against
                    seen.failures.append(str(e))

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for t in workers:
        t.start()
    try:
        time.sleep(settle_s)
        yield seen
        time.sleep(settle_s)
    finally:
        stop.set()
        for t in workers:
            t.join()


def deploy_with_corrupt_copy(export_dir: Path, repository: str, *, name: str, triton_url: str,
                             file: str = "model.onnx", garbage: bytes = b"not an onnx graph") -> Any:
    """Deploy ``export_dir`` while ``file`` of the copy Triton reads is corrupted after staging, so the offline
    check passes and only the load/probe can catch it: every task's rollback test drives the same fault."""
    import pytest

    import nerwheel.serving.deploy as deploy_module
    from nerwheel.serving.repository import stage_cpu_version

    def corrupt_after_staging(export: Path, into: Path) -> Path:
        folder = stage_cpu_version(export, into)
        (folder / file).write_bytes(garbage)
        return folder

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deploy_module, "stage_cpu_version", corrupt_after_staging)
        return deploy_module.deploy(export_dir, repository, name=name, triton_url=triton_url)


def swap_then_roll_back(new: Path, broken: Path, repository: str, *, name: str, triton_url: str) -> None:
    """Version 1 is live: ``new`` swaps in as version 2, then ``broken`` (its Triton copy corrupted) is rolled
    back so that version 2 keeps serving. The caller checks that the answers are version 2's."""
    import nerwheel.serving.deploy as deploy_module

    report = deploy_module.deploy(new, repository, name=name, triton_url=triton_url)
    assert report.status == "live" and report.version == 2, report.error
    failed = deploy_with_corrupt_copy(broken, repository, name=name, triton_url=triton_url)
    assert failed.status == "rolled_back" and failed.live_versions == [2], failed
