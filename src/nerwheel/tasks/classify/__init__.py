"""The message classifier task: (context, message) -> one of a few classes, through every flywheel stage.

One module per concern: :mod:`.records` (Message, LabelSet), :mod:`.formats`
(readers and writers), :mod:`.config` (the users' YAML), :mod:`.model` (the
Hugging Face sequence classifier on a backbone), :mod:`.encoding` (the sentence
pair), :mod:`.train`, :mod:`.metrics`, :mod:`.evaluate`, :mod:`.runtime`
(PyTorch / ONNX Runtime), :mod:`.export`, :mod:`.predict`, :mod:`.serving`
(Triton), :mod:`.teachers` (LLM and model teachers, votes), :mod:`.feedback`
(diff and merge with provenance), :mod:`.distill` (a smaller student trained on
a classifier's class probabilities), :mod:`.pipeline` (the KFP DAG). ``TASK`` binds
them to the hooks of :mod:`nerwheel.tasks`.
"""

from __future__ import annotations

from nerwheel.tasks import Task

__all__ = ["TASK"]

TASK = Task("classify", "Classify messages (with optional context) into a few classes.", {
    "read": "nerwheel.tasks.classify.formats:read_messages",
    "config_schema": "nerwheel.tasks.classify.config:ClassifyConfig",
    "load_config": "nerwheel.tasks.classify.config:load_config",
    "write_default": "nerwheel.tasks.classify.config:write_default",
    "train": "nerwheel.tasks.classify.train:train",
    "evaluate": "nerwheel.tasks.classify.evaluate:evaluate",
    "gate_scores": "nerwheel.tasks.classify.gate:classify_scores",
    "export": "nerwheel.tasks.classify.export:export",
    "load_predictor": "nerwheel.tasks.classify.predict:load_classifier",
    "predict_rows": "nerwheel.tasks.classify.predict:predict_rows",
    "serving": "nerwheel.tasks.classify.serving:SERVING",
    "distill": "nerwheel.tasks.classify.distill:distill",
})
