"""The task seam: where NER, classification (and later embeddings) genuinely differ, chosen by one ``task`` value.

A task is a folder (``nerwheel/tasks/<name>/``) whose ``__init__`` exposes
``TASK``, an object with the hooks below. Everything else exists once and is
reused by every task: storage, config loading (:mod:`nerwheel.model.config`,
given the task's config class), the training loop (:mod:`nerwheel.model.loop`,
given the task's :class:`~nerwheel.model.loop.Steps`), experiment tracking,
the LLM client and cache, the gate (:mod:`nerwheel.stages.gate`, given the
task's :meth:`Task.gate_scores`), deploy with probe and rollback
(:mod:`nerwheel.serving.deploy`, given the task's :meth:`Task.serving`),
reports and the DAG machinery. Adding a task means adding a folder and one
line in :data:`TASKS`.

Hooks (lazy: importing a task imports no torch):

- ``read(path, format=None)`` -> :class:`~nerwheel.formats.base.ReadResult`
  of the task's records, with rejects (file, line, kind, reason);
- ``config_schema()`` -> the training config class; ``train(config)`` -> model dir;
- ``evaluate(model, records, out_dir, predictor=None, rejects=(), plots=True)``
  -> metrics dict (also ``metrics.json``);
- ``gate_scores(metrics, metric, who)`` -> :class:`~nerwheel.stages.gate.Scores`;
- ``export(model_dir, out_dir, quantize=None, **options)`` -> export report;
- ``load_predictor(path_or_url, **options)`` and ``predict_rows(predictor, records, **options)``
  -> output rows in input order;
- ``serving()`` -> the Triton side (model config, handler, probe, client);
- ``distill(config, **options)`` -> :class:`~nerwheel.stages.distill.DistillResult`: a smaller
  student trained on a teacher model of the task (optional: a task without it
  cannot be distilled, and :meth:`Task.distill` says so).

A model directory says which task it holds in ``nerwheel.json``
(``"task"``; absent means ``ner``), so loaders can pick the task without being
told (:func:`task_of`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nerwheel.errors import ConfigError
__all__ = ["DEFAULT_TASK", "HOOKS", "OPTIONAL_HOOKS", "TASKS", "Task", "TaskError", "get_task", "task_of"]

#: task name -> module holding ``TASK``.
TASKS: dict[str, str] = {
    "ner": "nerwheel.tasks.ner",
    "classify": "nerwheel.tasks.classify",
    "embed": "nerwheel.tasks.embed",
}
DEFAULT_TASK = "ner"


class TaskError(ConfigError):
    """An unknown task name, or a model of another task than the one asked for."""


#: Every hook a task names, as ``module:attribute`` (imported on first use, so a task costs nothing until used).
HOOKS = ("read", "config_schema", "load_config", "write_default", "train", "evaluate", "gate_scores", "export",
         "load_predictor", "predict_rows", "serving")
#: Hooks a task may leave out; calling one it does not name raises a :class:`TaskError` that says so.
OPTIONAL_HOOKS = ("distill",)


class Task:
    """One task: a name and its hooks (see the module docstring); each task folder builds one as ``TASK``."""

    def __init__(self, name: str, description: str, hooks: Mapping[str, str]) -> None:
        missing = sorted(set(HOOKS) - set(hooks))
        if missing:
            raise TaskError(f"task {name!r} does not name the hooks {', '.join(missing)}")
        unknown = sorted(set(hooks) - set(HOOKS) - set(OPTIONAL_HOOKS))
        if unknown:
            raise TaskError(f"task {name!r} names unknown hooks {', '.join(unknown)}; hooks are: "
                            f"{', '.join(HOOKS + OPTIONAL_HOOKS)}")
        self.name, self.description, self._hooks = name, description, dict(hooks)

    def has(self, name: str) -> bool:
        """Whether the task names hook ``name`` (every required one; optional ones only where it has them)."""
        return name in self._hooks

    def hook(self, name: str) -> Any:
        """The object a hook names (a function, a class or an adapter), imported now."""
        if name not in self._hooks:
            raise TaskError(f"task {self.name!r} has no {name} hook: {self.name} models cannot {name} yet")
        module, _, attr = self._hooks[name].partition(":")
        return getattr(importlib.import_module(module), attr)

    def read(self, path: str | Path, format: str | None = None, **options: Any) -> Any:
        return self.hook("read")(path, format, **options)

    def config_schema(self) -> type:
        return self.hook("config_schema")

    def load_config(self, path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> Any:
        return self.hook("load_config")(path, overrides)

    def write_default(self, path: str | Path) -> Path:
        return self.hook("write_default")(path)

    def train(self, config: Any, **records: Any) -> Path:
        return self.hook("train")(config, **records)

    def evaluate(self, model: Any, records: Sequence[Any], out_dir: str | Path, **options: Any) -> dict[str, Any]:
        return self.hook("evaluate")(model, records, out_dir, **options)

    def gate_scores(self, metrics: Mapping[str, Any], metric: str, who: str) -> Any:
        return self.hook("gate_scores")(metrics, metric, who)

    def export(self, model_dir: str | Path, out_dir: str | Path, quantize: str | None = None, **options: Any) -> Any:
        return self.hook("export")(model_dir, out_dir, quantize, **options)

    def load_predictor(self, path_or_url: str | Path, **options: Any) -> Any:
        return self.hook("load_predictor")(path_or_url, **options)

    def predict_rows(self, predictor: Any, records: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """Output rows in input order; ``options`` are the task's own (ner: ``n_best``)."""
        return self.hook("predict_rows")(predictor, records, **options)

    def serving(self) -> Any:
        return self.hook("serving")

    def distill(self, config: Any, **options: Any) -> Any:
        return self.hook("distill")(config, **options)


def get_task(name: str | None) -> Any:
    """The task object for ``name`` (``None``: the default, ``ner``)."""
    name = name or DEFAULT_TASK
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; tasks are: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK


def task_of(model_dir: str | Path) -> str:
    """The task a model or export directory holds (its ``nerwheel.json`` ``task``; ``ner`` when absent)."""
    card = Path(model_dir) / "nerwheel.json"
    if not card.is_file():
        return DEFAULT_TASK
    try:
        return str(json.loads(card.read_text(encoding="utf-8")).get("task") or DEFAULT_TASK)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return DEFAULT_TASK
