"""``nerwheel data``: validate, convert, describe and split labelled data (a thin shell over formats/validate/stages)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from nerwheel.cli.common import read_input
from nerwheel.cli.options import FORMAT_CHOICE, format_option
from nerwheel.formats import FormatError, ReadResult, write_records, write_rejects
from nerwheel.labels import TASK_LABELS, LabelSet
from nerwheel.storage import write_json
from nerwheel.validate import OVERLAP_POLICIES, UNKNOWN_LABEL_POLICIES, ValidationPolicy, reject_unknown_labels
from nerwheel.validate import validate as run_validation


def _parse_options(pairs: tuple[str, ...], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=flag)
        v: Any = value
        if value.lower() in ("true", "false"):
            v = value.lower() == "true"
        elif value.lstrip("-").isdigit():
            v = int(value)
        out[key.strip().replace("-", "_")] = v
    return out


def _input(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-o", "--option", "read_options", multiple=True, metavar="KEY=VALUE",
                     help="Reader option, e.g. scheme=BIOES or schema=PATH (conll), end=exclusive (sft), "
                          "source=predictions (labelstudio). Repeatable.")(f)
    f = format_option()(f)
    return click.argument("input_path", metavar="INPUT",
                          type=click.Path(exists=True, dir_okay=False, path_type=Path))(f)


def _read(path: Path, fmt: str | None, read_options: tuple[str, ...]) -> ReadResult:
    """INPUT with its ``-o`` reader options; the commands print their own summaries."""
    return read_input(path, fmt, quiet=True, progress=True, **_parse_options(read_options, "--option"))


def _policy_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--max-length", type=click.IntRange(min=0), default=2048, show_default=True,
                     help="Reject texts longer than this many characters (0: no limit)."),
        click.option("--allow-empty", is_flag=True, help="Accept records whose text is empty or blank."),
        click.option("--overlaps", type=click.Choice(OVERLAP_POLICIES), default="reject", show_default=True,
                     help="Overlapping spans: reject the record, keep the longest span, or keep them all "
                     "(data for a span head, model.head: span)."),
        _labels_option(),
        click.option("--label-map", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="JSON/YAML file of synonym -> label (e.g. 省份 -> prov)."),
        click.option("--unknown-labels", type=click.Choice(UNKNOWN_LABEL_POLICIES), default=None,
                     help="Unknown labels: reject the record, or map them through --label-map first "
                          "[default: map with --label-map, else reject]."),
        click.option("--label-prefix", default="", help="Prefix for every mapped label (extension labels)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _labels_option() -> Callable[..., Any]:
    return click.option("--labels", "allowed", default=None, metavar="A,B,...|any",
                        help="The allowed labels (others are unknown: the record is rejected), or 'any' "
                             "[default: the labels of a CoNLL schema.json, else the address task's labels].")


def _label_set(allowed: str | None, result: ReadResult, read_options: tuple[str, ...],
               label_prefix: str = "") -> LabelSet:
    """The label set this command checks (see :class:`nerwheel.labels.LabelSet` for the order)."""
    from nerwheel.formats.conll import find_schema

    if allowed:
        return LabelSet.parse(allowed, "--labels")
    if result.format == "conll":
        schema_opt = _parse_options(read_options, "--option").get("schema")
        schema = find_schema(Path(result.source), schema_opt)
        if schema.labels:
            return LabelSet(frozenset(schema.labels.values()), f"the CoNLL schema of {result.source}")
    if label_prefix:
        return LabelSet(None, f"--label-prefix {label_prefix!r}: extension labels")
    return TASK_LABELS


def _policy(max_length: int, allow_empty: bool, overlaps: str, label_set: LabelSet, label_map: Path | None,
            unknown_labels: str | None, label_prefix: str, strict: bool) -> ValidationPolicy:
    from nerwheel.labels import LabelMap

    labels = label_set.labels
    mode = unknown_labels or ("map" if label_map or label_prefix else "reject")
    lm = None
    if mode == "map":
        if label_map is None and not label_prefix:
            raise click.BadParameter("--unknown-labels map needs --label-map FILE", param_hint="--unknown-labels")
        lm = LabelMap.load(label_map, prefix=label_prefix) if label_map else LabelMap(prefix=label_prefix)
    elif label_map is not None:
        raise click.BadParameter("--label-map is used with --unknown-labels map", param_hint="--label-map")
    return ValidationPolicy(max_length=max_length or None, allow_empty=allow_empty, overlaps=overlaps,
                            unknown_labels=mode, allowed_labels=labels, label_map=lm, strict=strict)


def _write_rejects(result_rejects: list[Any], path: Path | None, input_path: Path, always: bool) -> str:
    if path is None:
        if not result_rejects:
            return ""
        path = Path.cwd() / f"{input_path.stem}.rejects.jsonl"
    elif not result_rejects and not always:
        return ""
    n = write_rejects(result_rejects, path)
    return f"rejects: {n} written to {path}"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def data() -> None:
    """Validate, convert, describe and split labelled data.

    Formats (detected from the content unless --format is given): spans (native JSONL),
    mgeo, sft (chinese_ner_sft), conll (char<TAB>tag with schema.json), text (plain lines),
    labelstudio (task JSON).
    """


@data.command()
@_input
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write rejected records as JSONL (default: ./<stem>.rejects.jsonl when there are any).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the accepted records (labels mapped, overlaps resolved) as span JSONL.")
@click.option("--strict", is_flag=True, help="Stop at the first problem with exit status 1.")
@_policy_options
def validate(input_path: Path, fmt: str | None, read_options: tuple[str, ...], rejects_path: Path | None,
             output: Path | None, strict: bool, max_length: int, allow_empty: bool, overlaps: str,
             allowed: str | None, label_map: Path | None, unknown_labels: str | None, label_prefix: str) -> None:
    """Check INPUT and print a summary that reconciles: read = accepted + rejected.

    Every rejected record goes to the rejects file with its file, line and reason.
    """
    _policy(max_length, allow_empty, overlaps, TASK_LABELS, label_map, unknown_labels, label_prefix, strict)
    read = _read(input_path, fmt, read_options)
    labels = _label_set(allowed, read, read_options, label_prefix)
    policy = _policy(max_length, allow_empty, overlaps, labels, label_map, unknown_labels, label_prefix, strict)
    result = run_validation(read, policy)
    click.echo(result.summary())
    click.echo(labels.describe())
    msg = _write_rejects(result.rejects, rejects_path, input_path, always=rejects_path is not None)
    if msg:
        click.echo(msg)
    if output is not None:
        w = write_records(result.records, output, "spans")
        click.echo(f"accepted: {w.written} written to {output}")


@data.command()
@_input
@click.argument("output_path", metavar="OUTPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "to_fmt", type=FORMAT_CHOICE, required=True, help="Output format.")
@click.option("--from", "from_fmt", type=FORMAT_CHOICE, default=None, help="Input format (same as --format).")
@click.option("-w", "--write-option", "write_options", multiple=True, metavar="KEY=VALUE",
              help="Writer option, e.g. scheme=BIOES or write_ids=true (conll), end=exclusive (sft), "
                   "text_key=text (mgeo), labels=prov,city,road (labelstudio: the labelling config's labels). "
                   "Repeatable.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write records that could not be read or expressed (default: OUTPUT.rejects.jsonl).")
@click.option("--strict", is_flag=True, help="Stop at the first problem with exit status 1.")
@_labels_option()
def convert(input_path: Path, fmt: str | None, read_options: tuple[str, ...], output_path: Path, to_fmt: str,
            from_fmt: str | None, write_options: tuple[str, ...], rejects_path: Path | None, strict: bool,
            allowed: str | None) -> None:
    """Convert INPUT to OUTPUT in another format.

    A record the target format cannot express faithfully (e.g. overlapping spans in CoNLL) is not altered:
    it goes to the rejects file with the reason, and the summary reconciles read = written + rejected.
    """
    if fmt and from_fmt and fmt != from_fmt:
        raise click.BadParameter(f"--format {fmt} and --from {from_fmt} disagree", param_hint="--from")
    read = _read(input_path, from_fmt or fmt, read_options)
    labels = _label_set(allowed, read, read_options)
    result = reject_unknown_labels(read, labels)
    unknown = len(result.rejects) - len(read.rejects)
    wopts = _parse_options(write_options, "--write-option")

    def origin(i: int, _r: Any) -> tuple[str, int]:
        return result.source, result.line_of(i)

    if strict:  # find the first problem in file order before writing anything where the user will look
        with tempfile.TemporaryDirectory() as tmp:
            trial = write_records(result.records, Path(tmp) / output_path.name, to_fmt, origin=origin,
                                  on_unexpressible="reject", **wopts)
        problems = sorted([*result.rejects, *trial.rejects], key=lambda r: r.line)
        if problems:
            raise FormatError(f"{problems[0]} (strict mode stops at the first error; nothing written)")
    w = write_records(result.records, output_path, to_fmt, origin=origin, on_unexpressible="reject", **wopts)
    rejects = sorted([*result.rejects, *w.rejects], key=lambda r: r.line)
    click.echo(f"{input_path} ({result.format}) -> {output_path} ({to_fmt}): read {result.read} = "
               f"written {w.written} + rejected {len(rejects)} "
               f"({len(read.rejects)} unreadable, " + (f"{unknown} with unknown labels, " if unknown else "")
               + f"{len(w.rejects)} not expressible in {to_fmt})")
    click.echo(labels.describe())
    if result.notes:
        click.echo("  notes: " + "; ".join(f"{k}: {n}" for k, n in sorted(result.notes.items())))
    if rejects:
        path = rejects_path or output_path.with_name(output_path.name + ".rejects.jsonl")
        click.echo(f"rejects: {write_rejects(rejects, path)} written to {path}")


@data.command()
@_input
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many co-occurring label pairs to list (text output).")
@_labels_option()
def stats(input_path: Path, fmt: str | None, read_options: tuple[str, ...], as_json: bool, top: int,
          allowed: str | None) -> None:
    """Describe INPUT: records, entities per label, text lengths, label co-occurrence.

    Records with a label outside the label set are rejected (counted, not described).
    """
    from nerwheel.stages.stats import describe

    read = _read(input_path, fmt, read_options)
    labels = _label_set(allowed, read, read_options)
    result = reject_unknown_labels(read, labels)
    st = describe(result.records)
    if as_json:
        d = st.to_dict()
        d["input"] = {"path": str(input_path), "format": result.format, "read": result.read,
                      "rejected": len(result.rejects), "rejected_by_kind": dict(result.reject_kinds()),
                      "label_set": labels.to_dict()}
        click.echo(json.dumps(d, ensure_ascii=False, indent=2))
        return
    click.echo(result.summary())
    click.echo(labels.describe())
    tl = st.text_length
    click.echo(f"records: {st.records} ({st.labelled_records} with entities); entities: {st.entities}; "
               f"records with overlapping spans: {st.overlapping_records}")
    click.echo(f"text length (chars): min {tl.min}  p50 {tl.p50}  p90 {tl.p90}  p99 {tl.p99}  max {tl.max}  "
               f"mean {tl.mean}")
    if st.per_label:
        width = max(len(k) for k in st.per_label)
        click.echo(f"{'label':<{width}}  entities   records  mean length")
        for lab, d in st.per_label.items():
            click.echo(f"{lab:<{width}}  {d['entities']:>8}  {d['records']:>8}  {d['mean_length']:>11}")
    if st.cooccurrence:
        click.echo(f"label co-occurrence (records containing both; top {top}):")
        for item in st.cooccurrence[:top]:
            a, b = item["labels"]
            click.echo(f"  {a} + {b}: {item['records']}")


@data.command()
@_input
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the parts, the nested subsets and split.json.")
@click.option("--ratio", default="8:2", show_default=True, help="Part sizes, e.g. 8:2 or 8:1:1.")
@click.option("--names", default=None, metavar="A,B,...",
              help="Part names [default: train,dev or train,dev,test].")
@click.option("--fractions", default="0.25,0.5,1.0", show_default=True,
              help="Nested subsets of the first part (each contains the smaller ones).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the deterministic order.")
@click.option("--dedup/--no-dedup", default=True, show_default=True,
              help="Drop records whose exact text was seen before (identical texts never straddle parts anyway).")
def split(input_path: Path, fmt: str | None, read_options: tuple[str, ...], out_dir: Path, ratio: str,
          names: str | None, fractions: str, seed: int, dedup: bool) -> None:
    """Split INPUT into parts by ratio plus nested few-shot subsets, deterministically.

    Writes OUT/<part>.jsonl, OUT/<first part>_<pct>pct.jsonl and OUT/split.json (span JSONL).
    """
    from nerwheel.stages.split import split_dataset, subset_name

    result = _read(input_path, fmt, read_options)
    part_names = [x.strip() for x in names.split(",")] if names else None
    res = split_dataset(result.records, ratio, fractions, seed=seed, names=part_names, deduplicate=dedup)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = next(iter(res.parts))
    for name, recs in res.parts.items():
        write_records(recs, out_dir / f"{name}.jsonl")
    for f, recs in res.subsets.items():
        write_records(recs, out_dir / f"{subset_name(first, f)}.jsonl")
    manifest = {"input": str(input_path), "format": result.format, "read": result.read,
                "rejected": len(result.rejects), **res.manifest()}
    if result.rejects:
        write_rejects(result.rejects, out_dir / "rejects.jsonl")
    write_json(out_dir / "split.json", manifest)
    click.echo(result.summary())
    click.echo(f"dedup: {len(res.duplicates)} duplicate texts dropped ({res.conflicts} labelled differently)")
    click.echo("parts: " + ", ".join(f"{k} {len(v)}" for k, v in res.parts.items()))
    click.echo("subsets: " + ", ".join(f"{subset_name(first, f)} {len(v)}" for f, v in res.subsets.items()))
    click.echo(f"leaks between {first} and the other parts: {manifest['leaks']}")
    click.echo(f"written to {out_dir}")
