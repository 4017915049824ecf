"""A model trained with knowledge-base lexicon features, deployed into the real tritonserver (issue 20).

The features are a third ONNX input, computed per character by the knowledge base
(:mod:`nerwheel.kb.lexicon`) and aligned to tokens and windows (:mod:`nerwheel.model.lexicon`). Offline
(``nerwheel predict``: ONNX Runtime) and in Triton's python backend they come from that same code; here
the served answers, over gRPC, must be exactly the offline ones, for a text longer than one window too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nerwheel.model.runtime import OnnxTagger
from nerwheel.serving.client import Client
from nerwheel.serving.deploy import deploy
from nerwheel.stages.predict import load_predictor
from serving_exports import LONG_TEXT, TEXTS

pytestmark = pytest.mark.server


def test_cpu_layout_serves_a_lexicon_model_as_offline(triton, export_lexicon: Path, model_name: str) -> None:
    texts = [*TEXTS, LONG_TEXT]
    offline = load_predictor(export_lexicon)  # what `nerwheel predict EXPORT` runs
    assert isinstance(offline, OnnxTagger) and offline.lexicon is not None
    encoder = offline.encoder
    assert len(encoder.windows(len(encoder.encode(LONG_TEXT)))) > 1, "LONG_TEXT must span several windows"

    report = deploy(export_lexicon, str(triton.local_repo), name=model_name, triton_url=triton.url,
                    probe_texts=texts)
    assert (report.status, report.verified, report.variant) == ("live", True, "cpu"), report.error
    with Client(triton.url, model=model_name, batch_size=3) as client:
        served = client.infer(texts)

    expected, tags = offline.predict_paths(texts)  # entities and the tag path they come from
    assert expected == offline.predict(texts)
    assert [p.entities for p in served] == expected
    assert sum(map(len, expected)) > len(texts) and len(expected[-1]) >= 4  # entities in both windows of LONG_TEXT
    for got, want in zip(served, expected, strict=True):  # the same posteriors, not only the same spans
        assert [e.score for e in got.entities] == pytest.approx([e.score for e in want], abs=1e-5)
    assert [p.tag_ids for p in served] == tags
    assert {e.source for p in served for e in p.entities} == {f"model:{model_name}/1"}
