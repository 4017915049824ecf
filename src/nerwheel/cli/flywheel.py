"""``nerwheel merge | feedback | pseudo-label | gate``: thin shells over the flywheel stages.

Each command reads files, builds the stage's typed config from flags (or a
``--config`` YAML/JSON file, flags winning), calls one stage function, and
writes records plus a JSON report. Rejected input lines are written next to
the output (``<out>.rejects.jsonl``) so that nothing read is lost silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pydantic

from nerwheel.cli.common import read_input
from nerwheel.cli.decode_options import decode_kwargs, decode_options
from nerwheel.cli.llm_options import llm_options
from nerwheel.records import Record
from nerwheel.storage import write_json

__all__ = ["feedback", "gate", "merge", "pseudo_label"]


# -- shared helpers ----------------------------------------------------------------------------
def _write(records: list[Record], out: str | Path, rejects: list[Any], fmt: str = "spans") -> None:
    from nerwheel.formats import write_records, write_rejects

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_records(records, out, fmt)
    click.echo(f"wrote {len(records)} records to {out}", err=True)
    if rejects:
        rej_path = Path(f"{out}.rejects.jsonl")
        n = write_rejects(rejects, rej_path)
        click.echo(f"wrote {n} rejected input lines to {rej_path}", err=True)


def _load_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        data = (yaml.safe_load(text) or {}) if path.endswith((".yaml", ".yml")) else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"{path}: cannot be parsed: {exc}", param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: a config file must hold a mapping of option -> value", param_hint="--config")
    return data


def _build(cls: type[pydantic.BaseModel], file_values: dict[str, Any], flags: dict[str, Any], hint: str) -> Any:
    values = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    try:
        return cls(**values)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors())
        raise click.BadParameter(problems, param_hint=hint) from None


def _parse_extra(value: str) -> tuple[str | None, str]:
    """``KIND=FILE`` or ``FILE`` (kind then comes from each entity's source)."""
    if "=" in value and not Path(value).exists():
        kind, path = value.split("=", 1)
        return kind.strip(), path
    return None, value


# -- merge ---------------------------------------------------------------------------------------
@click.command()
@click.option("--gold", type=click.Path(exists=True, dir_okay=False), help="Gold (human) labels; taken as complete.")
@click.option("--extra", "extras", multiple=True, metavar="[KIND=]FILE",
              help="Another source (repeatable). KIND names the source of entities that carry none.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Merged records (span JSONL).")
@click.option("--precedence", help="Source kinds, most trusted first [gold,kb,llm,synthetic,model].")
@click.option("--min-agreement", type=int, help="LLM sources that must agree for an LLM span to rank [1].")
@click.option("--fill-gold/--no-fill-gold", default=None, help="Let other sources add spans to gold records.")
@click.option("--keep-extension-labels/--drop-extension-labels", default=None,
              help="Keep prefixed extension labels (pos:...) alongside targets [keep].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON with MergeConfig fields; flags win.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the conflict report (JSON) here.")
def merge(gold, extras, out, precedence, min_agreement, fill_gold, keep_extension_labels, config_path, report):
    """Fuse gold, LLM, knowledge-base, synthetic and model labels with provenance.

    Conflicting spans are settled by --precedence; every output entity names its
    best source, its vote share is its score, and all its supporters are in
    meta.merge. Records found in only one input are kept (original + synthetic
    fusion is one call).
    """
    from nerwheel.stages.merge import MergeConfig, SourceInput
    from nerwheel.stages.merge import merge as run_merge

    if not gold and not extras:
        raise click.UsageError("give --gold and/or at least one --extra")
    cfg = _build(MergeConfig, _load_config(config_path), {
        "precedence": precedence, "min_agreement": min_agreement, "fill_gold": fill_gold,
        "keep_extension_labels": keep_extension_labels}, "--config/flags")
    rejects: list[Any] = []
    gold_records = read_input(gold, what="--gold", rejects=rejects).records if gold else None
    inputs = []
    for value in extras:
        kind, path = _parse_extra(value)
        if not Path(path).is_file():
            raise click.BadParameter(f"{path}: no such file", param_hint="--extra")
        inputs.append(SourceInput(path, read_input(path, what="--extra", rejects=rejects).records, kind))
    result = run_merge(gold_records, inputs, cfg)
    _write(result.records, out, rejects)
    if report:
        write_json(report, {"config": cfg.model_dump(), "rejected_inputs": len(rejects), **result.report.to_dict()})
    click.echo(result.report.summary())


# -- gate ------------------------------------------------------------------------------------------
def _eval_gold(data: str, task: Any, models: list[tuple[Any, Path]], work: Path) -> tuple[Any, Any]:
    """The fixed eval set, judged against the labels of the models scored on it (:func:`read_gold`).

    A line the reader refuses stops the gate (it needs the whole fixed eval set); a record carrying a
    label no model knows is a counted reject, listed in each side's rejects.jsonl under ``work``.
    """
    from nerwheel.stages.evaluate import read_gold

    gold, label_set = read_gold(task, lambda **o: read_input(data, what="--data", task=task, **o), lambda: models,
                                fix="gate on an eval set labelled with the models' labels")
    broken = [r for r in gold.rejects if r.kind != "unknown-label"]
    if broken:
        raise click.ClickException(f"{data}: {len(broken)} eval lines were rejected (first: {broken[0]}); "
                                   "the gate needs the whole fixed eval set, fix the file")
    if label_set is not None:
        click.echo(f"--data: {label_set.describe()}", err=True)
    if gold.rejects:
        click.echo(f"--data: read {gold.read} = accepted {len(gold.records)} + rejected {len(gold.rejects)} (labels "
                   f"no model knows; first: {gold.rejects[0]}), listed in {work}/<side>/rejects.jsonl", err=True)
    return gold, label_set


@click.command()
@click.option("--candidate", required=True, type=click.Path(exists=True),
              help="Candidate model directory, or its metrics.json.")
@click.option("--production", type=click.Path(),
              help="Production model directory or metrics.json (must exist); omit it for the first model.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), help="The fixed eval set both models are run on.")
@click.option("--min-delta", type=float, help="Required rise of overall F1 [0.005].")
@click.option("--max-type-drop", type=float,
              help="A type's F1 may fall by max(MAX_TYPE_DROP, NOISE_SPANS / its gold spans) [0.02].")
@click.option("--noise-spans", type=float,
              help="Gold spans whose flipping is eval-set noise: the per-type floor above [2; 1-2 span types "
                   "then never block].")
@click.option("--min-support", type=int,
              help="Opt-out: types with fewer gold spans are reported, not enforced [0: every type is checked].")
@click.option("--metric", type=click.Choice(["strict", "partial", "type"]), help="Which F1 decides [strict].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON with GatePolicy fields; flags win.")
@click.option("--out", type=click.Path(dir_okay=False), help="Decision record (JSON) [decision.json].",
              default="decision.json")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Where evaluations are written [beside --out].")
@click.pass_context
def gate(ctx, candidate, production, data, min_delta, max_type_drop, min_support, noise_spans, metric, config_path,
         out, work_dir):
    """Promote CANDIDATE only if it beats PRODUCTION on the same eval set.

    Overall F1 must rise by MIN_DELTA, and no entity type's F1 may fall by more
    than max(MAX_TYPE_DROP, NOISE_SPANS / its gold spans). For a classifier
    (read from the metrics or the model's nerwheel.json) the same policy applies
    to macro-F1 and each class's F1 (support: its gold messages). Without
    --production the candidate is the first model and is promoted.

    Models are evaluated on --data judged against their labels (either model's): a record carrying a
    label neither knows is a counted reject (decision record ``input`` and ``label_set``; each side's
    rejects.jsonl under --work-dir); a line that cannot be read stops the gate.

    Exit status: 0 = promote, 3 = refused (reasons in the decision record and on
    stdout), 1/2 = error / usage error.
    """
    from nerwheel.stages.evaluate import MetricsSource, input_counts
    from nerwheel.stages.gate import GatePolicy
    from nerwheel.stages.gate import gate as run_gate

    policy = _build(GatePolicy, _load_config(config_path), {
        "min_delta": min_delta, "max_type_drop": max_type_drop, "min_support": min_support,
        "noise_spans": noise_spans, "metric": metric},
        "--config/flags")
    if production is not None and (not production.strip() or not Path(production).exists()):
        # A mistyped path must not turn into a silent "first model" promotion.
        raise click.BadParameter(f"{production} does not exist; omit --production for the first model",
                                 param_hint="--production")
    sides = {"candidate": candidate, **({"production": production} if production is not None else {})}
    for role, path in sides.items():
        if not data and not Path(path).is_file():
            raise click.UsageError(f"--{role} {path} is a model directory: give --data EVAL to evaluate it on")
    work = Path(work_dir) if work_dir else Path(out).parent / "gate-eval"
    sources = {role: MetricsSource.open(path) for role, path in sides.items()}
    tasks = {role: s.task.name for role, s in sources.items()}
    if len(set(tasks.values())) > 1:  # a classifier's metrics.json names its task; NER's predates tasks
        raise click.ClickException(f"the candidate is a {tasks['candidate']} model but production is "
                                   f"{tasks['production']}; gate models of one task")
    task = sources["candidate"].task
    models = [(s.predictor, s.path) for s in sources.values() if s.is_model]
    gold, label_set = _eval_gold(data, task, models, work) if models else (None, None)
    records, rejects = (gold.records, gold.rejects) if gold is not None else ([], [])
    metrics = {role: s.score(records, work / role, rejects=rejects, label_set=label_set)
               for role, s in sources.items()}
    decision = run_gate(metrics["candidate"], metrics.get("production"), policy, scores=task.gate_scores)
    judged = {"input": input_counts(records, rejects),
              "label_set": label_set.to_dict() if label_set is not None else None} if gold is not None else {}
    record = {"candidate_path": str(candidate), "production_path": str(production) if production else None,
              "data": str(data) if data else None, **judged, **decision.to_dict()}
    write_json(out, record)
    click.echo(f"{decision.verdict.upper()}: " + "; ".join(decision.reasons))
    ctx.exit(decision.exit_code)


# -- pseudo-label ------------------------------------------------------------------------------------
@click.command("pseudo-label")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", required=True, help="Model directory, export directory or Triton URL.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Confidently labelled records (span JSONL); bad input lines go to OUT.rejects.jsonl.")
@click.option("--threshold", type=float, help="Lowest entity confidence kept [0.9].")
@click.option("--mode", type=click.Choice(["entity", "record"]),
              help="Keep confident entities, or whole records [entity].")
@click.option("--keep-empty/--no-keep-empty", default=None, help="Keep texts with no predicted entity [no].")
@click.option("--source", help="Source name for predicted spans [model:<model dir name>].")
@click.option("--exclude", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Eval file(s): texts equal to one of theirs are not labelled (no leakage).")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write the config and counts (texts, records and entities kept, entities dropped, per label) "
              "as JSON.")
@decode_options
def pseudo_label(input_path, model, out, threshold, mode, keep_empty, source, exclude, report, nested, extensions):
    """Label INPUT with a trained model, keeping entities above a confidence threshold.

    A span-head model labels nested spans with --nested and adds its extension labels with --extensions (fusion
    data for the next training round).
    """
    from nerwheel.stages.predict import load_predictor
    from nerwheel.stages.pseudo_label import PseudoLabelConfig
    from nerwheel.stages.pseudo_label import pseudo_label as run

    cfg = _build(PseudoLabelConfig, {}, {
        "threshold": threshold, "mode": mode, "keep_empty": keep_empty,
        "source": source or f"model:{Path(model).name}"}, "flags")
    rejects: list[Any] = []
    records = read_input(input_path, what="INPUT", rejects=rejects).records
    records, n_excluded = _exclude(records, exclude)
    result = run(load_predictor(model, **decode_kwargs(nested, extensions)), records, cfg)
    _write(result.records, out, rejects)
    if report:
        write_json(report, {"config": cfg.model_dump(), "excluded_eval_texts": n_excluded,
                            **result.report.to_dict()})
    click.echo(result.report.summary())


def _exclude(records: list[Record], eval_paths: tuple[str, ...]) -> tuple[list[Record], int]:
    """``records`` without eval texts (:mod:`nerwheel.leakage`; rejected eval lines still guard where readable)."""
    from nerwheel.leakage import EvalTexts

    if not eval_paths:
        return records, 0
    guard, _ = EvalTexts.from_reads(read_input(p, what="--exclude") for p in eval_paths)
    kept, _leaked = guard.split(records)
    if len(kept) != len(records):
        click.echo(f"skipped {len(records) - len(kept)} texts that are in the eval set", err=True)
    return kept, len(records) - len(kept)


# -- feedback -----------------------------------------------------------------------------------------
def _teachers(
    chosen: tuple[str, ...], llm_kw: dict[str, Any], out: Path, examples: str | None
) -> tuple[list[Any], Any]:
    """Build the teachers as ``nerwheel annotate`` does (the KB also corrects LLM labels); returns (teachers, cache)."""
    from nerwheel.cli.llm_options import llm_configs, open_cache
    from nerwheel.cli.common import hinted
    from nerwheel.errors import ConfigError
    from nerwheel.stages.annotate import build_teachers

    chosen = tuple(dict.fromkeys(chosen or ("kb",)))
    configs = llm_configs(llm_kw)
    cache = open_cache(llm_kw, out) if "llm" in chosen and configs else None
    seed = read_input(examples, what="--examples").records if examples else []
    try:
        return build_teachers(chosen, configs, examples=seed, cache=cache), cache
    except ConfigError as exc:
        raise click.UsageError(hinted(exc)) from None


class _FeedbackGroup(click.Group):
    """``feedback`` runs by itself (the diff) or as ``feedback import``: the usage line shows both forms."""

    USAGE = ("--model MODEL --input TEXTS --out FILE [OPTIONS]", "import REVIEWED --out FILE")

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, self.USAGE[0])
        formatter.write_usage(ctx.command_path, self.USAGE[1], prefix="   or: ")


_DIFF_REQUIRED = "Required (except for `feedback import`): "


@click.group(cls=_FeedbackGroup, invoke_without_command=True)
@click.option("--model", help=_DIFF_REQUIRED + "the production model: model directory, export directory or "
              "Triton host:port.")
@click.option("--teacher", "teachers", multiple=True, type=click.Choice(["kb", "llm"]),
              help="Teacher(s); repeat for several, they vote [kb].")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help=_DIFF_REQUIRED + "live texts (any format; their labels, if any, are ignored).")
@click.option("--out", type=click.Path(dir_okay=False), help=_DIFF_REQUIRED + "the feedback training set (span JSONL).")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False), help="Earlier training data to replay.")
@click.option("--replay-ratio", type=float, help="Replay records per feedback record [0].")
@click.option("--seed", type=int, help="Seed of the replay sample [0].")
@click.option("--holdout", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Eval file(s): live texts equal to one of theirs are dropped (leakage check).")
@click.option("--teacher-labels", help="Comma-separated labels the teacher can produce (default: all).")
@click.option("--min-votes", type=int, help="Teacher votes a span needs (default: a majority).")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False), help="Few-shot seed set for the LLM.")
@click.option("--labelstudio", type=click.Path(dir_okay=False),
              help="Also write the disagreements as Label Studio tasks (both sides as predictions).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON with FeedbackConfig fields; flags win.")
@click.option("--report", type=click.Path(dir_okay=False), help="Disagreement report JSON [OUT.report.json].")
@llm_options
@click.pass_context
def feedback(ctx, model, teachers, input_path, out, replay, replay_ratio, seed, holdout, teacher_labels, min_votes,
             examples, labelstudio, config_path, report, **llm_kw):
    """Diff the production model against teachers on live texts; the disagreements become training data.

    Each disagreement is missing (teacher has, model lacks), spurious (model has,
    teacher lacks), boundary (same type, other offsets) or type (other type).
    Review them in Label Studio (--labelstudio), then bring the reviewed tasks
    back as gold with `nerwheel feedback import REVIEWED --out FILE`.
    """
    if ctx.invoked_subcommand:
        return
    missing = [f"--{n}" for n, v in (("model", model), ("input", input_path), ("out", out)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}: the diff takes `nerwheel feedback "
                               f"{_FeedbackGroup.USAGE[0]}`; to bring reviewed tasks back as gold, "
                               f"`nerwheel feedback {_FeedbackGroup.USAGE[1]}`")
    from nerwheel.formats import write_records
    from nerwheel.stages.feedback import FeedbackConfig, review_labels, review_records
    from nerwheel.stages.feedback import feedback as run
    from nerwheel.stages.predict import load_predictor

    labels = tuple(x.strip() for x in teacher_labels.split(",") if x.strip()) if teacher_labels else None
    cfg = _build(FeedbackConfig, _load_config(config_path), {
        "replay_ratio": replay_ratio, "seed": seed, "teacher_labels": labels, "min_votes": min_votes,
        "model_source": f"model:{Path(model).name}"}, "--config/flags")
    rejects: list[Any] = []
    texts = read_input(input_path, what="--input", rejects=rejects).records
    replay_records = read_input(replay, what="--replay").records if replay else []
    holdout_records = [r for p in holdout for r in read_input(p, what="--holdout").records]
    built, cache = _teachers(teachers, llm_kw, Path(out), examples)
    try:
        predictor = load_predictor(model)
        result = run(predictor, built, texts, replay=replay_records, holdout=holdout_records, config=cfg)
    finally:
        if cache is not None:
            cache.close()
    _write(result.records, out, rejects)
    if labelstudio:
        review = review_records(result)
        Path(labelstudio).parent.mkdir(parents=True, exist_ok=True)
        schema = review_labels(predictor, built, cfg)
        write_records(review, labelstudio, "labelstudio", labels=schema)
        config_xml = Path(labelstudio).with_name(Path(labelstudio).stem + ".label_config.xml")
        click.echo(f"wrote {len(review)} review tasks to {labelstudio}; labelling config ({len(schema)} labels) "
                   f"{config_xml}", err=True)
    write_json(report or f"{out}.report.json", {"config": cfg.model_dump(), **result.report.to_dict()})
    click.echo(result.report.summary())


@feedback.command("import")
@click.argument("reviewed", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Reviewed records as gold (span JSONL).")
def import_reviewed(reviewed, out):
    """Read reviewed Label Studio tasks (JSON or JSON-MIN export) back as gold.

    Unreviewed tasks are set aside in OUT.rejects.jsonl; when no task is usable the command fails (exit 1)
    and says what to do.
    """
    from nerwheel.errors import DataError
    from nerwheel.stages.feedback import reviewed_as_gold

    result = read_input(reviewed, "labelstudio", what="REVIEWED", source="annotations")
    _write(reviewed_as_gold(result.records), out, list(result.rejects))
    if not result.records:  # nothing came back: a wrong export or nothing reviewed, never a silent success
        kinds = result.reject_kinds()
        hint = ("submit the reviews in Label Studio (a task counts once it has an annotation), then export again"
                if set(kinds) == {"not-reviewed"} else
                "export the project from Label Studio as JSON or JSON-MIN (CSV, TSV and CoNLL exports are not "
                "read); the reasons are in the rejects file")
        first = f"; first: {result.rejects[0]}" if result.rejects else ""
        raise DataError(f"{reviewed}: no reviewed task could be read ({result.read} read, {len(result.rejects)} "
                        f"rejected{first}): {hint}")
