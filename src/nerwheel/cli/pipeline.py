"""``nerwheel run | compile | submit``: the Kubeflow pipeline, locally or on a cluster (thin over nerwheel.pipelines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


def _pipeline(task: str) -> Any:
    """The KFP pipeline of ``task`` (ner: the flywheel; classify: the classifier's DAG; embed: the encoder's)."""
    if task == "classify":
        from nerwheel.tasks.classify.pipeline import pipeline

        return pipeline
    if task == "embed":
        from nerwheel.tasks.embed.pipeline import pipeline

        return pipeline
    from nerwheel.pipelines.flywheel import flywheel

    return flywheel


#: Each task's teachers, the offline default first.
TEACHERS: dict[str, tuple[str, ...]] = {"ner": ("kb", "llm"), "classify": ("model", "llm"), "embed": ("ict", "llm")}

_TASK = click.option("--task", type=click.Choice(list(TEACHERS)), default="ner", show_default=True,
                     help="Which task's pipeline: ner (the entity flywheel), classify (the message classifier) or "
                          "embed (a retrieval encoder adapted to a corpus).")


def training_scale(*, nodes: int | None = None, gpus_per_node: int | None = None) -> dict[str, int]:
    """The --nodes/--gpus-per-node flags as the pipeline parameters they stand for (given ones only; the
    bounds are checked with every other parameter, :func:`nerwheel.pipelines.params.check_settings`)."""
    given = {"nodes": nodes, "gpus_per_node": gpus_per_node}
    return {k: v for k, v in given.items() if v is not None}


@click.command("run")
@_TASK
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/local"),
              show_default=True, help="Folder for the pipeline root, the log and the Triton repository.")
@click.option("--backbone", type=str, default=None,
              help="Encoder: tiny (trained from scratch), e5-small (multilingual-e5-small), or a HF folder [ner, "
                   "classify: tiny; embed: e5-small].")
@click.option("--teacher", type=click.Choice(sorted({t for ts in TEACHERS.values() for t in ts})), default=None,
              help="Who labels the traffic: ner: kb (the knowledge base, offline, default) or llm; classify: model "
                   "(a classifier trained on the seed messages, offline, default) or llm (--llm-url, --llm-model); "
                   "embed: ict (inverse cloze, offline, default) or llm (questions written by the LLM).")
@click.option("--llm-url", envvar="NERWHEEL_LLM_URL", default=None,
              help="OpenAI-compatible base URL for --teacher llm (env NERWHEEL_LLM_URL); the API key is read from "
                   "NERWHEEL_LLM_API_KEY by the task, never passed as a parameter.")
@click.option("--llm-model", envvar="NERWHEEL_LLM_MODEL", default=None,
              help="Model name on that server (env NERWHEEL_LLM_MODEL).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Maximum training epochs (default here: 12 for tiny; otherwise, and in the pipeline, the "
              "backbone's measured default).")
@click.option("--s3-endpoint", type=str, default=None,
              help="Use this S3 endpoint (e.g. http://127.0.0.1:9000): inputs, Triton repository and every "
                   "artifact go to s3://BUCKET/PREFIX/ (credentials from the usual AWS_* variables).")
@click.option("--s3-bucket", type=str, default="nerwheel", show_default=True, help="Bucket for --s3-endpoint.")
@click.option("--s3-prefix", type=str, default="local", show_default=True, help="Key prefix for --s3-endpoint.")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML/JSON file of pipeline parameters (see `nerwheel compile --list-params`).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="One pipeline parameter. Repeatable.")
@click.option("--gpus-per-node", type=int, default=None,
              help="DDP processes for the train task, one per GPU (without GPUs, gloo processes on the CPU) "
                   "(pipeline parameter gpus_per_node) [1]. Several nodes need a cluster: `nerwheel submit --nodes`.")
@click.option("--ignore-live", is_flag=True,
              help="Do not gate against the model already live in the repository (from an earlier run).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No per-task progress lines.")
def run(task: str, out_dir: Path, backbone: str | None, teacher: str | None, llm_url: str | None, llm_model: str | None,
        epochs: int | None,
        s3_endpoint: str | None, s3_bucket: str,
        s3_prefix: str, params_file: Path | None, sets: tuple[str, ...], gpus_per_node: int | None,
        ignore_live: bool, as_json: bool, quiet: bool) -> None:
    """Run the whole pipeline locally (Kubeflow's local runner) on the embedded default.

    Bundled sample data, the knowledge-base teacher and the tiny backbone (--task classify: the
    model teacher; --task embed: the sample corpus, inverse cloze and e5-small), ending with a
    Triton model repository; prints the score, the gate's verdict and where the model and
    repository are.
    Run it again with the same --out and the new candidate is gated against the model the
    previous run deployed: one more turn of the flywheel.
    """
    from nerwheel.pipelines.local import LocalRun, run_local
    from nerwheel.pipelines.params import load_params_file, parse_assignments

    pipeline = _pipeline(task)
    allowed = TEACHERS[task]
    teacher = teacher or allowed[0]
    if teacher not in allowed:
        raise click.UsageError(f"--teacher {teacher} is not a {task} teacher; choose {' or '.join(allowed)}")
    args: dict[str, Any] = load_params_file(params_file, pipeline) if params_file else {}
    args["teacher"] = teacher
    if backbone is not None:  # else the task's local default (tiny, or e5-small for embed)
        args["backbone"] = backbone
    if llm_url:
        args["llm_endpoint"] = llm_url
    if llm_model:
        args["llm_model"] = llm_model
    if teacher == "llm" and not (args.get("llm_endpoint") and args.get("llm_model")):
        raise click.UsageError("--teacher llm needs --llm-url and --llm-model (or NERWHEEL_LLM_URL / _MODEL)")
    if epochs is not None:
        args["epochs"] = epochs
    args.update(parse_assignments(sets, pipeline))
    args.update(training_scale(gpus_per_node=gpus_per_node))
    summary = run_local(LocalRun(task=task, out_dir=out_dir, arguments=args, s3_endpoint=s3_endpoint,
                                 s3_bucket=s3_bucket, s3_prefix=s3_prefix,
                                 production_from_repository=not ignore_live,
                                 echo=None if quiet or as_json else sys.stderr))
    click.echo(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) if as_json else summary.text())


@click.command("compile")
@_TASK
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("pipeline.yaml"),
              show_default=True, help="Where to write the IR YAML.")
@click.option("--list-params", is_flag=True, help="List the pipeline's parameters with defaults instead.")
def compile_(task: str, out_path: Path, list_params: bool) -> None:
    """Compile the Kubeflow pipeline to IR YAML (upload it in the KFP UI, or use `nerwheel submit`)."""
    from nerwheel.pipelines.compile import compile_pipeline
    from nerwheel.pipelines.params import parameters

    pipeline = _pipeline(task)
    if list_params:
        for p in parameters(pipeline).values():
            click.echo(f"{p.name:22} {p.type.__name__:6} {p.default!r:45} {p.description}")
        return
    path = compile_pipeline(out_path, pipeline)
    click.echo(f"wrote {path}")


@click.command("submit")
@click.option("--host", required=True, help="KFP API URL, e.g. http://localhost:8080.")
@click.option("--experiment", default="nerwheel", show_default=True, help="Experiment to file the run under.")
@click.option("--schedule", default=None, metavar="CRON",
              help="Create a recurring run instead, e.g. '0 3 * * 1' (Mondays 03:00).")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML/JSON file of pipeline parameters.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="One pipeline parameter. Repeatable.")
@click.option("--run-name", default=None, help="Name of the run (or of the recurring run).")
@click.option("--namespace", default=None, help="Kubeflow profile namespace (multi-user installs).")
@click.option("--pipeline-root", default=None, help="Override the launcher's defaultPipelineRoot (s3://...).")
@click.option("--nodes", type=int, default=None,
              help="Training nodes (pipeline parameter nodes): more than 1 runs training as a Kubeflow Training "
                   "Operator PyTorchJob of the train image [1].")
@click.option("--gpus-per-node", type=int, default=None,
              help="GPUs per training node, one DDP process each (pipeline parameter gpus_per_node) [1].")
@click.option("--dry-run", is_flag=True, help="Print the client calls instead of making them.")
def submit(host: str, experiment: str, schedule: str | None, params_file: Path | None, sets: tuple[str, ...],
           run_name: str | None, namespace: str | None, pipeline_root: str | None, nodes: int | None,
           gpus_per_node: int | None, dry_run: bool) -> None:
    """Submit the pipeline to a Kubeflow Pipelines cluster: one run, or a recurring run with --schedule."""
    from nerwheel.pipelines.params import load_params_file, parse_assignments
    from nerwheel.pipelines.submit import SubmitRequest, plan, submit as do_submit

    args: dict[str, Any] = load_params_file(params_file) if params_file else {}
    args.update(parse_assignments(sets))
    args.update(training_scale(nodes=nodes, gpus_per_node=gpus_per_node))
    req = SubmitRequest(host=host, arguments=args, experiment=experiment, run_name=run_name, schedule=schedule,
                        namespace=namespace, pipeline_root=pipeline_root)
    if dry_run:
        for call in plan(req):
            click.echo(f"{call.method}({json.dumps(call.kwargs, ensure_ascii=False, sort_keys=True)})")
        return
    result = do_submit(req)
    click.echo(f"submitted: {result}")
