"""The inverse-cloze teacher: queries from the passage itself, so the task runs with no LLM.

Inverse cloze (Lee et al., 2019, "Latent Retrieval for Weakly Supervised Open
Domain QA"): a sentence of a passage is a pseudo-query, and the rest of the
passage is its positive. The encoder has to learn what a sentence and its
context share beyond the words, which is what adapting to a domain needs.

Here the ``k`` query sentences of a passage are all removed from it, and what
remains is the passage's text in the generated corpus: one corpus entry per
passage, each query's positive, and no query can be found by string matching
against its own passage. The choice is deterministic (seeded by the passage
id). A passage needs ``k + 1`` sentences for ``k`` queries (fewer queries are
taken from shorter passages), and candidate sentences must have at least
``min_chars`` characters of words; a passage with no candidate, or with a
single sentence, yields no query (counted as ``too-few-sentences``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from nerwheel.tasks.embed.passages import join_sentences, sentences
from nerwheel.tasks.embed.questions import question_key

__all__ = ["IctResult", "ict_queries"]


@dataclass(frozen=True)
class IctResult:
    queries: list[str]
    positive: str  # the passage without its query sentences
    reason: str | None = None  # why there are no queries


def ict_queries(passage_id: str, text: str, *, k: int, min_chars: int = 6, seed: int = 0) -> IctResult:
    """Up to ``k`` sentence queries of ``text`` and the passage without them (module docstring)."""
    sents = sentences(text.replace("\n", " "))
    if len(sents) < 2:
        return IctResult([], text, f"the passage has {len(sents)} sentence(s); inverse cloze needs at least 2")
    candidates = [i for i, s in enumerate(sents) if len(question_key(s)) >= min_chars]
    take = min(k, len(sents) - 1, len(candidates))
    if take < 1:
        return IctResult([], text, f"no sentence has {min_chars}+ characters of words to serve as a query")
    rng = random.Random(int.from_bytes(hashlib.blake2b(f"{seed}\x00{passage_id}".encode(), digest_size=8).digest(),
                                       "big"))
    chosen = sorted(rng.sample(candidates, take))
    rest = [s for i, s in enumerate(sents) if i not in set(chosen)]
    return IctResult([sents[i] for i in chosen], join_sentences(rest))
