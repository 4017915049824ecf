"""``nerwheel classify label | feedback | merge``: the classifier's teacher side, thin shells over
:mod:`nerwheel.tasks.classify.teachers` and :mod:`nerwheel.tasks.classify.feedback`.

Train, evaluate, export, predict, gate, deploy and run are the shared commands
with ``--task classify`` (or the task read from the model's ``nerwheel.json``).
Every command writes JSONL messages, a JSON report and, beside the output,
``OUT.rejects.jsonl`` with every input line it could not read (file, line,
kind, reason).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from nerwheel.cli.llm_options import llm_configs, llm_options, open_cache

__all__ = ["classify"]


def _read(path: str | Path, rejects: list[Any], labels: Any = None, *, what: str) -> list[Any]:
    from nerwheel.formats import FormatError
    from nerwheel.tasks.classify.formats import read_messages

    try:
        result = read_messages(path, labels=labels)
    except (FormatError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None
    click.echo(result.summary(), err=True)
    rejects.extend(result.rejects)
    return list(result.records)


def _write(messages: list[Any], out: str | Path, rejects: list[Any], report: dict[str, Any],
           report_path: str | None = None) -> None:
    from nerwheel.formats import write_rejects
    from nerwheel.tasks.classify.formats import write_messages

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_messages(messages, out)
    write_rejects(rejects, f"{out}.rejects.jsonl")
    Path(report_path or f"{out}.report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    click.echo(f"wrote {len(messages)} messages to {out}; {len(rejects)} rejected input lines to "
               f"{out}.rejects.jsonl; report {report_path or f'{out}.report.json'}", err=True)


def _teachers(kinds: tuple[str, ...], llm_kw: dict[str, Any], model: str | None, threshold: float, labels: Any,
              definitions: str | None, examples: list[Any], out: Path) -> tuple[list[Any], Any]:
    from nerwheel.tasks.classify.predict import load_classifier
    from nerwheel.tasks.classify.teachers import LLMClassifier, ModelTeacher

    built: list[Any] = []
    cache = None
    for kind in dict.fromkeys(kinds):
        if kind == "model":
            if not model:
                raise click.UsageError("--teacher model needs --teacher-model DIR (a trained classifier)")
            built.append(ModelTeacher(load_classifier(model), threshold=threshold, name=f"model:{Path(model).name}"))
        elif kind == "llm":
            configs = llm_configs(llm_kw)
            if not configs:
                raise click.UsageError("--teacher llm needs --llm-url and --llm-model")
            if labels is None:
                raise click.UsageError("--teacher llm needs the label set: --labels-file labels.json")
            defs = json.loads(Path(definitions).read_text(encoding="utf-8")) if definitions else {}
            cache = open_cache(llm_kw, out)
            built += [LLMClassifier(c, labels, definitions=defs, examples=examples, cache=cache) for c in configs]
    return built, cache


def _labels(path: str | None) -> Any:
    from nerwheel.tasks.classify.records import LabelSet

    return LabelSet.read(path) if path else None


_teacher_options = [
    click.option("--teacher", "teachers", multiple=True, type=click.Choice(["llm", "model"]), required=True,
                 help="Teacher(s); repeat for several, they vote (one LLM teacher per --llm-model)."),
    click.option("--teacher-model", help="A trained classifier (model or export dir, or host:port) for --teacher "
                 "model."),
    click.option("--threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True,
                 help="The model teacher abstains below this confidence."),
    click.option("--labels-file", type=click.Path(exists=True, dir_okay=False),
                 help="labels.json: the classes the LLM may answer."),
    click.option("--definitions", type=click.Path(exists=True, dir_okay=False),
                 help="JSON {label: definition} shown to the LLM."),
    click.option("--examples", type=click.Path(exists=True, dir_okay=False),
                 help="Labelled messages the LLM's few-shot examples are chosen from (2 per class)."),
    click.option("--min-votes", type=click.IntRange(min=1), help="Votes a label needs (default: a majority of the "
                 "teachers that answered)."),
]


def teacher_options(f: Any) -> Any:
    for opt in reversed(_teacher_options):
        f = opt(f)
    return llm_options(f)


@click.group()
def classify() -> None:
    """The message classifier's teachers: label traffic, diff against the live model, merge sources."""


@classify.command("label")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Labelled messages (JSONL).")
@teacher_options
def label(input_path, out, teachers, teacher_model, threshold, labels_file, definitions, examples, min_votes,
          **llm_kw):
    """Label INPUT with K teachers (few-shot LLMs, a trained model) that vote; read = labelled + undecided + failed.

    Each labelled message keeps every teacher's answer, the agreement and the voters in meta; undecided and
    failed messages go to OUT.rejects.jsonl with the answers.
    """
    from nerwheel.formats.base import Reject
    from nerwheel.tasks.classify.teachers import vote

    labels = _labels(labels_file)
    rejects: list[Any] = []
    messages = _read(input_path, rejects, labels, what="INPUT")
    seed = _read(examples, [], labels, what="--examples") if examples else []
    built, cache = _teachers(teachers, llm_kw, teacher_model, threshold, labels, definitions, seed, Path(out))
    try:
        result = vote(messages, built, min_votes=min_votes)
    finally:
        if cache is not None:
            cache.close()
    rejects += [Reject(input_path, 0, f"{row['reason']}: {row['answers']}", json.dumps(row, ensure_ascii=False),
                       kind=kind) for kind, rows in (("undecided", result.undecided), ("failed", result.failed))
                for row in rows]
    _write(result.labelled, out, rejects, {**result.report, "input_rejected": len(rejects) - len(result.undecided)
                                           - len(result.failed)})
    r = result.report
    click.echo(f"read {r['read']} = labelled {r['labelled']} + undecided {r['undecided']} + failed {r['failed']}; "
               f"mean agreement {r['mean_agreement']}")


@classify.command("feedback")
@click.option("--model", required=True, help="The live classifier (model or export dir, or host:port).")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Live messages (their labels, if any, are ignored).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Feedback training messages (JSONL).")
@click.option("--holdout", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Eval file(s): live messages equal to one of theirs are dropped (no leakage).")
@click.option("--confidence", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Also keep messages the model got right below this confidence (kind low_confidence).")
@teacher_options
def feedback(model, input_path, out, holdout, confidence, teachers, teacher_model, threshold, labels_file,
             definitions, examples, min_votes, **llm_kw):
    """Diff the live classifier against the teachers on live messages; the disagreements become training data."""
    from nerwheel.tasks.classify.feedback import feedback as run
    from nerwheel.tasks.classify.predict import load_classifier

    labels = _labels(labels_file)
    rejects: list[Any] = []
    live = [m.with_label(None) for m in _read(input_path, rejects, labels, what="--input")]
    held = [m for p in holdout for m in _read(p, [], labels, what="--holdout")]
    seed = _read(examples, [], labels, what="--examples") if examples else []
    built, cache = _teachers(teachers, llm_kw, teacher_model, threshold, labels, definitions, seed, Path(out))
    try:
        result = run(load_classifier(model), built, live, holdout=held, confidence=confidence, min_votes=min_votes)
    finally:
        if cache is not None:
            cache.close()
    _write(result.records, out, rejects, result.report)
    click.echo(f"{result.report['written']} feedback messages: {result.report['kinds']}")


@classify.command("merge")
@click.option("--gold", type=click.Path(exists=True, dir_okay=False), help="Human labels (always kept).")
@click.option("--extra", "extras", multiple=True, metavar="KIND=FILE", help="Another labelled source (repeatable).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Merged messages (JSONL).")
@click.option("--precedence", default="gold,llm,model", show_default=True, help="Source kinds, most trusted first.")
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="labels.json for integer labels.")
def merge(gold, extras, out, precedence, labels_file):
    """Fuse gold, LLM and model labels into one set by precedence; every message keeps who said what."""
    from nerwheel.tasks.classify.feedback import merge as run

    labels = _labels(labels_file)
    rejects: list[Any] = []
    sources = [("gold", _read(gold, rejects, labels, what="--gold"))] if gold else []
    for value in extras:
        kind, sep, path = value.partition("=")
        if not sep or not Path(path).is_file():
            raise click.BadParameter(f"{value!r}: expected KIND=FILE with an existing file", param_hint="--extra")
        sources.append((kind.strip(), _read(path, rejects, labels, what="--extra")))
    if not sources:
        raise click.UsageError("give --gold and/or at least one --extra KIND=FILE")
    try:
        result = run(sources, [k.strip() for k in precedence.split(",") if k.strip()])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _write(result.records, out, rejects, result.report)
    click.echo(f"{result.report['written']} messages; by source {result.report['by_source']}; conflicts "
               f"{result.report['conflicts']}")
