"""What deploy, probe and rollback need to know about a task's served model, one adapter per task.

:mod:`nerwheel.serving.deploy` is the same for every task (claim a version,
stage, upload, load, probe, commit or roll back); what differs is behind this
small interface, picked by the task of the export (``nerwheel.json``
``task``):

- ``probes(texts)``: the probe inputs (``texts`` given by the user, else the
  task's defaults);
- ``model_config(name, version, options, export_dir)``: the CPU ``config.pbtxt``;
- ``offline(export_dir, options)``: a function probes -> answers, from the export's own runtime;
- ``served(url, name, version, batch_size, timeout_s)``: the same function through Triton;
- ``compare(probes, expected, got)``: the mismatches (empty: served == offline).

:data:`NER_SERVING` is the NER tagger's; the classifier's is
:data:`nerwheel.tasks.classify.serving.SERVING`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NER_SERVING", "NerServing"]


class NerServing:
    """The NER tagger: ``TEXT`` -> ``ENTITIES`` (JSON) + ``TAG_IDS``."""

    task = "ner"
    default_name = "nerwheel"
    variants = ("cpu", "gpu")

    def probes(self, texts: Sequence[str] | None) -> list[str]:
        from nerwheel.serving.deploy import DEFAULT_PROBE_TEXTS

        return [t for t in (texts if texts is not None else DEFAULT_PROBE_TEXTS) if t.strip()]

    def model_config(self, name: str, version: int, options: Any, export_dir: Path) -> Any:
        from nerwheel.serving.config import cpu_model_config

        return cpu_model_config(name, version, options)

    def offline(self, export_dir: Path, options: Any) -> Callable[[Sequence[Any]], list[Any]]:
        from nerwheel.serving.backend import load_tagger

        return load_tagger(options.tagger, export_dir, **options.tagger_options).predict  # int8: the same file

    def served(self, url: str, name: str, version: int, batch_size: int, timeout_s: float) -> Any:
        from nerwheel.serving.client import Client

        client = Client(url, model=name, version=version, timeout=timeout_s, retries=2, batch_size=batch_size)
        return client, client.extract

    def compare(self, probes: Sequence[str], expected: Sequence[Any], got: Sequence[Any]) -> list[dict[str, Any]]:
        def keys(entities: Sequence[Any]) -> list[tuple[int, int, str, str]]:
            return [(e.start, e.end, e.label, e.text) for e in entities]

        return [{"text": t, "offline": [x.to_dict() for x in e], "served": [x.to_dict() for x in g]}
                for t, e, g in zip(probes, expected, got, strict=True) if keys(e) != keys(g)]


NER_SERVING = NerServing()
