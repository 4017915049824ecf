"""The embedding task: adapt a retrieval encoder (bi-encoder) to the users' own corpus.

    split -> pairs -> [expand] -> train -> evaluate -> gate -> export -> deploy

One module per concern: :mod:`.passages` (raw text -> passages),
:mod:`.beir` (the BEIR layout and graded pairs), :mod:`.questions` (the LLM
question writer) and :mod:`.ict` (inverse cloze), :mod:`.pairs` (the pairs
stage), :mod:`.expand` (tokenizer expansion and word mining), :mod:`.model`
(which encoder a name means), :mod:`.train`, :mod:`.metrics`,
:mod:`.evaluate`, :mod:`.export` (ONNX with pooling and normalisation),
:mod:`.runtime` (ONNX Runtime / PyTorch encoders), :mod:`.serving` (Triton),
:mod:`.gate` (the gate's view of its metrics), :mod:`.steps` and
:mod:`.pipeline` (the KFP DAG), :mod:`.hooks`. ``TASK`` binds them to the
hooks of :mod:`nerwheel.tasks`; the commands are ``nerwheel embed ...``.
"""

from __future__ import annotations

from nerwheel.tasks import Task

__all__ = ["TASK"]

TASK = Task("embed", "Adapt a retrieval encoder (bi-encoder) to your corpus: queries -> passages.", {
    "read": "nerwheel.tasks.embed.hooks:read",
    "config_schema": "nerwheel.tasks.embed.train:EmbedTrainConfig",
    "load_config": "nerwheel.tasks.embed.hooks:load_config",
    "write_default": "nerwheel.tasks.embed.hooks:write_default",
    "train": "nerwheel.tasks.embed.hooks:train",
    "evaluate": "nerwheel.tasks.embed.hooks:evaluate",
    "gate_scores": "nerwheel.tasks.embed.gate:embed_scores",
    "export": "nerwheel.tasks.embed.hooks:export",
    "load_predictor": "nerwheel.tasks.embed.hooks:load_predictor",
    "predict_rows": "nerwheel.tasks.embed.hooks:predict_rows",
    "serving": "nerwheel.tasks.embed.serving:SERVING",
})
