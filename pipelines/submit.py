"""Submit the flywheel to a Kubeflow Pipelines cluster: one run, or a recurring run (the weekly turn).

Kept deliberately thin: :func:`plan` turns the request into the exact
``kfp.Client`` calls (pure, tested), and :func:`submit` makes them. The calls
themselves need a live KFP API server, which no test here has; they are the
SDK's documented ``create_run_from_pipeline_func`` and ``create_recurring_run``,
exercised by users against their cluster.
"""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerwheel.errors import NerwheelError

__all__ = ["Call", "SubmitError", "SubmitRequest", "kfp_cron", "plan", "submit", "unreachable"]


class SubmitError(NerwheelError, ValueError):
    """A submission that cannot be made as asked (bad schedule, bad host)."""


_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


def kfp_cron(expr: str) -> str:
    """KFP schedules take a 6-field cron (seconds first); a standard 5-field one gets ``0`` seconds.

    ``"0 3 * * 1"`` (Mondays 03:00) -> ``"0 0 3 * * 1"``.
    """
    fields = expr.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise SubmitError(f"schedule {expr!r} is not a cron expression; use 5 fields 'minute hour day month weekday' "
                          "(e.g. '0 3 * * 1' for Mondays at 03:00) or KFP's 6 fields with seconds first")
    return " ".join(fields if len(fields) == 6 else ["0", *fields])


@dataclass(frozen=True)
class SubmitRequest:
    """What to submit where. ``schedule`` set = a recurring run; otherwise one run."""

    host: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    experiment: str = "nerwheel"
    run_name: str | None = None
    schedule: str | None = None
    namespace: str | None = None
    pipeline_root: str | None = None
    enable_caching: bool | None = None
    max_concurrency: int = 1

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.host):
            raise SubmitError(f"host {self.host!r} must be the KFP API URL, e.g. http://localhost:8080 or "
                              "https://kubeflow.example.com/pipeline")
        if self.pipeline_root is not None and not re.match(r"^(s3|gs|minio)://[^/]+", self.pipeline_root):
            raise SubmitError(f"pipeline_root {self.pipeline_root!r} must be an object-store URI such as "
                              "s3://bucket/pipeline-root")
        if self.max_concurrency < 1:
            raise SubmitError("max_concurrency must be at least 1")
        from nerwheel.pipelines.params import check_arguments

        object.__setattr__(self, "arguments", check_arguments(self.arguments, source="submit arguments"))
        if self.schedule is not None:
            object.__setattr__(self, "schedule", kfp_cron(self.schedule))


@dataclass(frozen=True)
class Call:
    """One ``kfp.Client`` method call: name and keyword arguments (``package`` = compile first, pass its path)."""

    method: str
    kwargs: dict[str, Any]


def plan(req: SubmitRequest) -> list[Call]:
    """The client calls that carry out ``req`` (no network)."""
    from nerwheel.pipelines.flywheel import PIPELINE_NAME

    common = {"pipeline_root": req.pipeline_root, "enable_caching": req.enable_caching}
    if req.schedule is None:
        return [Call("create_run_from_pipeline_func", {
            "pipeline_func": "flywheel", "arguments": dict(req.arguments), "run_name": req.run_name,
            "experiment_name": req.experiment, "namespace": req.namespace, **common})]
    return [
        Call("create_experiment", {"name": req.experiment, "namespace": req.namespace}),
        Call("create_recurring_run", {
            "experiment_id": "<from create_experiment>", "job_name": req.run_name or f"{PIPELINE_NAME}-recurring",
            "cron_expression": req.schedule, "max_concurrency": req.max_concurrency, "no_catchup": True,
            "pipeline_package_path": "<compiled>", "params": dict(req.arguments), **common}),
    ]


_ERRNO = re.compile(r"\[Errno -?\d+\] [^\"')]+")


def unreachable(host: str, exc: BaseException) -> SubmitError:
    """One sentence for a KFP API that cannot be reached or refuses, instead of the SDK's urllib3 traceback."""
    reason = str(getattr(exc, "reason", None) or exc)
    if m := _ERRNO.search(reason):
        reason = m.group(0).strip()
    elif status := getattr(exc, "status", None):
        reason = f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return SubmitError(f"cannot reach the Kubeflow Pipelines API at {host} ({reason[:200]}): check that --host is "
                       "the KFP API URL and is reachable from here, e.g. `kubectl port-forward -n kubeflow "
                       "svc/ml-pipeline-ui 8080:80` and --host http://localhost:8080")


@contextmanager
def _api_errors(host: str) -> Iterator[None]:
    """Network and API failures of the SDK as :class:`SubmitError`; its warnings and retry log records silenced."""
    import kfp_server_api
    import urllib3

    disabled = logging.root.manager.disable
    # kfp.Client logs each failed health check with a full traceback, urllib3 each retry: the error says it all
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2 ..."
            yield
    except (urllib3.exceptions.HTTPError, kfp_server_api.ApiException, OSError, TimeoutError) as exc:
        raise unreachable(host, exc) from None
    finally:
        logging.disable(disabled)


def submit(req: SubmitRequest, client: Any = None) -> Any:
    """Make the calls of :func:`plan` on a ``kfp.Client`` for ``req.host``; returns the SDK's result.

    An unreachable or refusing host raises :class:`SubmitError` with one sentence saying what to check.
    """
    with _api_errors(req.host):
        return _submit(req, client)


def _submit(req: SubmitRequest, client: Any) -> Any:
    import kfp

    from nerwheel.pipelines.compile import compile_pipeline
    from nerwheel.pipelines.flywheel import flywheel

    client = client or kfp.Client(host=req.host, namespace=req.namespace)
    calls = plan(req)
    if req.schedule is None:
        (call,) = calls
        return client.create_run_from_pipeline_func(**{**call.kwargs, "pipeline_func": flywheel})
    experiment = client.create_experiment(**calls[0].kwargs)
    with tempfile.TemporaryDirectory(prefix="nerwheel-submit-") as tmp:
        package = compile_pipeline(Path(tmp) / "pipeline.yaml")
        kwargs = {**calls[1].kwargs, "experiment_id": experiment.experiment_id, "pipeline_package_path": str(package)}
        return client.create_recurring_run(**kwargs)
