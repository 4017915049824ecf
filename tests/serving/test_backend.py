"""The served model's logic without Triton: input limits, per-request errors, outputs equal offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nerwheel.decode import tags_to_entities
from nerwheel.records import Entity
from nerwheel.serving.backend import Handler, Limits, Outputs, RequestError, decode_texts, load_tagger

LIMITS = Limits(max_text_length=20, max_batch_size=3)


def req(*items: bytes | str) -> np.ndarray:
    return np.array([[i.encode() if isinstance(i, str) else i] for i in items], dtype=object)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ((b"\xff\xfeabc",), r"TEXT\[0\] is not valid UTF-8 \(byte b'\\xff' at offset 0\)"),
        (("ok", b"ab\xe4"), r"TEXT\[1\] is not valid UTF-8"),
        (("",), r"TEXT\[0\] is empty"),
        (("ok", "  \n"), r"TEXT\[1\] is empty or only whitespace"),
        (("x" * 21,), r"TEXT\[0\] has 21 characters; the limit is 20"),
        (("a", "b", "c", "d"), "holds 4 texts; the limit is 3"),
        ((), "send at least one text"),
    ],
)
def test_decode_texts_refuses_bad_requests(items: tuple, error: str) -> None:
    with pytest.raises(RequestError, match=error):
        decode_texts(req(*items) if items else np.zeros((0, 1), dtype=object), LIMITS)


def test_decode_texts_accepts_utf8_at_the_limit() -> None:
    assert decode_texts(req("杭州市", "x" * 20), LIMITS) == ["杭州市", "x" * 20]
    assert decode_texts(np.array([b"flat"], dtype=object), LIMITS) == ["flat"]


def test_limits_from_model_config() -> None:
    cfg = {"max_batch_size": 8, "parameters": {"max_text_length": {"string_value": "99"}}}
    assert Limits.from_model_config(cfg) == Limits(max_text_length=99, max_batch_size=8)


@pytest.fixture(scope="module")
def tagger(export_v1: Path):
    return load_tagger("nerwheel.model.runtime:OnnxTagger", export_v1)


def test_handler_isolates_bad_requests_and_matches_offline(tagger) -> None:
    handler = Handler(tagger, Limits(max_text_length=64, max_batch_size=4))
    good_a = ["浙江省杭州市余杭区文一西路969号", "上海市浦东新区张江镇碧波路690号3号楼"]
    good_b = ["四川省成都市武侯区人民南路四段1号"]
    results = handler.run([req(*good_a), req("ok", b"\xff"), req(*good_b)])
    assert isinstance(results[1], RequestError) and "TEXT[1] is not valid UTF-8" in str(results[1])
    offline = tagger.predict(good_a + good_b)
    served = []
    for r in (results[0], results[2]):
        assert isinstance(r, Outputs)
        served += [[Entity.from_dict(d) for d in json.loads(e[0])] for e in r.entities]
    assert served == offline
    assert any(served), "the fixture model should find some entities"


def test_tag_ids_agree_with_entities(tagger) -> None:
    handler = Handler(tagger, Limits(max_text_length=64, max_batch_size=4))
    texts = ["北京市海淀区中关村大街27号中关村大厦15层1501室", "江苏省南京市鼓楼区中山北路30号"]
    (out,) = handler.run([req(*texts)])
    assert out.tag_ids.dtype == np.int32 and out.tag_ids.shape == (2, max(len(t) for t in texts))
    encs = tagger.encoder.encode_batch(texts)
    for text, row, enc, ents in zip(texts, out.tag_ids, encs, out.entities, strict=True):
        path = [int(x) for x in row if x >= 0]
        assert len(path) == len(enc.heads)  # one tag per label-bearing position, padded with -1
        rebuilt = tags_to_entities(text, path, enc.head_spans, tagger.card.tags, tagger.card.scheme)
        assert [e.key for e in rebuilt] == [(d["start"], d["end"], d["label"]) for d in json.loads(ents[0])]


def test_handler_skips_tags_when_nobody_asks(tagger) -> None:
    handler = Handler(tagger, LIMITS)
    (out,) = handler.run([req("杭州市余杭区")], want_tags=[False])
    assert out.tag_ids.shape == (1, 0)
    assert json.loads(out.named()["NBEST"][0, 0]) == {"max": 0, "readings": []}  # n-best only when asked


def test_n_best_readings_are_the_taggers(tagger) -> None:
    handler = Handler(tagger, Limits(max_text_length=64, max_batch_size=4, n_best=3))
    texts = ["北京市海淀区中关村大街27号", "江苏省南京市鼓楼区中山北路30号"]
    (out,) = handler.run([req(*texts)], want_n_best=[True])
    offline = tagger.n_best(texts, 3)
    for row, readings, best in zip(out.n_best, offline, out.entities, strict=True):
        listed = json.loads(row[0])
        assert listed["max"] == 3
        assert listed["readings"] == [{"score": p, "entities": [e.to_dict() for e in ents]} for p, ents in readings]
        assert listed["readings"][0]["entities"] == json.loads(best[0])
    cfg = {"max_batch_size": 8, "parameters": {"n_best": {"string_value": "7"}}}
    assert Limits.from_model_config(cfg).n_best == 7


def test_model_failure_answers_each_request_with_an_error() -> None:
    class Broken:
        def predict(self, texts):
            raise MemoryError("out of memory")

    results = Handler(Broken(), LIMITS).run([req("a"), req("")])
    assert "prediction failed: MemoryError: out of memory" in str(results[0])
    assert "TEXT[0] is empty" in str(results[1])
    # The server's own failure is INTERNAL; the client's mistake is INVALID_ARGUMENT.
    assert (results[0].code, results[1].code) == ("INTERNAL", "INVALID_ARG")


def test_the_triton_adapter_sends_only_the_outputs_a_request_names(export_v1: Path) -> None:
    # triton_python_backend_utils exists only inside the stub process: a stand-in records what execute() builds
    # (the real server drops unnamed outputs itself, so only this can see that they are never sent: ~0.3 ms each)
    class PbUtils:
        class TritonError(Exception):
            INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

        class Tensor:
            def __init__(self, name: str, array: np.ndarray) -> None:
                self.name, self.array = name, array

            def as_numpy(self) -> np.ndarray:
                return self.array

        class InferenceResponse:
            def __init__(self, output_tensors: list, error: Exception | None = None) -> None:
                self.names, self.error = [t.name for t in output_tensors], error

        @staticmethod
        def get_input_tensor_by_name(request, name: str):
            return request.inputs.get(name)

    class Request:
        def __init__(self, text: str, names: list[str]) -> None:
            self.inputs = {"TEXT": PbUtils.Tensor("TEXT", req(text))}
            self.names = names

        def requested_output_names(self) -> list[str]:
            return self.names

    from google.protobuf.json_format import MessageToJson

    from nerwheel.serving.backend import model_class
    from nerwheel.serving.config import cpu_model_config

    model = model_class(PbUtils)()
    config = MessageToJson(cpu_model_config("adapter"), preserving_proto_field_name=True)  # as Triton hands it over
    model.initialize({"model_config": config, "model_repository": str(export_v1.parent),
                      "model_version": export_v1.name, "model_name": "adapter"})
    named = [["ENTITIES"], ["ENTITIES", "TAG_IDS"], ["NBEST"], ["ENTITIES", "TAG_IDS", "NBEST"]]
    responses = model.execute([Request("杭州市余杭区文一西路969号", n) for n in named])
    assert [r.names for r in responses] == named and not any(r.error for r in responses)
