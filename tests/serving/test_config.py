"""config.pbtxt generation: built from Triton's ModelConfig schema, and it round-trips through it."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from nerwheel.serving.config import ServingOptions, cpu_model_config, gpu_model_configs, parse_config, to_pbtxt


def test_cpu_config_roundtrips_and_says_what_deploy_needs() -> None:
    opts = ServingOptions(max_batch_size=16, max_text_length=300, instances=2, preferred_batch_sizes=(4, 8))
    cfg = cpu_model_config("addr", 7, opts)
    text = to_pbtxt(cfg)
    back = parse_config(text)
    assert back == cfg
    assert back.backend == "python" and back.max_batch_size == 16
    assert list(back.version_policy.specific.versions) == [7]
    assert [(i.name, i.data_type, list(i.dims)) for i in back.input] == [("TEXT", mc.TYPE_STRING, [1])]
    assert [(o.name, o.data_type, list(o.dims)) for o in back.output] == [
        ("ENTITIES", mc.TYPE_STRING, [1]), ("TAG_IDS", mc.TYPE_INT32, [-1]), ("NBEST", mc.TYPE_STRING, [1])]
    assert back.parameters["n_best"].string_value == "5"
    assert list(back.dynamic_batching.preferred_batch_size) == [4, 8]
    assert back.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU and back.instance_group[0].count == 2
    assert back.parameters["max_text_length"].string_value == "300"
    assert back.parameters["tagger"].string_value == "nerwheel.model.runtime:OnnxTagger"


def test_gpu_configs_roundtrip_and_wire_the_ensemble() -> None:
    cfgs = gpu_model_configs("addr", version=3, gpus=[0])
    assert list(cfgs) == ["addr_tokenize", "addr_onnx", "addr_decode", "addr"]
    for cfg in cfgs.values():
        assert parse_config(to_pbtxt(cfg)) == cfg
        assert list(cfg.version_policy.specific.versions) == [3]
    onnx = cfgs["addr_onnx"]
    assert onnx.backend == "onnxruntime" and onnx.default_model_filename == "model.onnx"
    assert onnx.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU and list(onnx.instance_group[0].gpus) == [0]
    assert list(onnx.output[0].dims) == [-1, -1]  # any number of tags: versions with new labels swap in
    ens = cfgs["addr"]
    assert ens.platform == "ensemble"
    # Every tensor a step reads is the ensemble's input or an earlier step's output; outputs are produced.
    available = {i.name for i in ens.input}
    for step in ens.ensemble_scheduling.step:
        assert step.model_version == 3
        step_cfg = cfgs[step.model_name]
        assert set(step.input_map) == {i.name for i in step_cfg.input}
        assert set(step.input_map.values()) <= available
        assert set(step.output_map) <= {o.name for o in step_cfg.output}
        available |= set(step.output_map.values())
    assert {o.name for o in ens.output} <= available
    assert [(o.name, o.data_type, list(o.dims)) for o in ens.output] == [
        ("ENTITIES", mc.TYPE_STRING, [1]), ("TAG_IDS", mc.TYPE_INT32, [-1]), ("NBEST", mc.TYPE_STRING, [1])]
    # NBEST: a step of its own on the decode model, mapping nothing else, so Triton runs it only when it is named
    decode, nbest = [s for s in ens.ensemble_scheduling.step if s.model_name == "addr_decode"]
    assert dict(decode.input_map) == dict(nbest.input_map)
    assert set(decode.output_map) == {"ENTITIES", "TAG_IDS"} and dict(nbest.output_map) == {"NBEST": "NBEST"}
    assert cfgs["addr_decode"].parameters["n_best"].string_value == "5"


def test_a_probe_runs_the_ensemble_steps_triton_would_run() -> None:
    """deploy chains a GPU candidate's steps from the client: only those a request for the outputs needs."""
    from nerwheel.serving.deploy import _steps_for

    ens = gpu_model_configs("addr", 1, ServingOptions(n_best=3))["addr"]
    mapped = lambda steps: [(s.model_name, sorted(s.output_map)) for s in steps]  # noqa: E731
    first = [("addr_tokenize", ["attention_mask", "input_ids"]), ("addr_onnx", ["emissions"])]
    assert mapped(_steps_for(ens, {"ENTITIES"})) == [*first, ("addr_decode", ["ENTITIES", "TAG_IDS"])]
    assert mapped(_steps_for(ens, {"NBEST"})) == [*first, ("addr_decode", ["NBEST"])]
    assert len(_steps_for(ens, {"ENTITIES", "NBEST"})) == 4


def test_parse_rejects_fields_outside_the_schema() -> None:
    with pytest.raises(text_format.ParseError, match="max_batch_sise"):
        parse_config('name: "x"\nmax_batch_sise: 4\n')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be >= 1"),
        ({"max_text_length": 0}, "max_text_length must be >= 1"),
        ({"preferred_batch_sizes": (64,)}, r"preferred_batch_sizes \[64\]"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us"),
    ],
)
def test_options_fail_fast(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServingOptions(**kwargs)


def test_int8_option_reaches_the_tagger_as_a_parameter() -> None:
    assert "tagger.int8" not in ServingOptions().parameters and ServingOptions().tagger_options == {}
    opts = ServingOptions(int8=True)
    assert opts.parameters["tagger.int8"] == "true" and opts.tagger_options == {"int8": True}
    cfg = parse_config(to_pbtxt(cpu_model_config("addr", 1, opts)))
    assert cfg.parameters["tagger.int8"].string_value == "true"
