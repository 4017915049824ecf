"""The Triton HPA scales on Triton's own metrics: the metric names the HPA asks for are the ones the Prometheus
adapter rules produce, and the Triton series those rules read are what a real tritonserver exposes on its
metrics port once it has served requests (the session's server, not a copy of its output)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import yaml

from nerwheel.serving.client import Client
from nerwheel.serving.deploy import deploy

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def adapter_rules() -> list[dict]:
    cm = yaml.safe_load((MANIFESTS / "monitoring" / "prometheus-adapter-config.yaml").read_text())
    return yaml.safe_load(cm["data"]["config.yaml"])["rules"]


def hpa_pod_metrics() -> set[str]:
    hpa = yaml.safe_load((MANIFESTS / "base" / "triton-hpa.yaml").read_text())
    return {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}


def triton_series(rule: dict) -> set[str]:
    """The Triton series a rule reads (its seriesQuery and every metric named in its metricsQuery)."""
    text = rule["seriesQuery"] + " " + rule["metricsQuery"]
    return set(re.findall(r"\b(nv_[a-z_]+)\{", text))


def test_the_hpa_asks_for_the_metrics_the_adapter_makes() -> None:
    made = {r["name"]["as"] for r in adapter_rules()}
    assert hpa_pod_metrics() == made == {"triton_queue_time_us_per_request", "triton_inferences_per_second"}
    for rule in adapter_rules():
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]


def test_a_serving_triton_exposes_every_series_the_rules_read(triton, export_v1: Path, model_name: str) -> None:
    assert deploy(export_v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    client = Client(triton.url, model=model_name)
    for text in ("浙江省杭州市西湖区文三路90号", "江苏省南京市鼓楼区中山路1号"):  # two requests (one text each)
        client.predict([text])
    with urllib.request.urlopen(f"http://127.0.0.1:{triton.server.metrics_port}/metrics", timeout=10) as resp:
        exposed = resp.read().decode("utf-8")
    needed = set().union(*(triton_series(r) for r in adapter_rules()))
    assert needed == {"nv_inference_queue_duration_us", "nv_inference_request_success", "nv_inference_count"}
    for series in needed:
        values = re.findall(rf'^{series}\{{[^}}]*model="{re.escape(model_name)}"[^}}]*\}} (\S+)$', exposed, re.M)
        assert values, f"{series} for {model_name} is not on Triton's metrics port"
        if series != "nv_inference_queue_duration_us":  # counts: the two requests (two texts) above
            assert float(values[0]) >= 2, (series, values)
