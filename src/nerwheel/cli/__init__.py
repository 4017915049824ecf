"""The ``nerwheel`` command: a thin shell over the stage functions.

Sub-commands are imported lazily, so ``nerwheel data stats`` starts in a
fraction of a second and never imports torch, tritonclient or kfp. Each area owns
one module under :mod:`nerwheel.cli`; this file only lists them, and runs every
command inside the one error handler (:func:`nerwheel.cli.common.handle_errors`).
"""

from __future__ import annotations

import importlib
import logging

import click

# name -> ("module:attribute", short help shown by `nerwheel --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("nerwheel.cli.data:data", "Validate, convert, describe and split labelled data."),
    "annotate": ("nerwheel.cli.teach:annotate", "Label texts with a teacher (knowledge base or LLM)."),
    "synthesize": ("nerwheel.cli.teach:synthesize", "Synthesise short and long labelled texts."),
    "merge": ("nerwheel.cli.flywheel:merge", "Fuse labels from several sources with provenance."),
    "feedback": ("nerwheel.cli.flywheel:feedback", "Diff the production model against teachers on live texts."),
    "pseudo-label": ("nerwheel.cli.flywheel:pseudo_label", "Label texts with a trained model above a confidence."),
    "gate": ("nerwheel.cli.flywheel:gate", "Promote a candidate model only if it beats production."),
    "classify": ("nerwheel.cli.classify:classify", "Message classifier teachers: label, feedback, merge."),
    "pretrain": ("nerwheel.cli.model:pretrain", "Continue masked-LM training of an encoder on unlabelled text."),
    "train": ("nerwheel.cli.model:train", "Train a model: BERT(+CRF) tagger, or --task classify."),
    "distill": ("nerwheel.cli.model:distill", "Distil a trained tagger into a smaller, faster student."),
    "evaluate": ("nerwheel.cli.model:evaluate", "Evaluate a model: seqeval strict, partial, type; or macro-F1."),
    "export": ("nerwheel.cli.model:export", "Export a model to ONNX with a parity check."),
    "predict": ("nerwheel.cli.model:predict", "Run a model (PyTorch, ONNX or Triton) over texts."),
    "serve": ("nerwheel.cli.serving:serve", "Start Triton on 127.0.0.1 with a model repository."),
    "deploy": ("nerwheel.cli.serving:deploy", "Write, upload, load and verify a new model version in Triton."),
    "embed": ("nerwheel.cli.embed:embed", "Embedding task: split, pairs, expand, train, evaluate, export, encode."),
    "run": ("nerwheel.cli.pipeline:run", "Run the whole pipeline locally on the embedded default."),
    "compile": ("nerwheel.cli.pipeline:compile_", "Compile the Kubeflow pipeline to IR YAML."),
    "submit": ("nerwheel.cli.pipeline:submit", "Submit a run or a recurring run to a Kubeflow cluster."),
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        from nerwheel.cli.common import handle_errors

        with handle_errors():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars; only warnings and errors in the log.")
@click.option("--progress", "show_progress", is_flag=True,
              help="Show progress bars on stderr even when it is not a terminal (env NERWHEEL_PROGRESS=1); by "
              "default they appear only on a terminal.")
@click.version_option(package_name="nerwheel")
def cli(verbose: int, quiet: bool, show_progress: bool) -> None:
    """nerwheel: a data flywheel for small, fast NER models."""
    from nerwheel.progress import set_mode

    if quiet and (verbose or show_progress):
        raise click.UsageError("--quiet cannot be combined with --verbose or --progress")
    set_mode(False if quiet else True if show_progress else None)
    level = logging.WARNING if quiet else logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from nerwheel import redact

    redact.install()  # credentials in URLs (httpx logs every request URL at INFO) never reach a log line


def main() -> None:
    cli(prog_name="nerwheel")
