"""The README's main-job command on the embedded default: `nerwheel run` with no data arguments at all.

Bundled sample data, the knowledge-base teacher and the tiny backbone, as a fresh clone runs it, with only the
sizes turned down (one epoch, a narrow encoder, fewer synthetic texts) so it fits the test suite. The printed
summary is what a user reads: every path it names must exist. The evaluate step is then run again on what the
pipeline left behind, to show production is found in the Triton repository the run deployed to.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nerwheel.components import STAGES

pytest.importorskip("kfp")
pytest.importorskip("torch")
pytest.importorskip("tritonclient")

pytestmark = [pytest.mark.slow]

#: One epoch of a narrow one-layer encoder: enough to learn something on the sample set, quick on 2 cores.
TINY = ("model.tiny.hidden_size=64; model.tiny.num_layers=1; model.tiny.num_heads=2; "
        "model.tiny.intermediate_size=128; training.batch_size=8; training.sequence_length=64; "
        "training.stride=16; output.plots=false")
SAMPLE_EVAL_RECORDS = 62  # nerwheel/data/sample/eval.jsonl


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("embedded-default") / "runs"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "from nerwheel.cli import main; main()", "run", "--out", str(out),
                           "--epochs", "1", "--set", "synth_short=20", "--set", "synth_long=20",
                           "--set", f"train_overrides={TINY}"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"nerwheel run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    fields = {m.group(1): m.group(2) for m in re.finditer(r"^  (\w[\w ()]*?):\s+(.*)$", proc.stdout, re.MULTILINE)}
    return {"out": out, "stdout": proc.stdout, "stderr": proc.stderr, "fields": fields,
            "seconds": time.monotonic() - t0}


def test_summary_reports_f1_verdict_and_every_task(default_run: dict[str, Any]) -> None:
    f = default_run["fields"]
    assert default_run["stdout"].startswith("nerwheel run nerwheel-flywheel-")
    # the first turn: no production model, so the annotate shards ran and the feedback loop's did not
    assert f["tasks"] == ", ".join(f"{s} {'skipped' if s in ('feedback', 'pseudo_label') else 'success'}"
                                   for s in STAGES)
    f1 = re.fullmatch(r"strict (\S+), partial (\S+), type (\S+) on (\d+) records", f["F1 (eval)"])
    assert f1 and int(f1.group(4)) == SAMPLE_EVAL_RECORDS  # scored on the bundled eval set
    assert 0.05 < float(f1.group(1)) <= float(f1.group(2)) <= 1.0  # it learned something; partial >= strict
    repo = default_run["out"] / "triton-repository"
    assert f["gate"] == (f"PROMOTE: no production model ({repo} has no live version of 'nerwheel'): the first "
                         f"candidate is promoted (strict F1 {float(f1.group(1)):.4f})")
    # progress lines went to stderr, one start and one finish per task, annotate once per shard (2)
    finished = re.findall(r"^Task '([\w-]+)' finished with status SUCCESS$", default_run["stderr"], re.MULTILINE)
    assert sorted(finished) == sorted(["production", "shard", "annotate", "annotate", "gather", "synthesize",
                                       "merge", "train", "distill", "evaluate", "gate", "export", "deploy"])
    assert "Pipeline 'nerwheel-flywheel' finished with status SUCCESS" in default_run["stderr"]
    # each task's own progress lines are streamed under its name, not left in run.log only
    assert re.search(r"^  train: epoch 1: loss \d", default_run["stderr"], re.MULTILINE), default_run["stderr"]


def test_every_path_the_summary_prints_exists(default_run: dict[str, Any]) -> None:
    f, out = default_run["fields"], default_run["out"]
    run_dir = Path(f["artifacts"])
    assert run_dir.is_dir() and run_dir.parent == out / "pipeline-root"
    model, onnx = Path(f["model"]), Path(f["ONNX"])
    assert model == run_dir / "train" / "model" and onnx == run_dir / "export" / "onnx"
    assert {"config.json", "model.safetensors", "nerwheel.json", "tokenizer.json"} <= {p.name for p in model.iterdir()}
    assert {"model.onnx", "nerwheel.json", "tokenizer.json"} <= {p.name for p in onnx.iterdir()}
    log = Path(f["log"])
    assert log == out / "run.log"
    assert re.search(r"Pipeline \S*'nerwheel-flywheel'\S* finished with status \S*SUCCESS", log.read_text())
    version_dir = re.fullmatch(r"(\S+) \(written\)", f["Triton"])
    assert version_dir and Path(version_dir.group(1)) == out / "triton-repository" / "nerwheel" / "1"


def test_triton_repository_holds_the_exported_model_as_live_version_1(default_run: dict[str, Any]) -> None:
    from nerwheel.serving.repository import ModelRepository

    f = default_run["fields"]
    repo = default_run["out"] / "triton-repository"
    version = repo / "nerwheel" / "1"
    assert {"model.py", "model.onnx", "tokenizer.json", "nerwheel.json"} <= {p.name for p in version.iterdir()}
    assert (version / "model.onnx").read_bytes() == (Path(f["ONNX"]) / "model.onnx").read_bytes()
    assert ModelRepository(str(repo)).live_versions("nerwheel") == [1]
    deployment = json.loads((Path(f["artifacts"]) / "deploy" / "deployment" / "deployment.json").read_text())
    assert deployment["repository"] == str(repo) and deployment["deploy"]["version"] == 1


def test_the_next_turn_finds_production_in_the_repository(default_run: dict[str, Any], tmp_path: Path) -> None:
    """The evaluate step with no production_model_uri scores the live version: the export of this run's model."""
    from nerwheel.components.steps import evaluate

    f = default_run["fields"]
    repo = str(default_run["out"] / "triton-repository")
    common = dict(model_path=f["model"], eval_uri="", model_name="nerwheel", production_from_repository=True,
                  scores_path=str(tmp_path / "scores"), production_scores_path=str(tmp_path / "production"),
                  report_path=str(tmp_path / "report.html"))
    evaluate.run(production_model_uri="", repository_uri=repo, **common)
    candidate = json.loads((tmp_path / "scores").read_text())
    production = json.loads((tmp_path / "production").read_text())
    live = str(Path(repo) / "nerwheel" / "1")
    assert (production["uri"], production["how"]) == (live, "live")
    assert production["note"] == f"version 1 of 'nerwheel', live in {repo}"
    assert production["metrics"]["n_records"] == candidate["n_records"] == SAMPLE_EVAL_RECORDS
    # the served ONNX export of the same weights: the same answers as the PyTorch model, up to float noise
    assert production["metrics"]["overall"]["strict"]["f1"] == pytest.approx(
        candidate["overall"]["strict"]["f1"], abs=0.02)
    assert f"production: version 1 of &#x27;nerwheel&#x27;, live in {repo}" in (tmp_path / "report.html").read_text()

    # an explicit production model (the trained PyTorch folder) wins over the repository
    evaluate.run(production_model_uri=f["model"], repository_uri=repo, **common)
    given = json.loads((tmp_path / "production").read_text())
    assert (given["uri"], given["how"]) == (f["model"], "given") and given["metrics"]["model"] == f["model"]
    assert given["metrics"]["overall"]["strict"]["f1"] == candidate["overall"]["strict"]["f1"]
