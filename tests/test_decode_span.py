"""The span decoder (numpy): candidate enumeration and the width limit, flat/nested choice, extension labels kept apart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nerwheel.decode_span import SpanDecoder, SpanLayout, candidates, group_ends, select

NEG = -1e4


def oracle(heads: list[int], n_tokens: int, max_width: int) -> list[tuple[int, int, int]]:
    """Every (first head, last head, width) by brute force: width = last token of `last`'s group - heads[first]."""
    ends = [*(h - 1 for h in heads[1:]), n_tokens - 1]
    return [(a, b, ends[b] - heads[a]) for a, b in itertools.combinations_with_replacement(range(len(heads)), 2)
            if ends[b] - heads[a] < max_width]


@pytest.mark.parametrize("heads, n_tokens", [
    ([0, 1, 2, 3, 4, 5, 6, 7], 8),  # one token per character (Chinese)
    ([0, 2, 3, 6, 7], 9),  # sub-tokens after some heads (a word split in pieces, byte fallback)
    ([0, 1, 2], 5),  # trailing tokens without a character span (whitespace) join the last group
    ([0, 5], 6),  # a head whose group alone is wider than small limits
    ([0], 1),
    ([], 0),
])
@pytest.mark.parametrize("max_width", [1, 2, 3, 5, 64])
def test_candidates_are_exactly_the_spans_within_the_width_limit(heads, n_tokens, max_width):
    first, last, width = candidates(np.array(heads, dtype=np.int64), n_tokens, max_width)
    got = list(zip(first.tolist(), last.tolist(), width.tolist()))
    assert got == oracle(heads, n_tokens, max_width)
    assert all(w < max_width for _, _, w in got)


def test_width_limit_counts():
    first, last, width = candidates(np.arange(10), 10, 3)
    assert len(first) == 10 + 9 + 8  # widths 0, 1, 2 from every start that has room
    spans = set(zip(first.tolist(), last.tolist()))
    assert (0, 2) in spans and (0, 3) not in spans and (9, 9) in spans
    assert group_ends(np.array([0, 2, 3]), 6).tolist() == [1, 2, 5]


@pytest.mark.parametrize("spans, nested, kept", [
    # (score, first, last, label) -> the (first, last, label) kept, best first
    ([(3.0, 0, 5, 0), (2.0, 1, 2, 1)], False, [(0, 5, 0)]),  # flat: the inner span loses to the better outer one
    ([(3.0, 0, 5, 0), (2.0, 1, 2, 1)], True, [(0, 5, 0), (1, 2, 1)]),  # nested: both
    ([(1.0, 0, 5, 0), (2.0, 1, 2, 1)], False, [(1, 2, 1)]),
    ([(3.0, 0, 3, 0), (2.0, 2, 5, 1)], True, [(0, 3, 0)]),  # crossing spans are never both kept
    ([(3.0, 0, 3, 0), (2.0, 0, 3, 1)], True, [(0, 3, 0)]),  # one label per span
    ([(3.0, 0, 1, 0), (2.0, 2, 3, 0), (1.0, 0, 3, 1)], True, [(0, 1, 0), (2, 3, 0), (0, 3, 1)]),
    ([(3.0, 0, 1, 0), (2.0, 2, 3, 0), (1.0, 0, 3, 1)], False, [(0, 1, 0), (2, 3, 0)]),
])
def test_select(spans, nested, kept):
    assert [(a, b, lab) for _, a, b, lab in select(spans, nested=nested)] == kept


LABELS = ("city", "prov", "kb:city", "pos:n", "pos:ns")
TEXT = "浙江省杭州市"


def scores(hits: dict[tuple[int, int, str], float], n: int = len(TEXT), width: int = 6) -> np.ndarray:
    """Stitched scores [heads, width * labels] of a one-token-per-character text: NEG except ``hits``."""
    grid = np.full((n, width, len(LABELS)), NEG, dtype=np.float32)
    for (start, end, label), s in hits.items():
        grid[start, end - 1 - start, LABELS.index(label)] = s
    return grid.reshape(n, -1)


def decode(hits, **kw):
    dec = SpanDecoder(SpanLayout(LABELS, 6), **{k: kw.pop(k) for k in ("threshold",) if k in kw})
    heads = np.arange(len(TEXT))
    spans = np.stack([heads, heads + 1], axis=1)
    return [(e.start, e.end, e.label) for e in dec.decode_one(TEXT, scores(hits), heads, spans, len(TEXT), **kw)]


HITS = {(0, 3, "prov"): 4.0, (3, 6, "city"): 3.0, (3, 6, "kb:city"): 9.0, (3, 5, "pos:ns"): 8.0, (0, 2, "pos:ns"): 7.0,
        (2, 3, "pos:n"): 6.0, (2, 4, "city"): -1.0}


def test_extension_labels_never_leak_into_target_output():
    # the extension labels score higher than every target here, and still never appear
    assert decode(HITS) == [(0, 3, "prov"), (3, 6, "city")]
    assert decode(HITS, nested=True) == [(0, 3, "prov"), (3, 6, "city")]


def test_extensions_on_request_are_decoded_per_namespace():
    got = decode(HITS, extensions=True)
    # kb: and pos: are separate groups: each may overlap the targets and the other group, not itself (flat)
    assert got == [(0, 3, "prov"), (0, 2, "pos:ns"), (2, 3, "pos:n"), (3, 6, "city"), (3, 6, "kb:city"),
                   (3, 5, "pos:ns")]


def test_nested_targets_on_request():
    hits = {(0, 6, "city"): 5.0, (0, 3, "prov"): 4.0, (3, 6, "city"): 3.0, (1, 4, "prov"): 2.0}
    assert decode(hits) == [(0, 6, "city")]
    assert decode(hits, nested=True) == [(0, 6, "city"), (0, 3, "prov"), (3, 6, "city")]  # (1, 4) crosses


def test_threshold_is_a_probability_and_scores_are_probabilities():
    hits = {(0, 3, "prov"): 0.5, (3, 6, "city"): -0.5}
    assert decode(hits) == [(0, 3, "prov")]
    assert decode(hits, threshold=0.3) == [(0, 3, "prov"), (3, 6, "city")]
    dec = SpanDecoder(SpanLayout(LABELS, 6))
    heads = np.arange(len(TEXT))
    (ent,) = dec.decode_one(TEXT, scores(hits), heads, np.stack([heads, heads + 1], 1), len(TEXT), source="model:x")
    assert ent.score == pytest.approx(1 / (1 + np.exp(-0.5)), abs=1e-4) and ent.source == "model:x"
    with pytest.raises(ValueError, match="between 0 and 1"):
        SpanDecoder(SpanLayout(LABELS, 6), threshold=1.0)


def test_spans_come_back_in_character_offsets_of_their_heads():
    """Heads that cover several characters (a wordpiece ``63``): spans use the heads' character spans."""
    text = "文三路63号"
    heads = np.array([0, 1, 2, 3, 4])
    spans = np.array([[0, 1], [1, 2], [2, 3], [3, 5], [5, 6]])
    grid = np.full((5, 6, len(LABELS)), NEG, dtype=np.float32)
    grid[3, 1, LABELS.index("city")] = 2.0  # heads 3..4: "63号"
    (ent,) = SpanDecoder(SpanLayout(LABELS, 6)).decode_one(text, grid.reshape(5, -1), heads, spans, 5)
    assert (ent.start, ent.end, ent.text) == (3, 6, "63号")
