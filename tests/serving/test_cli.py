"""`nerwheel deploy` and `nerwheel serve` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerwheel.cli import cli
from nerwheel.serving.client import Client
from nerwheel.serving.repository import ModelRepository, build_repository
from nerwheel.serving.server import free_port, port_open
from nerwheel.stages.predict import load_predictor
from serving_exports import TEXTS


@pytest.mark.server
def test_deploy_command_loads_verifies_and_reports_json(triton, export_v1: Path, model_name: str,
                                                        tmp_path: Path) -> None:
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(TEXTS[:3]) + "\n\n", encoding="utf-8")
    args = ["deploy", "--model", str(export_v1), "--repository", str(triton.local_repo), "--name", model_name,
            "--triton-url", triton.url, "--max-batch-size", "8", "--probe", str(probe)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["version"], report["probe_texts"]) == ("live", 1, 3)
    with Client(triton.url, model=model_name, batch_size=8) as client:
        assert client.extract(list(TEXTS)) == load_predictor(export_v1).predict(list(TEXTS))


def test_deploy_command_gpu_variant_writes_four_versioned_models(export_v1: Path, tmp_path: Path) -> None:
    repo = tmp_path / "gpu-repo"
    for expected_version in (1, 2):
        result = CliRunner().invoke(cli, ["deploy", "-m", str(export_v1), "-r", str(repo), "-n", "addr",
                                          "--variant", "gpu"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["version"] == expected_version
    repo_ = ModelRepository(str(repo))
    assert sorted(repo_.models()) == ["addr", "addr_decode", "addr_onnx", "addr_tokenize"]
    assert all(repo_.live_versions(m) == [2] for m in repo_.models())


def test_deploy_command_sets_instances_threads_and_queue_delay(export_v1: Path, tmp_path: Path) -> None:
    from nerwheel.serving.config import parse_config
    from nerwheel.serving.options import ServingOptions

    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["deploy", "-m", str(export_v1), "-r", str(repo), "-n", "addr",
                                      "--instances", "2", "--threads", "3", "--queue-delay-us", "150"])
    assert result.exit_code == 0, result.output
    config = parse_config((repo / "addr" / "config.pbtxt").read_text(encoding="utf-8"))
    assert [g.count for g in config.instance_group] == [2]
    assert config.parameters["intra_op_threads"].string_value == "3"
    assert config.dynamic_batching.max_queue_delay_microseconds == 150
    defaults = ServingOptions()  # unset flags keep the one set of defaults
    assert config.max_batch_size == defaults.max_batch_size
    assert config.parameters["max_text_length"].string_value == str(defaults.max_text_length)

    pinned = CliRunner().invoke(cli, ["deploy", "--pin-version", "1", "-r", str(repo), "-n", "addr", "--threads", "1",
                                      "--queue-delay-us", "0"])
    assert pinned.exit_code == 2 and "--threads, --queue-delay-us shape(s) a new version" in pinned.output


def test_deploy_command_explains_a_bad_model_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["deploy", "-m", str(tmp_path), "-r", str(tmp_path / "repo")])
    assert result.exit_code == 1 and "neither an export folder" in result.output


def stop_serve(proc: subprocess.Popen[str]) -> None:
    """Stop a `nerwheel serve` this test started, also when the test failed: SIGTERM first, so that it stops
    its tritonserver (a SIGKILL leaves that to the kernel's parent-death signal), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def children(pid: int) -> dict[int, str]:
    """pid -> command name of the processes whose parent is ``pid`` (Linux /proc)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            out[int(stat.parent.name)] = name
    return out


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.server
def test_serve_killed_with_sigkill_leaves_no_tritonserver(tmp_path: Path) -> None:
    """`nerwheel serve` killed -9 (OOM killer, a cut-off test run) used to leave its tritonserver running
    in its own session, holding the ports, with nobody to stop it. The kernel now stops it."""
    repo = tmp_path / "empty-repo"
    repo.mkdir()
    grpc_port = free_port()
    exe = Path(sys.executable).with_name("nerwheel")
    cmd = [str(exe), "serve", "-r", str(repo), "--grpc-port", str(grpc_port), "--http-port", "0",
           "--metrics-port", "0", "--control-key-file", str(tmp_path / "key")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    triton: list[int] = []
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        triton = [pid for pid, name in children(proc.pid).items() if name == "tritonserver"]
        assert len(triton) == 1 and port_open(grpc_port)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60  # SIGTERM: Triton drains for its exit timeout, then exits
        while running(triton[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(triton[0]), "tritonserver outlived nerwheel serve killed with SIGKILL"
        assert not port_open(grpc_port)
    finally:
        stop_serve(proc)
        for pid in triton:  # this test's own server, should it have outlived its parent
            if running(pid):
                os.killpg(pid, signal.SIGKILL)  # its session: the python-backend stubs too


@pytest.mark.server
def test_serve_runs_until_sigterm_and_stops_triton(export_v1: Path, tmp_path: Path) -> None:
    repo = build_repository(export_v1, tmp_path / "repo", name="addr")
    grpc_port = free_port()
    exe = Path(sys.executable).with_name("nerwheel")
    key_file = tmp_path / "control" / "key"
    cmd = [str(exe), "serve", "-r", str(repo), "--grpc-port", str(grpc_port), "--http-port", "0",
           "--metrics-port", "0", "--control-key-file", str(key_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once Triton is up and the models are loaded
        assert line, proc.stderr.read()
        info = json.loads(line)
        assert info["grpc"] == f"127.0.0.1:{grpc_port}" and info["models"] == {"addr:1": "READY"}
        with Client(info["grpc"], model="addr") as client:
            assert client.extract(list(TEXTS[:2])) == load_predictor(export_v1).predict(list(TEXTS[:2]))
        # model control is restricted locally too: the key is in a file only its owner reads
        assert info["control_key"] == str(key_file) and (key_file.stat().st_mode & 0o777) == 0o600
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        with grpcclient.InferenceServerClient(info["grpc"]) as anonymous:
            with pytest.raises(InferenceServerException, match="restricted"):
                anonymous.unload_model("addr")
        deployed = CliRunner().invoke(cli, ["deploy", "-m", str(export_v1), "-r", str(repo), "-n", "addr",
                                            "--triton-url", info["grpc"], "--control-key-file", str(key_file)])
        assert deployed.exit_code == 0 and json.loads(deployed.stdout)["status"] == "live", deployed.output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stop_serve(proc)
    deadline = time.monotonic() + 5
    while port_open(grpc_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open(grpc_port), "tritonserver is still listening after nerwheel serve exited"


@pytest.mark.server
def test_predict_url_equals_predict_model(triton, model_v1: Path, tmp_path: Path) -> None:
    """`nerwheel predict --url` (served) writes the same entities as `nerwheel predict --model` (offline)."""
    # "nerwheel" is the default model name of both deploy and the client; only this test uses it.
    report = CliRunner().invoke(cli, ["deploy", "-m", str(model_v1), "-r", str(triton.local_repo),
                                      "--triton-url", triton.url])
    assert report.exit_code == 0, report.output
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    runner = CliRunner()
    served = runner.invoke(cli, ["predict", str(texts), "--url", triton.url, "--out", str(tmp_path / "served.jsonl")])
    assert served.exit_code == 0, served.output
    local = runner.invoke(cli, ["predict", str(texts), "--model", str(model_v1), "--runtime", "torch",
                                "--out", str(tmp_path / "offline.jsonl")])
    assert local.exit_code == 0, local.output

    def spans(path: Path) -> list:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [(r["text"], [(e["start"], e["end"], e["label"]) for e in r["entities"]]) for r in rows]

    assert spans(tmp_path / "served.jsonl") == spans(tmp_path / "offline.jsonl")
    assert sum(len(e) for _, e in spans(tmp_path / "served.jsonl")) > 0


@pytest.mark.server
def test_predict_url_reaches_a_model_deployed_under_another_name(triton, model_v1: Path, tmp_path: Path) -> None:
    report = CliRunner().invoke(cli, ["deploy", "-m", str(model_v1), "-r", str(triton.local_repo),
                                      "--triton-url", triton.url, "--name", "addr-cli"])
    assert report.exit_code == 0, report.output
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "served.jsonl"
    served = CliRunner().invoke(cli, ["predict", str(texts), "--url", triton.url, "--served-name", "addr-cli",
                                      "--out", str(out)])
    assert served.exit_code == 0, served.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == list(TEXTS) and sum(len(r["entities"]) for r in rows) > 0
    missing = CliRunner().invoke(cli, ["predict", str(texts), "--url", triton.url, "--served-name", "no-such-model",
                                       "--out", str(tmp_path / "x.jsonl")])
    assert missing.exit_code != 0 and "no-such-model" in missing.output


@pytest.mark.server
def test_predict_url_without_out_writes_jsonl_to_stdout(triton, model_v1: Path, tmp_path: Path) -> None:
    """`nerwheel predict --url U INPUT`, exactly as the serving contract writes it: span JSONL on stdout, in order."""
    report = CliRunner().invoke(cli, ["deploy", "-m", str(model_v1), "-r", str(triton.local_repo),
                                      "--triton-url", triton.url])  # the default served name, as a user deploys
    assert report.exit_code == 0, report.output
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    served = CliRunner().invoke(cli, ["predict", "--url", triton.url, str(texts)])
    assert served.exit_code == 0, served.output
    rows = [json.loads(line) for line in served.stdout.splitlines()]  # stdout holds the records and nothing else
    assert [r["text"] for r in rows] == list(TEXTS) and "wrote 8 records to stdout" in served.stderr
    offline = CliRunner().invoke(cli, ["predict", "--model", str(model_v1), "--runtime", "torch", str(texts)])
    assert offline.exit_code == 0, offline.output
    local = [json.loads(line) for line in offline.stdout.splitlines()]
    assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in rows] == \
        [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in local]
    assert sum(len(r["entities"]) for r in rows) > 0


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_deploy_command_records_the_version_in_gitops_and_says_how_it_was_checked(export_v1: Path,
                                                                                   tmp_path: Path) -> None:
    """`nerwheel deploy --gitops-repo URL --gitops-path PATH`: the pipeline's GitOps commit from the command line."""
    bare, seed = tmp_path / "gitops.git", tmp_path / "seed"
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    _git("clone", "--quiet", str(bare), str(seed), cwd=tmp_path)
    (seed / "deploy").mkdir()
    (seed / "deploy" / "model-version.env").write_text("MODEL_VERSION=0\n", encoding="utf-8")
    _git("add", ".", cwd=seed)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed", cwd=seed)
    _git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=seed)

    result = CliRunner().invoke(cli, ["deploy", "-m", str(export_v1), "-r", str(tmp_path / "repo"), "-n", "addr",
                                      "--gitops-repo", str(bare), "--gitops-path", "deploy/model-version.env"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["version"], report["verified"], report["mismatches"]) == ("written", 1, False, [])
    # no Triton was given, so nothing was loaded: the wording says what was checked instead of "verified: no"
    assert report["verification"].startswith(f"checked offline: the staged version answered all "
                                             f"{report['probe_texts']} probe texts exactly like the export")
    assert report["gitops"]["path"] == "deploy/model-version.env" and (report["gitops"]["old"],
                                                                       report["gitops"]["new"]) == ("0", "1")
    assert "GitOps: deploy/model-version.env MODEL_VERSION 0 -> 1 (commit " in result.stderr
    check = tmp_path / "check"
    _git("clone", "--quiet", str(bare), str(check), cwd=tmp_path)
    assert (check / "deploy" / "model-version.env").read_text(encoding="utf-8") == "MODEL_VERSION=1\n"
    assert _git("rev-parse", "HEAD", cwd=check).strip() == report["gitops"]["commit"]

    lonely = CliRunner().invoke(cli, ["deploy", "-m", str(export_v1), "-r", str(tmp_path / "repo"),
                                      "--gitops-path", "deploy/model-version.env"])
    assert lonely.exit_code == 2 and "--gitops-path needs --gitops-repo URL" in lonely.output


def test_predict_url_with_nothing_listening_says_to_start_the_server(tmp_path: Path) -> None:
    texts = tmp_path / "in.txt"
    texts.write_text("杭州市西湖区\n", encoding="utf-8")
    port = free_port()
    result = CliRunner().invoke(cli, ["predict", "--url", f"127.0.0.1:{port}", str(texts)])
    assert result.exit_code == 1, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: cannot reach Triton at 127.0.0.1:{port} (")
    assert "start it with `nerwheel serve --repository REPO --grpc-port PORT`" in error
    assert "Traceback" not in result.output
