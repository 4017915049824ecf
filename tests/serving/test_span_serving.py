"""A span-head model served: the real Triton answers what offline prediction answers (nested spans included, no
extension labels), and the GPU layout's python steps decode span scores with the same code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nerwheel.labels import ADDRESS_LABELS
from nerwheel.records import Entity, Record
from nerwheel.serving.backend import Limits
from nerwheel.serving.client import Client
from nerwheel.serving.deploy import deploy
from nerwheel.serving.ensemble import DecodeHandler, TokenizeHandler
from nerwheel.stages.predict import load_predictor
from serving_exports import TEXTS, export_model, make_records


def fusion(record: Record) -> Record:
    """A nested ``admin`` target over province..district, and ``kb:road`` on every road (an extension label)."""
    admin = [e for e in record.entities if e.label in ("prov", "city", "district")]
    extra = [Entity.at(record.text, admin[0].start, admin[-1].end, "admin")] if len(admin) >= 2 else []
    extra += [Entity(e.start, e.end, "kb:road", e.text) for e in record.entities if e.label == "road"]
    return record.with_entities([*record.entities, *extra])


@pytest.fixture(scope="module")
def span_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny span model (served decoding: nested, as its card says) and its export."""
    from nerwheel.model.config import TrainConfig
    from nerwheel.stages.train import train

    out = tmp_path_factory.mktemp("span-models")
    records = [fusion(r) for r in make_records(240, seed=4)]
    config = TrainConfig.model_validate({
        "model": {"model_id": "tiny", "head": "span", "span": {"max_width": 12, "size": 32, "nested": True},
                  "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "training": {"epochs": 6, "batch_size": 16, "sequence_length": 32, "stride": 8, "threads": 1,
                     "learning_rate": 0.005, "seed": 4},
        "output": {"output_dir": str(out), "model_name": "span", "timestamp": False, "plots": False},
        "data": {"labels": [*ADDRESS_LABELS, "admin"]},  # fusion data's targets: the address task's and admin
    })
    model = train(config, train_records=records[:200], dev_records=records[200:])
    return export_model(model, out / "export")


def test_span_model_round_trip_through_triton(triton, span_export: Path, model_name: str) -> None:
    report = deploy(span_export, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert report.status == "live" and report.verified, report.error
    texts = list(TEXTS)
    offline = load_predictor(span_export).predict(texts)
    with Client(triton.url, model=model_name, batch_size=3) as client:
        served = client.infer(texts)
    assert [p.entities for p in served] == offline
    ents = [e for p in served for e in p.entities]
    assert any(e.label == "admin" for e in ents) and any(e.label == "city" for e in ents)
    assert any(a.overlaps(b) for p in served for a in p.entities for b in p.entities if a != b)  # nested, served
    assert not any(":" in e.label for e in ents)  # extension labels only on request, never by default
    assert all(p.tag_ids == [] for p in served)  # a span head has no tag path


def test_gpu_layout_steps_decode_span_scores_like_offline(span_export: Path) -> None:
    tagger = load_predictor(span_export)
    texts = [t for t in TEXTS if len(tagger.encoder.windows(len(tagger.encoder.encode(t)))) == 1]
    assert len(texts) >= 5
    req = np.array([[t.encode()] for t in texts], dtype=object)
    (encoded,) = TokenizeHandler.from_folder(span_export, Limits(max_text_length=64, max_batch_size=16)).serve(
        [{"TEXT": req}], [set()])
    emissions = tagger.run(encoded["input_ids"], encoded["attention_mask"])  # the onnxruntime backend's job
    (decoded,) = DecodeHandler.from_folder(span_export).serve([{"TEXT": req, **encoded, "emissions": emissions}],
                                                              [set()])
    served = [[Entity.from_dict(d) for d in json.loads(e[0])] for e in decoded["ENTITIES"]]
    assert served == tagger.predict(texts) and sum(map(len, served)) > 0
    assert decoded["TAG_IDS"].shape == (len(texts), 0)
