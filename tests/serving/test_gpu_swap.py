"""Hot swap of the GPU layout (tokenize -> onnx -> decode ensemble, every step pinned to a version).

Triton here has no onnxruntime backend, so the ``{name}_onnx`` step runs the
same ``model.onnx`` in a python-backend stand-in (``onnx_step/model.py``);
the ensemble, the python steps, the version pins and the swap order are the
real ones deploy uses.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import nerwheel.serving.deploy as deploy_module
from nerwheel.model.runtime import OnnxTagger
from nerwheel.serving.client import Client, ServingError
from nerwheel.serving.config import gpu_model_configs
from nerwheel.serving.deploy import deploy
from nerwheel.serving.repository import ModelRepository, stage_gpu_versions
from nerwheel.stages.predict import load_predictor
from serving_exports import TEXTS, gpu_configs_before_nbest, traffic_during
from tritonclient.grpc import model_config_pb2 as mc

pytestmark = pytest.mark.server

ONNX_STEP = Path(__file__).with_name("onnx_step") / "model.py"


def cpu_stand_in(monkeypatch: pytest.MonkeyPatch, layout: Callable[..., dict] = gpu_model_configs) -> None:
    """The ``_onnx`` step as a python-backend model on CPU; everything else as deploy generates it (``layout``:
    the GPU configs to deploy, today's by default)."""

    def configs(name, version, options=None, **kw):
        out = layout(name, version, options, **kw)
        onnx = out[f"{name}_onnx"]
        onnx.backend = "python"
        onnx.ClearField("default_model_filename")
        del onnx.instance_group[:]
        onnx.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=1))
        return out

    def stage(export_dir, root, name, version, options=None):
        out = stage_gpu_versions(export_dir, root, name, version, options)
        shutil.copy2(ONNX_STEP, Path(root) / f"{name}_onnx" / str(version) / "model.py")
        return out

    monkeypatch.setattr(deploy_module, "gpu_model_configs", configs)
    monkeypatch.setattr(deploy_module, "stage_gpu_versions", stage)


def test_gpu_ensemble_hot_swap_drops_no_request(
    triton, export_v1: Path, export_v2: Path, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_stand_in(monkeypatch)
    tagger = OnnxTagger(export_v1)
    texts = [t for t in TEXTS if len(tagger.encoder.windows(len(tagger.encoder.encode(t)))) == 1][:4]
    kw = dict(name=model_name, triton_url=triton.url, variant="gpu", probe_texts=texts)
    first = deploy(export_v1, str(triton.local_repo), **kw)
    assert (first.status, first.version) == ("live", 1), first.error

    with traffic_during(triton.url, model_name, texts[:2]) as seen:
        second = deploy(export_v2, str(triton.local_repo), **kw)
    assert (second.status, second.version) == ("live", 2), second.error
    assert seen.failures == [] and seen.ok > 5, seen.failures[:3]
    assert seen.versions == {"1", "2"}
    repo = ModelRepository(str(triton.local_repo))
    steps = [f"{model_name}_{s}" for s in ("tokenize", "onnx", "decode")]
    assert {m: repo.live_versions(m) for m in [*steps, model_name]} == {m: [2] for m in [*steps, model_name]}
    with Client(triton.url, model=model_name) as client:
        after = client.infer(texts)
        for step in steps:  # the old step versions were dropped once the new ensemble was verified
            assert client._client.is_model_ready(step, "2") and not client._client.is_model_ready(step, "1")
    assert {p.model_version for p in after} == {"2"}
    assert [p.entities for p in after] == load_predictor(export_v2).predict(texts)


def test_gpu_layout_serves_a_lexicon_model_as_offline(
    triton, export_lexicon: Path, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tokenize step computes the knowledge-base features and the ONNX step reads them (issue 20)."""
    cpu_stand_in(monkeypatch)
    offline = load_predictor(export_lexicon)  # what `nerwheel predict EXPORT` runs: ONNX Runtime
    assert offline.lexicon is not None
    texts = [t for t in TEXTS if len(offline.encoder.windows(len(offline.encoder.encode(t)))) == 1]
    assert len(texts) >= 5
    report = deploy(export_lexicon, str(triton.local_repo), name=model_name, triton_url=triton.url, variant="gpu",
                    probe_texts=texts)
    assert (report.status, report.version, report.verified) == ("live", 1, True), report.error
    repo = ModelRepository(str(triton.local_repo))
    assert "lexicon" in [i.name for i in repo.read_config(f"{model_name}_onnx").input]
    with Client(triton.url, model=model_name, batch_size=4) as client:
        served = client.infer(texts)
    expected = offline.predict(texts)
    assert [p.entities for p in served] == expected and sum(map(len, expected)) > len(texts)
    for got, want in zip(served, expected, strict=True):
        assert [e.score for e in got.entities] == pytest.approx([e.score for e in want], abs=1e-5)


def text_input(texts: list[str]) -> object:
    import numpy as np
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput("TEXT", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in texts], dtype=object))
    return tensor


def decode_executions(url: str, model: str, version: int) -> Callable[[], int]:
    """How often Triton has run ``model`` (one step request: the decode model has no dynamic batching).

    The backend reports an execution's statistics after its response is sent, so a client can read them before
    the last run is counted (seen under the full suite's load): read until two reads 50 ms apart agree.
    """
    import tritonclient.grpc as grpcclient

    from nerwheel.serving.control import grpc_headers, resolve_key

    def read() -> int:
        with grpcclient.InferenceServerClient(url) as client:
            stats = client.get_inference_statistics(model, str(version), headers=grpc_headers(resolve_key()),
                                                    as_json=True)
        return int(stats["model_stats"][0].get("execution_count", 0))

    def count() -> int:
        last, deadline = read(), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = read()
            if now == last:
                return now
            last = now
        return last

    return count


def test_gpu_layout_serves_n_best_as_offline_and_only_when_asked(
    triton, export_v1: Path, export_v2: Path, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NBEST through the real ensemble: swapped in under traffic over an ensemble deployed before it offered
    NBEST, equal to what `nerwheel predict --n-best 3` writes offline, its step run only when a request names it."""
    offline = load_predictor(export_v2)  # ONNX Runtime on the export, as `nerwheel predict EXPORT --n-best 3`
    texts = [t for t in TEXTS if len(offline.encoder.windows(len(offline.encoder.encode(t)))) == 1]
    kw = dict(name=model_name, triton_url=triton.url, variant="gpu", probe_texts=texts[:4])
    cpu_stand_in(monkeypatch, gpu_configs_before_nbest)
    first = deploy(export_v1, str(triton.local_repo), **kw)
    assert (first.status, first.version) == ("live", 1), first.error
    with Client(triton.url, model=model_name) as client, pytest.raises(ServingError, match="does not offer NBEST"):
        client.n_best(texts[:1], 3)

    cpu_stand_in(monkeypatch)
    with traffic_during(triton.url, model_name, texts[:2]) as seen:
        second = deploy(export_v2, str(triton.local_repo), **kw)
    assert (second.status, second.version) == ("live", 2), second.error
    assert seen.failures == [] and seen.ok > 5, seen.failures[:3]

    runs = decode_executions(triton.url, f"{model_name}_decode", 2)
    with Client(triton.url, model=model_name, batch_size=len(texts)) as client:
        at = runs()
        served = client.infer(texts)  # ENTITIES and TAG_IDS
        plain, at = runs() - at, runs()
        served_n_best = client.n_best(texts, 3)  # ENTITIES, TAG_IDS and NBEST
        with_n_best = runs() - at
        with pytest.raises(ServingError, match="lists at most 5 readings per text"):
            client.n_best(texts[:1], 6)
        at = runs()
        whole = client._client.infer(model_name, [text_input(texts[:1])])  # a raw request naming no output
        unnamed = runs() - at
    assert (plain, with_n_best) == (1, 2)  # the NBEST step ran only for the request that named NBEST
    assert unnamed == 2 and json.loads(whole.as_numpy("NBEST")[0, 0])["readings"]  # naming none: every output
    expected = offline.n_best(texts, 3)
    assert [[ents for _, ents in rows] for rows in served_n_best] == [[ents for _, ents in rows] for rows in expected]
    assert [p for rows in served_n_best for p, _ in rows] == \
        pytest.approx([p for rows in expected for p, _ in rows], abs=1e-5)
    assert sum(map(len, served_n_best)) > len(texts)
    assert [rows[0][1] for rows in served_n_best] == [p.entities for p in served] == offline.predict(texts)
