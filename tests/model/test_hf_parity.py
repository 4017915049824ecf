"""What Hugging Face users load is what nerwheel predicts: a model folder's own code, run without nerwheel.

A subprocess in which ``import nerwheel`` fails loads each trained folder
(tiny CRF, tiny softmax, the bert-moe-qwen2 hybrid decoded by beam search,
e5-small with its SentencePiece tokenizer, a tiny span head)
with ``pipeline("token-classification", model=DIR, trust_remote_code=True)``;
its entities must be exactly ``nerwheel predict``'s for every text, texts
longer than one window included.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_synth import long_record, make_mixed
from nerwheel.model.card import ModelCard
from nerwheel.model.runtime import TorchTagger
from nerwheel.stages.predict import load_predictor, predict_records
from nerwheel.records import Record

RUNNER = Path(__file__).with_name("hf_pipeline_run.py")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    out = [r.text for r in make_mixed(24, seed=31)]
    out += [long_record(12, seed=3).text, long_record(40, seed=4).text]  # ~2 and ~8 windows of 64 tokens
    out += ["杭州市", "北京市朝阳区建国路88号SOHO现代城A座2301", "浙江省杭州市余杭区 文一西路 969号（阿里巴巴西溪园区）"]
    return out


def _run_hf(request: dict, modules: Path) -> dict:
    """What :data:`RUNNER` answers for ``request``, in a process where nerwheel cannot be imported."""
    env = {**os.environ, "HF_MODULES_CACHE": str(modules), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps(request, ensure_ascii=False),
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def hf_answers(tmp_path_factory, tiny_model, tiny_softmax_model, hybrid_model, e5_model, span_model, texts):
    models = [tiny_model, tiny_softmax_model, hybrid_model, e5_model, span_model]
    request = {"models": [str(m) for m in models], "texts": texts, "short_texts": texts[:6]}
    return _run_hf(request, tmp_path_factory.mktemp("hf_modules"))


def _nerwheel_predict(model: Path, texts: list[str], **options) -> list[list[dict]]:
    """What `nerwheel predict --model MODEL` writes for these texts (span JSONL entities)."""
    records = [Record(id=str(i), text=t) for i, t in enumerate(texts)]
    return [[e.to_dict() for e in r.entities] for r in predict_records(load_predictor(model, **options), records)]


def _spans(entities: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "score"} for e in entities]


@pytest.mark.parametrize("which", ["tiny_model", "tiny_softmax_model", "hybrid_model", "e5_model"])
def test_pipeline_returns_exactly_what_nerwheel_predicts(which, request, hf_answers, texts):
    model = request.getfixturevalue(which)
    card = ModelCard.read(model)
    assert max(len(t) for t in texts) > 3 * card.sequence_length  # the fixture really needs sliding windows
    got = hf_answers[str(model)]
    assert got["pipeline_class"] == "NerwheelTokenClassificationPipeline"
    expected = _nerwheel_predict(model, texts)
    if which != "e5_model":  # one epoch of e5-small finds little; its n-best readings below do hold entities
        assert sum(len(e) for e in expected) > 100
    # the same spans, labels and sources; a span's score (its mean posterior, rounded to 4 places) within one step of
    # that rounding: the folder's code and nerwheel's sum in their own order, and a 1e-7 difference can cross a
    # rounding boundary (seen: 0.9001 vs 0.9002)
    differing = [i for i, (a, b) in enumerate(zip(got["entities"], expected, strict=True)) if _spans(a) != _spans(b)]
    assert not differing, f"texts {differing} differ, first: {got['entities'][differing[0]]} vs {expected[differing[0]]}"
    scores = [(x.get("score"), y.get("score")) for a, b in zip(got["entities"], expected) for x, y in zip(a, b)]
    assert [x for x, _ in scores] == pytest.approx([y for _, y in scores], abs=1e-4)
    assert _spans(got["one"]) == _spans(expected[0])
    # n-best: the first reading is the prediction, probabilities fall, as nerwheel's own n-best
    mine = TorchTagger.from_dir(model).n_best(texts[:4], 3)
    assert sum(len(r["entities"]) for rows in got["n_best"] for r in rows) > 0
    for hf_rows, our_rows, best in zip(got["n_best"], mine, expected):
        assert _spans(hf_rows[0]["entities"]) == _spans(best)
        assert [r["entities"] for r in hf_rows] == [[e.to_dict() for e in ents] for _, ents in our_rows]
        assert [r["score"] for r in hf_rows] == pytest.approx([p for p, _ in our_rows], abs=1e-5)


def test_span_head_pipeline_returns_what_nerwheel_predicts(span_model, hf_answers, texts):
    """A span-head folder: flat target spans by default, nested ones and extension labels when asked, as predict."""
    got = hf_answers[str(span_model)]
    assert got["pipeline_class"] == "NerwheelTokenClassificationPipeline"
    assert got["model_class"] == "NerwheelForTokenClassification"
    expected = _nerwheel_predict(span_model, texts)
    assert sum(len(e) for e in expected) > 100
    assert got["entities"] == expected and got["one"] == expected[0]
    richer = _nerwheel_predict(span_model, texts, nested=True, extensions=True)
    assert richer != expected and any(":" in e["label"] for ents in richer for e in ents)  # the options do something
    assert got["nested_extensions"] == richer
    assert all("no tag path" in d for d in got["decoded"])
    assert "trust_remote_code=True" in got["refused_without_trust"]


def test_pipeline_refuses_a_lexicon_model_in_one_line_naming_what_runs_it(lexicon_model, tmp_path):
    """A model trained with knowledge-base lexicon features reads inputs only nerwheel computes: loading it with
    transformers' pipeline fails at once, saying what to run instead, rather than tagging without its features."""
    folder = str(lexicon_model[0])
    assert json.loads((lexicon_model[0] / "config.json").read_text(encoding="utf-8"))["nerwheel"]["lexicon"]
    message = _run_hf({"models": [], "texts": [], "short_texts": [], "refused": [folder]},
                      tmp_path / "hf_modules")[folder]["refused_with_trust"]
    assert message.startswith("ValueError: ") and "\n" not in message, message
    assert "model.lexicon" in message and f"`nerwheel predict --model {folder} TEXTS.txt`" in message, message


@pytest.mark.parametrize("which", ["tiny_model", "tiny_softmax_model", "hybrid_model"])
def test_model_class_decodes_with_crf_and_constraints(which, request, hf_answers, texts):
    model = request.getfixturevalue(which)
    got = hf_answers[str(model)]
    expected_class = "NerwheelHybridForTokenClassification" if which == "hybrid_model" else \
        "NerwheelForTokenClassification"
    assert got["model_class"] == expected_class
    assert "trust_remote_code=True" in got["refused_without_trust"]  # never a silent CRF-less pipeline
    tagger = TorchTagger.from_dir(model)
    short = texts[:6]
    encs, emissions = tagger.emissions(short)
    _, paths = tagger.decode_paths(short, encs, emissions)
    # decode() without explicit heads reads every real token as one character: true of these tokenizers
    assert got["decoded"] == [[tagger.card.tags[i] for i in p] for p in paths]


def test_folder_carries_its_code_config_and_card(tiny_model):
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    config = json.loads((tiny_model / "config.json").read_text(encoding="utf-8"))
    assert config["auto_map"] == {"AutoModelForTokenClassification": "modeling_nerwheel.NerwheelForTokenClassification"}
    assert config["custom_pipelines"]["token-classification"]["impl"] == \
        "pipeline_nerwheel.NerwheelTokenClassificationPipeline"
    assert config["nerwheel"]["sequence_length"] == 64 and config["nerwheel"]["decode"]["method"] == "viterbi"
    code = sorted(p.name for p in tiny_model.glob("*.py"))
    assert {"modeling_nerwheel.py", "pipeline_nerwheel.py", "nerwheel_decode.py", "nerwheel_tagger.py",
            "nerwheel_encoding.py", "nerwheel_crf.py"} <= set(code)
    for name in code:  # what transformers' loader follows exists, and nothing needs nerwheel installed
        path = tiny_model / name
        assert all((tiny_model / f"{rel}.py").is_file() for rel in get_relative_imports(path)), name
        assert "nerwheel" not in get_imports(path), name
        ast.parse(path.read_text(encoding="utf-8"))
    readme = (tiny_model / "README.md").read_text(encoding="utf-8")
    card = ModelCard.read(tiny_model)
    assert readme.startswith("---\nlanguage: zh\n")
    assert all(f"`{label}`" in readme for label in card.labels)
    assert f"{card.metrics['dev']['overall']['strict']['f1']:.4f}" in readme
    assert 'pipeline("token-classification", model="THIS_FOLDER", trust_remote_code=True)' in readme
    assert "nerwheel predict --model THIS_FOLDER" in readme


def test_code_comes_from_one_home():
    """The folder's files are the package's own modules; only the import lines differ."""
    from nerwheel.hf.folder import closure, remote_name, rewrite_imports

    modules = closure()
    assert "nerwheel.decode" in modules and "nerwheel.model.tagger" in modules
    assert not any(m.startswith(("nerwheel.stages", "nerwheel.cli", "nerwheel.model.card", "nerwheel.model.config"))
                   for m in modules)  # no pydantic, no CLI: what a transformers user has is enough
    src = modules["nerwheel.model.crf"].read_text(encoding="utf-8")
    out = rewrite_imports(src)
    assert "from .nerwheel_decode import backtrack" in out and "from nerwheel." not in out
    assert out.replace(".nerwheel_decode", "nerwheel.decode").replace(".nerwheel_encoding", "nerwheel.model.encoding") \
        == src
    assert remote_name("nerwheel.hf.modeling_nerwheel") == "modeling_nerwheel"
