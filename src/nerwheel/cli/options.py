"""Options several commands share, defined once so their names, choices and help agree everywhere."""

from __future__ import annotations

from typing import Any

import click

from nerwheel.formats import FORMATS

__all__ = ["FORMAT_CHOICE", "MESSAGE_FORMATS", "TASK_FORMAT_CHOICE", "format_option"]

#: The formats `nerwheel data` reads and writes; every command's --format offers exactly these.
FORMAT_CHOICE = click.Choice(sorted(FORMATS))
#: The classifier's message formats (nerwheel.tasks.classify.formats.FORMATS, named here so the CLI imports no task).
MESSAGE_FORMATS = ("json", "jsonl", "csv", "tsv", "text")
#: --format of a command that takes --task: any task's formats (the task's reader refuses the others by name).
TASK_FORMAT_CHOICE = click.Choice(sorted(set(FORMATS) | set(MESSAGE_FORMATS)))


def format_option(help: str = "Input format (default: detected from the content).", *, tasks: bool = False) -> Any:
    """``-f/--format`` with the formats' names as choices (``tasks``: NER's and the classifier's)."""
    return click.option("-f", "--format", "fmt", type=TASK_FORMAT_CHOICE if tasks else FORMAT_CHOICE, default=None,
                        help=help)
