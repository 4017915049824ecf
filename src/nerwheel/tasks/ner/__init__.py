"""The NER task: character-span tagging (the first task; its stages live in :mod:`nerwheel.stages`).

``TASK`` binds the existing NER homes to the hooks of :mod:`nerwheel.tasks`:
records and formats (:mod:`nerwheel.formats`), the token classifier
(:mod:`nerwheel.stages.train`, :class:`~nerwheel.model.config.TrainConfig`),
span metrics (:mod:`nerwheel.stages.evaluate`), the emissions export
(:mod:`nerwheel.stages.export`), the taggers (:mod:`nerwheel.stages.predict`)
and the Triton tagger model (:mod:`nerwheel.serving`).
"""

from __future__ import annotations

from nerwheel.tasks import Task

__all__ = ["TASK"]

TASK = Task("ner", "Tag entity spans in texts (BERT + CRF/softmax).", {
    "read": "nerwheel.formats:read_records",
    "config_schema": "nerwheel.model.config:TrainConfig",
    "load_config": "nerwheel.model.config:load_config",
    "write_default": "nerwheel.model.config:write_default",
    "train": "nerwheel.stages.train:train",
    "evaluate": "nerwheel.stages.evaluate:evaluate",
    "gate_scores": "nerwheel.stages.gate:ner_scores",
    "export": "nerwheel.stages.export:export",
    "load_predictor": "nerwheel.stages.predict:load_predictor",
    "predict_rows": "nerwheel.stages.predict:predict_rows",
    "serving": "nerwheel.serving.tasks:NER_SERVING",
    "distill": "nerwheel.stages.distill:distill_tagger",
})
