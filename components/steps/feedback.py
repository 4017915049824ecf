"""Feedback step: the production model against the teacher on one shard of the traffic
(:func:`nerwheel.stages.feedback.feedback`): the wheel's own loop.

When a production model exists the pipeline runs this instead of labelling every text:
the texts where model and teacher disagree (missing / spurious / boundary / type) go to
merge with the teacher's labels, the agreed texts are the replay pool the fan-in samples
from (:mod:`nerwheel.components.steps.gather`), and the texts no teacher could label go
on to pseudo-labelling. Eval texts in the traffic are dropped first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SIDE_SETS", "production_tagger", "run"]

#: Side sets of the output folder: the teacher's labels where the model agreed, and the texts no teacher labelled.
SIDE_SETS = ("agreed", "unlabelled")


@contextmanager
def production_tagger(uri: str) -> Iterator[Any]:
    """The production model at ``uri`` (a version folder of the Triton repository, an export folder or a model
    folder with its ``onnx/`` export; local or ``s3://``) on ONNX Runtime, the runtime Triton serves it with."""
    from nerwheel import storage
    from nerwheel.errors import ConfigError
    from nerwheel.model.layout import find_export
    from nerwheel.model.runtime import OnnxTagger

    with storage.get_storage().local_dir(uri) as folder:
        export = find_export(folder)
        if export is None:
            raise ConfigError(f"production model {uri}: no ONNX export (model.onnx) there or in its onnx/ folder; "
                              "the feedback loop runs the export users are served", field="production_model_uri")
        yield OnnxTagger(export)


def run(*, texts_uri: str, shard: dict[str, Any] | None, production_uri: str, teacher: str, llm_endpoint: str,
        llm_model: str, llm_max_tokens: int, seed_uri: str, eval_uri: str, llm_cache_uri: str, out_path: str,
        report_path: str) -> dict[str, float]:
    """Diff the production model at ``production_uri`` (an export folder or ``s3://`` prefix, as
    :func:`nerwheel.serving.production.find_production` names it) against the teacher on ``shard``'s texts.

    Writes the disagreement records (the teacher's spans, plus the model's spans outside the teacher's scope),
    the side sets :data:`SIDE_SETS`, the input rejects and ``shard.json``; returns the scalars the component logs.
    """
    import json

    from nerwheel.components.data import read_dataset, resolve_uri, write_dataset
    from nerwheel.components.report import Report, bar_chart
    from nerwheel.components.steps.annotate import read_texts, teachers_for
    from nerwheel.components.steps.shard import write_part
    from nerwheel.errors import ConfigError
    from nerwheel.shards import ShardPart
    from nerwheel.stages.feedback import DISAGREEMENT_KINDS, FeedbackConfig, feedback

    if not production_uri.strip():
        raise ConfigError("the feedback step needs the production model (production_uri is empty)")
    texts, s = read_texts(texts_uri, shard)
    holdout = read_dataset(resolve_uri(eval_uri, "eval")).records
    teachers, cache = teachers_for(teacher, llm_endpoint, llm_model, llm_max_tokens, seed_uri, llm_cache_uri)
    name = production_uri.rstrip("/").rsplit("/", 2)
    config = FeedbackConfig(model_source=f"model:{'/'.join(name[-2:])}")  # model:<name>/<version>; replay: fan-in
    try:
        with production_tagger(production_uri) as model:
            result = feedback(model, teachers, texts.records, holdout=holdout, config=config)
    finally:
        if cache is not None:
            cache.close()
    write_dataset(out_path, result.records, rejects=texts.rejects, agreed=result.agreed,
                  unlabelled=result.unlabelled)
    rep = result.report
    scalars = {"texts": float(len(texts.records)), "texts_rejected": float(len(texts.rejects)),
               "holdout_dropped": float(rep.holdout_dropped), "agreed": float(rep.agreed),
               "disagreed": float(rep.disagreed), "teacher_failed": float(rep.teacher_failed)}
    scalars.update({f"disagreements_{k}": float(rep.by_kind.get(k, 0)) for k in DISAGREEMENT_KINDS})
    write_part(out_path, ShardPart.of(s, texts, {**scalars, "records": float(len(result.records))}))

    Report(f"feedback: production vs {teacher} teacher, shard {s.index + 1} of {s.count}").paragraph(
        texts.summary()).paragraph(f"production model: {production_uri}").pre(rep.summary()).heading(
        "Disagreements by kind").raw(bar_chart({k: rep.by_kind.get(k, 0) for k in DISAGREEMENT_KINDS})).heading(
        "Examples").pre(json.dumps(rep.to_dict()["examples"], ensure_ascii=False, indent=2)).write(report_path)
    return scalars
