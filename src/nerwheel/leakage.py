"""Which texts are eval texts: the one rule every guard uses to keep the eval set out of training data.

A text is an eval text when its normalised form equals the normalised form of
a text in the eval set. Normalisation (:func:`normalize_text`) is Unicode NFKC
(full-width digits and letters, the ideographic space) plus whitespace
collapsed to one space and stripped: "朝阳区 ０号" and "朝阳区 0号 " are the
same text for leakage, because a model trained on one has seen the other.

A line of the eval file that its reader rejected still guards: its text is
recovered from the raw line where that is possible
(:func:`nerwheel.formats.recover.recover_text`), and the lines whose text
cannot be recovered are returned so the caller can say so
(:meth:`EvalTexts.from_reads`).

Used by the split (:mod:`nerwheel.stages.split`: leak checks, dedup by
meaning), synthesize (never emits an eval text), the merge step (drops
training records with an eval text), pseudo-label ``--exclude`` and feedback
``--holdout``, in the CLI and the pipeline alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from nerwheel.records import Record

if TYPE_CHECKING:
    from nerwheel.formats import ReadResult, Reject

__all__ = ["EvalTexts", "drop_leaks", "find_leaks", "normalize_text"]

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The comparison form of a text for dedup-by-meaning and leakage: NFKC, whitespace collapsed, stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


class EvalTexts:
    """A set of eval texts, compared by :func:`normalize_text`: ``text in guard`` is the leakage test."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._keys = {normalize_text(t) for t in texts}

    @classmethod
    def of(cls, texts: Iterable[str] | EvalTexts) -> EvalTexts:
        """``texts`` as a guard (itself when it already is one)."""
        return texts if isinstance(texts, EvalTexts) else cls(texts)

    @classmethod
    def from_reads(cls, reads: Iterable[ReadResult]) -> tuple[EvalTexts, list[tuple[Reject, str | None]]]:
        """The eval texts of read eval files: accepted records plus what their rejected lines still show.

        Returns the guard and each rejected line with the text recovered from it (``None``: nothing
        could be recovered, so that line cannot be guarded; say so).
        """
        from nerwheel.formats.recover import recover_text

        guard = cls()
        rejected: list[tuple[Reject, str | None]] = []
        for res in reads:
            for r in res.records:
                guard.add(r.text)
            for rej in res.rejects:
                text = recover_text(rej.raw, res.format)
                rejected.append((rej, text))
                if text:
                    guard.add(text)
        return guard, rejected

    def add(self, text: str) -> None:
        self._keys.add(normalize_text(text))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and normalize_text(text) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def split(self, records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
        """``(kept, leaked)``: ``records`` without, and with, an eval text (input order kept)."""
        kept: list[Record] = []
        leaked: list[Record] = []
        for r in records:
            (leaked if r.text in self else kept).append(r)
        return kept, leaked


def find_leaks(train: Iterable[Record], evaluation: Iterable[Record]) -> list[Record]:
    """Training records whose text is an eval text (they must not be trained on)."""
    return drop_leaks(train, evaluation)[1]


def drop_leaks(train: Iterable[Record], evaluation: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """``(kept, leaked)``: the training records without, and with, an evaluation text."""
    return EvalTexts(r.text for r in evaluation).split(train)

