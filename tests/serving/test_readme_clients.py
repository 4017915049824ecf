"""serving/README.md's raw client examples and the perf_analyzer input file, run against the real Triton.

The examples are read from the README itself (gRPC, HTTP and curl's JSON), with only the address and the model
name swapped for this session's, so the documentation cannot drift from what the server accepts.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from nerwheel.serving.deploy import deploy
from nerwheel.stages.predict import load_predictor

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "serving" / "README.md").read_text(encoding="utf-8")
PERF_INPUT = ROOT / "benchmarks" / "perf_analyzer_input.json"


def _block(lang: str, marker: str) -> str:
    (code,) = [b for b in re.findall(rf"```{lang}\n(.*?)```", README, re.S) if marker in b]
    return code


@pytest.fixture(scope="module")
def served(triton, export_v1: Path) -> str:
    name = "readme_clients"
    report = deploy(export_v1, str(triton.local_repo), name=name, triton_url=triton.url)
    assert report.status == "live", report.error
    return name


def _run(code: str, triton, name: str) -> list[str]:
    code = (code.replace("127.0.0.1:8001", triton.url).replace("127.0.0.1:8000", triton.server.http_url)
            .replace('"nerwheel"', f'"{name}"'))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "serving/README.md", "exec"), {})  # noqa: S102 - the README's own example
    return out.getvalue().splitlines()


@pytest.mark.parametrize("marker", ["tritonclient.grpc", "tritonclient.http"])
def test_readme_python_clients_print_the_entities(triton, served: str, export_v1: Path, marker: str) -> None:
    lines = _run(_block("python", marker), triton, served)
    texts = ["浙江省杭州市西湖区文三路100号", "南京市鼓楼区中山路"]
    offline = load_predictor(export_v1).predict(texts)
    assert len(lines) == 2
    for line, text, expected in zip(lines, texts, offline):
        assert line.startswith(text + " [")
        printed = eval(line[len(text) + 1:])  # noqa: S307 - a printed list of dicts
        assert [(e["start"], e["end"], e["label"], e["text"]) for e in printed] == [
            (e.start, e.end, e.label, e.text) for e in expected]
        assert {e["source"] for e in printed} <= {f"model:{served}/1"}


def test_readme_curl_json_is_accepted(triton, served: str) -> None:
    block = _block("bash", "curl")
    body = re.search(r"-d '(\{.*\})'", block, re.S).group(1)
    url = f"http://{triton.server.http_url}/v2/models/{served}/infer"
    req = urllib.request.Request(url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    (output,) = answer["outputs"]
    assert output["name"] == "ENTITIES" and output["shape"] == [1, 1]
    entities = json.loads(output["data"][0])
    assert {"label": "city", "text": "杭州市"}.items() <= next(e for e in entities if e["label"] == "city").items()


def test_perf_analyzer_input_fits_the_served_model(triton, served: str) -> None:
    """Every entry is a valid batch-1 TEXT for the model, in the shape --shape TEXT:1 gives it."""
    import tritonclient.grpc as grpcclient

    data = json.loads(PERF_INPUT.read_text(encoding="utf-8"))["data"]
    assert len(data) >= 16 and all(set(entry) == {"TEXT"} and len(entry["TEXT"]) == 1 for entry in data)
    texts = [entry["TEXT"][0] for entry in data]
    assert all(0 < len(t) <= 512 for t in texts) and len(set(texts)) == len(texts)
    with grpcclient.InferenceServerClient(triton.url) as client:
        meta = client.get_model_metadata(served, as_json=True)
        assert {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]} == {"TEXT": ("BYTES", ["-1", "1"])}
        for i in range(0, len(texts), 8):  # perf_analyzer -b 8
            batch = texts[i:i + 8]
            text = grpcclient.InferInput("TEXT", [len(batch), 1], "BYTES")
            text.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in batch], dtype=object))
            result = client.infer(served, [text])
            assert result.as_numpy("ENTITIES").shape == (len(batch), 1)
