"""Distillation: student specs, vocabulary pruning, teacher/student alignment, the loss, and students that learn.

The teacher is the session's tiny CRF model (tests/model/conftest.py); the
traffic is synthetic addresses the test writes as plain text lines (no labels),
so everything the students learn comes from the teacher.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tokenizers import Tokenizer

from model_synth import make_mixed
from nerwheel.cli import cli
from nerwheel.errors import ConfigError
from nerwheel.labels import TagSet
from nerwheel.model.distill import DistillLoss, align_teacher, load_distill_config
from nerwheel.model.encoding import TextEncoder, ensure_char_split
from nerwheel.model.runtime import TorchTagger
from nerwheel.model.students import parse_student, prune_tokenizer, vocabulary_for
from nerwheel.model.tiny import char_vocab, tiny_tokenizer
from nerwheel.stages.distill import distill

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from test_encoding import _sentencepiece_like  # noqa: E402 - a shared small XLM-R-like tokenizer

STUDENT_TINY = "tiny:hidden_size=32,num_layers=1,num_heads=2,intermediate_size=64"


@pytest.mark.parametrize("spec,kind,detail", [
    ("tiny", "tiny", 256), (STUDENT_TINY, "tiny", 32), ("shallow:3", "shallow", 3), ("shallow:1,vocab=full", "shallow", 1),
])
def test_student_specs(spec, kind, detail):
    s = parse_student(spec)
    assert s.kind == kind and (s.tiny.hidden_size if kind == "tiny" else s.layers) == detail
    assert s.prune_vocabulary == ("vocab=full" not in spec)


@pytest.mark.parametrize("spec,message", [
    ("big", "Allowed forms are"), ("shallow", "layer count"), ("shallow:0", "layer count"),
    ("shallow:2,vocab=some", "vocab=pruned|full"), ("tiny:hidden=3", "hidden"), ("tiny:num_heads=3", "divide"),
    ("tiny:num_layers", "key=value"),
])
def test_bad_student_specs_name_the_allowed_forms(spec, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_student(spec)
    assert err.value.field == "student"


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_pruned_vocabulary_cuts_the_texts_exactly_as_the_teacher(kind):
    texts = ["浙江省杭州市100号", "浙江 100号", "杭州市"]
    if kind == "wordpiece":
        tok = tiny_tokenizer(char_vocab(texts + ["广东省深圳市南山区ABC"]))
    else:
        tok = ensure_char_split(_sentencepiece_like(byte_fallback=True))
    keep = vocabulary_for(tok, texts)
    pruned = prune_tokenizer(tok, keep)
    assert pruned.get_vocab_size() == len(keep) < tok.get_vocab_size()
    for text in texts:
        full = tok.encode(text)
        small = pruned.encode(text)  # special tokens included: the post-processor's ids were renumbered
        assert keep[small.ids].tolist() == full.ids and small.offsets == full.offsets
    assert Tokenizer.from_str(pruned.to_str()).get_vocab_size() == len(keep)


def test_align_teacher_matches_positions_by_their_first_character():
    text = "浙江 100号"
    teacher = TextEncoder(ensure_char_split(_sentencepiece_like()), sequence_length=32, stride=0, pad_id=1).encode(text)
    student = TextEncoder(tiny_tokenizer(char_vocab([text])), sequence_length=32, stride=0, pad_id=0).encode(text)
    assert teacher.head_spans.tolist() == [[0, 1], [1, 2], [3, 6], [6, 7]]  # "100" is one teacher piece
    em = np.arange(len(teacher.heads) * 2, dtype=np.float32).reshape(-1, 2)
    rows = align_teacher(student, teacher, em)
    starts = student.head_spans[:, 0].tolist()
    assert starts == [0, 1, 3, 4, 5, 6]
    got = {s: rows[h].tolist() for s, h in zip(starts, student.heads.tolist())}
    assert got[0] == [0, 1] and got[1] == [2, 3] and got[3] == [4, 5] and got[6] == [6, 7]
    assert np.isnan(got[4]).all() and np.isnan(got[5]).all()  # inside the teacher's "100": no own target


def test_distill_loss_vanishes_only_when_the_student_matches_the_teacher():
    tags = TagSet(("a",)).tags

    class Hard:  # the hard part is the model's own loss; fixed here to isolate the KL term
        def loss(self, emissions, labels):
            return emissions.sum() * 0.0

    teacher = torch.randn(2, 5, len(tags)) * 3
    mask = torch.tensor([[True, True, False, True, True], [True, False, False, False, False]])
    batch = {"labels": torch.zeros(2, 5, dtype=torch.long), "soft": teacher, "soft_mask": mask}
    for temperature in (1.0, 4.0):
        loss = DistillLoss(temperature, kl_weight=1.0, hard_weight=1.0)
        assert loss(Hard(), teacher.clone(), batch).item() == pytest.approx(0.0, abs=1e-6)
        student = torch.zeros_like(teacher, requires_grad=True)
        value = loss(Hard(), student, batch)
        assert value.item() > 0.01 and loss.last["kl"] == pytest.approx(value.item())
        value.backward()
        assert student.grad[~mask].abs().sum() == 0 and student.grad[mask].abs().sum() > 0
    with pytest.raises(ConfigError):
        DistillLoss(0.0)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """Unlabelled synthetic addresses as plain text lines (seeded, none of them the teacher's training texts)."""
    path = tmp_path_factory.mktemp("traffic") / "traffic.txt"
    path.write_text("\n".join(r.text for r in make_mixed(700, seed=11)) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("student", [STUDENT_TINY, "shallow:1"])
def test_distilled_students_agree_with_the_teacher(student, tiny_model, traffic, address_data, tmp_path):
    config = load_distill_config(overrides={
        "teacher": str(tiny_model), "texts_file": str(traffic), "student": student, "out": str(tmp_path / "s"),
        "training": {"epochs": 6, "batch_size": 16, "threads": 1},
        "distill": {"dev_ratio": 0.15}})
    result = distill(config)
    s = result.summary
    assert s["heldout_texts"] >= 90 and s["student_parameters"] < s["teacher_parameters"]
    assert s["agreement_with_teacher"]["strict_f1"] >= 0.9, s
    card = json.loads((result.model_dir / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["distillation"]["student"] == student and card["data"]["gold_texts"] == 0
    # an ordinary model dir: it loads, predicts, and reads the test set nearly as the teacher does
    texts = [r.text for r in address_data["test"]]
    from nerwheel import metrics as M

    teacher = TorchTagger.from_dir(tiny_model).predict(texts, scores=False)
    mine = TorchTagger.from_dir(result.model_dir).predict(texts, scores=False)
    assert M.span_scores(teacher, mine)[0]["strict"]["f1"] >= 0.9
    if student.startswith("shallow"):
        assert card["training"]["layers"] == 1 and card["training"]["vocab_size"] < card["training"][
            "teacher_vocab_size"]


def test_distill_cli_with_gold_dev_reports_both_models(tiny_model, traffic, address_data, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in address_data["dev"]),
                   encoding="utf-8")
    out = tmp_path / "student"
    res = CliRunner().invoke(cli, ["distill", "--teacher", str(tiny_model), "--texts", str(traffic), "--student",
                                   STUDENT_TINY, "--out", str(out), "--dev", str(dev), "--epochs", "2",
                                   "--set", "training.threads=1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(out)
    assert "dev (gold): student strict F1" in res.stderr and "teacher" in res.stderr
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))["distillation"]
    assert card["dev"]["kind"] == "gold" and card["dev"]["teacher"]["strict_f1"] >= 0.9
    again = CliRunner().invoke(cli, ["distill", "--teacher", str(tiny_model), "--texts", str(traffic),
                                     "--student", "shallow:9", "--out", str(tmp_path / "other")])
    assert again.exit_code == 1 and "choose K from 1 to 2" in again.stderr


def test_a_span_teacher_is_refused_before_any_work(span_model, traffic, tmp_path):
    """A span head has no per-character tag distribution: the CLI says so, names --teacher, and writes nothing."""
    out = tmp_path / "student"
    res = CliRunner().invoke(cli, ["distill", "--teacher", str(span_model), "--texts", str(traffic), "--out",
                                   str(out)])
    assert res.exit_code == 1, res.output
    assert "span head" in res.stderr and "crf or softmax" in res.stderr and "(CLI: --teacher)" in res.stderr
    assert not out.exists()


def test_pipeline_distill_step_passes_the_model_on_or_serves_a_student(tiny_model, address_data, tmp_path):
    """The KFP step: empty distill_student hands the trained model on; a spec trains a student on the merged texts."""
    from nerwheel.components.data import write_dataset
    from nerwheel.components.steps.distill import run

    merged = tmp_path / "merged"
    write_dataset(merged, address_data["train"][:240])
    same = run(model_path=str(tiny_model), train_path=str(merged), student=" ", overrides="",
               student_path=str(tmp_path / "none" / "distilled"), report_path=str(tmp_path / "none.html"))
    assert same == {"distilled": 0.0}
    assert "<table>" in (tmp_path / "none.html").read_text(encoding="utf-8")  # every step's report holds a table
    for name in ("nerwheel.json", "model.safetensors"):
        assert (tmp_path / "none" / "distilled" / name).read_bytes() == (tiny_model / name).read_bytes()

    out = tmp_path / "student" / "distilled"
    scalars = run(model_path=str(tiny_model), train_path=str(merged), student=STUDENT_TINY,
                  overrides="training.epochs=2; training.threads=1; distill.dev_ratio=0.2",
                  student_path=str(out), report_path=str(tmp_path / "student.html"))
    assert scalars["distilled"] == 1.0 and scalars["student_parameters"] < scalars["teacher_parameters"]
    assert 0.0 <= scalars["agreement_strict_f1"] <= 1.0
    card = json.loads((out / "nerwheel.json").read_text(encoding="utf-8"))
    assert card["distillation"]["student"] == STUDENT_TINY
    assert card["data"]["gold_texts"] > 0  # the merged labels count as gold
    assert card["training"]["training"]["epochs"] == 2
    assert TorchTagger.from_dir(out).predict(["浙江省杭州市西湖区文三路"], scores=False)  # an ordinary model dir

    with pytest.raises(ConfigError, match=r"sets out, which the pipeline sets itself.*\(pipeline: distill_overrides\)"):
        run(model_path=str(tiny_model), train_path=str(merged), student="tiny", overrides=f"out={tmp_path / 'x'}",
            student_path=str(tmp_path / "x" / "distilled"), report_path=str(tmp_path / "x.html"))


def test_a_teacher_of_a_task_without_distillation_is_refused_with_the_way_forward(traffic, tmp_path):
    """Taggers and classifiers distil (tests/tasks/classify/test_classify_distill.py); an embedding model does not."""
    teacher = tmp_path / "encoder"
    teacher.mkdir()
    (teacher / "nerwheel.json").write_text(json.dumps({"task": "embed"}), encoding="utf-8")
    res = CliRunner().invoke(cli, ["distill", "--teacher", str(teacher), "--texts", str(traffic), "--out",
                                   str(tmp_path / "student")])
    assert res.exit_code == 1, res.output
    assert "embed model" in res.stderr and "--task embed" in res.stderr and "(CLI: --teacher)" in res.stderr
    assert not (tmp_path / "student").exists()


@pytest.mark.parametrize("overrides", [{"training": {"threads": 1}}, {"training": {"epochs": None, "batch_size": 8}}])
def test_a_partial_training_section_keeps_the_distillation_epoch_default(overrides):
    """`nerwheel distill ... --set training.threads=1` crashed in the loop (epochs None + 1): a training section
    given in part replaced the default's epochs with the backbone-default marker a student has no row for."""
    config = load_distill_config(None, {"teacher": "t", "texts_file": "x", "out": "o", **overrides})
    assert config.training.epochs == 5
    assert load_distill_config(None, {"teacher": "t", "texts_file": "x", "out": "o",
                                      "training": {"epochs": 2}}).training.epochs == 2
