"""The plain functions behind the KFP components: paths and URIs in, artifacts written, scalars returned.

No kfp here: a component's body imports its step inside the task (where kfp's
runtime-only ``kfp.dsl`` has no ``component`` decorator), and tests call the
steps directly without a cluster.

Stages speak in config fields; where a stage's error names one that a pipeline
parameter sets, :func:`parameter_hints` adds the parameter to the message (the
CLI adds its flag the same way, :mod:`nerwheel.cli.common`).
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PARAMETERS", "flatten_metrics", "parameter_hints", "task_logging"]

#: Config field named by a stage's error -> the pipeline parameter(s) that set it.
PARAMETERS: dict[str, str] = {
    "llm": "llm_endpoint and llm_model",
    "precedence": "precedence",
    "kind": "teacher",
    "student": "distill_student",
    "distill_overrides": "distill_overrides",
}


@contextmanager
def parameter_hints() -> Iterator[None]:
    """A stage's error that names a config field leaves the step naming the pipeline parameter too."""
    from nerwheel.errors import NerwheelError, with_hint

    try:
        yield
    except NerwheelError as exc:
        exc.args = (with_hint(exc, PARAMETERS, "pipeline"),)
        raise


def flatten_metrics(tree: dict, prefix: str = "", *, bools: bool = True) -> dict[str, float]:
    """The numeric leaves of a nested dict named by path, the KFP UI's scalars (``dev.strict.f1`` -> ``dev_strict_f1``).

    ``bools``: ``True``/``False`` leaves become 1.0/0.0 (a check that passed); without it they are left out.
    """
    out: dict[str, float] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            if bools:
                out[name] = 1.0 if v else 0.0
        elif isinstance(v, (int, float)):
            out[name] = float(v)
        elif isinstance(v, dict):
            out.update(flatten_metrics(v, f"{name}_", bools=bools))
    return out


#: How a task writes nerwheel's log records; ``nerwheel run`` recognises its lines by it (and echoes them).
TASK_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def task_logging(level: int = logging.INFO) -> None:
    """Send nerwheel's log records to the task's stderr (the pod log the KFP UI shows), in :data:`TASK_LOG_FORMAT`.

    Called first thing in every component body. The KFP executor has already given the root
    logger its own handler and format (``[KFP Executor ...]``, which hides the logger's name), so
    nerwheel's logger gets a handler of its own and does not also go through the root's.
    """
    logger = logging.getLogger("nerwheel")
    logger.setLevel(level)
    if not any(getattr(h, "nerwheel_task", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(TASK_LOG_FORMAT))
        handler.nerwheel_task = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    from nerwheel import redact

    redact.install(logger)  # credentials in URLs never reach the pod log
    redact.install()  # nor through the root's handlers (httpx, botocore)
