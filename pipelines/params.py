"""Pipeline arguments from files and overrides, checked against the pipeline's own parameter list.

The parameter list is read from the compiled pipeline (names, types, defaults), so
a parameter added to the DAG is accepted everywhere at once, and a misspelt key in a
``--params`` file is an error that names the key and the allowed ones, not a
silently ignored setting on a cluster run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nerwheel.errors import ConfigError

__all__ = ["ParamError", "Parameter", "check_arguments", "check_settings", "coerce", "load_params_file", "parameters", "parse_assignments"]

_TYPES: dict[str, type] = {"String": str, "Integer": int, "Float": float, "Boolean": bool}


class ParamError(ConfigError):
    """A pipeline argument that the pipeline does not take, or of the wrong type."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: type
    default: Any
    description: str


def parameters(pipeline: Any = None) -> dict[str, Parameter]:
    """The pipeline's parameters, in declaration order."""
    if pipeline is None:
        from nerwheel.pipelines.flywheel import flywheel as pipeline
    out = {}
    for name, spec in pipeline.component_spec.inputs.items():
        if spec.type not in _TYPES:
            raise ParamError(f"pipeline parameter {name} has unsupported type {spec.type}")
        out[name] = Parameter(name, _TYPES[spec.type], spec.default, spec.description or "")
    return out


def coerce(p: Parameter, value: Any, source: str, *, text: bool = False) -> Any:
    """``value`` as parameter ``p`` takes it, or a :class:`ParamError` naming ``source``, the type and the default.

    A value from a file keeps its YAML/JSON type (ints widen to floats); ``text=True`` reads a
    ``NAME=VALUE`` string (``--set``): numbers are parsed, a boolean is true for 1/true/yes.
    """
    want = p.type
    if text and want is not str:
        try:
            return (value.lower() in ("1", "true", "yes")) if want is bool else want(value)
        except ValueError:
            what = {int: "an integer", float: "a number"}.get(want, want.__name__)
            raise ParamError(f"{source}: {p.name} takes {what}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is str and isinstance(value, Path):
        return str(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ParamError(f"{source}: {p.name} must be {want.__name__} (default {p.default!r}), got {value!r}")
    return value


def check_arguments(arguments: Mapping[str, Any], pipeline: Any = None, *, source: str = "arguments") -> dict[str, Any]:
    """Validate names and types of pipeline arguments; returns them with ints widened to floats where needed."""
    params = parameters(pipeline)
    unknown = sorted(set(arguments) - set(params))
    if unknown:
        raise ParamError(f"{source}: unknown pipeline parameter(s) {', '.join(unknown)}; "
                         f"the pipeline takes: {', '.join(params)}")
    out = {k: coerce(params[k], v, source) for k, v in arguments.items()}
    _check_gate_policy(out, source)
    if "shards" in params:  # the flywheel's own settings (another task's DAG has its own)
        check_settings({**{k: p.default for k, p in params.items()}, **out}, source)
    return out


def check_settings(values: Mapping[str, Any], source: str) -> None:
    """Every enumerated or bounded flywheel parameter, checked when a run is submitted, not hours into it.

    ``values`` are the effective arguments (the pipeline's defaults, then the given ones). All problems are
    reported together, each naming the parameter and what it takes.
    """
    from nerwheel.errors import NerwheelError
    from nerwheel.shards import MAX_SHARDS
    from nerwheel.stages.annotate import TEACHER_KINDS
    from nerwheel.stages.export import QUANTIZE_MODES

    problems: list[str] = []

    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if values[name] not in allowed:
            problems.append(f"{name} is {values[name]!r}; allowed: {', '.join(repr(a) for a in allowed)}")

    def at_least(name: str, low: float, high: float | None = None) -> None:
        v = values[name]
        if v < low or (high is not None and v > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            problems.append(f"{name} is {v}; it must be {bound}")

    choice("teacher", TEACHER_KINDS)
    choice("quantize", ("", *QUANTIZE_MODES))
    at_least("shards", 1, MAX_SHARDS)
    at_least("replay_ratio", 0)
    at_least("pseudo_label_threshold", 0, 1)
    at_least("nodes", 1)
    at_least("gpus_per_node", 0)
    at_least("llm_max_tokens", 1)
    at_least("synth_short", 0)
    at_least("synth_long", 0)
    if values["teacher"] == "llm" and not (str(values["llm_endpoint"]).strip() and str(values["llm_model"]).strip()):
        problems.append("teacher 'llm' needs llm_endpoint and llm_model")
    import pydantic

    from nerwheel.stages.merge import MergeConfig

    try:
        kinds = list(MergeConfig(precedence=values["precedence"]).precedence)
    except pydantic.ValidationError as e:
        problems.append(f"precedence: {'; '.join(err['msg'] for err in e.errors())}")
        kinds = []
    needed = ["gold", values["teacher"], "model", "synthetic"]
    missing = [k for k in needed if k not in kinds]
    if kinds and missing:
        problems.append(f"precedence {values['precedence']!r} lacks {', '.join(missing)} (the run's labels come "
                        f"from {', '.join(needed)}; model: the production model's pseudo-labels)")
    try:  # the training settings as the train step will resolve them
        from nerwheel.components.steps.train import resolve_config

        resolve_config(train_path="train", backbone=str(values["backbone"]), epochs=int(values["epochs"]),
                       seed=int(values["train_seed"]), overrides=str(values["train_overrides"]),
                       model_path="model")
    except NerwheelError as e:
        problems.append(f"train_overrides/backbone/epochs: {e}")
    if problems:
        raise ParamError(f"{source}: " + "; ".join(problems))


#: Pipeline parameter -> :class:`nerwheel.stages.gate.GatePolicy` field.
GATE_PARAMETERS = {"min_delta": "min_delta", "max_type_drop": "max_type_drop", "noise_spans": "noise_spans",
                   "min_support": "min_support", "gate_metric": "metric"}


def _check_gate_policy(arguments: Mapping[str, Any], source: str) -> None:
    """Check the gate's settings now, not after a training run on a GPU node."""
    import pydantic

    from nerwheel.stages.gate import GatePolicy

    given = {field: arguments[name] for name, field in GATE_PARAMETERS.items() if name in arguments}
    try:
        GatePolicy(**given)
    except pydantic.ValidationError as e:
        names = {f: n for n, f in GATE_PARAMETERS.items()}
        problems = "; ".join(f"{names.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}" for err in e.errors())
        raise ParamError(f"{source}: bad gate setting ({problems})") from None


def parse_assignments(pairs: Iterable[str], pipeline: Any = None) -> dict[str, Any]:
    """``--set name=value`` pairs, typed by the pipeline's parameter list."""
    params = parameters(pipeline)
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in params:
            raise ParamError(f"--set {pair!r}: expected NAME=VALUE with NAME one of: {', '.join(params)}")
        out[name] = coerce(params[name], raw, f"--set {pair!r}", text=True)
    return out


def load_params_file(path: str | Path, pipeline: Any = None) -> dict[str, Any]:
    """Read pipeline arguments from a YAML or JSON mapping and validate them."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"{p}: no such parameters file")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ParamError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {e}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ParamError(f"{p}: expected a mapping of parameter: value, got {type(data).__name__}")
    return check_arguments(data, pipeline, source=str(p))
