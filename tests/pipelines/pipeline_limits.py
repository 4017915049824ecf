"""What every task's DAG must say about time limits and retries: the policy of the NER stage doing the same work."""

from __future__ import annotations

from typing import Any


def assert_limits(spec: tuple[dict[str, Any], dict[str, Any]], like: dict[str, str]) -> None:
    """Each task in ``like`` (task name -> NER stage) has that stage's time limit and retry count."""
    from nerwheel.pipelines.flywheel import RETRIES, TIMEOUTS

    pipeline_spec, platform_spec = spec
    k8s = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    tasks = {**pipeline_spec["root"]["dag"]["tasks"], **pipeline_spec["components"]["comp-condition-1"]["dag"]["tasks"]}
    for name, stage in like.items():
        executor = pipeline_spec["components"][tasks[name]["componentRef"]["name"]]["executorLabel"]
        assert k8s[executor]["activeDeadlineSeconds"] == str(TIMEOUTS[stage]), name
        retry = tasks[name].get("retryPolicy")
        assert (retry or {}).get("maxRetryCount") == (RETRIES[stage].retries if RETRIES[stage] else None), name
