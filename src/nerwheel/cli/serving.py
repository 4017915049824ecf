"""``nerwheel serve`` and ``nerwheel deploy``: thin shells over :mod:`nerwheel.serving`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from nerwheel.serving.options import ServingOptions


@click.command("serve")
@click.option("--repository", "-r", "repositories", multiple=True, required=True,
              help="Model repository: a folder or s3://bucket/prefix (repeatable).")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=8001, show_default=True,
              help="gRPC port on 127.0.0.1 (0: a free one).")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="HTTP port on 127.0.0.1 (0: a free one).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=8002, show_default=True,
              help="Prometheus metrics port on 127.0.0.1 (0: a free one).")
@click.option("--model", "models", multiple=True,
              help="Load only these models (repeatable; default: every model with a config.pbtxt).")
@click.option("--s3-endpoint", default=None, help="S3 endpoint for s3:// repositories (default: "
              "NERWHEEL_S3_ENDPOINT or AWS_ENDPOINT_URL; credentials from the usual AWS_* variables).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Triton's log (default: a temporary file, printed on failure).")
@click.option("--control-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model control (load/unload) needs the key in this file; made (mode 0600) when missing "
                   "[default: $NERWHEEL_TRITON_CONTROL_KEY, else ~/.config/nerwheel/triton-control-key].")
def serve(repositories: tuple[str, ...], grpc_port: int, http_port: int, metrics_port: int, models: tuple[str, ...],
          s3_endpoint: str | None, log_file: Path | None, control_key_file: Path | None) -> None:
    """Start Triton on 127.0.0.1 with explicit model control; runs until SIGTERM or Ctrl-C.

    Inference is open to every client; loading and unloading models needs the control key (what
    `nerwheel deploy` sends). Prints one JSON line with the endpoints, the models and where the key
    is (never the key) once the server is up.
    """
    import os

    from nerwheel.serving.control import CONTROL_KEY_ENV, ModelControl, ensure_key_file
    from nerwheel.serving.repository import ModelRepository
    from nerwheel.serving.server import TritonServer, serve_forever
    from nerwheel.storage import Storage

    storage = Storage(s3_endpoint)
    names = list(models) or sorted({m for r in repositories for m in ModelRepository(r, storage).models()})
    if os.environ.get(CONTROL_KEY_ENV) and control_key_file is None:
        key, key_where = os.environ[CONTROL_KEY_ENV], f"${CONTROL_KEY_ENV}"
    else:
        key, path = ensure_key_file(control_key_file)
        key_where = str(path)
    server = TritonServer(
        list(repositories), grpc_port=grpc_port or None, http_port=http_port or None,
        metrics_port=metrics_port or None, load_models=names, s3_endpoint=storage.endpoint_url, log_file=log_file,
        # One model that fails to load must not take the others down; it is reported below.
        extra_args=["--exit-on-error=false"], control_key=key,
    )

    def ready(srv: TritonServer) -> None:
        with ModelControl(srv.grpc_url, key) as control:
            index = control.repository_index()
        status = {f"{m['name']}:{m.get('version', '')}": m.get("state", "") for m in index}
        click.echo(json.dumps({"grpc": srv.grpc_url, "http": srv.http_url, "metrics": f"127.0.0.1:{srv.metrics_port}",
                               "models": status, "log": str(srv.log_file), "control_key": key_where},
                              ensure_ascii=False), nl=True)
        sys.stdout.flush()

    sys.exit(serve_forever(server, on_ready=ready))


_SERVING = ServingOptions()  # the defaults, shown in --help

# Options that shape a NEW version; --pin-version only switches between existing ones.
_MODEL_ONLY = ("variant", "max_batch_size", "max_text_length", "instances", "intra_op_threads", "max_queue_delay_us",
               "int8", "keep")


@click.command("deploy")
@click.option("--model", "-m", "model", default=None,
              help="A trained model folder (exported first) or an export folder; local or s3://.")
@click.option("--pin-version", type=click.IntRange(min=1), default=None,
              help="Instead of --model: make this existing version live (config.pbtxt, and the server with "
                   "--triton-url). What the Kubernetes initContainer runs with the GitOps MODEL_VERSION.")
@click.option("--repository", "-r", required=True,
              help="Model repository: a folder, s3://bucket/prefix or Triton's s3://http://host:port/bucket/prefix.")
@click.option("--triton-url", default=None,
              help="Triton gRPC host:port to load and verify the new version in (without: write only).")
@click.option("--name", "-n", default="nerwheel", show_default=True, help="Model name in the repository.")
@click.option("--variant", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="cpu: one python-backend model; gpu: onnxruntime model + pre/post-processing ensemble.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
              help=f"Largest request Triton accepts (texts) [{_SERVING.max_batch_size}].")
@click.option("--max-text-length", type=click.IntRange(min=1), default=None,
              help=f"Longest text accepted, in characters [{_SERVING.max_text_length}].")
@click.option("--instances", type=click.IntRange(min=1), default=None,
              help=f"Model instances, each with --threads ONNX Runtime threads on CPU [{_SERVING.instances}].")
@click.option("--threads", "intra_op_threads", type=click.IntRange(min=1), default=None,
              help=f"ONNX Runtime threads per instance [{_SERVING.intra_op_threads}].")
@click.option("--queue-delay-us", "max_queue_delay_us", type=click.IntRange(min=0), default=None,
              help="How long Triton's dynamic batcher holds a request for others to join it, microseconds "
                   f"[{_SERVING.max_queue_delay_us}]. The defaults are the measured ones: benchmarks/serving.py "
                   "--sweep.")
@click.option("--int8", is_flag=True, default=None,
              help="Serve the export's model.int8.onnx (dynamic int8; its measured F1 cost is in the card).")
@click.option("--probe", "probe_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Probe texts (classify: messages), one per line (default: a few built-in ones per task).")
@click.option("--s3-endpoint", default=None, help="S3 endpoint (default: NERWHEEL_S3_ENDPOINT or AWS_ENDPOINT_URL).")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the new version to load.")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="After success, delete all but the newest KEEP version folders (default: keep all).")
@click.option("--gitops-repo", default=None, metavar="URL",
              help="After success, commit MODEL_VERSION=<version> to this git repository and push (what the "
              "pipeline's deploy step does; credentials from git's own config or NERWHEEL_GIT_TOKEN).")
@click.option("--gitops-path", default=None, metavar="PATH",
              help="With --gitops-repo: the env file to edit, relative to the repository root "
              "[manifests/overlays/dev/model-version.env].")
@click.option("--control-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --triton-url: the server's model-control key [default: $NERWHEEL_TRITON_CONTROL_KEY, "
                   "else ~/.config/nerwheel/triton-control-key, which nerwheel serve writes].")
@click.pass_context
def deploy(ctx: click.Context, model: str | None, pin_version: int | None, repository: str, triton_url: str | None,
           name: str, variant: str, max_batch_size: int | None, max_text_length: int | None, instances: int | None,
           intra_op_threads: int | None, max_queue_delay_us: int | None, int8: bool | None, probe_file: Path | None,
           s3_endpoint: str | None, timeout_s: float, keep: int | None,
           gitops_repo: str | None, gitops_path: str | None, control_key_file: Path | None) -> None:
    """Write MODEL as a new version, load it in Triton, verify it, roll back on failure.

    With --pin-version V (and no --model), make the existing version V live
    instead: config.pbtxt names V afterwards, and with --triton-url V is loaded
    and probed first (rolled back on failure). Prints the report as JSON.
    With --gitops-repo, a successful version is also recorded in git (one commit changing
    MODEL_VERSION in --gitops-path), as the pipeline's deploy step does.
    Exit status: 0 live (or written without --triton-url), 1 rolled back or failed.
    """
    from nerwheel.serving.deploy import deploy as run_deploy, pin_version as pin
    from nerwheel.serving.deploy import report_json

    if (model is None) == (pin_version is None):
        raise click.UsageError("give exactly one of --model (deploy a new version) and --pin-version "
                               "(make an existing version live)")
    if gitops_path and not gitops_repo:
        raise click.UsageError("--gitops-path needs --gitops-repo URL (the repository the path is in)")
    if pin_version is not None:
        flag = {p.name: p.opts[0] for p in ctx.command.params}
        given = [flag[p] for p in _MODEL_ONLY if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} shape(s) a new version and cannot be used with --pin-version")
    from nerwheel.serving.control import resolve_key

    key = resolve_key(key_file=control_key_file) if triton_url else None
    probes = None  # the task's own probes (addresses for NER, chat turns for the classifier)
    if probe_file is not None:
        probes = tuple(line for line in probe_file.read_text(encoding="utf-8").splitlines() if line.strip())
    if pin_version is not None:
        report = pin(repository, pin_version, name=name, triton_url=triton_url, probe_texts=probes,
                     endpoint_url=s3_endpoint, timeout_s=timeout_s, control_key=key)
    else:
        given = {"max_batch_size": max_batch_size, "max_text_length": max_text_length, "instances": instances,
                 "intra_op_threads": intra_op_threads, "max_queue_delay_us": max_queue_delay_us, "int8": int8}
        options = ServingOptions(**{k: v for k, v in given.items() if v is not None})
        report = run_deploy(model, repository, name=name, triton_url=triton_url, options=options,
                            variant=variant, probe_texts=probes, endpoint_url=s3_endpoint, timeout_s=timeout_s,
                            keep=keep, control_key=key)
    out = report.to_dict()
    if report.ok and gitops_repo:
        from nerwheel.gitops import DEFAULT_OVERLAY_FILE, GitOpsError, update_model_version

        try:
            change = update_model_version(gitops_repo, report.version, path=gitops_path or DEFAULT_OVERLAY_FILE)
        except GitOpsError as e:
            click.echo(report_json(report))
            raise GitOpsError(f"{name} version {report.version} is {report.status}, but the GitOps commit "
                              f"failed: {e}") from None
        out["gitops"] = change.record()
        click.echo(change.summary(), err=True)
    click.echo(f"{name} version {report.version}: {report.status}; {report.verification}", err=True)
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    sys.exit(0 if report.ok else 1)
