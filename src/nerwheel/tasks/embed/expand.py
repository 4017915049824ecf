"""``embed expand``: add domain words to the tokenizer, and propose them (``--mine``) for a person to review.

Why: a general tokenizer cuts domain terms (``二甲双胍``, ``冠状动脉``) into
pieces whose meanings are generic; as one token each, a term gets its own
embedding that fine-tuning can move, and passages get shorter.

How (:func:`expand_vocabulary`):

1. each word that the tokenizer does not already hold as one token is added
   as an added token matched on the raw text (``normalized=False``: a BERT
   normaliser that spaces out CJK characters would otherwise never let a
   multi-character word match);
2. the embedding matrix is resized and each new row is set to the **mean of
   the old embeddings of the word's sub-tokens** (Hewitt 2021; not random,
   so the untrained model already reads the new token roughly as it read the
   pieces). A lone SentencePiece word-start piece (``▁``) is left out of the
   mean when the word has other pieces: it carries position, not meaning;
3. the model is saved as a sentence-transformers folder that reloads with the
   new tokenizer and matrix, with ``expand.json`` (what was added, skipped and
   how the corpus's tokenisation length changed).

Mining (:func:`mine_words`) proposes candidates from a corpus, ranked by the
tokens they would save (occurrences x (pieces now - 1)):

* ``freq``: character n-grams (2-6) inside runs of CJK characters and Latin
  words, frequent enough (``min_count``) and cohesive (the weakest split's
  pointwise mutual information at least ``min_cohesion``, so ``的一``, two
  frequent characters meeting by chance, is not a word) and free on both
  sides (left and right neighbour entropy at least ``min_boundary_entropy``,
  so ``为辐鳍鱼纲``, always followed by ``鲈``, is not one); an n-gram is
  dropped when a longer candidate containing it occurs nearly as often;
* ``unigram``: a SentencePiece-style unigram model trained on the corpus
  (``tokenizers``' Unigram trainer); its multi-character pieces that the
  current tokenizer splits are the candidates.

Nothing mined is added automatically: the candidates file is meant to be
edited and then given back with ``--words``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nerwheel.errors import ConfigError, DataError

__all__ = ["CANDIDATES_FILE", "EXPAND_FILE", "Candidate", "ExpandReport", "corpus_texts", "expand_vocabulary",
           "mine_words", "read_words", "write_candidates"]

EXPAND_FILE = "expand.json"
CANDIDATES_FILE = "candidates.tsv"
META = "\u2581"
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]{2,}")
MAX_WORDS = 50_000


@dataclass
class ExpandReport:
    requested: int = 0
    added: list[dict[str, Any]] = field(default_factory=list)  # {word, id, pieces}
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> words
    vocab_before: int = 0
    vocab_after: int = 0
    corpus: dict[str, Any] | None = None  # tokenisation length before/after

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "added": self.added, "skipped": self.skipped,
                "vocab_before": self.vocab_before, "vocab_after": self.vocab_after, "corpus": self.corpus}

    def summary(self) -> str:
        skipped = ", ".join(f"{k} {len(v)}" for k, v in self.skipped.items()) or "none"
        line = (f"{self.requested} words: {len(self.added)} added (vocabulary {self.vocab_before} -> "
                f"{self.vocab_after}), skipped: {skipped}")
        if self.corpus:
            c = self.corpus
            line += (f"; corpus of {c['texts']} texts: {c['tokens_before']} -> {c['tokens_after']} tokens "
                     f"({c['change']:+.1%}), mean {c['mean_before']:.1f} -> {c['mean_after']:.1f} per text")
        return line


def read_words(path: str | Path) -> list[str]:
    """Words, one per line (first tab-separated column, so an edited ``candidates.tsv`` works); ``#`` comments."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such words file; give one word per line")
    words: list[str] = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text (byte {e.start}); save the words file as UTF-8") from None
    for line in lines:
        word = line.split("\t", 1)[0].strip()
        if not word or word.startswith("#") or (not words and word == "word"):  # comments, the TSV header
            continue
        words.append(word)
    if len(words) > MAX_WORDS:
        raise DataError(f"{p}: {len(words):,} words, over the limit of {MAX_WORDS:,}; add them in batches")
    return words


def corpus_texts(path: str | Path, *, limit: int = 200_000) -> list[str]:
    """Texts of a corpus: ``corpus.jsonl`` of a folder (``embed split`` / BEIR), else the lines of text files."""
    from nerwheel.formats.lines import iter_lines
    from nerwheel.tasks.embed.beir import CORPUS_FILE, read_corpus
    from nerwheel.tasks.embed.passages import corpus_files

    p = Path(path)
    if (p / CORPUS_FILE).is_file():
        return list(read_corpus(p).corpus.values())[:limit]
    texts: list[str] = []
    for f in corpus_files([p]):
        for item in iter_lines(f):
            if hasattr(item, "text"):
                texts.append(item.text.strip())
                if len(texts) >= limit:
                    return texts
    if not texts:
        raise DataError(f"{p}: no text to read (give a folder with corpus.jsonl or UTF-8 text files)")
    return texts


def _pieces(tokenizer: Any, word: str) -> tuple[list[int], list[str]]:
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    return list(ids), tokenizer.convert_ids_to_tokens(ids)


def _token_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []


def expand_vocabulary(model_name: str, words: Sequence[str], out: str | Path, *,
                      corpus: Sequence[str] | None = None) -> ExpandReport:
    """Add ``words`` to model ``model_name``'s tokenizer and embeddings; save the model to ``out``.

    ``corpus`` (texts) measures the tokenisation length before and after, and
    for ``e5-small`` also prunes the vocabulary to what it needs (plus the words).
    """
    import torch
    from tokenizers import AddedToken

    from nerwheel.model.layout import CARD_FILE
    from nerwheel.storage import write_json
    from nerwheel.tasks.embed.model import E5_NAME, load_encoder

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose a new output folder", field="out")
    if not words:
        raise DataError("no words to add; give a words file with one word per line (or --mine N first)")
    prune = [*corpus, *words, "query: ", "passage: "] if corpus is not None and model_name == E5_NAME else None
    model = load_encoder(model_name, corpus=prune)
    tokenizer = model.tokenizer
    encoder = model[0].auto_model
    report = ExpandReport(requested=len(words), vocab_before=len(tokenizer))
    texts = list(corpus or [])
    before = _token_counts(tokenizer, texts)
    new: list[tuple[str, list[int], list[str]]] = []
    seen: set[str] = set()
    for raw in words:
        word = raw.strip()
        if not word or any(ch.isspace() for ch in word):
            report.skipped.setdefault("empty-or-has-space", []).append(raw)
            continue
        if word in seen:
            report.skipped.setdefault("duplicate", []).append(word)
            continue
        seen.add(word)
        ids, pieces = _pieces(tokenizer, word)
        content = [(i, p) for i, p in zip(ids, pieces, strict=True) if p != META] or list(zip(ids, pieces,
                                                                                              strict=True))
        if len(content) <= 1:
            report.skipped.setdefault("already-one-token", []).append(word)
            continue
        if tokenizer.unk_token_id is not None and any(i == tokenizer.unk_token_id for i, _ in content):
            report.skipped.setdefault("unknown-characters", []).append(word)  # no pieces to average from
            continue
        new.append((word, [i for i, _ in content], [p for _, p in content]))
    if new:
        tokenizer.add_tokens([AddedToken(w, normalized=False, single_word=False) for w, _, _ in new])
        weights = encoder.get_input_embeddings().weight.detach()
        means = torch.stack([weights[ids].mean(dim=0) for _, ids, _ in new])
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        matrix = encoder.get_input_embeddings().weight
        with torch.no_grad():
            for (word, ids, pieces), mean in zip(new, means, strict=True):
                new_id = tokenizer.convert_tokens_to_ids(word)
                matrix[new_id] = mean
                report.added.append({"word": word, "id": int(new_id), "pieces": pieces, "piece_ids": ids})
    report.vocab_after = len(tokenizer)
    if texts:
        after = _token_counts(tokenizer, texts)
        tb, ta = sum(before), sum(after)
        report.corpus = {"texts": len(texts), "tokens_before": tb, "tokens_after": ta,
                         "change": (ta - tb) / tb if tb else 0.0, "mean_before": tb / len(texts),
                         "mean_after": ta / len(texts),
                         "texts_shortened": sum(1 for a, b in zip(after, before, strict=True) if a < b)}
    model.save(str(out))
    card = {"task": "embed", "name": out.name, "base": model_name, "expansion": report.to_dict()}
    write_json(out / EXPAND_FILE, report.to_dict())
    write_json(out / CARD_FILE, card)
    return report


@dataclass(frozen=True)
class Candidate:
    word: str
    count: int
    pieces: int  # tokens the word takes now

    @property
    def saved(self) -> int:
        """Tokens the corpus would lose if the word were one token."""
        return self.count * (self.pieces - 1)


def _grams(texts: Iterable[str], max_n: int) -> Counter[str]:
    """Counts of CJK character n-grams (1..max_n, inside CJK runs) and of Latin words."""
    counts: Counter[str] = Counter()
    for text in texts:
        for run in _CJK_RUN.findall(text):
            for n in range(1, min(max_n, len(run)) + 1):
                counts.update(run[i : i + n] for i in range(len(run) - n + 1))
        counts.update(_LATIN_WORD.findall(text))
    return counts


def _boundary_entropy(counts: Counter[str], words: Iterable[str]) -> dict[str, float]:
    """Per gram, the smaller of its left and right neighbour entropies (nats), from the (n+1)-gram counts.

    A word is free on both sides (many different neighbours, or the edge of a run); a fragment such as
    ``为辐鳍鱼纲`` is always followed by ``鲈``, so its right entropy is near 0. Occurrences at the edge of a
    CJK run count as one more neighbour ("edge").
    """
    wanted = set(words)
    right: dict[str, Counter[str]] = {}
    left: dict[str, Counter[str]] = {}
    for g, c in counts.items():
        if len(g) >= 3:
            if g[:-1] in wanted:
                right.setdefault(g[:-1], Counter())[g[-1]] += c
            if g[1:] in wanted:
                left.setdefault(g[1:], Counter())[g[0]] += c

    def entropy(side: Counter[str] | None, total: int) -> float:
        side = Counter(side or {})
        edge = total - sum(side.values())
        if edge > 0:
            side["<edge>"] += edge
        n = sum(side.values()) or 1
        return -sum(v / n * math.log(v / n) for v in side.values() if v > 0)

    return {g: min(entropy(left.get(g), counts[g]), entropy(right.get(g), counts[g])) for g in wanted
            if _CJK_RUN.fullmatch(g)}


def _cohesion(word: str, counts: Counter[str], total: int) -> float:
    """The weakest split's pointwise mutual information, log(p(w) / (p(a) p(b))): low for ``的一`` (two frequent
    characters that meet by chance), high for ``背鳍`` (characters that occur together). Latin words: infinite."""
    if not _CJK_RUN.fullmatch(word):
        return math.inf
    p = counts[word] / total
    return min(math.log(p / ((counts[word[:i]] / total) * (counts[word[i:]] / total))) for i in range(1, len(word)))


def _unigram_pieces(texts: Sequence[str], vocab_size: int) -> set[str]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<unk>"], unk_token="<unk>",
                                      max_piece_length=8, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return {p.lstrip(META) for p in tok.get_vocab() if len(p.lstrip(META)) >= 2}


def mine_words(model_name: str, texts: Sequence[str], n: int, *, method: Literal["freq", "unigram"] = "freq",
               min_count: int = 5, max_n: int = 6, min_cohesion: float = 3.0, min_boundary_entropy: float = 1.0,
               unigram_vocab: int = 8000) -> list[Candidate]:
    """The ``n`` candidate words that would save the most tokens on ``texts`` (see the module docstring)."""
    from nerwheel.tasks.embed.model import load_tokenizer

    if n < 1:
        raise ConfigError(f"--mine {n}: give how many candidates to propose (>= 1)", field="mine")
    if not texts:
        raise DataError("no corpus texts to mine words from; give --corpus")
    if method not in ("freq", "unigram"):
        raise ConfigError(f"mining method {method!r}: expected freq or unigram", field="method")
    tok = load_tokenizer(model_name)
    counts = _grams(texts, max_n + 1)  # one longer, for the neighbours of the longest candidates
    allowed = _unigram_pieces(texts, unigram_vocab) if method == "unigram" else None
    total = sum(c for w, c in counts.items() if len(w) == 1) or 1
    cohesive = [w for w, c in counts.items() if c >= min_count and 1 < len(w) <= max_n
                and (allowed is None or w in allowed) and _cohesion(w, counts, total) >= min_cohesion]
    free = _boundary_entropy(counts, cohesive)
    frequent = [w for w in cohesive if free.get(w, math.inf) >= min_boundary_entropy]
    lengths = {w: sum(1 for t in e.tokens if t != META)  # running text has no word-start piece before a word
               for w, e in zip(frequent, tok.encode_batch(frequent, add_special_tokens=False), strict=True)}
    cands = [Candidate(w, counts[w], lengths[w]) for w in frequent if lengths[w] > 1]
    cands.sort(key=lambda c: (-c.saved, -len(c.word), c.word))
    kept: list[Candidate] = []
    for c in cands:  # a fragment of a longer kept candidate that occurs nearly as often adds nothing
        if any(c.word in k.word and k.count >= 0.8 * c.count for k in kept):
            continue
        kept = [k for k in kept if not (k.word in c.word and c.count >= 0.8 * k.count)]
        kept.append(c)
        if len(kept) >= n * 2:
            break
    kept.sort(key=lambda c: (-c.saved, -len(c.word), c.word))
    return kept[:n]


def write_candidates(cands: Sequence[Candidate], path: str | Path, model_name: str) -> Path:
    """``word  count  pieces  saved`` (TSV with a header and a comment line): edit it, then pass it to --words."""
    from nerwheel.tasks.embed.model import load_tokenizer

    tok = load_tokenizer(model_name)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8", newline="\n") as f:
        f.write("# candidate words for `nerwheel embed expand --words`: delete the rows you do not want\n")
        f.write("word\tcount\tpieces\tsaved\tsegmentation\n")
        for c in cands:
            seg = " ".join(t for t in tok.encode(c.word, add_special_tokens=False).tokens if t != META)
            f.write(f"{c.word}\t{c.count}\t{c.pieces}\t{c.saved}\t{seg}\n")
    return p
