"""What Hugging Face users load is what nerwheel predicts, for the classifier too.

A subprocess in which ``import nerwheel`` fails loads the trained tiny
classifier with ``pipeline("text-classification", model=DIR,
trust_remote_code=True)``; its label and probabilities must be exactly those
``nerwheel predict --task classify`` writes, for messages with and without
context and for pairs longer than the model's ``max_length`` (truncated alike).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from classify_messages import make_rows
from nerwheel.tasks.classify.card import ClassifierCard
from nerwheel.tasks.classify.predict import load_classifier, predict_rows
from nerwheel.tasks.classify.records import Message

RUNNER = Path(__file__).with_name("hf_classify_run.py")


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    out = [(r["context"], r["message"]) for r in make_rows(30, seed=9)]
    out += [("", "请问明天北京的天气怎么样，" * 6), ("你好，有什么可以帮你？" * 4, "等一下，停，我有急事要先处理" * 3)]
    return out


def test_pipeline_returns_exactly_what_nerwheel_predicts(tiny_classifier, pairs, tmp_path):
    card = ClassifierCard.read(tiny_classifier)
    assert max(len(c) + len(m) for c, m in pairs) > 2 * card.max_length  # the fixture really needs truncation
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf_modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps({"model": str(tiny_classifier),
                          "pairs": pairs}, ensure_ascii=False), capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout)
    assert got["pipeline_class"] == "NerwheelTextClassificationPipeline"
    messages = [Message(id=str(i), message=m, context=c) for i, (c, m) in enumerate(pairs)]
    expected = predict_rows(load_classifier(tiny_classifier), messages)
    assert len({r["label"] for r in expected}) > 1  # a trained model, not a constant answer
    assert [{"label": r["label"], "probabilities": r["probabilities"]} for r in expected] == \
        [{"label": a["label"], "probabilities": a["probabilities"]} for a in got["answers"]]
    assert all(a["score"] == a["probabilities"][a["label"]] for a in got["answers"])
    assert got["hf_pair_form"] == got["answers"]  # {"text": context, "text_pair": message} reads the same pair
    assert got["one"]["label"] == expected[0]["label"]
    assert got["one"]["probabilities"] == pytest.approx(expected[0]["probabilities"], abs=1e-5)  # batch of one
    alone = predict_rows(load_classifier(tiny_classifier), [Message(id="0", message=pairs[0][1])])[0]
    assert got["message_alone"]["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-5)  # a plain string
    assert "trust_remote_code=True" in got["refused_without_trust"]


def test_folder_carries_its_pipeline_and_card(tiny_classifier):
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    config = json.loads((tiny_classifier / "config.json").read_text(encoding="utf-8"))
    assert config["custom_pipelines"]["text-classification"]["impl"] == \
        "pipeline_classify.NerwheelTextClassificationPipeline"
    assert config["nerwheel"]["task"] == "classify" and config["nerwheel"]["max_length"] == 32
    code = sorted(p.name for p in tiny_classifier.glob("*.py"))
    assert {"pipeline_classify.py", "nerwheel_classifier.py", "nerwheel_encoding.py"} <= set(code)
    for name in code:  # what transformers' loader follows exists, and nothing needs nerwheel installed
        path = tiny_classifier / name
        assert all((tiny_classifier / f"{rel}.py").is_file() for rel in get_relative_imports(path)), name
        assert "nerwheel" not in get_imports(path), name
    readme = (tiny_classifier / "README.md").read_text(encoding="utf-8")
    card = ClassifierCard.read(tiny_classifier)
    assert readme.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification\n")
    assert all(f"`{label}`" in readme for label in card.labels)
    assert f"{card.metrics['dev']['overall']['macro']['f1']:.4f}" in readme
    assert 'pipeline("text-classification", model="THIS_FOLDER", trust_remote_code=True)' in readme
