"""Deploy into a real tritonserver (local folder and S3 repositories), hot swap, rollback, bad input.

One server runs for the session (see conftest.py); each test deploys its own model name.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from nerwheel.serving.client import Client, ServingError
from nerwheel.serving.config import ServingOptions
import nerwheel.serving.deploy as deploy_module
from nerwheel.decode import CrfParams
from nerwheel.serving.deploy import DeployError, deploy, pin_version
from nerwheel.serving.repository import ModelRepository, stage_cpu_version
from nerwheel.stages.predict import load_predictor
from nerwheel.storage import Storage, StorageError
from serving_exports import HYBRID, TEXTS, deploy_with_corrupt_copy, train_tiny, traffic_during

pytestmark = pytest.mark.server

SAMPLE = list(TEXTS)


def offline(model: Path, texts: list[str]) -> list:
    """What `nerwheel predict MODEL` answers offline."""
    return load_predictor(model).predict(texts)


def test_local_deploy_of_a_trained_model_serves_what_offline_predicts(triton, model_v1: Path, model_name: str) -> None:
    # A trained model folder: deploy exports it first; offline here is PyTorch on the same folder.
    report = deploy(model_v1, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert report.status == "live" and report.verified and report.version == 1, report.error
    with Client(triton.url, model=model_name, batch_size=3) as client:
        served = client.infer(SAMPLE)
    assert [p.entities for p in served] == offline(model_v1, SAMPLE)
    assert {p.model_version for p in served} == {"1"}
    assert sum(len(p.entities) for p in served) > 0
    # entities name the served model and the version that answered, not the export's folder (model:model)
    assert {e.source for p in served for e in p.entities} == {f"model:{model_name}/1"}
    # extract names ENTITIES only and gets exactly that, and the same entities as infer
    with Client(triton.url, model=model_name) as client:
        res, _ = client.infer_arrays({"TEXT": SAMPLE[:2]}, ["ENTITIES"])
        assert [o.name for o in res.get_response().outputs] == ["ENTITIES"]
        assert client.extract(SAMPLE) == [p.entities for p in served]


def test_hybrid_beam_model_serves_what_offline_predicts(triton, tmp_path: Path, model_name: str) -> None:
    """bert-moe-qwen2 decoded by beam search: deployed like any model, same answers served and offline."""
    model = train_tiny(tmp_path, seed=5, model=HYBRID)
    report = deploy(model, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert report.status == "live" and report.verified, report.error
    texts = SAMPLE + ["；".join(SAMPLE)]  # one text longer than a window
    with Client(triton.url, model=model_name, batch_size=3) as client:
        served = client.infer(texts)
        served_n_best = client.n_best(texts, 3)
        with pytest.raises(ServingError, match="lists at most 5 readings per text"):
            client.n_best(texts[:1], 6)
    assert [p.entities for p in served] == offline(model, texts)
    assert sum(len(p.entities) for p in served) > 0
    assert served_n_best == load_predictor(model).n_best(texts, 3)  # the same search, served and offline
    assert [r[0][1] for r in served_n_best] == [p.entities for p in served]


def test_s3_deploy_serves_what_offline_predicts(triton, export_v1: Path, model_name: str) -> None:
    report = deploy(export_v1, triton.s3_repo, name=model_name, triton_url=triton.url,
                    endpoint_url=triton.s3_endpoint)
    assert report.status == "live", report.error
    storage = Storage(triton.s3_endpoint)
    for rel, digest in report.files.items():  # every artifact landed intact, with its recorded checksum
        assert storage.verify(f"{triton.s3_repo}/{rel}").sha256 == digest
    s3_repo = ModelRepository(triton.s3_repo, storage)
    assert s3_repo.live_versions(model_name) == [1] and model_name in s3_repo.models()
    with Client(triton.url, model=model_name) as client:
        assert client.extract(SAMPLE) == offline(export_v1, SAMPLE)


def test_hot_swap_drops_no_request_and_a_broken_version_rolls_back(
    triton, export_v1: Path, export_v2: Path, model_name: str
) -> None:
    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    with traffic_during(triton.url, model_name, SAMPLE[:3], threads=3) as seen:
        v2 = deploy(export_v2, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert v2.status == "live" and v2.version == 2, v2.error
    assert seen.failures == [] and seen.ok > 10
    assert seen.versions == {"1", "2"}
    with Client(triton.url, model=model_name) as client:
        after = client.infer(SAMPLE)
    assert {p.model_version for p in after} == {"2"}
    assert [p.entities for p in after] == offline(export_v2, SAMPLE) != offline(export_v1, SAMPLE)

    # v3 passes the offline check but the copy Triton reads is corrupt (fault injected after staging).
    v3 = deploy_with_corrupt_copy(export_v2, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert (v3.status, v3.version, v3.live_versions) == ("rolled_back", 3, [2]), v3.error
    assert "load failed" in v3.error
    repo = ModelRepository(str(triton.local_repo))
    assert repo.versions(model_name) == [1, 2, 3] and repo.live_versions(model_name) == [2]
    with Client(triton.url, model=model_name) as client:
        again = client.infer(SAMPLE)
    assert {p.model_version for p in again} == {"2"} and [p.entities for p in again] == [p.entities for p in after]


def test_version_answering_differently_is_rolled_back(
    triton, export_v1: Path, export_v2: Path, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"

    def scramble_crf(export_dir, into):  # loads fine, but is not the model that was verified offline
        folder = stage_cpu_version(export_dir, into)
        crf = CrfParams.load(str(folder / "crf.npz"))
        rng = np.random.default_rng(0)
        CrfParams(*(rng.normal(scale=20, size=a.shape).astype(np.float32)
                    for a in (crf.transitions, crf.start, crf.end))).save(str(folder / "crf.npz"))
        return folder

    monkeypatch.setattr(deploy_module, "stage_cpu_version", scramble_crf)
    # The probe used to run after the switch: 33 of 398 live requests reached a bad version before the
    # rollback. The new version is now loaded and probed under a candidate name no client calls.
    with traffic_during(triton.url, model_name, SAMPLE[:3], threads=3) as seen:
        v2 = deploy(export_v2, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert (v2.status, v2.live_versions) == ("rolled_back", [1])
    assert seen.failures == [] and seen.ok > 5
    assert seen.versions == {"1"}  # not one live request reached version 2
    with Client(triton.url, model=f"{model_name}__candidate2", retries=0) as candidate:
        assert not candidate.ready()  # the candidate is gone again
    assert v2.mismatches and "answered differently" in v2.error
    with Client(triton.url, model=model_name) as client:
        assert {p.model_version for p in client.infer(SAMPLE[:2])} == {"1"}


@pytest.mark.parametrize("fault", ["probe raises KeyError", "config.pbtxt write fails"])
def test_unexpected_error_after_the_load_rolls_back_then_propagates(
    triton, export_v1: Path, export_v2: Path, model_name: str, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    if fault.startswith("probe"):
        def probe_bug(*args, **kwargs):  # a bug, not one of the failures deploy expects
            raise KeyError("injected")

        monkeypatch.setattr(deploy_module, "_probe", probe_bug)
        expected: type[BaseException] = KeyError
    else:
        real_write = ModelRepository.write_config
        calls = {"n": 0}

        def write_fails_once(self, name, cfg):  # the commit's write fails; the rollback's restore succeeds
            calls["n"] += 1
            if calls["n"] == 1:
                raise StorageError("injected: the object store refused the write")
            return real_write(self, name, cfg)

        monkeypatch.setattr(ModelRepository, "write_config", write_fails_once)
        expected = StorageError
    with pytest.raises(expected) as err:
        deploy(export_v2, str(triton.local_repo), name=model_name, triton_url=triton.url)
    report = err.value.deploy_report
    assert (report.status, report.version, report.live_versions) == ("rolled_back", 2, [1]), report.error
    assert any("was rolled back" in n and "live versions now [1]" in n for n in err.value.__notes__)
    monkeypatch.undo()
    repo = ModelRepository(str(triton.local_repo))
    assert repo.versions(model_name) == [1, 2] and repo.live_versions(model_name) == [1]
    with Client(triton.url, model=model_name) as client:
        served = client.infer(SAMPLE)
    assert {p.model_version for p in served} == {"1"}
    assert [p.entities for p in served] == offline(export_v1, SAMPLE)


def test_broken_model_is_refused_before_touching_the_repository(
    triton, export_v1: Path, model_name: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(export_v1, broken)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(DeployError, match="does not load or run offline"):
        deploy(broken, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert ModelRepository(str(triton.local_repo)).versions(model_name) == []


def test_failed_first_version_is_unloaded(triton, export_v1: Path, model_name: str) -> None:
    report = deploy_with_corrupt_copy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url,
                                      file="crf.npz", garbage=b"garbage")
    assert (report.status, report.live_versions) == ("failed", [])
    assert ModelRepository(str(triton.local_repo)).read_config(model_name) is None
    with Client(triton.url, model=model_name) as client:
        assert not client.ready()


def test_bad_requests_get_errors_and_the_server_keeps_serving(triton, export_v1: Path, model_name: str) -> None:
    opts = ServingOptions(max_batch_size=4, max_text_length=40)
    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url,
                  options=opts).status == "live"
    with Client(triton.url, model=model_name, retries=0) as client:
        cases = {
            "empty": ([""], "TEXT[0] is empty"),
            "utf8": (["ok", b"\xc3\x28"], "TEXT[1] is not valid UTF-8"),
            "long": (["路" * 41], "TEXT[0] has 41 characters; the limit is 40"),
        }
        for name, (texts, message) in cases.items():
            with pytest.raises(ServingError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
                client.extract(texts)
            assert err.value.status == "StatusCode.INVALID_ARGUMENT", (name, err.value.status)  # a client mistake
        big = Client(triton.url, model=model_name, retries=0, batch_size=5)
        with pytest.raises(ServingError, match="batch") as err:
            big.extract(["杭州市"] * 5)
        assert err.value.status == "StatusCode.INVALID_ARGUMENT"
        big.close()
        assert triton.server.returncode is None
        assert client.extract(SAMPLE[:4]) == offline(export_v1, SAMPLE[:4])


def test_client_retries_unavailable_then_gives_up(export_v1: Path) -> None:
    from nerwheel.serving.server import free_port

    t0 = time.monotonic()
    with Client(f"127.0.0.1:{free_port()}", retries=2, backoff_s=0.05, timeout=2) as client:
        with pytest.raises(ServingError) as err:
            client.extract(["杭州市"])
    assert err.value.status == "StatusCode.UNAVAILABLE"
    assert time.monotonic() - t0 >= 0.05 + 0.1  # two backoffs happened


def test_client_retry_recovers_from_transient_unavailable(triton, export_v1: Path, model_name: str) -> None:
    from tritonclient.utils import InferenceServerException

    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    with Client(triton.url, model=model_name, retries=3, backoff_s=0.01) as client:
        real = client._client.infer
        calls = {"n": 0}

        def flaky(*a, **k):  # fault injection: the first two attempts hit a restarting server
            calls["n"] += 1
            if calls["n"] <= 2:
                raise InferenceServerException("connection refused", status="StatusCode.UNAVAILABLE")
            return real(*a, **k)

        client._client.infer = flaky
        assert client.extract(SAMPLE[:2]) == offline(export_v1, SAMPLE[:2])
        assert calls["n"] == 3


def test_client_refuses_unencodable_text_and_bare_strings() -> None:
    from nerwheel.serving.server import free_port

    with Client(f"127.0.0.1:{free_port()}", retries=0) as client:  # fails before any network call
        with pytest.raises(ServingError, match=r"texts\[1\] cannot be encoded as UTF-8"):
            client.extract(["杭州市", "bad \ud800 surrogate"])
        with pytest.raises(TypeError, match="list of strings"):
            client.extract("杭州市")
        assert client.extract([]) == []


def test_deploy_into_a_repository_the_server_does_not_read(triton, export_v1: Path, model_name: str,
                                                            tmp_path: Path) -> None:
    report = deploy(export_v1, str(tmp_path / "elsewhere"), name=model_name, triton_url=triton.url)
    assert (report.status, report.live_versions) == ("failed", [])
    assert "one of the server's --model-repository folders" in report.error


def test_model_control_needs_the_key_while_inference_does_not(
    triton, export_v1: Path, model_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any client that reached the port could load its own model.py (code execution in the server) or unload
    the served model. Model control now needs the key (a header); inference, health and metadata do not."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    from nerwheel.serving.control import CONTROL_KEY_ENV

    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    anonymous = grpcclient.InferenceServerClient(triton.url)
    try:
        for attempt in (lambda: anonymous.load_model(model_name), lambda: anonymous.unload_model(model_name),
                        lambda: anonymous.load_model("evil", files={"1/model.py": b"import os"}),
                        lambda: anonymous.get_model_repository_index()):
            with pytest.raises(InferenceServerException, match="restricted"):
                attempt()
        wrong = {"triton-grpc-protocol-nerwheel-control-key": "guess"}
        with pytest.raises(InferenceServerException, match="restricted"):
            anonymous.unload_model(model_name, headers=wrong)
        assert anonymous.is_server_live() and anonymous.is_model_ready(model_name, "1")
        assert anonymous.get_model_metadata(model_name).name == model_name
        assert anonymous.get_model_config(model_name).config.name == model_name  # clients read it (class names)
    finally:
        anonymous.close()
    http = httpclient.InferenceServerClient(triton.server.http_url)
    try:
        with pytest.raises(InferenceServerException, match="restricted"):
            http.unload_model(model_name)
    finally:
        http.close()
    with Client(triton.url, model=model_name) as client:  # inference is open
        assert client.extract(SAMPLE[:3]) == offline(export_v1, SAMPLE[:3])
    # deploy without the key stops before writing anything, and says where the key comes from
    monkeypatch.delenv(CONTROL_KEY_ENV)
    with pytest.raises(DeployError, match=f"refused model control.*{CONTROL_KEY_ENV}"):
        deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert ModelRepository(str(triton.local_repo)).versions(model_name) == [1]


CRASH = '''
import os, sys
from nerwheel.serving import deploy as d
from nerwheel.serving.control import ModelControl
from nerwheel.serving.repository import ModelRepository

point, export, repo, name, url = sys.argv[1:]

def die(*args, **kwargs):
    os._exit(137)  # what kill -9 leaves: no rollback, no finally, no cleanup

if point == "uploaded":  # the version folder is written, its manifest is not
    ModelRepository._manifest_uri = die
elif point == "candidate":  # the candidate is loaded and being probed
    d._Candidate.probe = die
elif point == "committed":  # config.pbtxt names the new version; the server was not told yet
    real = ModelControl.load_model
    def load(self, model, config=None, files=None, client_timeout=None):
        if model == name and files is None:
            die()
        return real(self, model, config=config, files=files, client_timeout=client_timeout)
    ModelControl.load_model = load
elif point == "switched":  # the server switched and the live probe passed; the deploy did not finish
    d._Swap.drop_old = die
d.deploy(export, repo, name=name, triton_url=url)
raise SystemExit("the crash point was never reached")
'''


@pytest.mark.parametrize("point", ["uploaded", "candidate", "committed", "switched"])
def test_a_deploy_killed_at_any_step_leaves_one_live_version(
    triton, triton_launcher, export_v1: Path, export_v2: Path, model_name: str, point: str
) -> None:
    """A killed deploy once left Triton serving versions config.pbtxt did not name, and orphan folders. The
    server now only loads what the repository names; the next deploy reconciles and ignores orphans.

    Killed between the commit and the load (``committed``: two states, the repository's file and the
    server's memory, with no transaction between them), the server keeps the previous verified version
    until something reconciles: a restart (shown here: it loads what config.pbtxt names) or the next deploy.
    """
    import subprocess
    import sys

    from tritonclient.grpc import InferenceServerClient

    local = str(triton.local_repo)
    assert deploy(export_v1, local, name=model_name, triton_url=triton.url).status == "live"
    proc = subprocess.run([sys.executable, "-c", CRASH, point, str(export_v2), local, model_name, triton.url],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    repo = ModelRepository(local)
    probe = InferenceServerClient(triton.url)

    def served(name: str = model_name) -> list[int]:
        return [v for v in repo.versions(model_name) if probe.is_model_ready(name, str(v))]

    if point == "committed":  # the one window: the repository names 2 (verified), the server still serves 1
        assert (repo.live_versions(model_name), served()) == ([2], [1])
        # a restart reads the repository: a server started on it (as `nerwheel serve` starts one) serves N+1
        restarted = triton_launcher([local], load_models=[model_name])
        try:
            fresh = InferenceServerClient(restarted.grpc_url)
            assert [v for v in repo.versions(model_name) if fresh.is_model_ready(model_name, str(v))] == [2]
            fresh.close()
        finally:
            restarted.stop()
    else:
        expected = [2] if point == "switched" else [1]
        assert repo.live_versions(model_name) == served() == expected
    assert repo.versions(model_name) == [1, 2]

    # the next deploy makes them agree, takes a fresh number and ignores the orphan folder and claim
    nxt = deploy(export_v1, local, name=model_name, triton_url=triton.url)
    assert (nxt.status, nxt.version) == ("live", 3), nxt.error
    assert repo.live_versions(model_name) == served() == [3]
    assert not probe.is_model_ready(f"{model_name}__candidate2", "2")  # a killed deploy's candidate is unloaded
    if point == "committed":
        assert any("reloaded from the repository" in r for r in nxt.reconciled), nxt.reconciled
    if point == "uploaded":  # the half-written version can never be made live
        from nerwheel.serving.repository import RepositoryError

        with pytest.raises(RepositoryError, match="has no manifest"):
            pin_version(local, 2, name=model_name)
    probe.close()


def test_int8_deploy_serves_what_offline_int8_predicts(triton, model_v1: Path, model_name: str, tmp_path) -> None:
    """ServingOptions(int8=True): the version folder's model.int8.onnx answers, and the probe compares like with like."""
    from nerwheel.model.runtime import OnnxTagger
    from nerwheel.stages.export import export

    folder = export(model_v1, tmp_path / "export", quantize="int8", texts=SAMPLE).out_dir
    opts = ServingOptions(int8=True)
    report = deploy(folder, str(triton.local_repo), name=model_name, triton_url=triton.url, options=opts)
    assert report.status == "live" and report.verified, report.error
    config = (triton.local_repo / model_name / "config.pbtxt").read_text(encoding="utf-8")
    assert 'key: "tagger.int8"' in config and 'string_value: "true"' in config
    with Client(triton.url, model=model_name) as client:
        served = client.extract(SAMPLE)
    assert [[e.key for e in x] for x in served] == [
        [e.key for e in x] for x in OnnxTagger(folder, int8=True).predict(SAMPLE)]
