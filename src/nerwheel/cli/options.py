"""Options several commands share, defined once so their names, choices and help agree everywhere."""

from __future__ import annotations

from typing import Any

import click

from nerwheel.formats import FORMATS

__all__ = ["FORMAT_CHOICE", "format_option"]

#: The formats `nerwheel data` reads and writes; every command's --format offers exactly these.
FORMAT_CHOICE = click.Choice(sorted(FORMATS))


def format_option(help: str = "Input format (default: detected from the content).") -> Any:
    """``-f/--format`` with the formats' names as choices."""
    return click.option("-f", "--format", "fmt", type=FORMAT_CHOICE, default=None, help=help)
