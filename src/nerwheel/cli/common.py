"""What every ``nerwheel`` command shares: the one error handler, the flag hints, reading an input file.

Errors. A :class:`~nerwheel.errors.NerwheelError` (bad data, a bad setting, a
storage or serving failure) becomes one line and exit status 1; so do a typed
config that refused a value (pydantic's ``ValidationError``), an ``OSError``
(a missing, unreadable or unwritable file) and a ``UnicodeError`` (a file that
is not UTF-8). Anything else is a bug in nerwheel and keeps its traceback. :class:`nerwheel.cli.LazyGroup` runs every command
inside :func:`handle_errors`; commands do not catch these themselves.

Hints. Stages speak in config fields; an error that names one carries it in
``field``, and :data:`FLAGS` says which flag sets it, so the message ends with
``(CLI: --precedence)``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nerwheel.errors import NerwheelError, with_hint

if TYPE_CHECKING:
    from nerwheel.formats import ReadResult

__all__ = ["FLAGS", "handle_errors", "hinted", "read_input"]

#: Config field named by a stage's error -> the flag that sets it.
FLAGS: dict[str, str] = {
    "precedence": "--precedence",
    "kind": "--extra KIND=FILE",
    "llm": "--llm-url and --llm-model",
    "labels": "--labels",
    "data.train_file": "--train FILE",
    "unlabeled.file": "--unlabeled FILE",
    "texts": "--texts FILE",
    "out": "--out DIR",
    "eval_records": "--eval GOLD",
    "model.head": "--head",
    "nested": "--nested/--flat",
    "teacher": "--teacher",
    "student": "--student",
}


def hinted(exc: BaseException) -> str:
    """``exc``'s message with the flag that fixes it, when it names a config field."""
    return with_hint(exc, FLAGS, "CLI")


@contextmanager
def handle_errors() -> Iterator[None]:
    """Expected failures become one line and exit status 1; anything else (a bug) keeps its traceback."""
    try:
        yield
    except NerwheelError as exc:
        raise click.ClickException(hinted(exc)) from None
    except (OSError, UnicodeError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        pydantic = sys.modules.get("pydantic")  # only a typed config can have raised its ValidationError
        if pydantic is not None and isinstance(exc, pydantic.ValidationError):
            raise click.ClickException(str(exc)) from None
        raise


def read_input(path: str | Path, fmt: str | None = None, *, what: str = "input", rejects: list[Any] | None = None,
               quiet: bool = False, task: Any = None, max_length: int | None = None,
               **options: Any) -> ReadResult:
    """Read records from ``path`` (any format, detected unless ``fmt``), the way every command does.

    ``task`` (:func:`nerwheel.tasks.get_task`) reads its own records (the classifier's messages); default NER.
    Texts longer than ``max_length`` characters become ``too-long`` rejects (``--max-length``).

    Prints ``what: <summary>`` and the first three rejects on stderr (unless ``quiet``) and, when
    ``rejects`` is given, appends every reject to it. An unreadable file raises
    :class:`~nerwheel.formats.FormatError` (one line, exit 1).
    """
    from nerwheel.formats import read_records
    from nerwheel.validate import limit_length

    result = task.read(path, fmt, **options) if task is not None else read_records(path, fmt, **options)
    result = limit_length(result, max_length)
    if not quiet:
        click.echo(f"{what}: {result.summary()}", err=True)
        for rej in result.rejects[:3]:
            click.echo(f"  rejected {rej}", err=True)
    if rejects is not None:
        rejects.extend(result.rejects)
    return result
