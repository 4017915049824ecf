"""The GPU layout's python steps: tokenize -> (ONNX) -> decode equals the offline tagger.

Triton here has no onnxruntime backend, so the middle step runs in ONNX
Runtime in the test process; the tokenize and decode models run in the real
Triton python backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nerwheel.model.runtime import OnnxTagger
from nerwheel.serving.backend import Limits, RequestError
from nerwheel.serving.ensemble import DecodeHandler, TokenizeHandler
from nerwheel.serving.repository import build_repository
from serving_exports import TEXTS


def fits_one_window(tagger: OnnxTagger, texts) -> list[str]:
    return [t for t in texts if len(tagger.encoder.windows(len(tagger.encoder.encode(t)))) == 1]


def req(texts) -> np.ndarray:
    return np.array([[t.encode() if isinstance(t, str) else t] for t in texts], dtype=object)


@pytest.mark.parametrize("export", ["export_v1", "export_lexicon"])
def test_tokenize_onnx_decode_equals_offline(export: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(export)
    tagger = OnnxTagger(folder)
    texts = fits_one_window(tagger, TEXTS)
    assert len(texts) >= 5
    tok = TokenizeHandler.from_folder(folder, Limits(max_text_length=64, max_batch_size=16))
    dec = DecodeHandler.from_folder(folder)
    (encoded,) = tok.serve([{"TEXT": req(texts)}], [set()])
    if tagger.lexicon is None:
        assert set(encoded) == {"input_ids", "attention_mask"}
    else:  # the tokenize step sends the knowledge-base features the graph reads, one row per position
        features = encoded["lexicon"]
        assert features.shape == (*encoded["input_ids"].shape, tagger.lexicon.width) and features.any()
        assert not features[encoded["attention_mask"] == 0].any()  # padding: zeros
    emissions = tagger.run(**encoded)  # the onnxruntime backend's job
    (decoded,) = dec.serve([{"TEXT": req(texts), **encoded, "emissions": emissions}], [set()])
    import json

    from nerwheel.records import Entity

    served = [[Entity.from_dict(d) for d in json.loads(e[0])] for e in decoded["ENTITIES"]]
    assert served == tagger.predict(texts)
    assert decoded["TAG_IDS"].shape[0] == len(texts)


def test_decode_step_lists_the_n_best_readings_as_the_cpu_layout_and_offline(export_v1: Path) -> None:
    """NBEST of tokenize -> onnx -> decode is the CPU model's and `nerwheel predict --n-best 3`'s, computed only
    for a request that names it."""
    import json

    from nerwheel.serving.backend import Handler

    tagger = OnnxTagger(export_v1)
    texts = fits_one_window(tagger, TEXTS)
    tok = TokenizeHandler.from_folder(export_v1, Limits(max_text_length=64, max_batch_size=16))
    dec = DecodeHandler.from_folder(export_v1, Limits(n_best=3))
    (encoded,) = tok.serve([{"TEXT": req(texts)}], [set()])
    step = {"TEXT": req(texts), **encoded, "emissions": tagger.run(**encoded)}
    plain, nbest, both = dec.serve([step, step, step], [{"ENTITIES", "TAG_IDS"}, {"NBEST"}, set()])
    assert set(plain) == set(both) == {"ENTITIES", "TAG_IDS"} and set(nbest) == {"NBEST"}  # each gets what it names

    (cpu,) = Handler(tagger, Limits(max_text_length=64, max_batch_size=16, n_best=3)).run(
        [req(texts)], want_n_best=[True])
    served = [json.loads(x) for x in nbest["NBEST"].reshape(-1)]
    assert served == [json.loads(x) for x in cpu.n_best.reshape(-1)]  # the CPU layout's NBEST, byte for byte as JSON
    offline = tagger.n_best(texts, 3)  # what `nerwheel predict --n-best 3` writes
    assert all(s["max"] == 3 for s in served)
    assert [[r["entities"] for r in s["readings"]] for s in served] == \
        [[[e.to_dict() for e in ents] for _, ents in rows] for rows in offline]
    assert [r["score"] for s in served for r in s["readings"]] == \
        pytest.approx([p for rows in offline for p, _ in rows], abs=1e-5)
    assert sum(len(s["readings"]) for s in served) > len(texts)  # more than one reading per text
    assert [s["readings"][0]["entities"] for s in served] == [json.loads(e[0]) for e in plain["ENTITIES"]]


def test_tokenize_refuses_texts_longer_than_one_window(export_v1: Path) -> None:
    tok = TokenizeHandler.from_folder(export_v1, Limits(max_text_length=1000, max_batch_size=4))
    (result,) = tok.serve([{"TEXT": req(["杭州市西湖区文三路" * 10])}], [set()])
    assert isinstance(result, RequestError) and "the GPU layout takes at most" in str(result)


@pytest.mark.server
def test_gpu_python_steps_run_in_triton(triton, export_v1: Path, model_name: str) -> None:
    import tritonclient.grpc as grpcclient

    from nerwheel.serving.backend import entities_json, served_source

    build_repository(export_v1, triton.local_repo, name=model_name, variant="gpu")
    tagger = OnnxTagger(export_v1)
    texts = fits_one_window(tagger, TEXTS)
    from nerwheel.serving.control import ModelControl

    control = ModelControl(triton.url)  # the session's control key, from the environment
    with grpcclient.InferenceServerClient(triton.url) as admin:
        for step in ("tokenize", "decode"):
            control.load_model(f"{model_name}_{step}")
        text_in = grpcclient.InferInput("TEXT", [len(texts), 1], "BYTES")
        text_in.set_data_from_numpy(req(texts))
        encoded = admin.infer(f"{model_name}_tokenize", [text_in])
        ids, mask = encoded.as_numpy("input_ids"), encoded.as_numpy("attention_mask")
        emissions = tagger.run(ids, mask)
        inputs = [text_in]
        for name, array, dtype in (("attention_mask", mask, "INT64"), ("emissions", emissions, "FP32")):
            inp = grpcclient.InferInput(name, list(array.shape), dtype)
            inp.set_data_from_numpy(array)
            inputs.append(inp)
        decoded = admin.infer(f"{model_name}_decode", inputs)
        for step in ("tokenize", "decode"):
            control.unload_model(f"{model_name}_{step}")
    control.close()
    tagger.source = served_source(model_name, 1)  # the decode step names the ensemble clients call, and its version
    expected = [entities_json(e) for e in tagger.predict(texts)]
    assert [bytes(x) for x in decoded.as_numpy("ENTITIES").reshape(-1)] == expected
    assert f'"source": "model:{model_name}/1"'.encode() in b"".join(expected)


def test_a_gpu_deploy_refuses_to_swap_between_models_with_and_without_lexicon_features(
    export_v1: Path, export_lexicon: Path, tmp_path: Path
) -> None:
    from nerwheel.serving.deploy import DeployError, deploy
    from nerwheel.serving.repository import ModelRepository

    repo = tmp_path / "repo"
    first = deploy(export_v1, str(repo), name="m", variant="gpu", probe_texts=list(TEXTS[:2]))
    assert (first.status, first.version) == ("written", 1), first.error
    with pytest.raises(DeployError, match=r"lexicon.*deploy under a new --name"):
        deploy(export_lexicon, str(repo), name="m", variant="gpu", probe_texts=list(TEXTS[:2]))
    assert ModelRepository(str(repo)).live_versions("m") == [1]  # nothing changed what is served
    lexicon = deploy(export_lexicon, str(repo), name="m_lexicon", variant="gpu", probe_texts=list(TEXTS[:2]))
    assert lexicon.status == "written", lexicon.error


def test_a_gpu_deploy_over_an_ensemble_without_nbest_swaps_in(
    export_v1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live GPU ensemble deployed before NBEST: the new decode step only adds an output its clients get, so
    the swap is allowed (the old ensemble, served during the swap, never asks for it)."""
    import nerwheel.serving.deploy as deploy_module
    from nerwheel.serving.deploy import deploy
    from nerwheel.serving.repository import ModelRepository
    from serving_exports import gpu_configs_before_nbest

    repo = tmp_path / "repo"
    with monkeypatch.context() as m:
        m.setattr(deploy_module, "gpu_model_configs", gpu_configs_before_nbest)
        first = deploy(export_v1, str(repo), name="m", variant="gpu", probe_texts=list(TEXTS[:2]))
    assert (first.status, first.version) == ("written", 1), first.error
    assert "NBEST" not in [o.name for o in ModelRepository(str(repo)).read_config("m").output]
    second = deploy(export_v1, str(repo), name="m", variant="gpu", probe_texts=list(TEXTS[:2]))
    assert (second.status, second.version) == ("written", 2), second.error
    assert "NBEST" in [o.name for o in ModelRepository(str(repo)).read_config("m").output]
