"""The encoder in the real tritonserver: served == offline embeddings, prompts from the config, bad requests,
hot swap and rollback (the same deploy path as the other tasks, through the encoder's adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from embed_helpers import PARAGRAPHS, tiny_embed_export
from serving_exports import swap_then_roll_back

from nerwheel.serving.client import Client, ServingError
from nerwheel.serving.deploy import deploy
from nerwheel.tasks.embed.runtime import OnnxEncoder
from nerwheel.tasks.embed.serving import RemoteEncoder

pytestmark = pytest.mark.server

PROMPTS = {"query": "q: ", "document": "p: "}
TEXTS = ["自行车链条多久上一次油？", "The shop opens at nine.", "刹车片磨损到标记线以后必须更换。", "车"]


@pytest.fixture(scope="session")
def embed_exports(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("embed-exports")
    return (tiny_embed_export(out / "v1", PARAGRAPHS, seed=1, prompts=PROMPTS),
            tiny_embed_export(out / "v2", PARAGRAPHS, seed=2, prompts=PROMPTS))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_served_encoder_answers_what_offline_answers(triton, embed_exports, model_name: str) -> None:
    v1, v2 = embed_exports
    report = deploy(v1, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert report.status == "live" and report.verified and report.probe_texts == 5, report.error
    with RemoteEncoder(triton.url, model=model_name, batch_size=3) as remote:
        assert remote.prompts == PROMPTS  # read from the served config
        for kind in ("query", "document", None):
            served, offline = remote.encode(TEXTS, kind=kind), OnnxEncoder(v1).encode(TEXTS, kind=kind)
            assert served.shape == offline.shape == (4, 32)
            assert _cos(served, offline).min() >= 0.9999
        assert not np.allclose(remote.encode(TEXTS[:1], kind="query"), remote.encode(TEXTS[:1]))

    raw = Client(triton.url, model=model_name)
    res, version = raw.infer_arrays({"TEXT": ["p: 链条"]}, ["EMBEDDING"])
    assert version == "1" and np.linalg.norm(res.as_numpy("EMBEDDING")[0]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ServingError, match=r"TEXT\[1\] is empty"):  # a bad request fails alone
        raw.infer_arrays({"TEXT": ["链条", "  "]}, ["EMBEDDING"])
    with pytest.raises(ServingError, match="characters; the limit is 512"):
        raw.infer_arrays({"TEXT": ["长" * 600]}, ["EMBEDDING"])
    assert raw.ready()
    raw.close()

    # a new version swaps in; a broken one is rolled back and the previous version keeps serving
    swap_then_roll_back(v2, v1, str(triton.local_repo), name=model_name, triton_url=triton.url)
    with RemoteEncoder(triton.url, model=model_name) as remote:
        assert _cos(remote.encode(TEXTS), OnnxEncoder(v2).encode(TEXTS)).min() >= 0.9999


def test_encode_url_cli(triton, embed_exports, model_name: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nerwheel.cli import cli

    v1, _ = embed_exports
    assert deploy(v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["embed", "encode", str(lines), "--url", triton.url, "--served-name", model_name,
                                   "--kind", "query"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    served = np.array([r["embedding"] for r in rows], dtype=np.float32)
    assert _cos(served, OnnxEncoder(v1).encode(TEXTS, kind="query")).min() >= 0.9999
    bad = CliRunner().invoke(cli, ["embed", "encode", str(lines), "--url", triton.url, "--served-name", "nope"])
    assert bad.exit_code == 1 and "nope" in bad.output
