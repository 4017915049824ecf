"""``scripts/images.sh check``: the compiled pipeline with every task in its stage's image, then the Triton image.

Kubeflow's own local runner does the launcher's work: ``kfp.local.DockerRunner``
compiles the pipeline, gives each task the command line of the IR and the executor
input a KFP launcher passes (``--executor_input`` JSON with parameter values and
artifact URIs), and runs it in the image the IR names, here through the container
engine's Docker-compatible API (podman: ``podman system service``). Artifacts live
under a local pipeline root mounted into every container at the same path (or, with
``--s3``, inputs and the Triton repository on a local moto S3 server the containers
reach over the host network).

Two turns, like two weeks of the wheel: the first (no production model) runs the
annotate shards; the second finds the first turn's deployed model and runs the
feedback and pseudo-label shards, gated against it. Then the Triton image serves the
repository the pipeline deployed, and its answers are compared with the export's.

One workaround lives here: podman 4.3's Docker API answers 500 (not Docker's 404)
for a container that is already auto-removed, which kfp's DockerRunner reads as an
error; :func:`_podman_not_found` maps that one answer to ``NotFound``. A task whose
container vanished before its status was read is still checked: each task must
have written its ``executor_output.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nerwheel.components.containers import Engine, ImageError, has_image, image_size
from nerwheel.components.images import STAGES, image, serving_image
from nerwheel.pipelines.local import environment

__all__ = ["STAGE_CHECKS", "fresh_root", "live_turn", "run_check", "run_stage_check"]

#: What podman needs on this kind of host, for containers started through its API (no CLI flags there).
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def docker_api(engine: Engine, work: Path) -> Iterator[str]:
    """``DOCKER_HOST`` of the engine's Docker API: podman's own service on a private socket (stopped after)."""
    if not engine.is_podman:
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    conf = work / "containers.conf"
    conf.write_text(CONTAINERS_CONF, encoding="utf-8")
    sock = work / "podman.sock"
    log = open(work / "podman-service.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([engine.command, "system", "service", "--time=0", f"unix://{sock}"],
                            env={**os.environ, "CONTAINERS_CONF": str(conf)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if sock.exists():
                break
            if proc.poll() is not None:
                raise ImageError(f"podman system service exited ({proc.returncode}); see {log.name}")
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def _podman_not_found() -> Iterator[None]:
    """docker-py: a 500 "no such container" (podman 4.3) becomes ``NotFound``, as Docker's 404 would."""
    import docker.api.client as api_client
    import docker.errors as errors

    original = api_client.create_api_error_from_http_exception

    def translate(e: Any) -> None:
        response = getattr(e, "response", None)
        if response is not None and response.status_code == 500 and "no such container" in (response.text or ""):
            raise errors.NotFound(e, response=response, explanation=response.text) from e
        original(e)

    api_client.create_api_error_from_http_exception = translate
    try:
        yield
    finally:
        api_client.create_api_error_from_http_exception = original


@contextlib.contextmanager
def _moto() -> Iterator[dict[str, str]]:
    """A local S3 server on 127.0.0.1 (moto) and the env a task needs to reach it."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield {"NERWHEEL_S3_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "check",
               "AWS_SECRET_ACCESS_KEY": "check", "AWS_DEFAULT_REGION": "us-east-1"}
    finally:
        proc.terminate()
        proc.wait(10)


def fresh_root(out_dir: Path) -> Path:
    """``out_dir/pipeline-root``, emptied: a check starts from nothing, so its first turn finds no live model (a
    Triton repository left there by an earlier check would make it a feedback turn gated against that model).
    Writable by all: the images run as uid 10001 and their outputs land under the mounted pipeline root."""
    import shutil

    root = out_dir / "pipeline-root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    os.chmod(root, 0o777)
    return root


def _check_tasks(run_dir: Path) -> list[str]:
    """Every task folder of the run holds its executor_output.json (the executor wrote its outputs)."""
    missing = [str(p.relative_to(run_dir)) for p in sorted(run_dir.glob("**/")) if p != run_dir
               and any(p.iterdir()) and (p.parent == run_dir or p.parent.name.startswith("for-loop-"))
               and not p.name.startswith("for-loop-") and not (p / "executor_output.json").is_file()]
    return missing


def _serve(engine: Engine, repository: str, texts: list[str], export_dir: Path, model: str,
           echo: Callable[[str], None], env: dict[str, str]) -> dict[str, Any]:
    """Start the Triton image on ``repository``; its entities on ``texts`` must equal the export's own."""
    from nerwheel.model.runtime import OnnxTagger
    from nerwheel.serving.client import Client

    grpc, http, metrics = _free_port(), _free_port(), _free_port()
    name = f"nerwheel-check-triton-{os.getpid()}"
    mounts = [] if repository.startswith("s3://") else ["--volume", f"{repository}:{repository}:ro"]
    envs = [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
    # no --rm: a server that exits keeps its container, so its log can be read; removed below
    argv = [engine.command, "run", "--detach", "--name", name, *engine.flags, "--network", "host", *mounts,
            *envs, serving_image(), "nerwheel", "serve", "--repository", repository, "--grpc-port", str(grpc),
            "--http-port", str(http), "--metrics-port", str(metrics)]
    echo("serving: " + " ".join(argv))
    t0 = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    try:
        client = Client(f"127.0.0.1:{grpc}", model=model)
        while not client.ready():
            running = subprocess.run([engine.command, "inspect", "--format", "{{.State.Running}}", name],
                                     capture_output=True, text=True).stdout.strip() == "true"
            if not running or time.monotonic() - t0 > 600:
                logs = subprocess.run([engine.command, "logs", name], capture_output=True, text=True)
                why = "exited" if not running else "did not get ready in 600 s"
                raise ImageError(f"the Triton image {why} ({time.monotonic() - t0:.0f} s after its start); its log:\n"
                                 f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
            time.sleep(1)
        ready_s = time.monotonic() - t0
        served = client.predict(texts)
        offline = OnnxTagger(export_dir).predict(texts)
        key = [[(e.start, e.end, e.label) for e in ents] for ents in served]
        same = key == [[(e.start, e.end, e.label) for e in ents] for ents in offline]
        return {"image": serving_image(), "ready_seconds": round(ready_s, 1), "texts": len(texts),
                "entities": sum(map(len, served)), "same_as_export": same}
    finally:
        subprocess.run([engine.command, "stop", "--time", "5", name], capture_output=True)
        subprocess.run([engine.command, "rm", "--force", name], capture_output=True)


def live_turn(summaries: Sequence[Any]) -> Any:
    """The last turn that deployed a model: its version is the one live in the repository, so the Triton image is
    served on it and compared with that turn's export. A later turn whose gate refused deploys nothing and leaves
    it live (the second turn's candidate may well lose to the first's)."""
    deployed = [s for s in summaries if s.repository and s.export_dir and s.version is not None]
    return deployed[-1] if deployed else None


def run_check(engine: Engine, *, out_dir: Path, s3: bool = False, turns: int = 2, serve: bool = True,
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the pipeline ``turns`` times in the stage images (then serve its result); returns the report."""
    from kfp import local

    from nerwheel.pipelines.local import LocalRun, run_local

    missing = [image(s) for s in STAGES if not has_image(engine, image(s))]
    if serve and not has_image(engine, serving_image()):
        missing.append(serving_image())
    if missing:
        raise ImageError(f"not built: {', '.join(missing)}; run scripts/images.sh build first")
    root = fresh_root(out_dir)
    report: dict[str, Any] = {"engine": engine.command, "s3": s3, "images": {
        s: {"image": image(s), "size_bytes": image_size(engine, image(s))} for s in STAGES}, "turns": []}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nerwheel-check-") as tmp, docker_api(engine, Path(tmp)) as host, \
            _podman_not_found(), environment({"DOCKER_HOST": host}), contextlib.ExitStack() as stack:
        task_env = stack.enter_context(_moto()) if s3 else {}
        runner = local.DockerRunner(network_mode="host", environment=task_env) if task_env else local.DockerRunner()
        arguments = {} if s3 else {"repository_uri": str(root / "triton-repository")}
        summaries = []
        for turn in range(1, turns + 1):
            echo(f"turn {turn}: the pipeline in the stage images ({engine.command})")
            with environment(task_env):
                summary = run_local(LocalRun(out_dir=out_dir, arguments=arguments, runner=runner,
                                             s3_endpoint=task_env.get("NERWHEEL_S3_ENDPOINT"), echo=sys.stderr))
            bad = _check_tasks(Path(summary.run_dir))
            if bad:
                raise ImageError(f"turn {turn}: task(s) without executor output: {', '.join(bad)}; "
                                 f"log {summary.log}")
            report["turns"].append({"turn": turn, "seconds": round(summary.seconds, 1), "tasks": summary.tasks,
                                    "strict_f1": summary.strict_f1, "verdict": summary.verdict,
                                    "reasons": summary.reasons, "version": summary.version,
                                    "run_dir": summary.run_dir, "log": summary.log})
            echo(summary.text())
            summaries.append(summary)
        live = live_turn(summaries)
        if serve and live is None:
            report["serve"] = {"skipped": "no turn deployed a model (every gate refused): nothing to serve"}
            echo(f"serving: {report['serve']['skipped']}")
        elif serve and live is not None:
            from nerwheel.components.data import sample_path

            texts = [t for t in sample_path("texts").read_text(encoding="utf-8").splitlines() if t.strip()][:40]
            with environment(task_env):
                report["serve"] = _serve(engine, live.repository, texts, Path(live.export_dir),
                                         live.model_name or "nerwheel", echo, task_env)
            report["serve"]["version"] = live.version
            if not report["serve"]["same_as_export"]:
                raise ImageError(f"the Triton image's entities differ from the export's: {json.dumps(report)}")
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


# -- one stage's image alone -----------------------------------------------------------------------------------
def _outputs(task: Any, *names: str) -> list[Any]:
    """The task's outputs, or :class:`ImageError` when its container failed. kfp's DockerRunner counts a container
    that is gone before its status was read as a success (podman removes it at once), so the executor's own
    ``executor_output.json``, written only when the component returned, decides."""
    outputs = task.outputs
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ImageError(f"the task failed in its image (no output {', '.join(missing)}); its log is above")
    for name in names:
        value = outputs[name]
        if hasattr(value, "path") and not (Path(value.path).parent / "executor_output.json").is_file():
            raise ImageError(f"the task failed in its image (no executor_output.json beside {value.path}); "
                             "its log is above")
    return [outputs[n] for n in names]


def _same_files(image_dir: Path, host_dir: Path, names: tuple[str, ...]) -> dict[str, bool]:
    """Per file name: written by both with the same bytes, or by neither (no rejects: no rejects.jsonl)."""
    def content(path: Path) -> bytes | None:
        return path.read_bytes() if path.is_file() else None

    return {n: content(image_dir / n) == content(host_dir / n) for n in names}


def _check_shard(texts: Path, shards: int, work: Path) -> dict[str, Any]:
    """The shard step's plan from its image equals the plan this machine makes of the same file."""
    from nerwheel.components.shard import shard
    from nerwheel.components.steps.shard import PLAN_FILE
    from nerwheel.components.steps.shard import run as plan_here

    plan_art, returned = _outputs(shard(texts_uri=str(texts), shards=shards), "plan", "Output")
    here = plan_here(texts_uri=str(texts), shards=shards, plan_path=str(work / "host-plan"))
    image_plan = json.loads((Path(plan_art.path) / PLAN_FILE).read_text(encoding="utf-8"))
    same = [dict(s) for s in returned] == here and image_plan["shards"] == here
    return {"shards": len(here), "same_as_host": same}


def _check_annotate(texts: Path, shards: int, work: Path) -> dict[str, Any]:
    """Every shard of the traffic labelled by the knowledge-base teacher in the annotate image: its records, rejects
    and shard counts equal the same step's on this machine, byte for byte."""
    from nerwheel.components.annotate import annotate
    from nerwheel.components.steps.annotate import run as annotate_here
    from nerwheel.components.steps.shard import run as plan_here

    plan = plan_here(texts_uri=str(texts), shards=shards, plan_path=str(work / "host-plan"))
    parts = []
    for s in plan:
        (annotated,) = _outputs(annotate(texts_uri=str(texts), shard=s, seed_uri="", teacher="kb", llm_endpoint="",
                                         llm_model="", llm_max_tokens=1024, llm_cache_uri=""), "annotated")
        host = work / f"host-annotate-{s['index']}"
        annotate_here(texts_uri=str(texts), shard=s, seed_uri="", teacher="kb", llm_endpoint="", llm_model="",
                      out_path=str(host), report_path=str(work / f"host-report-{s['index']}"))
        image_dir = Path(annotated.path)
        same = _same_files(image_dir, host, ("records.jsonl", "rejects.jsonl", "shard.json"))
        part = json.loads((image_dir / "shard.json").read_text(encoding="utf-8"))
        parts.append({"shard": s["index"], "texts": s["texts"], "same_as_host": same, "counts": part})
    return {"shards": len(plan), "same_as_host": all(all(p["same_as_host"].values()) for p in parts), "parts": parts}


#: The stages ``images.sh check --stage`` can run alone: their inputs are parameters and the sample traffic, so one
#: image is enough. The whole pipeline (every image) is ``check`` without ``--stage``.
STAGE_CHECKS: dict[str, Callable[[Path, int, Path], dict[str, Any]]] = {"shard": _check_shard,
                                                                        "annotate": _check_annotate}


def run_stage_check(engine: Engine, stage: str, *, out_dir: Path, shards: int = 3,
                    echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``stage``'s component alone in its image, as a cluster would (kfp.local.DockerRunner: the component's
    command line from its IR and a launcher's executor input), on each shard of the sample traffic, and compare
    its outputs with the same step run on this machine. Returns the report; raises :class:`ImageError` when the
    image is missing, a task fails or its outputs differ."""
    import shutil

    from kfp import local

    from nerwheel.components.data import sample_path
    from nerwheel.errors import ConfigError

    if stage not in STAGE_CHECKS:
        raise ConfigError(f"--stage {stage!r}: a stage that runs alone on the sample data is one of "
                          f"{', '.join(STAGE_CHECKS)}; the others run in the whole pipeline (check without --stage)")
    if not has_image(engine, image(stage)):
        raise ImageError(f"not built: {image(stage)}; run scripts/images.sh build {stage} first")
    root = fresh_root(out_dir)
    # the traffic under the pipeline root, which DockerRunner mounts at the same path: the host and the image read
    # the same file by the same name (the plan names it, and each shard checks it)
    texts = root / "traffic.txt"
    shutil.copyfile(sample_path("texts"), texts)
    echo(f"{stage}: its component alone in {image(stage)} ({engine.command}), {shards} shard(s) of the sample")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nerwheel-check-") as tmp, docker_api(engine, Path(tmp)) as host, \
            _podman_not_found(), environment({"DOCKER_HOST": host}):
        local.init(runner=local.DockerRunner(), pipeline_root=str(root), raise_on_error=True)
        result = STAGE_CHECKS[stage](texts, shards, Path(tmp))
    report = {"engine": engine.command, "stage": stage, "image": image(stage),
              "size_bytes": image_size(engine, image(stage)), **result,
              "seconds": round(time.monotonic() - started, 1)}
    if not result["same_as_host"]:
        raise ImageError(f"{stage}: the image's outputs differ from this machine's: {json.dumps(report)}")
    return report
