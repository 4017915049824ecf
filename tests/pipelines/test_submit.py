"""Submitting to a cluster: argument building only.

No KFP API server runs here, and faking its HTTP answers would test the fake, not
the submission: these tests check what nerwheel hands to ``kfp.Client`` (the
plan), the typed parameters and the CLI. The client calls themselves are the SDK's
and are exercised by users against their cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("kfp")

from nerwheel.cli import cli  # noqa: E402
from nerwheel.pipelines.params import ParamError, check_arguments, load_params_file, parameters  # noqa: E402
from nerwheel.pipelines.submit import SubmitError, SubmitRequest, kfp_cron, plan  # noqa: E402


@pytest.mark.parametrize(
    ("cron", "expected"),
    [("0 3 * * 1", "0 0 3 * * 1"), ("*/15 * * * *", "0 */15 * * * *"), ("30 0 3 * * MON", "30 0 3 * * MON")],
)
def test_cron_becomes_kfp_six_field_cron(cron: str, expected: str) -> None:
    assert kfp_cron(cron) == expected


@pytest.mark.parametrize("bad", ["weekly", "0 3 * *", "0 3 * * 1 2 3", "0 3 * * ;rm"])
def test_bad_schedules_are_refused_with_an_example(bad: str) -> None:
    with pytest.raises(SubmitError, match="e.g. '0 3 \\* \\* 1' for Mondays at 03:00"):
        kfp_cron(bad)


def test_one_run_plan() -> None:
    llm = {"teacher": "llm", "llm_endpoint": "http://llm:8000/v1", "llm_model": "qwen"}
    req = SubmitRequest(host="http://localhost:8080", arguments={"epochs": 3, "min_delta": 0, **llm},
                        experiment="flywheel", run_name="turn-7", pipeline_root="s3://bucket/root")
    (call,) = plan(req)
    assert call.method == "create_run_from_pipeline_func"
    assert call.kwargs == {"pipeline_func": "flywheel", "arguments": {"epochs": 3, "min_delta": 0.0, **llm},
                           "run_name": "turn-7", "experiment_name": "flywheel", "namespace": None,
                           "pipeline_root": "s3://bucket/root", "enable_caching": None}
    assert isinstance(call.kwargs["arguments"]["min_delta"], float)  # widened to the parameter's type


def test_recurring_run_plan() -> None:
    calls = plan(SubmitRequest(host="https://kf.example.com/pipeline", schedule="0 3 * * 1", namespace="team-a"))
    assert [c.method for c in calls] == ["create_experiment", "create_recurring_run"]
    assert calls[0].kwargs == {"name": "nerwheel", "namespace": "team-a"}
    rec = calls[1].kwargs
    assert rec["cron_expression"] == "0 0 3 * * 1" and rec["job_name"] == "nerwheel-flywheel-recurring"
    assert rec["max_concurrency"] == 1 and rec["no_catchup"] is True and rec["params"] == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "localhost:8080"}, "must be the KFP API URL"),
        ({"host": "http://h", "pipeline_root": "/tmp/root"}, "must be an object-store URI"),
        ({"host": "http://h", "arguments": {"epoch": 3}}, "unknown pipeline parameter\\(s\\) epoch"),
        ({"host": "http://h", "arguments": {"epochs": "3"}}, "epochs must be int \\(default 0\\), got '3'"),
        ({"host": "http://h", "arguments": {"epochs": True}}, "epochs must be int"),
        ({"host": "http://h", "max_concurrency": 0}, "max_concurrency must be at least 1"),
    ],
)
def test_bad_requests_fail_before_any_call(kwargs: dict, message: str) -> None:
    with pytest.raises((SubmitError, ParamError), match=message):
        SubmitRequest(**kwargs)


def test_params_file_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("teacher: llm\nllm_endpoint: http://llm:8000/v1\nllm_model: qwen\nepochs: 4\n"
                                     "max_type_drop: 0\n")
    assert load_params_file(tmp_path / "p.yaml") == {"teacher": "llm", "llm_endpoint": "http://llm:8000/v1",
                                                     "llm_model": "qwen", "epochs": 4, "max_type_drop": 0.0}
    (tmp_path / "p.json").write_text(json.dumps({"backbone": "e5-small"}))
    assert load_params_file(tmp_path / "p.json") == {"backbone": "e5-small"}
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ParamError, match="expected a mapping of parameter: value, got list"):
        load_params_file(tmp_path / "bad.yaml")
    (tmp_path / "gate.yaml").write_text("gate_metric: loose\nnoise_spans: -1\n")
    with pytest.raises(ParamError, match=r"gate.yaml: bad gate setting \(noise_spans: .*greater than or equal to 0; "
                                         r"gate_metric: .*'strict', 'partial' or 'type'\)"):
        load_params_file(tmp_path / "gate.yaml")  # refused before a run trains anything
    (tmp_path / "typo.yaml").write_text("min_detla: 0.1\n")
    with pytest.raises(ParamError, match=r"typo.yaml: unknown pipeline parameter\(s\) min_detla; the pipeline takes: "):
        load_params_file(tmp_path / "typo.yaml")


def test_parameter_list_comes_from_the_pipeline() -> None:
    params = parameters()
    assert params["epochs"].type is int and params["min_delta"].type is float and params["teacher"].default == "kb"
    assert check_arguments({}) == {}


def test_cli_dry_run_prints_the_calls(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("epochs: 5\n")
    result = CliRunner().invoke(cli, ["submit", "--host", "http://localhost:8080", "--schedule", "0 3 * * 1",
                                      "--params", str(tmp_path / "p.yaml"), "--set", "shards=16", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("create_experiment(") and lines[1].startswith("create_recurring_run(")
    rec = json.loads(lines[1][len("create_recurring_run("):-1])
    assert rec["params"] == {"epochs": 5, "shards": 16} and rec["cron_expression"] == "0 0 3 * * 1"


def test_cli_nodes_and_gpus_per_node_are_the_training_parameters() -> None:
    result = CliRunner().invoke(cli, ["submit", "--host", "http://h", "--nodes", "2", "--gpus-per-node", "4",
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    call = json.loads(result.output.strip()[len("create_run_from_pipeline_func("):-1])
    assert call["arguments"] == {"nodes": 2, "gpus_per_node": 4}
    result = CliRunner().invoke(cli, ["submit", "--host", "http://h", "--nodes", "0", "--dry-run"])
    assert result.exit_code == 1 and "nodes is 0; it must be at least 1" in result.output


def test_a_local_run_refuses_several_nodes_before_any_task(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "run"), "--set", "nodes=2",
                                      "--gpus-per-node", "2"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "nodes is 2" in result.output and "nerwheel submit --nodes N" in result.output
    assert not (tmp_path / "run").exists()


def test_cli_errors_are_one_line_without_traceback() -> None:
    result = CliRunner().invoke(cli, ["submit", "--host", "http://h", "--set", "epochs=many", "--dry-run"])
    assert result.exit_code == 1 and "epochs takes an integer" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["submit", "--host", "http://h", "--schedule", "weekly", "--dry-run"])
    assert result.exit_code == 1 and "is not a cron expression" in result.output


def test_cli_compile_writes_the_ir_and_lists_parameters(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path / "p.yaml")])
    assert result.exit_code == 0 and (tmp_path / "p.yaml").read_text().startswith("# PIPELINE DEFINITION")
    listed = CliRunner().invoke(cli, ["compile", "--list-params"]).output.splitlines()
    assert [ln.split()[0] for ln in listed] == list(parameters())



def test_submit_to_a_host_with_nothing_listening_is_one_sentence(tmp_path: Path) -> None:
    """The SDK's 100-line urllib3 traceback becomes one line that says what to check."""
    from nerwheel.serving.server import free_port

    host = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["submit", "--host", host])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot reach the Kubeflow Pipelines API at {host} ([Errno 111] Connection refused): check that "
        "--host is the KFP API URL and is reachable from here, e.g. `kubectl port-forward -n kubeflow "
        "svc/ml-pipeline-ui 8080:80` and --host http://localhost:8080"]


def test_a_refusing_api_is_named_by_its_status() -> None:
    import kfp_server_api

    from nerwheel.pipelines.submit import unreachable

    err = unreachable("http://h:8080", kfp_server_api.ApiException(status=403, reason="Forbidden"))
    assert "cannot reach the Kubeflow Pipelines API at http://h:8080 (HTTP 403 Forbidden)" in str(err)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"quantize": "int4"}, "quantize is 'int4'; allowed: '', 'int8'"),
        ({"teacher": "gpt"}, "teacher is 'gpt'; allowed: 'kb', 'llm'"),
        ({"teacher": "llm", "llm_model": "qwen"}, "teacher 'llm' needs llm_endpoint and llm_model"),
        ({"shards": 0}, "shards is 0; it must be between 1 and 256"),
        ({"shards": 1000}, "shards is 1000; it must be between 1 and 256"),
        ({"pseudo_label_threshold": 1.5}, "pseudo_label_threshold is 1.5; it must be between 0 and 1"),
        ({"replay_ratio": -1}, "replay_ratio is -1.0; it must be at least 0"),
        ({"nodes": 0, "gpus_per_node": -1}, "nodes is 0; it must be at least 1; gpus_per_node is -1; it must be at "
                                            "least 0"),
        ({"precedence": "gold,kb,synthetic"}, "precedence 'gold,kb,synthetic' lacks model"),
        ({"teacher": "llm", "llm_endpoint": "http://l/v1", "llm_model": "m", "precedence": "gold,kb,model,synthetic"},
         "precedence 'gold,kb,model,synthetic' lacks llm"),
        ({"precedence": "gold,kb,kb,model,synthetic"}, "precedence: .*kb more than once"),
        ({"train_overrides": "training.epoch=3"}, "unknown key 'training.epoch'; did you mean 'training.epochs'"),
        ({"backbone": "tiny", "train_overrides": "training.learning_rate=-1"}, "training.learning_rate"),
    ],
)
def test_every_enumerated_and_bounded_parameter_is_checked_at_submit(arguments: dict, message: str) -> None:
    """Refused when the run is submitted, with the parameter and what it takes, not after hours of GPU training."""
    with pytest.raises(ParamError, match=f"submit arguments: .*{message}"):
        SubmitRequest(host="http://h", arguments=arguments)


def test_all_problems_are_reported_at_once_and_the_cli_exits_1() -> None:
    result = CliRunner().invoke(cli, ["submit", "--host", "http://h", "--set", "quantize=fp8", "--set", "shards=0",
                                      "--dry-run"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "quantize is 'fp8'" in result.output and "shards is 0" in result.output
