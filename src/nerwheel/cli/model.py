"""``nerwheel train | evaluate | export | predict``: a thin shell over the model stages.

Heavy imports (torch, transformers, onnxruntime) happen inside the commands,
so ``nerwheel --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from nerwheel.cli.common import read_input
from nerwheel.cli.decode_options import decode_kwargs, decode_options
from nerwheel.cli.options import format_option

log = logging.getLogger(__name__)


# -- train --------------------------------------------------------------------------------------------
@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML (.yaml/.yml) or INI (.ini/.cfg) config; see --create-config.")
@click.option("--create-config", type=click.Path(dir_okay=False),
              help="Write the commented default config and exit: INI for .ini/.cfg/.conf, YAML otherwise.")
@click.option("--model-id", help="Backbone: tiny, e5-small, a Hugging Face dir or hub id, or a nerwheel model dir.")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), help="Continue training this nerwheel model.")
@click.option("--head", type=click.Choice(["crf", "softmax", "span"]),
              help="Output head: crf, softmax, or span (overlapping/nested spans; model.span.* settings).")
@click.option("--train", "train_file", type=click.Path(exists=True, dir_okay=False), help="Training records.")
@click.option("--dev", "dev_file", type=click.Path(exists=True, dir_okay=False),
              help="Validation records (default: a seeded share of --train, data.dev_ratio).")
@click.option("--test", "test_file", type=click.Path(exists=True, dir_okay=False), help="Held-out records scored once.")
@click.option("--output-dir", help="Parent folder of the trained model.")
@click.option("--model-name", help="Model folder name (a timestamp is appended).")
@click.option("--epochs", type=int, help="Maximum epochs.")
@click.option("--batch-size", type=int, help="Examples per optimiser step before accumulation [32].")
@click.option("--learning-rate", type=float,
              help="Encoder learning rate [1e-3 for tiny, trained from scratch; 5e-5 for a pretrained encoder].")
@click.option("--sequence-length", type=int, help="Tokens per window, special tokens included.")
@click.option("--seed", type=int, help="Seed for data order, dropout, initialisation and the dev split [42].")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Any config key, e.g. --set early_stopping.patience=5 (repeatable).")
def train(config_path, create_config, model_id, init_from, head, train_file, dev_file, test_file, output_dir,
          model_name, epochs, batch_size, learning_rate, sequence_length, seed, sets):
    """Train a BERT(+CRF) token classifier or a span extractor; prints the model directory."""
    from nerwheel.configfile import INI_SUFFIXES
    from nerwheel.model.config import load_config, merge_overrides, parse_overrides, write_default

    if create_config:
        path = write_default(create_config)
        click.echo(f"wrote {path} ({'INI' if path.suffix.lower() in INI_SUFFIXES else 'YAML'}); "
                   f"use it with: nerwheel train --config {path}", err=True)
        return
    flags = {
        "model": {"model_id": model_id, "init_from": init_from, "head": head},
        "data": {"train_file": train_file, "dev_file": dev_file, "test_file": test_file},
        "output": {"output_dir": output_dir, "model_name": model_name},
        "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                     "sequence_length": sequence_length, "seed": seed},
    }
    given = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in flags.items()}
    overrides = merge_overrides({s: kv for s, kv in given.items() if kv}, parse_overrides(sets))
    config = load_config(config_path, overrides=overrides)
    from nerwheel.model.card import ModelCard
    from nerwheel.stages.train import input_summary
    from nerwheel.stages.train import train as run

    model_dir = run(config)
    for line in input_summary(ModelCard.read(model_dir).data, model_dir):
        click.echo(line, err=True)
    click.echo(str(model_dir))


# -- evaluate -----------------------------------------------------------------------------------------
@click.command()
@click.option("--model", required=True, help="Trained model dir, export dir, or Triton host:port.")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Gold records (any format `nerwheel data` reads).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for metrics.json and friends.")
@format_option()
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto: ONNX Runtime where an export exists (MODEL or MODEL/onnx), else PyTorch.")
@decode_options
def evaluate(model, data_path, out, fmt, runtime, nested, extensions):
    """Score a model on gold records: seqeval strict, exact, partial, type; errors and charts.

    Target labels are scored; extension labels (pos:..., kb:...) only with --extensions.
    """
    from nerwheel.stages.evaluate import evaluate as run
    from nerwheel.stages.predict import load_predictor

    data = read_input(data_path, fmt, what="data")
    records, rejects = data.records, data.rejects
    predictor = (load_predictor(model, runtime=runtime, **decode_kwargs(nested, extensions))
                 if any(r.entities for r in records) else None)
    metrics = run(model, records, out, predictor=predictor, rejects=rejects, extensions=extensions)
    i, o = metrics["input"], metrics["overall"]
    click.echo(f"input: read {i['read']} = accepted {i['accepted']} + rejected {i['rejected']}; "
               f"{i['rejected']} rejects with file, line and reason in {Path(out) / 'rejects.jsonl'}", err=True)
    click.echo(
        f"strict F1 {o['strict']['f1']:.4f} (P {o['strict']['precision']:.4f} R {o['strict']['recall']:.4f}); "
        f"partial F1 {o['partial']['f1']:.4f}; type F1 {o['type']['f1']:.4f}; token accuracy {o['token_accuracy']:.4f}"
    )
    click.echo(f"wrote {out}/metrics.json, report.txt, errors.jsonl, predictions.jsonl, rejects.jsonl, plots",
               err=True)


# -- export -------------------------------------------------------------------------------------------
@click.command()
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False), help="Trained model dir.")
@click.option("--out", type=click.Path(file_okay=False), help="Export folder [MODEL/onnx].")
@click.option("--quantize", type=click.Choice(["int8"]), help="Also write model.int8.onnx (dynamic int8).")
@click.option("--eval", "eval_path", type=click.Path(exists=True, dir_okay=False),
              help="Gold records: parity sample, gold F1 of fp32 and of int8 and the change; without it, "
              "--quantize reports only int8's agreement with fp32.")
@click.option("--atol", type=float, default=1e-3, show_default=True, help="Largest allowed |emission diff|.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export folder.")
def export(model, out, quantize, eval_path, atol, overwrite):
    """Export a trained model to ONNX; refused unless ONNX Runtime reproduces PyTorch."""
    from nerwheel.model.layout import EXPORT_SUBDIR
    from nerwheel.stages.export import export as run

    out = out or str(Path(model) / EXPORT_SUBDIR)
    records = read_input(eval_path, what="eval").records if eval_path else None
    report = run(model, out, quantize, eval_records=records, atol=atol, overwrite=overwrite)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    if report.int8 and report.fp32 is None:
        click.echo("pass --eval GOLD to measure int8's F1 change", err=True)


# -- predict ------------------------------------------------------------------------------------------
@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", help="Trained model dir or export dir (ONNX Runtime preferred where an export exists).")
@click.option("--url", help="Triton gRPC endpoint (host:port) instead of a local model.")
@click.option("--served-name", default="nerwheel", show_default=True,
              help="With --url: the model name in the Triton repository (deploy --name).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Span JSONL output, in input order [stdout; progress and summaries go to stderr].")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Where unreadable input lines go (JSONL: file, line, reason) [OUT.rejects.jsonl; "
              "without --out: listed on stderr].")
@format_option("Input format (default: detected from the content; plain text lines work).")
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto: ONNX Runtime where an export exists (MODEL or MODEL/onnx), else PyTorch.")
@click.option("--int8", is_flag=True, help="Use model.int8.onnx from the export.")
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Windows per forward pass (local model) or texts per request (--url).")
@decode_options
def predict(input_path, model, url, served_name, out, rejects_path, fmt, runtime, int8, batch_size, nested, extensions):
    """Tag INPUT with a model (PyTorch, ONNX Runtime) or a Triton server; write span JSONL (to stdout without --out)."""
    from nerwheel.formats import write_records, write_rejects
    from nerwheel.formats.spans import encode
    from nerwheel.stages.predict import load_predictor, predict_records

    if bool(model) == bool(url):
        raise click.UsageError("give exactly one of --model DIR or --url HOST:PORT")
    if url and (nested is not None or extensions):
        raise click.UsageError("--nested/--flat and --extensions decode a local span-head model; a served model "
                               "decodes as its card says")
    data = read_input(input_path, fmt, what="input")
    records, rejects = data.records, data.rejects
    if url:
        from nerwheel.stages.predict import RemotePredictor

        predictor: Any = RemotePredictor(url, model=served_name, batch_size=batch_size)
    else:
        predictor = load_predictor(model, runtime=runtime, int8=int8, batch_size=batch_size,
                                   **decode_kwargs(nested, extensions))
    predicted = predict_records(predictor, records)
    if out:
        write_records(predicted, out, format="spans")
    else:  # stdout carries the records only, so `nerwheel predict ... | jq` works
        sys.stdout.flush()
        stdout = sys.stdout.buffer  # UTF-8 like every JSONL file nerwheel writes, whatever the locale
        for r in predicted:
            stdout.write(encode(r).encode("utf-8"))
        stdout.flush()
    click.echo(f"wrote {len(predicted)} records to {out or 'stdout'} ({type(predictor).__name__})", err=True)
    rej_path = rejects_path or (f"{out}.rejects.jsonl" if out else None)
    if rejects and rej_path:
        write_rejects(rejects, rej_path)
        click.echo(f"wrote {len(rejects)} rejected input lines to {rej_path}", err=True)
    elif rejects:
        for rej in rejects[3:]:  # read_input showed the first three
            click.echo(f"  rejected {rej}", err=True)
