"""The ``transformers.Pipeline`` plumbing both nerwheel pipelines share: whole batches through nerwheel's own code.

transformers' ``Pipeline`` runs one input at a time through ``preprocess`` ->
``_forward`` -> ``postprocess``. nerwheel's runtimes batch (windows or pairs
sorted by length), so :class:`WholeBatchPipeline` sends a whole call through
one ``_run(items, **options)`` instead; the three per-input steps exist only
because ``Pipeline`` declares them, and delegate to the same ``_run``. The
tokenizer is loaded (transformers' fast tokenizer carries the backend nerwheel
reads); processors are not.

Copied into model folders with the pipelines that import it.
"""

from __future__ import annotations

from typing import Any

from transformers import Pipeline

__all__ = ["WholeBatchPipeline"]


class WholeBatchPipeline(Pipeline):
    """One input -> its answer; a list -> one answer per input, all run as one batch by :meth:`_run`."""

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def _run(self, items: list[Any], **options: Any) -> list[Any]:
        """The answers to ``items`` in order; ``options`` come from :meth:`_sanitize_parameters`."""
        raise NotImplementedError

    def _item(self, input_: Any) -> Any:
        """One input as :meth:`_run` takes it (default: as given)."""
        return input_

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        single = not isinstance(inputs, list)
        _, options, _ = self._sanitize_parameters(**kwargs)
        out = self._run([self._item(x) for x in ([inputs] if single else inputs)], **options)
        return out[0] if single else out

    def preprocess(self, input_: Any, **_: Any) -> dict[str, Any]:
        return {"items": [self._item(input_)]}

    def _forward(self, input_tensors: dict[str, Any], **options: Any) -> dict[str, Any]:
        return {"result": self._run(input_tensors["items"], **options)[0]}

    def postprocess(self, model_outputs: dict[str, Any], **_: Any) -> Any:
        return model_outputs["result"]
