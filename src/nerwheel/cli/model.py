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
from nerwheel.model.defaults import PRETRAINED, TABLE

#: The measured defaults (nerwheel.model.defaults), as the --help of --learning-rate / --epochs says them.
_DEFAULT_LR = ", ".join(f"{d.learning_rate:g} {n}" for n, d in TABLE.items()) + \
    f"; {PRETRAINED.learning_rate:g} for other pretrained encoders"
_DEFAULT_EPOCHS = ", ".join(f"{d.epochs} {n}" for n, d in TABLE.items()) + f"; {PRETRAINED.epochs} for other pretrained encoders"

log = logging.getLogger(__name__)


# -- train --------------------------------------------------------------------------------------------
def _task_option(help_text: str = "Task: ner (entity spans) or classify (messages) [from the model's nerwheel.json, "
                 "else ner].") -> Any:
    from nerwheel.tasks import TASKS

    return click.option("--task", "task_name", type=click.Choice(list(TASKS)), default=None, help=help_text)


def _task_for(task_name: str | None, model: str | None = None) -> Any:
    """The task asked for, else the one the model directory holds (its nerwheel.json), else ner."""
    from nerwheel.tasks import get_task, task_of

    if task_name is None and model and Path(model).exists():
        task_name = task_of(model)
    return get_task(task_name)


@click.command()
@_task_option("Task: ner (token classifier, default) or classify (message classifier).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML (.yaml/.yml) or INI (.ini/.cfg) config; see --create-config.")
@click.option("--create-config", type=click.Path(dir_okay=False),
              help="Write the commented default config and exit: INI for .ini/.cfg/.conf, YAML otherwise.")
@click.option("--model-id", help="Backbone: tiny, e5-small, a Hugging Face dir or hub id, or a nerwheel model dir.")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), help="Continue training this nerwheel model.")
@click.option("--head", type=click.Choice(["crf", "softmax", "span"]),
              help="Output head (ner): crf, softmax, or span (overlapping/nested spans; model.span.* settings).")
@click.option("--train", "--data-path", "train_file", type=click.Path(exists=True, dir_okay=False),
              help="Training records (--data-path: the same).")
@click.option("--dev", "dev_file", type=click.Path(exists=True, dir_okay=False),
              help="Validation records (default: a seeded share of --train, data.dev_ratio).")
@click.option("--test", "test_file", type=click.Path(exists=True, dir_okay=False), help="Held-out records scored once.")
@click.option("--unlabeled", "unlabeled_file", type=click.Path(exists=True, dir_okay=False),
              help="Unlabelled traffic a teacher labels and adds to gold (unlabeled.teacher kb|model|both, "
              "unlabeled.weight, unlabeled.curriculum).")
@click.option("--output-dir", help="Parent folder of the trained model.")
@click.option("--model-name", help="Model folder name (a timestamp is appended).")
@click.option("--epochs", type=int, help=f"Maximum epochs [ner, measured per backbone: {_DEFAULT_EPOCHS}].")
@click.option("--batch-size", type=int, help="Examples per optimiser step before accumulation [32].")
@click.option("--learning-rate", type=float,
              help=f"Encoder learning rate [measured per backbone: {_DEFAULT_LR}].")
@click.option("--max-length", type=int, help="Tokens per input, special tokens included (ner: the window length).")
@click.option("--sequence-length", type=int, help="Tokens per window, special tokens included (ner).")
@click.option("--seed", type=int, help="Seed for data order, dropout, initialisation and the dev split [42].")
@click.option("--report-to", type=click.Choice(["none", "tensorboard", "wandb", "mlflow"]),
              help="Experiment tracker (W&B offline unless WANDB_MODE says otherwise).")
@click.option("--wandb", "use_wandb", is_flag=True, help="Shorthand for --report-to wandb.")
@click.option("--wandb-project", help="W&B project (MLflow experiment) name.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Any config key, e.g. --set early_stopping.patience=5 (repeatable).")
@click.option("--gpus-per-node", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine, one per GPU (DDP under torchrun; without GPUs, gloo "
                   "processes on the CPU). training.batch_size stays the global batch. Several nodes: "
                   "`nerwheel submit --nodes N --gpus-per-node G` (a Kubeflow PyTorchJob). ner only.")
def train(task_name, config_path, create_config, model_id, init_from, head, train_file, dev_file, test_file,
          unlabeled_file, output_dir, model_name, epochs, batch_size, learning_rate, max_length, sequence_length, seed,
          report_to, use_wandb, wandb_project, sets, gpus_per_node):
    """Train a model for the task (ner: BERT(+CRF) token classifier or span extractor; classify: message classifier).

    Prints the model directory on stdout.
    """
    from nerwheel.configfile import INI_SUFFIXES, merge_overrides, parse_overrides

    task = _task_for(task_name)
    if create_config:
        path = task.write_default(create_config)
        click.echo(f"wrote {path} ({'INI' if path.suffix.lower() in INI_SUFFIXES else 'YAML'}); "
                   f"use it with: nerwheel train{'' if task.name == 'ner' else ' --task ' + task.name} --config "
                   f"{path}", err=True)
        return
    if use_wandb and report_to not in (None, "wandb"):
        raise click.UsageError(f"--wandb means --report-to wandb, but --report-to {report_to} was given")
    if task.name != "ner" and (init_from or head or sequence_length or unlabeled_file):
        raise click.UsageError(f"--init-from, --head, --sequence-length and --unlabeled are NER options; task "
                               f"{task.name} has model.max_length (--max-length)")
    if task.name != "ner" and gpus_per_node > 1:
        raise click.UsageError(f"--gpus-per-node is for the ner task's training; task {task.name} trains in one "
                               "process")
    flags = {
        "model": {"model_id": model_id, "init_from": init_from, "head": head, "max_length": max_length},
        "data": {"train_file": train_file, "dev_file": dev_file, "test_file": test_file},
        "unlabeled": {"file": unlabeled_file},
        "output": {"output_dir": output_dir, "model_name": model_name},
        "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                     "sequence_length": sequence_length, "seed": seed},
        "logging": {"report_to": "wandb" if use_wandb else report_to, "project": wandb_project},
    }
    given = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in flags.items()}
    overrides = merge_overrides({s: kv for s, kv in given.items() if kv}, parse_overrides(sets))
    config = task.load_config(config_path, overrides)
    if task.name == "ner":
        from nerwheel.model.hub import check_available

        check_available(config.model)  # an unusable hub id fails in a second, before torch is imported
    if gpus_per_node > 1:
        from nerwheel.model.distributed import launch_local

        model_dir = launch_local(config, nproc=gpus_per_node)
    else:
        model_dir = task.train(config)
    for line in _input_summary(task.name, model_dir):
        click.echo(line, err=True)
    if task.name == "ner":
        from nerwheel.model.card import ModelCard

        click.echo(_scores_line(ModelCard.read(model_dir)), err=True)
    click.echo(str(model_dir))


def _scores_line(card: Any) -> str:
    """Dev and, when a test file was given, test strict F1, with the schedule that produced them."""
    parts = []
    for role in ("dev", "test"):
        o = (card.metrics.get(role) or {}).get("overall", {}).get("strict")
        if o:
            parts.append(f"{role} strict F1 {o['f1']:.4f} (P {o['precision']:.4f} R {o['recall']:.4f})")
    resolved = card.training.get("resolved") or {}
    if resolved:
        parts.append(f"learning rate {resolved['learning_rate']:g}, at most {resolved['epochs']} epochs "
                     f"({'backbone defaults' if resolved.get('from_backbone_defaults') else 'config'})")
    if card.parent:
        parts.append(f"continued from {card.parent['path']}")
    return "; ".join(parts)


def _input_summary(task: str, model_dir: Path) -> list[str]:
    """What was read and what was not used, from the card's ``data`` section."""
    import json as _json

    data = _json.loads((Path(model_dir) / "nerwheel.json").read_text(encoding="utf-8")).get("data", {})
    if task == "ner":
        from nerwheel.stages.train import input_summary

        return input_summary(data, Path(model_dir))
    lines = [f"{role} {f['path']}: read {f['read']} = accepted {f['accepted']} + rejected {f['rejected']}"
             for role in ("train", "dev", "test") if (f := data.get(f"{role}_file"))]
    lines.append(f"rejected: {sum(data.get(f'{r}_file', {}).get('rejected', 0) for r in ('train', 'dev', 'test'))} "
                 f"records, each with file, line and reason, in {Path(model_dir) / 'rejects.jsonl'}")
    return lines


# -- pretrain -----------------------------------------------------------------------------------------
@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML or INI config (sections model, training; keys texts, out).")
@click.option("--model", "model_id", help="Encoder: tiny, e5-small or a Hugging Face directory [tiny].")
@click.option("--texts", type=click.Path(exists=True, dir_okay=False), help="Unlabelled in-domain texts.")
@click.option("--out", help="Output folder: a backbone for `nerwheel train --model-id OUT`.")
@click.option("--epochs", type=int, help="Passes over the texts [1].")
@click.option("--max-steps", type=int, help="Stop after this many optimiser steps.")
@click.option("--masking", type=click.Choice(["char", "span"]), help="Mask single characters or runs [span].")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Any config key (repeatable).")
def pretrain(config_path, model_id, texts, out, epochs, max_steps, masking, sets):
    """Domain-adaptive pretraining: masked-LM training of an encoder on TEXTS; prints the output folder."""
    from nerwheel.configfile import load, merge_overrides, parse_overrides
    from nerwheel.stages.pretrain import PRETRAIN_REPORT, PretrainConfig
    from nerwheel.stages.pretrain import pretrain as run

    flags = {"model": {"model_id": model_id}, "texts": texts, "out": out,
             "training": {"epochs": epochs, "max_steps": max_steps, "masking": masking}}
    given: dict = {}
    for key, value in flags.items():
        if isinstance(value, dict):
            kept = {k: v for k, v in value.items() if v is not None}
            if kept:
                given[key] = kept
        elif value is not None:
            given[key] = value
    config = load(PretrainConfig, config_path, merge_overrides(given, parse_overrides(sets)))
    folder = run(config)
    report = json.loads((folder / PRETRAIN_REPORT).read_text(encoding="utf-8"))
    t = report["texts"]
    click.echo(f"texts {t['path']}: read {t['read']} = used {t['used']} + rejected {t['rejected']}; "
               f"{report['steps']} steps, loss {report['loss'][0]['loss']:.3f} -> {report['loss'][-1]['loss']:.3f}",
               err=True)
    click.echo(str(folder))


# -- distill ------------------------------------------------------------------------------------------
@click.command()
@click.option("--teacher", type=click.Path(exists=True, file_okay=False),
              help="Trained teacher model dir, a tagger or a classifier (its ONNX export, when present, labels the "
              "texts).")
@click.option("--texts", "texts_file", type=click.Path(exists=True, dir_okay=False),
              help="Traffic to distil on (any format the teacher's task reads; records that carry entities, or "
              "messages with a label, count as gold).")
@click.option("--student", help="tiny, tiny:hidden_size=H,num_layers=L,num_heads=A,intermediate_size=F, or "
              "shallow:K (the teacher's first K layers, pruned vocabulary; shallow:K,vocab=full keeps it) [tiny].")
@click.option("--out", type=click.Path(file_okay=False), help="The student's model dir (new or empty).")
@click.option("--gold", "gold_file", type=click.Path(exists=True, dir_okay=False),
              help="More labelled records: gold labels plus the teacher's distributions.")
@click.option("--dev", "dev_file", type=click.Path(exists=True, dir_okay=False),
              help="Gold records that choose the best epoch and give both models' F1 (classifier: macro-F1) "
              "[agreement with the teacher on held-out texts].")
@format_option("Input format (default: detected from the content; classifier teacher: json, jsonl, csv, tsv, text).",
               tasks=True)
@click.option("--epochs", type=int, help="Maximum epochs [5].")
@click.option("--batch-size", type=int, help="Windows (classifier: messages) per optimiser step [32].")
@click.option("--learning-rate", type=float, help="Student learning rate [1e-3 for tiny, 1e-4 for shallow].")
@click.option("--temperature", type=float, help="Softens teacher and student distributions in the KL term [2.0].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML or INI distillation config (keys: teacher, student, texts_file, out, distill.*, training.*).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Any config key, e.g. --set distill.kl_weight=0.5 --set training.threads=1 (repeatable).")
def distill(teacher, texts_file, student, out, gold_file, dev_file, fmt, epochs, batch_size, learning_rate,
            temperature, config_path, sets):
    """Train a smaller STUDENT on the TEACHER's distributions over TEXTS; prints the student dir.

    A tagger's student learns the teacher's per-character tag distributions:
    temperature-scaled KL divergence between teacher and student emissions plus
    the CRF loss on the teacher's Viterbi path. A classifier's student learns
    its class probabilities: the same KL plus cross-entropy on the teacher's
    top class. Gold labels replace the teacher's answer where a text has them.
    The student is an ordinary model dir: evaluate, export and deploy it like a
    trained one (the classifier's with --task classify, or detected).
    """
    from nerwheel.configfile import merge_overrides, parse_overrides
    from nerwheel.model.distill import load_distill_config
    from nerwheel.stages.distill import distill as run

    flags = {"teacher": teacher, "texts_file": texts_file, "student": student, "out": out, "gold_file": gold_file,
             "dev_file": dev_file, "format": fmt,
             "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate},
             "distill": {"temperature": temperature}}
    given = {k: ({kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v)
             for k, v in flags.items()}
    given = {k: v for k, v in given.items() if v not in (None, {})}
    config = load_distill_config(config_path, merge_overrides(given, parse_overrides(sets)))
    result = run(config)
    s = result.summary
    key, words = _DISTILL_HEADLINE[s["task"]]
    agree = s["agreement_with_teacher"]
    click.echo(f"student {s['student_name']}: {s['student_parameters'] / 1e6:.2f}M parameters "
               f"(teacher {s['teacher_parameters'] / 1e6:.2f}M); agreement with the teacher on "
               f"{s['heldout_texts']} held-out texts: {words} {agree[key]:.4f}" if agree else
               f"student {s['student_name']}: {s['student_parameters'] / 1e6:.2f}M parameters", err=True)
    dev = s["dev"]
    if dev["kind"] == "gold":
        click.echo(f"dev (gold): student {words} {dev['student'][key]:.4f}, teacher {dev['teacher'][key]:.4f}",
                   err=True)
    click.echo(str(result.model_dir))


#: The figure the distill command prints per teacher task: (key in the summary's figures, how it reads).
_DISTILL_HEADLINE = {"ner": ("strict_f1", "strict F1"), "classify": ("macro_f1", "macro-F1")}


# -- evaluate -----------------------------------------------------------------------------------------
@click.command()
@_task_option()
@click.option("--model", required=True, help="Trained model dir, export dir, or Triton host:port.")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Gold records (any format the task reads).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for metrics.json and friends.")
@format_option("Input format (default: detected from the content; classify: json, jsonl, csv, tsv, text).",
               tasks=True)
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto: ONNX Runtime where an export exists (MODEL or MODEL/onnx), else PyTorch.")
@decode_options
def evaluate(task_name, model, data_path, out, fmt, runtime, nested, extensions):
    """Score a model on gold records (ner: seqeval strict, exact, partial, type; classify: accuracy, macro-F1,
    per class, confusion, calibration); errors and charts.

    NER: target labels are scored; extension labels (pos:..., kb:...) only with --extensions.
    Gold labels outside the model's label set are rejects (file, line, reason), not silent misses.
    """
    from functools import cache

    from nerwheel.stages.evaluate import label_set_line, read_gold

    task = _task_for(task_name, model)
    decode = _decode(task, nested, extensions)
    loaded = cache(lambda: task.load_predictor(model, runtime=runtime, **decode))
    data, label_set = read_gold(task, lambda **o: read_input(data_path, fmt, what="data", task=task, **o),
                                lambda: [(loaded(), model)])
    predictor = loaded() if label_set is not None else None  # NER gold with no entity: refused without a model
    options = {"extensions": extensions} if task.name == "ner" else {}
    metrics = task.evaluate(model, data.records, out, predictor=predictor, rejects=data.rejects,
                            label_set=label_set, **options)
    i, o = metrics["input"], metrics["overall"]
    click.echo(f"input: read {i['read']} = accepted {i['accepted']} + rejected {i['rejected']}; "
               f"{i['rejected']} rejects with file, line and reason in {Path(out) / 'rejects.jsonl'}", err=True)
    click.echo(label_set_line(metrics["label_set"]), err=True)
    if task.name == "classify":
        click.echo(f"accuracy {o['accuracy']:.4f}; macro-F1 {o['macro']['f1']:.4f} (P {o['macro']['precision']:.4f} "
                   f"R {o['macro']['recall']:.4f}); ECE {o.get('ece', float('nan')):.4f}")
        click.echo(f"wrote {out}/metrics.json, report.txt, errors.jsonl, predictions.jsonl, rejects.jsonl, "
                   "confusion.png, calibration.png", err=True)
        return
    click.echo(
        f"strict F1 {o['strict']['f1']:.4f} (P {o['strict']['precision']:.4f} R {o['strict']['recall']:.4f}); "
        f"partial F1 {o['partial']['f1']:.4f}; type F1 {o['type']['f1']:.4f}; token accuracy {o['token_accuracy']:.4f}"
    )
    click.echo(f"wrote {out}/metrics.json, report.txt, errors.jsonl, predictions.jsonl, rejects.jsonl, plots",
               err=True)


# -- export -------------------------------------------------------------------------------------------
@click.command()
@_task_option()
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False), help="Trained model dir.")
@click.option("--out", type=click.Path(file_okay=False), help="Export folder [MODEL/onnx].")
@click.option("--quantize", type=click.Choice(["int8"]), help="Also write model.int8.onnx (dynamic int8).")
@click.option("--eval", "eval_path", type=click.Path(exists=True, dir_okay=False),
              help="Gold records: parity sample, gold scores of fp32 and of int8 and the change; without it, "
              "--quantize reports only int8's agreement with fp32.")
@click.option("--atol", type=float, help="Largest allowed |output diff| [ner 1e-3 (emissions), classify 1e-4 "
              "(probabilities)].")
@click.option("--graph", type=click.Choice(["plain", "fused"]),
              help="ner: plain = the traced graph (ONNX Runtime fuses at load); fused = ONNX Runtime's transformer "
              "optimizer (Attention, SkipLayerNorm, BiasGelu ops) written into the file [plain].")
@click.option("--per-channel/--per-tensor", default=None,
              help="ner: int8 weight scales per output channel (same speed, smaller error) or one per matrix "
              "[per-channel].")
@click.option("--int8-max-f1-drop", type=float,
              help="ner, with --eval: refuse an int8 model whose gold strict F1 is this much below fp32's [0.005].")
@click.option("--optimize", is_flag=True, help="classify: ONNX Runtime transformer graph fusion (re-checked).")
@click.option("--max-length", type=int, help="classify: tokens per (context, message) pair in the export "
              "[the training length].")
@click.option("--overwrite", is_flag=True, help="Replace an existing export folder.")
def export(task_name, model, out, quantize, eval_path, atol, graph, per_channel, int8_max_f1_drop, optimize,
           max_length, overwrite):
    """Export a trained model to ONNX; refused unless ONNX Runtime reproduces PyTorch."""
    from nerwheel.model.layout import EXPORT_SUBDIR

    task = _task_for(task_name, model)
    if task.name == "ner" and (optimize or max_length):
        raise click.UsageError("--optimize and --max-length are classify export options")
    out = out or str(Path(model) / EXPORT_SUBDIR)
    options: dict[str, Any] = {"overwrite": overwrite}
    if atol is not None:
        options["atol"] = atol
    ner_options = {"graph": graph, "per_channel": per_channel, "int8_max_f1_drop": int8_max_f1_drop}
    if task.name == "ner":
        options.update({k: v for k, v in ner_options.items() if v is not None})
    else:
        if any(v is not None for v in ner_options.values()):
            raise click.UsageError("--graph, --per-channel/--per-tensor and --int8-max-f1-drop are ner export "
                                   "options (classify: --optimize)")
        options.update(optimize=optimize, max_length=max_length)
    records = read_input(eval_path, what="eval", task=task).records if eval_path else None
    report = task.export(model, out, quantize, eval_records=records, **options)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    if report.int8 and report.fp32 is None:
        click.echo("pass --eval GOLD to measure int8's F1 change", err=True)


# -- predict ------------------------------------------------------------------------------------------
@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@_task_option("Task: ner or classify [from the model's nerwheel.json; with --url: ner].")
@click.option("--model", help="Trained model dir or export dir (ONNX Runtime preferred where an export exists).")
@click.option("--url", help="Triton gRPC endpoint (host:port) instead of a local model.")
@click.option("--served-name", default="nerwheel", show_default=True,
              help="With --url: the model name in the Triton repository (deploy --name).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="JSONL output, in input order [stdout; progress and summaries go to stderr].")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Where unreadable input lines go (JSONL: file, line, reason) [OUT.rejects.jsonl; "
              "without --out: listed on stderr].")
@format_option("Input format (default: detected from the content; plain text lines work).", tasks=True)
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto: ONNX Runtime where an export exists (MODEL or MODEL/onnx), else PyTorch.")
@click.option("--int8", is_flag=True, help="Use model.int8.onnx from the export.")
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Windows per forward pass (local model) or texts per request (--url).")
@decode_options
@click.option("--max-length", type=click.IntRange(min=0), default=2048, show_default=True,
              help="Reject input texts longer than this many characters (0: no limit).")
@click.option("--decode", "decode_method", type=click.Choice(["viterbi", "beam"]),
              help="Tag-path search of an NER CRF or softmax head [the model's, from its nerwheel.json].")
@click.option("--beam-size", type=click.IntRange(min=1),
              help="Tags kept per position with --decode beam (at least the number of tags: exactly Viterbi).")
@click.option("--n-best", type=click.IntRange(min=1),
              help="Also list the K best readings of each text with P(path | text), in meta.n_best (NER CRF or "
              "softmax heads).")
def predict(input_path, task_name, model, url, served_name, out, rejects_path, fmt, runtime, int8, batch_size,
            nested, extensions, max_length, decode_method, beam_size, n_best):
    """Run a model (PyTorch, ONNX Runtime) or a Triton server over INPUT; JSONL in input order (stdout without
    --out). ner: span JSONL; classify: each input record with `label` and `probabilities`."""
    if bool(model) == bool(url):
        raise click.UsageError("give exactly one of --model DIR or --url HOST:PORT")
    if url and (nested is not None or extensions):
        raise click.UsageError("--nested/--flat and --extensions decode a local span-head model; a served model "
                               "decodes as its card says")
    if url and (decode_method or beam_size):
        raise click.UsageError("--decode and --beam-size need --model: a Triton server decodes as its model's card "
                               "says")
    from nerwheel.formats import write_rejects

    task = _task_for(task_name, model)
    decode = _decode(task, nested, extensions)
    if task.name != "ner" and (decode_method or beam_size or n_best):
        raise click.UsageError(f"--decode, --beam-size and --n-best search NER tag paths, not a {task.name} model")
    if model and (decoding := _decoding(model, decode_method, beam_size)) is not None:
        decode["decoding"] = decoding
    data = read_input(input_path, fmt, what="input", task=task, max_length=max_length or None)
    records, rejects = data.records, data.rejects
    if url:
        predictor: Any = task.load_predictor(url, model=served_name, batch_size=batch_size)
    else:
        predictor = task.load_predictor(model, runtime=runtime, int8=int8, batch_size=batch_size, **decode)
    rows = task.predict_rows(predictor, records, **({"n_best": n_best} if n_best else {}))
    if out:
        _write_rows(rows, out)
    else:  # stdout carries the records only, so `nerwheel predict ... | jq` works
        sys.stdout.flush()
        stdout = sys.stdout.buffer  # UTF-8 like every JSONL file nerwheel writes, whatever the locale
        for row in rows:
            stdout.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        stdout.flush()
    click.echo(f"wrote {len(rows)} records to {out or 'stdout'} ({type(predictor).__name__})", err=True)
    rej_path = rejects_path or (f"{out}.rejects.jsonl" if out else None)
    if rejects and rej_path:
        write_rejects(rejects, rej_path)
        click.echo(f"wrote {len(rejects)} rejected input lines to {rej_path}", err=True)
    elif rejects:
        for rej in rejects[3:]:  # read_input showed the first three
            click.echo(f"  rejected {rej}", err=True)


def _write_rows(rows: list[dict[str, Any]], out: str) -> None:
    from nerwheel.formats.base import atomic_path

    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _decoding(model: str, method: str | None, beam_size: int | None) -> Any:
    """The card's decoding with the flags given on top (None: keep the card's)."""
    if method is None and beam_size is None:
        return None
    from nerwheel.decode import Decoding
    from nerwheel.model.card import ModelCard
    from nerwheel.model.layout import CARD_FILE, EXPORT_SUBDIR

    folder = Path(model)
    card_dir = folder if (folder / CARD_FILE).is_file() else folder / EXPORT_SUBDIR
    base = Decoding.from_dict(ModelCard.read(card_dir).decode)
    return Decoding(method or base.method, beam_size or base.beam_size)


def _decode(task: Any, nested: bool | None, extensions: bool | None) -> dict[str, Any]:
    """The span head's decode options for an NER model; refused for another task, which has no spans."""
    if task.name == "ner":
        return decode_kwargs(nested, extensions)
    if nested is not None or extensions:
        raise click.UsageError(f"--nested/--flat and --extensions decode NER span-head models, not a {task.name} model")
    return {}
