"""``nerwheel annotate`` and ``nerwheel synthesize``: thin shells over stages.annotate / stages.synthesize.

The LLM API key is never an option: it is read from ``NERWHEEL_LLM_API_KEY``
(or ``OPENAI_API_KEY``) by the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nerwheel.cli.common import hinted, read_input
from nerwheel.cli.llm_options import llm_configs, llm_options, open_cache
from nerwheel.cli.options import format_option
from nerwheel.errors import ConfigError
from nerwheel.formats import ReadResult, write_records, write_rejects
from nerwheel.storage import write_json
from nerwheel.validate import DEFAULT_MAX_LENGTH


def _overlap_policy(value: str) -> str:
    return {"keep-longest": "longest", "keep-first": "first", "reject": "reject"}[value]


def _labels(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    labels = tuple(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    if not labels:
        raise click.BadParameter("give at least one label, e.g. --labels prov,city,road", param_hint="--labels")
    return labels


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled records (span JSONL).")
@format_option()
@click.option("--teacher", "teachers", multiple=True, type=click.Choice(["kb", "llm"]),
              help="Teacher(s); repeat for several (default: llm when --llm-url is set, else kb).")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Labelled seed set the LLM's few-shot examples are chosen from.")
@click.option("--per-type", type=click.IntRange(min=0), default=4, show_default=True,
              help="Few-shot examples per entity type.")
@click.option("--mode", type=click.Choice(["entity", "pos"]), default="entity", show_default=True,
              help="entity: address entities (the labels below); pos: part-of-speech spans (LLM teacher only).")
@click.option("--prompt", default=None, help="Prompt version (default ner.v1 / pos.v1).")
@click.option("--kb-correct/--no-kb-correct", default=True, show_default=True,
              help="Let the knowledge base relabel LLM entities it can prove wrong.")
@click.option("--min-votes", type=click.IntRange(min=1), default=None,
              help="Votes a span needs with several teachers (default: a majority of those that answered).")
@click.option("--labels", "labels_opt", default=None, metavar="A,B,...",
              help="Target label set, comma-separated (default: the 19 address labels).")
@click.option("--label-map", "label_map_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="JSON/YAML synonym -> label map for LLM answers, merged over the built-in synonyms.")
@click.option("--overlaps", type=click.Choice(["keep-longest", "keep-first", "reject"]), default="keep-longest",
              show_default=True, help="Overlapping LLM answers: keep the longest, keep the first, or refuse them all.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Bad input lines, failed records and refused entities with reasons (default: OUT.rejects.jsonl).")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write run counts, token usage and cost as JSON.")
@click.option("--max-length", type=click.IntRange(min=0), default=DEFAULT_MAX_LENGTH, show_default=True,
              help="Reject input texts longer than this many characters (0: no limit).")
@llm_options
def annotate(input_path: Path, out_path: Path, fmt: str | None, teachers: tuple[str, ...], examples: Path | None,
             per_type: int, mode: str, prompt: str | None, kb_correct: bool, min_votes: int | None,
             labels_opt: str | None, label_map_path: Path | None, overlaps: str,
             rejects_path: Path | None, stats_path: Path | None, max_length: int, **llm_kw: Any) -> None:
    """Label INPUT with a teacher (knowledge base or LLM) and write OUT.

    Every line of INPUT is accounted for: read = labelled + failed + rejected on input. Lines the
    reader refused (of INPUT and of --examples), records no teacher labelled and entities a teacher
    returned but that were refused all go to the rejects file, each with its reason.
    """
    from nerwheel.stages.annotate import annotate as run
    from nerwheel.stages.annotate import build_teachers, input_reject

    labels = _labels(labels_opt)
    read = read_input(input_path, fmt, what="INPUT", max_length=max_length or None)
    configs = llm_configs(llm_kw)
    chosen = teachers or (("llm",) if configs else ("kb",))
    label_map = None
    if label_map_path is not None:
        from nerwheel.labels import ADDRESS_LABELS
        from nerwheel.llm.definitions import load_label_map

        label_map = load_label_map(label_map_path, labels or ADDRESS_LABELS)
    seed = read_input(examples, what="--examples") if examples else None
    cache = open_cache(llm_kw, out_path) if "llm" in chosen and configs else None
    options: dict[str, Any] = {"mode": mode, "prompt": prompt, "per_type": per_type, "cache": cache,
                               "kb_correct": kb_correct, "labels": labels, "label_map": label_map,
                               "overlap": _overlap_policy(overlaps)}
    try:
        built = build_teachers(chosen, configs, examples=seed.records if seed else [], **options)
    except ConfigError as exc:
        if cache is not None:
            cache.close()
        raise click.UsageError(hinted(exc)) from None
    try:
        result = run(read.records, built, mode=mode, min_votes=min_votes,  # type: ignore[arg-type]
                     input_rejects=read.rejects)
    finally:
        if cache is not None:
            cache.close()
    write_records(result.records, out_path)
    rej = rejects_path or out_path.with_name(out_path.name + ".rejects.jsonl")
    write_rejects(result.reject_items() + [input_reject(r, "examples") for r in (seed.rejects if seed else [])],
                  rej)
    if stats_path:
        write_json(stats_path, {**result.stats, "examples": _counts(seed) if seed else None})
    click.echo(result.summary(), err=True)
    if seed is not None:
        click.echo(f"examples {examples}: read {seed.read} = used {len(seed.records)} + rejected {len(seed.rejects)}",
                   err=True)
    click.echo(f"wrote {len(result.records)} records to {out_path}; rejects to {rej}", err=True)


def _counts(read: ReadResult) -> dict[str, int]:
    return {"read": read.read, "accepted": len(read.records), "rejected": len(read.rejects)}


@click.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Synthesised records (span JSONL).")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Labelled data whose entities join the pools.")
@click.option("--n-short", type=click.IntRange(min=0), default=200, show_default=True,
              help="Short texts, each one entity type (a road, a POI, a house number, a detail ...).")
@click.option("--n-long", type=click.IntRange(min=0), default=200, show_default=True,
              help="Long texts: whole addresses composed from province down to detail.")
@click.option("--n-llm", type=click.IntRange(min=0), default=0, show_default=True,
              help="LLM-written sentences (needs --llm-url/--llm-model).")
@click.option("--eval", "eval_paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Eval file(s): no synthesised text may equal one of their texts. Repeatable.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the sampling; the same seed gives the same texts.")
@click.option("--province", "provinces", multiple=True, help="Sample places only in this province (repeatable).")
@click.option("--mask-digits", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Share of numbers written as 0s (MGeo data masks digits).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Coverage report JSON (default: OUT.coverage.json).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Bad lines of --examples and --eval with reasons (default: OUT.rejects.jsonl).")
@llm_options
def synthesize(out_path: Path, examples: Path | None, n_short: int, n_long: int, n_llm: int,
               eval_paths: tuple[Path, ...], seed: int, provinces: tuple[str, ...], mask_digits: float,
               report_path: Path | None, rejects_path: Path | None, **llm_kw: Any) -> None:
    """Synthesise short (one type each) and long (composite) labelled address texts.

    Lines of --examples and --eval the reader refuses go to the rejects file. A refused --eval line
    still guards: its text is recovered from the raw line where the text field can be read, and the
    lines whose text cannot be recovered are named in a warning, because the guard cannot cover them.
    """
    from nerwheel.leakage import EvalTexts
    from nerwheel.stages.annotate import input_reject
    from nerwheel.stages.synthesize import SynthesisConfig, coverage_table
    from nerwheel.stages.synthesize import synthesize as run

    seed_read = read_input(examples, what="--examples") if examples else None
    seed_records = seed_read.records if seed_read else []
    eval_reads = [read_input(p, what="--eval") for p in eval_paths]
    eval_texts, rejected = EvalTexts.from_reads(eval_reads)
    rejects = [input_reject(r, "examples") for r in seed_read.rejects] if seed_read else []
    unrecovered = [r for r, text in rejected if not text]
    for r, text in rejected:
        row = input_reject(r, "eval")
        row.extra["guard"] = "text recovered, guarded" if text else "text NOT recovered: not guarded"
        rejects.append(row)
    llm = None
    configs = llm_configs(llm_kw)
    if n_llm and not configs:
        raise click.UsageError("--n-llm needs --llm-url and --llm-model")
    cache = None
    if n_llm:
        from nerwheel.stages.annotate import build_teachers

        cache = open_cache(llm_kw, out_path)
        llm = build_teachers(["llm"], configs[:1], examples=seed_records, cache=cache)[0]
    cfg = SynthesisConfig(n_short=n_short, n_long=n_long, n_llm=n_llm, seed=seed, provinces=provinces,
                          mask_digits=mask_digits)
    try:
        result = run(cfg, examples=seed_records, eval_texts=eval_texts, llm=llm)
    finally:
        if cache is not None:
            cache.close()
    write_records(result.records, out_path)
    report = report_path or out_path.with_name(out_path.name + ".coverage.json")
    write_json(report, result.coverage)
    rej = rejects_path or out_path.with_name(out_path.name + ".rejects.jsonl")
    write_rejects(rejects, rej)
    click.echo(coverage_table(result.coverage))
    inputs = ([("examples", examples, seed_read)] if seed_read else []) + \
        [("eval", p, res) for p, res in zip(eval_paths, eval_reads, strict=True)]
    for role, path, res in inputs:
        click.echo(f"{role} {path}: read {res.read} = used {len(res.records)} + rejected {len(res.rejects)}", err=True)
    if unrecovered:
        where = ", ".join(f"{r.file}:{r.line}" for r in unrecovered[:10])
        more = f" and {len(unrecovered) - 10} more" if len(unrecovered) > 10 else ""
        click.echo(f"WARNING: {len(unrecovered)} rejected --eval line(s) have no recoverable text, so the eval guard "
                   f"cannot keep their texts out of the output: {where}{more}. Fix those lines and rerun.", err=True)
    click.echo(f"wrote {len(result.records)} records to {out_path}; coverage report {report}; rejects to {rej}",
               err=True)
