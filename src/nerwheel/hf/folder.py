"""Make a nerwheel model folder a complete Hugging Face folder: its code, the config entries, the model card.

:func:`write_hf_files` writes, beside the weights and the tokenizer:

- ``modeling_nerwheel.py`` and ``pipeline_nerwheel.py`` (the entry points) and
  the nerwheel modules they import, each as ``nerwheel_<name>.py``. The source
  is nerwheel's own, from the one home of each concept (decode, encoding,
  tagger, crf, hybrid, ...); only ``from nerwheel.x.y import`` lines become
  ``from .nerwheel_y import``, the relative imports transformers' remote-code
  loader follows. :func:`closure` refuses a module that would need anything of
  nerwheel outside the set, so the copies run where nerwheel is not installed;
- in ``config.json``: ``auto_map`` (``AutoModelForTokenClassification``, and
  ``AutoConfig``/``AutoModel`` for the hybrid), ``custom_pipelines``
  (``token-classification``) and a ``nerwheel`` section (scheme, head, windows,
  decode) the pipeline reads;
- ``README.md``, the model card (:mod:`nerwheel.hf.readme`).

A classifier folder (``task: classify``) gets the same treatment with its own
entry point: ``pipeline_classify.py`` (``custom_pipelines``:
``text-classification``, on the stock ``AutoModelForSequenceClassification``,
which needs no code of its own), a ``nerwheel`` section with the pair
geometry, and the classifier's model card.

Loading then needs ``trust_remote_code=True``, as for any model with its own
code; without it ``pipeline("token-classification", ...)`` refuses (rather
than silently ignoring the CRF) and ``AutoModelForTokenClassification`` gives
the emissions of the stock class.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from importlib import util
from pathlib import Path
from typing import Any

__all__ = ["ENTRY_MODULES", "TASK_ENTRIES", "closure", "remote_name", "rewrite_imports", "write_hf_files"]

#: The modules transformers is pointed at (``auto_map`` / ``custom_pipelines``); they keep their names.
ENTRY_MODULES = ("nerwheel.hf.modeling_nerwheel", "nerwheel.hf.pipeline_nerwheel", "nerwheel.hf.pipeline_classify")
#: The entry modules a folder of each task carries.
TASK_ENTRIES = {"ner": ENTRY_MODULES[:2], "classify": ENTRY_MODULES[2:]}
CLASSIFY_PIPELINE_CLASS = "NerwheelTextClassificationPipeline"
MODEL_CLASS = "NerwheelForTokenClassification"
HYBRID_MODEL_CLASS = "NerwheelHybridForTokenClassification"
PIPELINE_CLASS = "NerwheelTokenClassificationPipeline"
_IMPORT = re.compile(r"^(\s*)from nerwheel\.([\w.]+) import ", re.MULTILINE)


def remote_name(module: str) -> str:
    """File stem of ``module`` in a model folder: entry points as they are, others ``nerwheel_<last part>``."""
    last = module.rsplit(".", 1)[-1]
    return last if module in ENTRY_MODULES else f"nerwheel_{last}"


def _source(module: str) -> Path:
    spec = util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{module}: not found")
    return Path(spec.origin)


def _nerwheel_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``nerwheel...`` module ``path`` imports, anywhere in the file (transformers checks them all)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "nerwheel":
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nerwheel":
                    found.append((node.lineno, f"import {alias.name}"))
    return found


def closure(entries: Iterable[str] = TASK_ENTRIES["ner"]) -> dict[str, Path]:
    """The entry modules and every nerwheel module they import, transitively: module name -> source file.

    Raises ``ValueError`` naming file and line for ``import nerwheel...`` (only
    ``from nerwheel.x import y`` can be rewritten) and for two modules that
    would share a file name in the model folder.
    """
    todo, seen = list(entries), {}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = seen[module] = _source(module)
        for line, target in _nerwheel_imports(path):
            if target.startswith("import "):
                raise ValueError(f"{path}:{line}: `{target}` cannot travel into a model folder; "
                                 "write `from nerwheel.x import y`")
            todo.append(target)
    names: dict[str, str] = {}
    for module in seen:
        other = names.setdefault(remote_name(module), module)
        if other != module:
            raise ValueError(f"{module} and {other} would both be {remote_name(module)}.py in a model folder")
    return seen


def rewrite_imports(source: str) -> str:
    """``from nerwheel.model.crf import X`` -> ``from .nerwheel_crf import X`` (the form transformers follows)."""
    return _IMPORT.sub(lambda m: f"{m.group(1)}from .{remote_name(m.group(2))} import ", source)


def _code_files(directory: Path, task: str = "ner") -> list[str]:
    written = []
    for module, path in sorted(closure(TASK_ENTRIES[task]).items()):
        name = f"{remote_name(module)}.py"
        (directory / name).write_text(rewrite_imports(path.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(name)
    return written


def hf_settings(card: Any) -> dict[str, Any]:
    """The ``nerwheel`` section of config.json: what decoding needs beyond ``id2label``."""
    return {"scheme": card.scheme, "head": card.head, "sequence_length": card.sequence_length, "stride": card.stride,
            "pad_id": card.pad_id, "name": card.name, "decode": dict(card.decode), "backbone": card.backbone,
            "span": dict(card.span), "lexicon": bool(getattr(card, "lexicon", None))}


def write_hf_files(directory: str | Path, card: Any) -> list[str]:
    """Add the code files, the config entries and ``README.md`` to a saved model folder; returns the files written."""
    if getattr(card, "task", "ner") == "classify":
        return _write_classifier_files(Path(directory), card)
    from nerwheel.hf.readme import model_card_markdown
    from nerwheel.model.hybrid import MODEL_TYPE

    d = Path(directory)
    written = _code_files(d)
    config_path = d / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    hybrid = config.get("model_type") == MODEL_TYPE
    auto_map = {"AutoModelForTokenClassification": f"modeling_nerwheel.{HYBRID_MODEL_CLASS if hybrid else MODEL_CLASS}"}
    if hybrid:
        hybrid_file = remote_name("nerwheel.model.hybrid")
        auto_map.update(AutoConfig=f"{hybrid_file}.BertMoeQwen2Config", AutoModel=f"{hybrid_file}.BertMoeQwen2Model")
    config["auto_map"] = auto_map
    config["custom_pipelines"] = {"token-classification": {
        "impl": f"pipeline_nerwheel.{PIPELINE_CLASS}", "pt": ["AutoModelForTokenClassification"], "tf": [],
        "type": "text",
    }}
    config["nerwheel"] = hf_settings(card)
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (d / "README.md").write_text(model_card_markdown(card), encoding="utf-8")
    return [*written, "config.json", "README.md"]


def _write_classifier_files(d: Path, card: Any) -> list[str]:
    """A classifier folder's pipeline code, config entries and model card (see the module docstring)."""
    from nerwheel.hf.readme import classifier_card_markdown

    written = _code_files(d, "classify")
    config_path = d / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["custom_pipelines"] = {"text-classification": {
        "impl": f"pipeline_classify.{CLASSIFY_PIPELINE_CLASS}", "pt": ["AutoModelForSequenceClassification"],
        "tf": [], "type": "text",
    }}
    config["nerwheel"] = {"task": "classify", "max_length": card.max_length, "pad_id": card.pad_id, "name": card.name,
                          "backbone": card.backbone}
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (d / "README.md").write_text(classifier_card_markdown(card), encoding="utf-8")
    return [*written, "config.json", "README.md"]
