"""``nerwheel annotate`` and ``nerwheel synthesize``: thin shells over stages.annotate / stages.synthesize.

The LLM API key is never an option: it is read from ``NERWHEEL_LLM_API_KEY``
(or ``OPENAI_API_KEY``) by the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from nerwheel.cli.llm_options import llm_configs, llm_options, open_cache

from nerwheel.formats import FORMATS, FormatError, read_records, write_records

FORMAT_CHOICE = click.Choice(sorted(FORMATS))


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (FormatError, ValueError, OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


def _read(path: Path, fmt: str | None) -> list[Any]:
    result = read_records(path, fmt)
    if result.rejects:
        click.echo(f"{result.summary()} (first: {result.rejects[0]})", err=True)
    return result.records


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled records (span JSONL).")
@click.option("-f", "--format", "fmt", type=FORMAT_CHOICE, default=None, help="Input format (default: detected).")
@click.option("--teacher", "teachers", multiple=True, type=click.Choice(["kb", "llm"]),
              help="Teacher(s); repeat for several (default: llm when --llm-url is set, else kb).")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Labelled seed set the LLM's few-shot examples are chosen from.")
@click.option("--per-type", type=click.IntRange(min=0), default=4, show_default=True,
              help="Few-shot examples per entity type.")
@click.option("--mode", type=click.Choice(["entity", "pos"]), default="entity", show_default=True)
@click.option("--prompt", default=None, help="Prompt version (default ner.v1 / pos.v1).")
@click.option("--kb-correct/--no-kb-correct", default=True, show_default=True,
              help="Let the knowledge base relabel LLM entities it can prove wrong.")
@click.option("--min-votes", type=click.IntRange(min=1), default=None,
              help="Votes a span needs with several teachers (default: a majority of those that answered).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Failed records and refused entities with reasons (default: OUT.rejects.jsonl).")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write run counts, token usage and cost as JSON.")
@llm_options
def annotate(input_path: Path, out_path: Path, fmt: str | None, teachers: tuple[str, ...], examples: Path | None,
             per_type: int, mode: str, prompt: str | None, kb_correct: bool, min_votes: int | None,
             rejects_path: Path | None, stats_path: Path | None, **llm_kw: Any) -> None:
    """Label INPUT with a teacher (knowledge base or LLM) and write OUT."""
    from nerwheel.stages.annotate import annotate as run
    from nerwheel.stages.annotate import build_teachers

    with _errors():
        records = _read(input_path, fmt)
        configs = llm_configs(llm_kw)
        chosen = teachers or (("llm",) if configs else ("kb",))
        cache = open_cache(llm_kw, out_path) if "llm" in chosen and configs else None
        seed = _read(examples, None) if examples else []
        try:
            built = build_teachers(chosen, configs, examples=seed, mode=mode,  # type: ignore[arg-type]
                                   prompt=prompt, per_type=per_type, cache=cache, kb_correct=kb_correct)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        result = run(records, built, mode=mode, min_votes=min_votes)  # type: ignore[arg-type]
        write_records(result.records, out_path)
        rej = rejects_path or out_path.with_name(out_path.name + ".rejects.jsonl")
        _write_jsonl(result.rejects(), rej)
        if stats_path:
            stats_path.parent.mkdir(parents=True, exist_ok=True)
            stats_path.write_text(json.dumps(result.stats, ensure_ascii=False, indent=2), encoding="utf-8")
        if cache is not None:
            cache.close()
    click.echo(result.summary(), err=True)
    click.echo(f"wrote {len(result.records)} records to {out_path}; rejects to {rej}", err=True)


def _write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


@click.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Synthesised records (span JSONL).")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Labelled data whose entities join the pools.")
@click.option("--n-short", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--n-long", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--n-llm", type=click.IntRange(min=0), default=0, show_default=True,
              help="LLM-written sentences (needs --llm-url/--llm-model).")
@click.option("--eval", "eval_paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Eval file(s): no synthesised text may equal one of their texts. Repeatable.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--province", "provinces", multiple=True, help="Sample places only in this province (repeatable).")
@click.option("--mask-digits", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Share of numbers written as 0s (MGeo data masks digits).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Coverage report JSON (default: OUT.coverage.json).")
@llm_options
def synthesize(out_path: Path, examples: Path | None, n_short: int, n_long: int, n_llm: int,
               eval_paths: tuple[Path, ...], seed: int, provinces: tuple[str, ...], mask_digits: float,
               report_path: Path | None, **llm_kw: Any) -> None:
    """Synthesise short (one type each) and long (composite) labelled address texts."""
    from nerwheel.stages.synthesize import SynthesisConfig, coverage_table
    from nerwheel.stages.synthesize import synthesize as run

    with _errors():
        seed_records = _read(examples, None) if examples else []
        eval_texts = {r.text for p in eval_paths for r in _read(p, None)}
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
        result = run(cfg, examples=seed_records, eval_texts=eval_texts, llm=llm)
        write_records(result.records, out_path)
        report = report_path or out_path.with_name(out_path.name + ".coverage.json")
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.coverage, ensure_ascii=False, indent=2), encoding="utf-8")
        if cache is not None:
            cache.close()
    click.echo(coverage_table(result.coverage))
    click.echo(f"wrote {len(result.records)} records to {out_path}; coverage report {report}", err=True)
