"""The message classifier in the real tritonserver: served == offline, optional CONTEXT, bad requests, hot swap,
rollback (the same deploy path as NER, through the classifier's adapter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from classify_messages import train_tiny_classifier, write_message_files
from serving_exports import swap_then_roll_back

from nerwheel.serving.client import Client, ServingError
from nerwheel.serving.deploy import deploy
from nerwheel.tasks.classify.formats import read_messages
from nerwheel.tasks.classify.records import Message
from nerwheel.tasks.classify.runtime import OnnxClassifier
from nerwheel.tasks.classify.serving import ClassifyClient

pytestmark = pytest.mark.server


@pytest.fixture(scope="session")
def classifier_exports(tmp_path_factory) -> tuple[Path, Path, list[Message]]:
    from nerwheel.tasks.classify.export import export

    files = write_message_files(tmp_path_factory.mktemp("messages"))
    out = tmp_path_factory.mktemp("classifiers")
    v1 = train_tiny_classifier(files["train"], out, "v1")
    v2 = train_tiny_classifier(files["train"], out, "v2", epochs=2, seed=5)  # a different model
    exports = [export(m, m / "onnx").out_dir for m in (v1, v2)]
    return exports[0], exports[1], read_messages(files["eval"]).records


def test_served_classifier_answers_what_offline_answers(triton, classifier_exports, model_name: str) -> None:
    v1, v2, messages = classifier_exports
    report = deploy(v1, str(triton.local_repo), name=model_name, triton_url=triton.url)
    assert report.status == "live" and report.verified and report.probe_texts == 5, report.error
    with ClassifyClient(triton.url, model=model_name, batch_size=7) as client:
        served = client.classify(messages)
        assert client.labels() == ["low_value", "normal", "interrupt"]
    offline = OnnxClassifier(v1).predict(messages)
    assert [p.label for p in served] == [p.label for p in offline]
    for s, o in zip(served, offline, strict=True):
        assert s.probabilities == pytest.approx(o.probabilities, abs=1e-5)

    # raw tritonclient: MESSAGE alone (CONTEXT is optional), and with CONTEXT
    import tritonclient.grpc as g

    raw = Client(triton.url, model=model_name)
    res, version = raw.infer_arrays({"MESSAGE": ["好的", "停停停，换个问题"]}, ["LABEL", "PROBABILITIES"])
    assert version == "1" and res.as_numpy("PROBABILITIES").shape == (2, 3)
    alone = OnnxClassifier(v1).predict([Message("a", "好的"), Message("b", "停停停，换个问题")])
    assert [bytes(x).decode() for x in res.as_numpy("LABEL").reshape(-1)] == [p.label for p in alone]

    # bad requests get an error naming the problem; the model stays up
    with pytest.raises(ServingError, match="MESSAGE\\[1\\] is empty"):
        raw.infer_arrays({"MESSAGE": ["好的", " "]}, ["LABEL"])
    # a CONTEXT row count that differs from MESSAGE's: Triton refuses it before the model (the handler would too)
    with pytest.raises(ServingError, match="batch size does not match|CONTEXT has 1 rows but MESSAGE has 2"):
        raw.infer_arrays({"MESSAGE": ["好的", "嗯"], "CONTEXT": ["你好"]}, ["LABEL"])
    bad = g.InferInput("MESSAGE", [1, 1], "BYTES")
    bad.set_data_from_numpy(np.array([[b"\xff\xfe"]], dtype=object))
    with pytest.raises(Exception, match="not valid UTF-8"):
        raw._client.infer(model_name, [bad])
    assert raw.ready()
    raw.close()

    # a new version swaps in; a broken one rolls back to it
    swap_then_roll_back(v2, v1, str(triton.local_repo), name=model_name, triton_url=triton.url)
    with ClassifyClient(triton.url, model=model_name) as client:
        again = client.classify(messages[:5])
    assert [p.label for p in again] == [p.label for p in OnnxClassifier(v2).predict(messages[:5])]


def test_predict_url_writes_the_served_labels(triton, classifier_exports, model_name: str, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from nerwheel.cli import cli

    v1, _, _ = classifier_exports
    assert deploy(v1, str(triton.local_repo), name=model_name, triton_url=triton.url).status == "live"
    live = tmp_path / "live.txt"
    live.write_text("好的\n帮我查一下订单物流\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["predict", "--task", "classify", "--url", triton.url, "--served-name", model_name,
                                   str(live)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    offline = OnnxClassifier(v1).predict([Message("1", "好的"), Message("2", "帮我查一下订单物流")])
    assert [r["label"] for r in rows] == [p.label for p in offline]
