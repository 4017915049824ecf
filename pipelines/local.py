"""Run the whole flywheel on this machine with Kubeflow's own local runner.

``kfp.local`` with the ``SubprocessRunner(use_venv=False)`` runs each component
as a subprocess of the current Python (the same code a cluster runs in the
stage images), resolves the DAG and the ``dsl.If`` around export/deploy, and
keeps every artifact under a local pipeline root. GPU requests, secrets and
node selectors are cluster settings: the local runner ignores them.

S3 (``s3_endpoint``): ``kfp.local`` only knows local pipeline roots (it makes
the path absolute), so the S3 path is built around it the way a cluster's
launcher would: inputs are uploaded to ``s3://<bucket>/<prefix>/data/`` and the
tasks read them from there through :mod:`nerwheel.storage`; the Triton
repository is written to ``s3://<bucket>/<prefix>/triton-repository``; and when
the run ends, its whole pipeline root is mirrored to
``s3://<bucket>/<prefix>/pipeline-root/<run>/`` with every object verified
against its SHA-256, listed in ``artifacts.json``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nerwheel.errors import NerwheelError

__all__ = ["LocalRun", "LocalRunError", "RunSummary", "environment", "run_local", "task_status"]

#: Pipeline arguments of the embedded default on a laptop, where the pipeline's own defaults (sized for a GPU
#: node) would take too long: fewer synthetic texts and 64-token windows (addresses are short, so they hold almost
#: every text whole). 12 epochs of the default tiny encoder: measured on 2 idle cores, 4 epochs of a narrower one
#: took 37 s for strict F1 0.66 on the sample eval set, 8 epochs 61 s for 0.81, 12 epochs 75 s for 0.83.
#: Any of them can be given explicitly instead; another backbone gets its own measured epoch budget (0).
LOCAL_DEFAULTS: dict[str, Any] = {
    "backbone": "tiny",
    "teacher": "kb",
    "synth_short": 100,
    "synth_long": 100,
    "epochs": 12,
    "train_overrides": "training.sequence_length=64; training.stride=16",
    # two shards: the fan-out and the fan-in run locally too (each shard is one more subprocess, a few seconds)
    "shards": 2,
}


#: The classifier's embedded default on a laptop: the model teacher (trained on the bundled seed messages) labels
#: the bundled traffic, and a small tiny encoder trains on gold + teacher labels in well under a minute.
CLASSIFY_LOCAL_DEFAULTS: dict[str, Any] = {
    "backbone": "tiny",
    "teacher": "model",
    "epochs": 20,
    "train_overrides": "model.max_length=48; training.batch_size=16; training.learning_rate=0.002; "
                       "model.tiny.hidden_size=64; model.tiny.num_layers=2; model.tiny.num_heads=2; "
                       "model.tiny.intermediate_size=128; early_stopping.patience=6",
}


#: The embedding task's embedded default on a laptop: the bundled sample corpus (43 paragraphs about tea) in
#: passages of at most 64 tokens, two inverse-cloze queries per passage, two epochs of e5-small (vocabulary pruned
#: to the corpus) at batch 16: a few minutes on 2 cores.
EMBED_LOCAL_DEFAULTS: dict[str, Any] = {
    "backbone": "e5-small",
    "teacher": "ict",
    "max_tokens": 64,
    "queries_per_passage": 2,
    "epochs": 2,
    "train_overrides": "batch_size=16; max_seq_length=96; learning_rate=0.00003",
}


class LocalRunError(NerwheelError, RuntimeError):
    """The local pipeline run failed; the message names the task and the log file."""


@dataclass(frozen=True)
class _Flow:
    """What differs between the tasks' DAGs for a local run: the pipeline, its task folders, defaults, score."""

    name: str
    pipeline: Any
    stages: tuple[str, ...]
    evaluate: str
    defaults: dict[str, Any]
    score_name: str
    sample: Any  # role -> bundled file
    train: str = "train"  # the task folder holding the trained model
    inputs: tuple[tuple[str, str], ...] = (("seed_uri", "seed"), ("texts_uri", "texts"), ("eval_uri", "eval"))

    def score(self, metrics: dict[str, Any]) -> float:
        o = metrics["overall"]
        if self.name == "embed":
            return float(o["ndcg@10"])
        return float(o["macro"]["f1"] if self.name == "classify" else o["strict"]["f1"])


def _flow(task: str) -> _Flow:
    if task == "classify":
        from nerwheel.tasks.classify import pipeline as cp
        from nerwheel.tasks.classify.sample import sample_path

        return _Flow("classify", cp.pipeline, cp.STAGES, "classify-evaluate", CLASSIFY_LOCAL_DEFAULTS, "macro-F1",
                     sample_path, train="classify-train")
    if task == "embed":
        from nerwheel.data.sample import sample_path as bundled
        from nerwheel.tasks.embed import pipeline as ep
        from nerwheel.tasks.embed.steps import SAMPLE_CORPUS

        return _Flow("embed", ep.pipeline, ep.STAGES, "embed-evaluate", EMBED_LOCAL_DEFAULTS, "nDCG@10",
                     lambda role: bundled(SAMPLE_CORPUS), train="embed-train", inputs=(("corpus_uri", "corpus"),))
    if task != "ner":
        raise LocalRunError(f"unknown task {task!r}; the local runner knows ner, classify and embed")
    from nerwheel.components import STAGES
    from nerwheel.components.data import sample_path
    from nerwheel.pipelines.flywheel import RETRIES, Platform, build_pipeline

    # kfp.local honours retry policies: a local run's failing task (a missing file) fails at once instead of
    # waiting out the cluster's backoff, and its error stays at the end of the log
    local = build_pipeline(Platform(retries=dict.fromkeys(RETRIES)))
    return _Flow("ner", local, tuple(STAGES), "evaluate", LOCAL_DEFAULTS, "strict F1", sample_path)


@dataclass
class LocalRun:
    """How to run the pipeline locally.

    ``arguments`` are pipeline parameters (checked against the pipeline);
    ``out_dir`` holds the pipeline root, the log and (without S3) the Triton repository.
    """

    out_dir: Path = Path("runs/local")
    arguments: Mapping[str, Any] = field(default_factory=dict)
    #: Without an explicit production_model_uri, the evaluate task compares against the version live in the
    #: repository (the previous turn's model), so a second run is a real flywheel turn and the gate decides.
    #: False sets the pipeline parameter of the same name (``nerwheel run --ignore-live``).
    production_from_repository: bool = True
    s3_endpoint: str | None = None
    s3_bucket: str = "nerwheel"
    s3_prefix: str = "local"
    echo: TextIO | None = None  # progress lines go here (None: quiet)
    task: str = "ner"  # which task's DAG: ner (the flywheel), classify or embed
    #: kfp.local's runner; None: ``SubprocessRunner(use_venv=False)`` (each task a subprocess of this Python).
    #: ``scripts/images.sh check`` passes a ``DockerRunner``: every task in its stage's image.
    runner: Any = None


@dataclass
class RunSummary:
    """Where everything landed and what the run decided."""

    run_name: str
    seconds: float
    log: str
    run_dir: str
    tasks: dict[str, str]  # task -> SUCCESS | SKIPPED
    strict_f1: float
    metrics: dict[str, Any]
    verdict: str
    reasons: list[str]
    production: str | None
    model_dir: str
    export_dir: str | None
    repository: str | None
    model_name: str | None
    version: int | None
    deploy_status: str | None
    s3_run_uri: str | None = None
    s3_objects: int = 0
    manifest: str | None = None
    task: str = "ner"
    score_name: str = "strict F1"  # what strict_f1 holds for this task (classify: macro-F1, embed: nDCG@10)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        ov = self.metrics.get("overall", {})
        if self.task == "classify":
            score = (f"  eval:       macro-F1 {self.strict_f1:.4f}, accuracy {ov.get('accuracy', float('nan')):.4f}, "
                     f"ECE {ov.get('ece', float('nan')):.4f} on {self.metrics.get('n_records')} messages")
        elif self.task == "embed":
            score = (f"  eval:       nDCG@10 {self.strict_f1:.4f}, recall@10 {ov.get('recall@10', float('nan')):.4f}, "
                     f"MRR@10 {ov.get('mrr@10', float('nan')):.4f} on {self.metrics.get('n_queries')} queries, "
                     f"{self.metrics.get('n_corpus')} passages")
        else:
            score = (f"  F1 (eval):  strict {self.strict_f1:.4f}, partial "
                     f"{ov.get('partial', {}).get('f1', float('nan')):.4f}, type "
                     f"{ov.get('type', {}).get('f1', float('nan')):.4f} on {self.metrics.get('n_records')} records")
        lines = [
            f"nerwheel run {self.run_name}: finished in {self.seconds:.0f} s",
            f"  tasks:      {', '.join(f'{t} {s.lower()}' for t, s in self.tasks.items())}",
            score,
            f"  gate:       {self.verdict.upper()}: {'; '.join(self.reasons)}",
            f"  model:      {self.model_dir}",
        ]
        if self.production:
            lines.insert(-1, f"  production: {self.production} (scored on the same eval set)")
        if self.export_dir:
            lines.append(f"  ONNX:       {self.export_dir}")
        if self.repository:
            lines.append(f"  Triton:     {self.repository}/{self.model_name}/{self.version} ({self.deploy_status})")
        else:
            lines.append("  Triton:     not deployed (the gate refused the candidate)")
        if self.s3_run_uri:
            lines.append(f"  S3:         {self.s3_objects} artifacts verified under {self.s3_run_uri}")
        lines += [f"  artifacts:  {self.run_dir}", f"  log:        {self.log}"]
        if self.manifest:
            lines.append(f"  manifest:   {self.manifest}")
        return "\n".join(lines)


#: kfp.local's colour codes, removed from what is echoed and from a failed task's excerpt
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Progress(io.TextIOBase):
    """Everything to the log file; to ``echo``: task start/finish lines and each task's own progress lines.

    A task's progress lines are nerwheel's log records (``epoch 3: loss ...``,
    warnings) and, with ``nerwheel --progress``, its progress bars; they are
    echoed as ``  train: epoch 3: loss ...`` under the task's start line, while
    the KFP executor's own chatter (executor input JSON, output paths) stays in
    the log only. Colour codes are removed.

    Writes are serialised: the shards of a ``dsl.ParallelFor`` run in threads that log to this one stream, and
    two of them splitting the shared buffer at once lost a line (a ``Task 'annotate' finished`` line went missing).
    """

    _WANTED = re.compile(r"Executing task|finished with status|Task .* failed|Pipeline .* finished")
    _TASK = re.compile(r"Executing task '([^']+)'")
    _RECORD = re.compile(r"^\s*\d{4}-\d\d-\d\d [\d:,.]+ (INFO|WARNING|ERROR|CRITICAL) nerwheel[\w.]*: (.*)$")
    _BAR = re.compile(r"^\s*[^|]*\d+%\|.*\|")

    def __init__(self, log: TextIO, echo: TextIO | None) -> None:
        self.log, self.echo, self._buf, self.task = log, echo, "", ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            self.log.write(s)
            if self.echo is not None:
                self._buf += s
                *lines, self._buf = re.split(r"\r\n|\r|\n", self._buf)
                for line in lines:
                    if shown := self._shown(_ANSI.sub("", line)):
                        self.echo.write(shown + "\n")
                        self.echo.flush()
        return len(s)

    def _shown(self, line: str) -> str | None:
        """The line as echoed, or None when it belongs in the log only."""
        if self._WANTED.search(line):
            if m := self._TASK.search(line):
                self.task = m.group(1)
            return line.split(" - ", 2)[-1].strip()
        if m := self._RECORD.match(line):
            level, message = m.groups()
            return f"  {self.task}: {'' if level == 'INFO' else level + ': '}{message}"
        if self._BAR.match(line):
            return f"  {self.task}: {line.strip()}"
        return None

    def flush(self) -> None:
        with self._lock:
            self.log.flush()


class _KfpTaskLine(logging.Filter):
    """kfp.local's own lines (root logger) except its workspace clean-up notice; other loggers' warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root":
            return not record.getMessage().startswith("Cleaned up workspace")
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def kfp_task_lines(stream: TextIO) -> Iterator[None]:
    """Keep kfp.local's task lines when a ``dsl.ParallelFor`` runs its shards in threads.

    kfp.local logs each task inside ``local_logger_context``, which swaps the
    root logger's handlers and level process-wide and restores them on exit:
    when one shard's thread exits first, the root falls back to what was there
    before, and the other shard's ``Task 'annotate' finished`` line was dropped
    (seen in test_embedded_default under load). So what is there before is
    kfp's own format at INFO on the same stream, minus the clean-up notice.
    """
    from kfp.local.logging_utils import MillisecondFormatter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(MillisecondFormatter(fmt="%(asctime)s - %(levelname)s - %(message)s", datefmt="%H:%M:%S.%f"))
    handler.addFilter(_KfpTaskLine())
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@contextlib.contextmanager
def environment(updates: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the run (tasks are subprocesses and inherit them); restored afterwards."""
    old = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stage_inputs_on_s3(arguments: dict[str, Any], base: str, flow: _Flow) -> dict[str, Any]:
    """Upload the run's input files (given or bundled) to ``base/data/`` and point the arguments at them."""
    from nerwheel import storage

    store = storage.get_storage()
    store.ensure_bucket(base)
    out = dict(arguments)
    for param, sample in flow.inputs:
        src = str(arguments.get(param, "")).strip() or str(flow.sample(sample))
        if storage.is_s3(src):
            continue
        dest = storage.join(base, "data", Path(src).name)
        store.upload_file(src, dest)
        out[param] = dest
    return out


def _mirror_to_s3(run_dir: Path, uri: str, out_dir: Path) -> tuple[int, Path]:
    """Upload the run's pipeline root; every object is checked against its SHA-256. Returns (count, manifest)."""
    from nerwheel import storage
    from nerwheel.components.data import write_json

    infos = storage.get_storage().upload_dir(run_dir, uri)
    manifest = write_json(out_dir / "artifacts.json", {
        "run_uri": uri,
        "objects": {rel: {"uri": i.uri, "size": i.size, "sha256": i.sha256} for rel, i in sorted(infos.items())},
    })
    storage.get_storage().upload_file(manifest, storage.join(uri, "artifacts.json"))
    return len(infos), manifest


def _new_run_dir(root: Path, before: set[str], name: str) -> Path:
    new = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in before and p.name.startswith(name))
    if len(new) != 1:
        raise LocalRunError(f"expected one new run folder under {root}, found {[p.name for p in new]}")
    return new[0]


def _read(path: Path) -> Any:
    from nerwheel.components.data import read_json

    return read_json(path)


def run_local(cfg: LocalRun) -> RunSummary:
    """Run the flywheel pipeline locally; returns the summary (raises :class:`LocalRunError` on failure)."""
    from kfp import local

    from nerwheel import storage
    from nerwheel.pipelines.params import ParamError, check_arguments

    flow = _flow(cfg.task)
    out = Path(cfg.out_dir).resolve()
    root = out / "pipeline-root"
    given = check_arguments(cfg.arguments, flow.pipeline, source="run arguments")
    args: dict[str, Any] = {**flow.defaults, **given}
    if flow.name == "ner" and args["backbone"] != flow.defaults["backbone"] and "epochs" not in given:
        args["epochs"] = 0  # the 12 epochs above were measured for tiny; another backbone gets its own default
    if args.get("nodes", 1) > 1:  # refused before any task runs, not when training starts
        raise ParamError(f"run arguments: nodes is {args['nodes']}; several nodes train as a Kubeflow PyTorchJob, "
                         "which needs a cluster (`nerwheel submit --nodes N --gpus-per-node G`); a local run "
                         "takes gpus_per_node alone")
    root.mkdir(parents=True, exist_ok=True)
    from nerwheel.progress import env as progress_env

    env: dict[str, str] = {"PYTHONUNBUFFERED": "1", **progress_env()}  # tasks follow nerwheel --progress/--quiet
    s3_base = None
    if cfg.s3_endpoint:
        env["NERWHEEL_S3_ENDPOINT"] = cfg.s3_endpoint
        s3_base = f"s3://{cfg.s3_bucket}/{cfg.s3_prefix.strip('/')}" if cfg.s3_prefix.strip("/") else \
            f"s3://{cfg.s3_bucket}"
        args.setdefault("repository_uri", storage.join(s3_base, "triton-repository"))
    else:
        args.setdefault("repository_uri", str(out / "triton-repository"))

    log_path = out / "run.log"
    before = {p.name for p in root.iterdir()}
    t0 = time.monotonic()
    with environment(env):
        if s3_base:
            args = _stage_inputs_on_s3(args, s3_base, flow)
        if not cfg.production_from_repository:
            args["production_from_repository"] = False
        local.init(runner=cfg.runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   raise_on_error=True)
        with open(log_path, "w", encoding="utf-8") as log, warnings.catch_warnings():
            # The local runner warns that images, display names and platform settings are not used locally.
            warnings.simplefilter("ignore")
            progress = _Progress(log, cfg.echo)
            try:
                with kfp_task_lines(progress), contextlib.redirect_stdout(progress), \
                        contextlib.redirect_stderr(progress):
                    flow.pipeline(**args)
            except Exception as e:  # kfp.local raises RuntimeError naming the failed task
                raise LocalRunError(f"{e}\n  full log: {log_path}\n{_excerpt(log_path, str(e))}") from e
    seconds = time.monotonic() - t0
    run_dir = _new_run_dir(root, before, flow.pipeline.name)
    summary = _summarise(run_dir, seconds, log_path, args, flow)
    if s3_base:
        with environment(env):
            uri = storage.join(s3_base, "pipeline-root", run_dir.name)
            summary.s3_objects, manifest = _mirror_to_s3(run_dir, uri, out)
            summary.s3_run_uri, summary.manifest = uri, str(manifest)
    return summary


def _excerpt(path: Path, error: str, lines: int = 40) -> str:
    """The failed task's own last ``lines`` log lines (its traceback), else the log's last ``lines``.

    kfp.local runs independent tasks on after a failure, so the log's tail can be another task's output or
    the list of skipped tasks (seen: an independent task's 50 lines pushed the failed task's error out).
    """
    text = [_ANSI.sub("", ln) for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    failed = re.search(r"Inner task failed: '([^']+)'", _ANSI.sub("", error))  # kfp colours the task's name
    task = failed.group(1) if failed else None
    ends = [i for i, ln in enumerate(text) if task and f"Task '{task}' finished with status FAILURE" in ln]
    if not ends:
        chosen = text[-lines:]
    else:
        starts = [i for i, ln in enumerate(text[: ends[-1]]) if f"Executing task '{task}'" in ln]
        chosen = text[max(starts[-1] if starts else 0, ends[-1] + 1 - lines) : ends[-1] + 1]
    return "\n".join("    " + ln for ln in chosen)


def _candidate(run_dir: Path, flow: _Flow) -> Path:
    """The model evaluated and served: the distil step's student, or the trained model (no distillation asked)."""
    from nerwheel.model.layout import CARD_FILE

    student = run_dir / "distill" / "distilled"  # the tagger's and the classifier's DAGs have one
    card = _read(student / CARD_FILE) if (student / CARD_FILE).is_file() else {}
    return student if "distillation" in card else run_dir / flow.train / "model"


def task_status(run_dir: Path, stages: tuple[str, ...]) -> dict[str, str]:
    """Stage -> SUCCESS (a task of it ran: its folder exists, also inside a ParallelFor iteration) or SKIPPED.

    kfp.local names a task's folder after its component (``pseudo-label``; ``gather-2`` for a second task of
    one component) and puts a ParallelFor's tasks under ``for-loop-*-iteration-*/``.
    """
    def name(folder: str) -> str:
        return re.sub(r"-\d+$", "", folder).replace("-", "_")

    ran = {name(p.name) for pattern in ("*", "for-loop-*/*")
           for p in run_dir.glob(pattern) if p.is_dir() and (p / "executor_output.json").is_file()}
    return {s: ("SUCCESS" if name(s) in ran else "SKIPPED") for s in stages}


def _summarise(run_dir: Path, seconds: float, log_path: Path, args: Mapping[str, Any], flow: _Flow) -> RunSummary:
    tasks = task_status(run_dir, flow.stages)
    scores = _read(run_dir / flow.evaluate / "scores")
    decision = _read(run_dir / "gate" / "decision")
    deployment = None
    if tasks["deploy"] == "SUCCESS":
        deployment = _read(run_dir / "deploy" / "deployment" / "deployment.json")
    dep = (deployment or {}).get("deploy", {})
    return RunSummary(
        run_name=run_dir.name,
        seconds=seconds,
        log=str(log_path),
        run_dir=str(run_dir),
        tasks=tasks,
        strict_f1=flow.score(scores),
        metrics=scores,
        verdict=decision["verdict"],
        reasons=list(decision["reasons"]),
        production=(decision.get("production_model") or {}).get("uri"),
        model_dir=str(_candidate(run_dir, flow)),
        export_dir=str(run_dir / "export" / "onnx") if tasks["export"] == "SUCCESS" else None,
        repository=(deployment or {}).get("repository"),
        model_name=dep.get("name") or (args.get("model_name") if deployment else None),
        version=dep.get("version"),
        deploy_status=dep.get("status"),
        task=flow.name,
        score_name=flow.score_name,
    )


if __name__ == "__main__":  # pragma: no cover - convenience: python -m nerwheel.pipelines.local OUT
    print(run_local(LocalRun(out_dir=Path(sys.argv[1] if len(sys.argv) > 1 else "runs/local"),
                             echo=sys.stdout)).text())
