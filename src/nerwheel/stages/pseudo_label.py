"""Pseudo-labelling: a trained model labels unlabelled or synthetic texts, and only confident labels are kept.

Why a threshold: a model's confident predictions are mostly right and cheap to
get in bulk, its unsure ones are where its errors live; training on those
would teach the model its own mistakes. The score of an entity is the
predictor's per-entity confidence (the tag probability averaged over the
span); a predictor that gives none cannot be thresholded and is refused.

Two modes: ``entity`` keeps each confident span (a record whose unsure spans
were dropped is then *partially* labelled, which teaches "no entity here" on
those characters: more data, more noise); ``record`` keeps a record only when
every span in it is confident (less data, cleaner).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerwheel.errors import NerwheelError
from nerwheel.records import Entity, Record
from nerwheel.stages.feedback import Predictor

__all__ = ["PseudoLabelConfig", "PseudoLabelError", "PseudoLabelReport", "PseudoLabelResult", "pseudo_label"]


class PseudoLabelError(NerwheelError, ValueError):
    """The predictor's output cannot be thresholded (no per-entity scores)."""


class PseudoLabelConfig(BaseModel):
    """Which predictions become labels. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=0.9, ge=0.0, le=1.0, description="Lowest entity score that is kept.")
    mode: Literal["entity", "record"] = "entity"
    keep_empty: bool = Field(default=False, description="Keep texts the model finds no entity in, as all-'O' examples.")
    source: str = Field(default="model", description="Source name for predicted spans that carry none.")


@dataclass
class PseudoLabelReport:
    texts: int = 0
    records_kept: int = 0
    entities_kept: int = 0
    entities_dropped: int = 0
    kept_by_label: Counter = field(default_factory=Counter)
    dropped_by_label: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "records_kept": self.records_kept,
            "entities_kept": self.entities_kept,
            "entities_dropped": self.entities_dropped,
            "kept_by_label": dict(sorted(self.kept_by_label.items())),
            "dropped_by_label": dict(sorted(self.dropped_by_label.items())),
        }

    def summary(self) -> str:
        return (
            f"{self.texts} texts -> {self.records_kept} records; entities kept {self.entities_kept}, "
            f"dropped {self.entities_dropped}"
        )


@dataclass
class PseudoLabelResult:
    records: list[Record]
    report: PseudoLabelReport


def pseudo_label(
    predictor: Predictor, records: Sequence[Record], config: PseudoLabelConfig | None = None
) -> PseudoLabelResult:
    """Label ``records`` (their own entities are ignored) with ``predictor`` and keep what clears the threshold."""
    cfg = config or PseudoLabelConfig()
    from nerwheel.stages.predict import predict_texts

    predicted = predict_texts(predictor, [r.text for r in records], desc="pseudo-label")
    report = PseudoLabelReport(texts=len(records))
    out: list[Record] = []
    for rec, ents in zip(records, predicted):
        unscored = [e for e in ents if e.score is None]
        if unscored:
            e = unscored[0]
            raise PseudoLabelError(
                f"record {rec.id!r}: the predictor returned {e.label}[{e.start}:{e.end}] without a score; "
                "pseudo-labelling needs per-entity confidences (use a predictor that reports scores)"
            )
        ents = [x if x.source else Entity(x.start, x.end, x.label, x.text, cfg.source, x.score) for x in ents]
        kept = [x for x in ents if x.score >= cfg.threshold]  # type: ignore[operator]
        dropped = [x for x in ents if x.score < cfg.threshold]  # type: ignore[operator]
        if cfg.mode == "record" and dropped:
            kept, dropped = [], ents
        report.entities_dropped += len(dropped)
        report.dropped_by_label.update(x.label for x in dropped)
        if not (kept or (not ents and cfg.keep_empty)):
            continue
        report.entities_kept += len(kept)
        report.kept_by_label.update(x.label for x in kept)
        report.records_kept += 1
        scores = [x.score for x in ents]
        out.append(rec.with_entities(kept).with_meta(
            pseudo_label={"threshold": cfg.threshold, "mode": cfg.mode, "dropped": len(dropped),
                          "min_score": min(scores) if scores else None}
        ))
    return PseudoLabelResult(out, report)
