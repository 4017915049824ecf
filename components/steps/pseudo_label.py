"""Pseudo-label step: the production model labels, above a confidence, the texts of one shard that no teacher
could label (:func:`nerwheel.stages.pseudo_label.pseudo_label`).

It follows the feedback step in the same shard: that step already knows which texts the
teacher left unlabelled (its ``unlabelled`` side set), so only those are run through the
model; the confident spans join the training data as the ``model`` source kind.
"""

from __future__ import annotations

__all__ = ["run"]


def run(*, feedback_path: str, production_uri: str, threshold: float, out_path: str,
        report_path: str) -> dict[str, float]:
    """Pseudo-label the ``unlabelled`` side set of the feedback step's output folder at ``feedback_path``.

    Its ``shard.json`` counts the texts considered (read = accepted + rejected: labelled above the threshold +
    left out); returns the scalars the component logs.
    """
    import json

    from nerwheel.components.data import read_artifact, write_dataset
    from nerwheel.components.report import Report
    from nerwheel.components.steps import parameter_hints
    from nerwheel.components.steps.feedback import production_tagger
    from nerwheel.components.steps.shard import read_part, write_part
    from nerwheel.shards import ShardPart
    from nerwheel.stages.pseudo_label import PseudoLabelConfig, pseudo_label

    texts = read_artifact(feedback_path, "unlabelled.jsonl")
    source = read_part(feedback_path)
    name = production_uri.rstrip("/").rsplit("/", 2)
    with parameter_hints():
        config = PseudoLabelConfig(threshold=threshold, source=f"model:{'/'.join(name[-2:])}")
    records = []
    report = None
    if texts:
        with production_tagger(production_uri) as model:
            result = pseudo_label(model, texts, config)
        records, report = result.records, result.report
    write_dataset(out_path, records)
    scalars = {"texts": float(len(texts)), "records": float(len(records)),
               "entities": float(sum(len(r.entities) for r in records))}
    part = ShardPart(source.index, source.count, source.sha256, source.texts, len(texts), len(records),
                     len(texts) - len(records), scalars)
    write_part(out_path, part)
    Report(f"pseudo-label: shard {source.index + 1} of {source.count}").paragraph(
        f"{len(texts)} texts no teacher labelled; {len(records)} labelled by the production model with every "
        f"kept span at confidence >= {threshold}").pre(
        json.dumps(report.to_dict() if report is not None else {}, ensure_ascii=False, indent=2)).write(report_path)
    return scalars
