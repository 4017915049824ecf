"""Triton ``config.pbtxt`` files, built as ``ModelConfig`` protobuf messages.

Configs are generated from Triton's own schema (``model_config_pb2``) and
printed with ``google.protobuf.text_format``, never glued from string
templates: a misspelt field fails here, at generation time, instead of in the
server's log. :func:`parse_config` reads them back with the same schema.

Two layouts are produced for one exported model:

* **CPU** (what ``deploy`` loads here): one python-backend model that runs
  :class:`nerwheel.model.runtime.OnnxTagger` (tokenise, ONNX Runtime,
  Viterbi or beam search, spans) in-process. ``TEXT`` in, ``ENTITIES`` (JSON),
  ``TAG_IDS`` and, when a client asks for it, ``NBEST`` (JSON: the
  ``n_best`` best readings with their probabilities) out.
* **GPU** (production on a Triton GPU image): an ensemble of a python
  ``tokenize`` step, an ``onnxruntime`` backend model over ``model.onnx`` on
  ``KIND_GPU``, and a python ``decode`` step, with the same ``TEXT`` ->
  ``ENTITIES``/``TAG_IDS``/``NBEST`` interface, so clients do not know which
  one runs. It decodes by the card's search like the CPU layout. ``NBEST``
  is a step of its own on the same ``decode`` model, mapping only that
  output: Triton asks a step for every output it maps, and skips a step none
  of whose outputs the client requested, so the n best readings (several
  times a Viterbi pass) are computed only for requests that name ``NBEST``.
  A model trained with knowledge-base lexicon features (the card's
  ``lexicon``) gets one more tensor between the first two steps: the tokenize
  step computes the ``lexicon`` rows and the ONNX model reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from nerwheel.errors import ConfigError
from nerwheel.model.layout import ONNX_FILE
from nerwheel.model.lexicon import INPUT_NAME as LEXICON
from nerwheel.serving.options import ServingOptions

__all__ = [
    "INPUT_TEXT",
    "OUTPUT_ENTITIES",
    "OUTPUT_NBEST",
    "OUTPUT_TAG_IDS",
    "ServingOptions",
    "cpu_model_config",
    "gpu_model_configs",
    "parse_config",
    "to_pbtxt",
    "with_versions",
]

INPUT_TEXT = "TEXT"
OUTPUT_ENTITIES = "ENTITIES"
OUTPUT_TAG_IDS = "TAG_IDS"
OUTPUT_NBEST = "NBEST"
# Which handler a python-backend model runs (nerwheel.serving.backend.build_handler).
ROLE = "nerwheel_role"
# The model clients call, when the Triton model is a step of it (entities name it: backend.served_source).
SERVED_NAME = "served_name"
# Tensors between the GPU ensemble's steps (names match the ONNX graph's inputs/outputs; a lexicon model's graph
# also reads LEXICON, nerwheel.model.lexicon.INPUT_NAME).
INPUT_IDS, ATTENTION_MASK, EMISSIONS = "input_ids", "attention_mask", "emissions"


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: int
    dims: Sequence[int] = field(default_factory=lambda: [-1])


def _io(tensors: Sequence[_Tensor], cls: type) -> list:
    return [cls(name=t.name, data_type=t.dtype, dims=list(t.dims)) for t in tensors]


_TEXT = _Tensor(INPUT_TEXT, mc.TYPE_STRING, [1])
_ENTITIES = _Tensor(OUTPUT_ENTITIES, mc.TYPE_STRING, [1])
_TAG_IDS = _Tensor(OUTPUT_TAG_IDS, mc.TYPE_INT32, [-1])
_NBEST = _Tensor(OUTPUT_NBEST, mc.TYPE_STRING, [1])
_IDS = _Tensor(INPUT_IDS, mc.TYPE_INT64, [-1])
_MASK = _Tensor(ATTENTION_MASK, mc.TYPE_INT64, [-1])


def _batching(opts: ServingOptions) -> mc.ModelDynamicBatching:
    return mc.ModelDynamicBatching(
        max_queue_delay_microseconds=opts.max_queue_delay_us, preferred_batch_size=list(opts.preferred_batch_sizes)
    )


def _params(values: dict[str, str]) -> dict[str, mc.ModelParameter]:
    return {k: mc.ModelParameter(string_value=v) for k, v in values.items()}


def _base(name: str, version: int | None, opts: ServingOptions) -> mc.ModelConfig:
    cfg = mc.ModelConfig(name=name, max_batch_size=opts.max_batch_size)
    if version is not None:
        with_versions(cfg, [version])
    return cfg


def with_versions(cfg: mc.ModelConfig, versions: Sequence[int]) -> mc.ModelConfig:
    """Serve exactly ``versions`` (``version_policy: specific``): how deploy switches and rolls back."""
    cfg.version_policy.CopyFrom(mc.ModelVersionPolicy(specific=mc.ModelVersionPolicy.Specific(versions=list(versions))))
    return cfg


def python_model_config(name: str, version: int | None, opts: ServingOptions, role: str,
                        parameters: dict[str, str] | None = None) -> mc.ModelConfig:
    """A python-backend model on CPU instances with dynamic batching, without inputs and outputs yet.

    The shape every CPU-served task shares (tagger, classifier, embedding
    encoder): ``opts``' batch size, versions, queue delay, instances and
    :attr:`~ServingOptions.runtime_parameters`, plus ``parameters`` and the
    ``nerwheel_role`` that picks the handler in the backend.
    """
    cfg = _base(name, version, opts)
    cfg.backend = "python"
    cfg.dynamic_batching.CopyFrom(_batching(opts))
    cfg.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=opts.instances))
    for k, v in _params({**opts.runtime_parameters, **(parameters or {}), ROLE: role}).items():
        cfg.parameters[k].CopyFrom(v)
    return cfg


def cpu_model_config(name: str, version: int | None = None, options: ServingOptions | None = None) -> mc.ModelConfig:
    """The python-backend model: TEXT -> ENTITIES (JSON bytes) + TAG_IDS (int32, padded with -1) + NBEST (JSON)."""
    opts = options or ServingOptions()
    cfg = python_model_config(name, version, opts, "tagger", opts.parameters)
    cfg.input.extend(_io([_TEXT], mc.ModelInput))
    cfg.output.extend(_io([_ENTITIES, _TAG_IDS, _NBEST], mc.ModelOutput))
    return cfg


def gpu_model_configs(
    name: str, version: int, options: ServingOptions | None = None, *, gpus: Sequence[int] = (),
    lexicon_columns: int = 0,
) -> dict[str, mc.ModelConfig]:
    """The GPU layout: ``{name}_tokenize`` -> ``{name}_onnx`` (onnxruntime, KIND_GPU) -> ``{name}_decode``.

    ``{name}`` is the ensemble clients call. Every step pins ``version`` so a
    deploy switches all four models together. ``{name}_decode`` serves two
    steps: ``ENTITIES`` + ``TAG_IDS``, and ``NBEST`` (at most
    ``options.n_best`` readings), which runs only when a request names it. The emissions' tag dimension is left
    open (``[-1, -1]``): Triton keeps one config per model, not per version,
    and during a hot swap a step serves the old and the new version side by
    side; a new label set (more or fewer tags) must not make the ensemble that
    is still being served fail its shape check (seen in the real tritonserver).
    ``lexicon_columns`` (> 0): the model reads that many knowledge-base lexicon
    feature columns (its card's ``lexicon.width``), so the tokenize step also
    sends ``lexicon`` (float32 ``[sequence, columns]`` per text) to the ONNX
    model. The column count is written out: the graph fixes it, and Triton's
    onnxruntime backend refuses a ``-1`` where the model has a fixed input
    dimension (its ``CompareDimsSupported``).
    """
    opts = options or ServingOptions()
    tok, onnx, dec = f"{name}_tokenize", f"{name}_onnx", f"{name}_decode"
    emissions = _Tensor(EMISSIONS, mc.TYPE_FP32, [-1, -1])
    if lexicon_columns < 0:
        raise ConfigError(f"lexicon_columns must be >= 0 (0: no lexicon features), got {lexicon_columns}")
    features = [_Tensor(LEXICON, mc.TYPE_FP32, [-1, lexicon_columns])] if lexicon_columns else []
    between = {INPUT_IDS: "ids", ATTENTION_MASK: "mask", **({LEXICON: "lexicon"} if features else {})}

    tokenize = _base(tok, version, opts)
    tokenize.backend = "python"
    tokenize.input.extend(_io([_TEXT], mc.ModelInput))
    tokenize.output.extend(_io([_IDS, _MASK, *features], mc.ModelOutput))
    tokenize.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=opts.instances))
    for k, v in _params({**opts.parameters, ROLE: "tokenize"}).items():
        tokenize.parameters[k].CopyFrom(v)

    model = _base(onnx, version, opts)
    model.backend = "onnxruntime"
    model.default_model_filename = ONNX_FILE
    model.input.extend(_io([_IDS, _MASK, *features], mc.ModelInput))
    model.output.extend(_io([emissions], mc.ModelOutput))
    model.dynamic_batching.CopyFrom(_batching(opts))
    model.instance_group.append(
        mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_GPU, count=opts.instances, gpus=list(gpus))
    )

    decode = _base(dec, version, opts)
    decode.backend = "python"
    decode.input.extend(_io([_TEXT, _MASK, emissions], mc.ModelInput))
    decode.output.extend(_io([_ENTITIES, _TAG_IDS, _NBEST], mc.ModelOutput))
    decode.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=opts.instances))
    for k, v in _params({ROLE: "decode", SERVED_NAME: name, "n_best": str(opts.n_best)}).items():
        decode.parameters[k].CopyFrom(v)  # SERVED_NAME: entities name the ensemble

    ensemble = _base(name, version, opts)
    ensemble.platform = "ensemble"
    ensemble.input.extend(_io([_TEXT], mc.ModelInput))
    ensemble.output.extend(_io([_ENTITIES, _TAG_IDS, _NBEST], mc.ModelOutput))
    Step = mc.ModelEnsembling.Step
    decoded = {INPUT_TEXT: INPUT_TEXT, ATTENTION_MASK: "mask", EMISSIONS: "emissions"}
    ensemble.ensemble_scheduling.step.extend([
        Step(model_name=tok, model_version=version, input_map={INPUT_TEXT: INPUT_TEXT}, output_map=between),
        Step(model_name=onnx, model_version=version, input_map=between, output_map={EMISSIONS: "emissions"}),
        Step(model_name=dec, model_version=version, input_map=decoded,
             output_map={OUTPUT_ENTITIES: OUTPUT_ENTITIES, OUTPUT_TAG_IDS: OUTPUT_TAG_IDS}),
        # the same decode model asked for NBEST alone: Triton skips this step unless a request names NBEST
        Step(model_name=dec, model_version=version, input_map=decoded, output_map={OUTPUT_NBEST: OUTPUT_NBEST}),
    ])
    return {tok: tokenize, onnx: model, dec: decode, name: ensemble}


def to_pbtxt(cfg: mc.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def parse_config(text: str) -> mc.ModelConfig:
    """Parse ``config.pbtxt`` text against Triton's schema (raises ``text_format.ParseError``)."""
    return text_format.Parse(text, mc.ModelConfig())
