"""Config files as users write them: YAML or INI in, a typed pydantic model out, one line per problem.

Task-neutral machinery shared by every config schema (training today): it
knows nothing of models or data. A schema is a pydantic model of sections that
forbid unknown keys; :class:`Renames` maps keys users bring from other tools
(Hugging Face ``model.name``, ``scheduler.num_warmup_steps``, ...) onto the
schema's own, so a config from an existing setup loads as it is.

Values come in two layers: the file, then command-line overrides on top. Each
problem names where its value came from (``train.yaml line 7`` or ``command
line``), the key as the user spelled it, and the fix; an unknown key gets the
nearest allowed key ("did you mean") and the keys allowed in its section.
:func:`dump` writes a model back as commented YAML or INI, chosen by the file
suffix, and what it writes loads back to the same model.
"""

from __future__ import annotations

import configparser
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

# ConfigError (nerwheel.errors, re-exported here): a config file or override that cannot be used; one line per
# problem, each naming where, the key and the fix.
from nerwheel.errors import ConfigError

__all__ = ["INI_SUFFIXES", "ConfigError", "Layer", "Renames", "dump", "load", "merge_overrides", "parse_overrides",
           "read_file", "render", "validate"]

M = TypeVar("M", bound=BaseModel)
Path_ = tuple[str, ...]

#: File suffixes read and written as INI; everything else is YAML.
INI_SUFFIXES = (".ini", ".cfg", ".conf")
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Renames:
    """Keys from other tools -> the schema's key, as dotted paths (``{"model.name": "model.model_id"}``)."""

    table: Mapping[str, str] = field(default_factory=dict)

    def canonical(self, dotted: str) -> str:
        return self.table.get(dotted, dotted)

    def spellings(self, parent: Path_) -> list[str]:
        """Foreign keys accepted directly under ``parent``."""
        return [src.rsplit(".", 1)[-1] for src in self.table if tuple(src.split(".")[:-1]) == parent]


@dataclass
class Layer:
    """One source of values: a nested dict, where it came from, and the line each key was written on.

    After :meth:`renamed`, ``spelled`` maps a schema path back to the key the user wrote.
    """

    data: dict[str, Any]
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)
    spelled: dict[Path_, str] = field(default_factory=dict)

    def where(self, path: Path_) -> str:
        line = self.lines.get(path)
        return f"{self.source} line {line}" if line else self.source

    def has(self, path: Path_) -> bool:
        node: Any = self.data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return False
            node = node[part]
        return True

    def renamed(self, renames: Renames) -> Layer:
        """Move foreign keys to the schema's; the same key given twice with different values is a problem."""
        out = Layer(_copy(self.data), self.source, dict(self.lines), dict(self.spelled))
        problems = []
        for src, dst in renames.table.items():
            s, d = tuple(src.split(".")), tuple(dst.split("."))
            if not out.has(s):
                continue
            value = _pop(out.data, s)
            if out.has(d) and _get(out.data, d) != value:
                problems.append(f"{out.where(s)}: {src}={value!r} and {dst}={_get(out.data, d)!r} are the same "
                                f"setting ({src} is read as {dst}); keep one")
                continue
            _put(out.data, d, value)
            if s in out.lines:
                out.lines[d] = out.lines.pop(s)
            out.spelled[d] = src
        if problems:
            raise ConfigError("\n".join(problems))
        return out


# -- reading ------------------------------------------------------------------------------------------
def read_file(path: str | Path) -> Layer:
    """A YAML (default) or INI (``.ini``/``.cfg``/``.conf``) file as a layer, with the line of every key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in INI_SUFFIXES:
        return Layer(_read_ini(text, path), str(path), _ini_lines(text))
    try:
        data = yaml.safe_load(text) or {}
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (section: {{key: value}})")
    lines: dict[Path_, int] = {}
    _yaml_lines(node, (), lines)
    return Layer(data, str(path), lines)


def _read_ini(text: str, path: Path) -> dict[str, Any]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the user's key case in errors
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid INI file: {exc}") from None
    data: dict[str, Any] = {}
    for section in parser.sections():
        node = data
        for part in section.split("."):  # [model.lora] -> model: {lora: {...}}
            node = node.setdefault(part, {})
        node.update({k: _ini_value(v) for k, v in parser.items(section)})
    return data


def _ini_value(raw: str) -> Any:
    """INI values are strings; read empty as null and lists written as YAML flow (``[a, b]``)."""
    raw = raw.strip()
    if raw == "" or raw.lower() in ("none", "null"):
        return None
    if raw.startswith("["):
        return yaml.safe_load(raw)
    return raw


_INI_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_INI_KEY = re.compile(r"^([^\s=:#;\[][^=:]*?)\s*[=:]")


def _ini_lines(text: str) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    section: Path_ = ()
    for n, line in enumerate(text.splitlines(), start=1):
        if m := _INI_SECTION.match(line):
            section = tuple(m.group(1).strip().split("."))
            lines.setdefault(section, n)
        elif section and (m := _INI_KEY.match(line)):
            lines.setdefault((*section, m.group(1).strip()), n)
    return lines


def _yaml_lines(node: Any, path: Path_, out: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            out.setdefault(sub, key.start_mark.line + 1)
            _yaml_lines(value, sub, out)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["training.batch_size=16", "model.head=softmax"]`` -> a nested dict (values read as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. training.epochs=5)")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    return out


def merge_overrides(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` on top of ``base``, section by section (nested mappings merge, values replace)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_overrides(out[k], v)
        else:
            out[k] = v
    return out


# -- validating ---------------------------------------------------------------------------------------
def load(schema: type[M], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
         renames: Renames = Renames()) -> M:
    """Read ``path`` (YAML or INI by suffix), put ``overrides`` on top, validate against ``schema``."""
    layers = [read_file(path)] if path is not None else []
    if overrides:
        layers.append(Layer(dict(overrides), COMMAND_LINE))
    return validate(schema, layers, renames=renames)


def validate(schema: type[M], layers: Layer | Iterable[Layer], *, renames: Renames = Renames()) -> M:
    """Merge ``layers`` (later ones win) and validate; every problem on its own line, naming its layer."""
    layers = [layers] if isinstance(layers, Layer) else list(layers)
    layers = [layer.renamed(renames) for layer in layers]
    data: dict[str, Any] = {}
    for layer in layers:
        data = merge_overrides(data, layer.data)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(schema, err, layers, renames) for err in exc.errors()]
        raise ConfigError("\n".join(dict.fromkeys(problems))) from None


def _origin(layers: list[Layer], loc: Path_) -> Layer | None:
    """The layer a value at ``loc`` came from: the last one that has it."""
    for layer in reversed(layers):
        if layer.has(loc):
            return layer
    return None


def _problem(schema: type[BaseModel], err: Any, layers: list[Layer], renames: Renames) -> str:
    loc = tuple(str(p) for p in err["loc"])
    layer = None if _section(schema, loc) else _origin(layers, loc)
    if layer is None:  # a section-level rule over keys that may come from several layers
        touching = [lyr for lyr in layers if lyr.has(loc)]
        where = " + ".join(lyr.where(loc) for lyr in touching) or (layers[0].source if layers else "config")
    else:
        where = layer.where(loc)
    key = ".".join(loc)
    if layer is not None and loc in layer.spelled:
        key = f"{layer.spelled[loc]} (read as {key})"
    if err["type"] == "extra_forbidden":
        return f"{where}: {_unknown(schema, loc, renames)}"
    if err["type"] == "value_error":  # a validator's own sentence names the keys and the fix
        msg = err["msg"].removeprefix("Value error, ")
        return f"{where}: {msg}" if not key or ".".join(loc) in msg else f"{where}: {key}: {msg}"
    return f"{where}: {key}: {err['msg']} (got {err.get('input')!r})"


def _section(schema: type[BaseModel], parent: Path_) -> type[BaseModel] | None:
    model: Any = schema
    for part in parent:
        f = model.model_fields.get(part)
        ann = f.annotation if f else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _leaf_paths(schema: type[BaseModel], prefix: Path_ = ()) -> list[Path_]:
    out = []
    for name, f in schema.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _leaf_paths(ann, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def _unknown(schema: type[BaseModel], loc: Path_, renames: Renames) -> str:
    """"unknown key 'training.epoch'; did you mean 'training.epochs'? allowed in [training]: ..."."""
    parent, name = loc[:-1], loc[-1]
    section = _section(schema, parent)
    allowed = (list(section.model_fields) if section else []) + renames.spellings(parent)
    hint = ""
    close = difflib.get_close_matches(name.lower(), allowed, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean {'.'.join((*parent, close[0]))!r}?"
    else:  # the right key in the wrong section (training.weight_decay -> optimizer.weight_decay)
        elsewhere = [p for p in _leaf_paths(schema) if p[-1] == name]
        elsewhere += [tuple(s.split(".")) for s in renames.table if s.rsplit(".", 1)[-1] == name]
        if elsewhere:
            hint = f"; did you mean {'.'.join(elsewhere[0])!r}?"
    where = f"in [{'.'.join(parent)}]" if parent else "at the top level"
    return f"unknown key {'.'.join(loc)!r}{hint} (allowed {where}: {', '.join(allowed)})"


# -- writing ------------------------------------------------------------------------------------------
def dump(model: BaseModel, path: str | Path, *, header: Iterable[str] = ()) -> Path:
    """Write ``model`` as commented INI (``.ini``/``.cfg``/``.conf``) or YAML (anything else); it loads back equal."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(model, ini=path.suffix.lower() in INI_SUFFIXES, header=header), encoding="utf-8")
    return path


def render(model: BaseModel, *, ini: bool = False, header: Iterable[str] = ()) -> str:
    """``model`` as commented INI or YAML text, every key preceded by its field description."""
    lines = [f"# {h}" if h else "" for h in header]
    lines += _ini(model) if ini else _yaml(model, 0)
    return "\n".join(lines).rstrip() + "\n"


def _doc(obj: BaseModel) -> str:
    return ((type(obj).__doc__ or "").strip().splitlines() or [""])[0]


def _yaml(obj: BaseModel, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for name, f in type(obj).model_fields.items():
        value = getattr(obj, name)
        if isinstance(value, BaseModel):
            if indent == 0:
                lines.append("")
            lines += [f"{pad}# {_doc(value)}", f"{pad}{name}:", *_yaml(value, indent + 1)]
            continue
        if f.description:
            lines.append(f"{pad}# {f.description}")
        dumped = yaml.safe_dump({name: value}, default_flow_style=True, allow_unicode=True, width=10**6).strip()
        lines.append(f"{pad}{dumped[1:-1]}")  # strip the flow-style braces
    return lines


def _ini(obj: BaseModel, section: Path_ = ()) -> list[str]:
    """INI: one ``[section]`` per model (nested as ``[model.lora]``), scalars as text, lists as YAML flow."""
    lines: list[str] = []
    nested: list[tuple[str, BaseModel]] = []
    body: list[str] = []
    for name, f in type(obj).model_fields.items():
        value = getattr(obj, name)
        if isinstance(value, BaseModel):
            nested.append((name, value))
            continue
        if f.description:
            body.append(f"# {f.description}")
        body.append(f"{name} = {_ini_text(value)}")
    if section and body:
        lines += ["", f"# {_doc(obj)}", f"[{'.'.join(section)}]", *body]
    for name, value in nested:
        lines += _ini(value, (*section, name))
    return lines


def _ini_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6).strip()
    return str(value)


# -- nested-dict helpers --------------------------------------------------------------------------------
def _copy(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in d.items()}


def _get(d: Mapping[str, Any], path: Path_) -> Any:
    for part in path:
        d = d[part]
    return d


def _pop(d: dict[str, Any], path: Path_) -> Any:
    for part in path[:-1]:
        d = d[part]
    return d.pop(path[-1])


def _put(d: dict[str, Any], path: Path_, value: Any) -> None:
    for part in path[:-1]:
        node = d.get(part)
        if not isinstance(node, dict):
            node = d[part] = {}
        d = node
    d[path[-1]] = value
