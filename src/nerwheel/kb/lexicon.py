"""What the knowledge base knows about each character of a text, as a fixed-width feature matrix.

SoftLexicon (Ma et al., 2020) gives a character tagger the lexicon words that
cover each character, grouped by the character's position in the word
(Begin, Middle, End, Single). nerwheel's lexicon is the address knowledge
base, and its "words" come in categories:

- ``gaz:<level>`` / ``gaz:<level>:short``: every gazetteer name (full or
  short form) of a province, city, district or town found anywhere in the
  text, before any hierarchy check (``江南`` in ``江南明城`` counts too: the
  tagger learns when to believe it);
- ``rule:<label>``: every anchored number pattern (``00幢``, ``0单元``,
  ``000室``...) starting where a number run starts;
- ``suffix:<label>``: suffix words of roads, towns, communities, development
  zones and points of interest (``路``, ``街道``, ``村``, ``工业园``, ``小区``);
  ``word:intersection`` / ``word:assist`` for helper words (``交叉口``, ``对面``);
- ``kb:<label>``: the knowledge-base teacher's own answer (its entities after
  the hierarchy checks), the strongest single signal.

Each character gets a 0/1 value per ``(category, position)``:
:attr:`LexiconFeatures.names` lists the columns (``gaz:city/B``...). The
inventory is fixed by the code, not by the data, and :meth:`LexiconFeatures.signature`
(the names plus the gazetteer's sources and sizes) is written into the model
card, so a runtime whose knowledge base differs from the one the model was
trained with refuses to serve rather than feed it other features.

Pure Python + numpy: the train loop, ONNX Runtime and the Triton python
backend compute features with this one class.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from nerwheel.errors import ConfigError

__all__ = ["LEXICON_VERSION", "POSITIONS", "LexiconFeatures", "check_signature", "shared_features"]

#: Bump when the same text would get other features (invalidates models trained with older ones).
LEXICON_VERSION = 1
POSITIONS = ("B", "M", "E", "S")
_GAZ_LEVELS = ("prov", "city", "district", "town")


def _categories() -> tuple[str, ...]:
    from nerwheel.kb.rules import ANCHORED, SUFFIX_RULES
    from nerwheel.labels import ADDRESS_LABELS

    gaz = [f"gaz:{lvl}{form}" for lvl in _GAZ_LEVELS for form in ("", ":short")]
    rules = [f"rule:{lab}" for lab in dict.fromkeys(lab for lab, _ in ANCHORED)]
    suffixes = [f"suffix:{lab}" for lab, *_ in SUFFIX_RULES] + ["suffix:poi", "word:intersection", "word:assist"]
    return (*gaz, *rules, *suffixes, *(f"kb:{lab}" for lab in ADDRESS_LABELS))


class LexiconFeatures:
    """Per-character knowledge-base features: ``matrix(text)`` is float32 ``[len(text), len(names)]``.

    ``kb`` is an :class:`~nerwheel.kb.annotator.AddressKB` (default: the shared
    one, with town data when installed). The last ``cache`` texts' matrices are
    kept: dev texts are scored every epoch, and a server sees repeats.
    """

    def __init__(self, kb: Any = None, *, cache: int = 8192) -> None:
        from nerwheel.kb.annotator import AddressKB
        from nerwheel.kb.rules import ANCHORED, ASSIST_MULTI, INTERSECTION, NUM, POI_SUFFIXES, SUFFIX_RULES

        self.kb = kb or AddressKB()
        self.categories = _categories()
        self.names = tuple(f"{c}/{p}" for c in self.categories for p in POSITIONS)
        self._column = {c: i * len(POSITIONS) for i, c in enumerate(self.categories)}
        self._anchored = ANCHORED
        self._number = re.compile(NUM)
        words: dict[str, set[str]] = {}
        for lab, sufs, _, _ in SUFFIX_RULES:
            for w in sufs:
                words.setdefault(w, set()).add(f"suffix:{lab}")
        for cat, ws in (("suffix:poi", POI_SUFFIXES), ("word:intersection", INTERSECTION),
                        ("word:assist", ASSIST_MULTI)):
            for w in ws:
                words.setdefault(w, set()).add(cat)
        self._words = {w: tuple(sorted(c)) for w, c in words.items()}
        self._word_len = max(map(len, self._words))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache

    @property
    def width(self) -> int:
        return len(self.names)

    @cached_property
    def signature(self) -> dict[str, Any]:
        """What must match between training and serving: version, columns, the gazetteer's sources and sizes."""
        gaz = self.kb.gaz
        sources = {"sources": list(gaz.sources), "sizes": gaz.stats()}
        digest = hashlib.sha256(json.dumps([LEXICON_VERSION, self.names, sources], sort_keys=True).encode())
        return {"version": LEXICON_VERSION, "width": self.width, "names": list(self.names), "kb": sources,
                "sha256": digest.hexdigest()}

    # -- matches -------------------------------------------------------------------------------------
    def matches(self, text: str) -> Iterable[tuple[int, int, str]]:
        """Every ``(start, end, category)`` the knowledge base finds in ``text`` (overlaps included)."""
        gaz = self.kb.gaz
        n = len(text)
        for i in range(n):
            for end, entries in gaz.matches_at(text, i):
                for cat in sorted({f"gaz:{p.level}{':short' if short else ''}" for p, short in entries
                                   if p.level in _GAZ_LEVELS}):
                    yield i, end, cat
            if self._number.match(text, i) and (i == 0 or not self._number.match(text, i - 1)):
                for lab, pattern in self._anchored:
                    m = pattern.match(text, i)
                    if m:
                        yield i, m.end(), f"rule:{lab}"
            for end in range(min(n, i + self._word_len), i, -1):
                for cat in self._words.get(text[i:end], ()):
                    yield i, end, cat
        for e in self.kb.annotate_text(text):
            yield e.start, e.end, f"kb:{e.label}"

    def matrix(self, text: str) -> np.ndarray:
        """float32 ``[len(text), width]``: 1 where a match of a category holds the character at a position
        (cached, so read-only)."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        out = self._matrix(text)
        out.flags.writeable = False
        self._cache[text] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def _matrix(self, text: str) -> np.ndarray:
        out = np.zeros((len(text), self.width), dtype=np.float32)
        for start, end, cat in self.matches(text):
            col = self._column.get(cat)
            if col is None:  # a KB label outside the address label set: no column for it
                continue
            if end - start == 1:
                out[start, col + 3] = 1.0
                continue
            out[start, col] = 1.0
            out[start + 1 : end - 1, col + 1] = 1.0
            out[end - 1, col + 2] = 1.0
        return out

    def matrices(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.matrix(t) for t in texts]


@lru_cache(maxsize=1)
def shared_features() -> LexiconFeatures:
    """The process's one :class:`LexiconFeatures` over the shared knowledge base (taggers built every epoch for
    dev scoring, and every served model, reuse its gazetteer index and matrix cache)."""
    return LexiconFeatures()


def check_signature(expected: dict[str, Any], actual: dict[str, Any], *, where: str) -> None:
    """Refuse features other than the ones a model was trained with, saying what differs and the fix."""
    if expected.get("sha256") == actual.get("sha256"):
        return
    if expected.get("version") != actual.get("version") or expected.get("names") != actual.get("names"):
        what = (f"lexicon version {expected.get('version')} with {expected.get('width')} columns; this nerwheel "
                f"computes version {actual.get('version')} with {actual.get('width')}")
        fix = "retrain the model with this nerwheel, or run it with the nerwheel version it was trained with"
    else:
        what = f"knowledge base {expected.get('kb')}; this machine has {actual.get('kb')}"
        fix = "install the same knowledge-base data (pip install 'nerwheel[kb]')"
    raise ConfigError(f"{where}: the model's lexicon features were computed from {what}; {fix}")
