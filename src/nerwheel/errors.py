"""The errors nerwheel raises on purpose, under one base: :class:`NerwheelError`.

A ``NerwheelError`` means the input, a setting or the environment is not what
the job needs, and its message says what, where (file, line, field) and the
fix. The ``nerwheel`` command prints it as one line and exits 1; a KFP task
fails with it in its log. Any other exception is a bug and keeps its traceback:
a ``ValueError`` from a slip in nerwheel's own code must never pass for a
message about the user's data.

Every family sits beneath it: :class:`ConfigError` and :class:`DataError`
here, the formats' ``FormatError``, the stages' ``MergeError``, ``GateError``,
``TrainDataError``, ``ExportCheckError`` ..., ``StorageError``, and the
serving errors (``ServingError``, ``RepositoryError``, ``DeployError``,
``TritonError``). Where a Python base class has a meaning for callers
(``ValueError`` for a bad value, ``RuntimeError`` for a failed operation) the
error keeps it as a second base.

Stages speak in their config's words: an error whose fix is a setting names
the config field (``precedence``, ``data.train_file``) in its message and in
``field``. The wrapper that knows how the field is set adds that as a hint:
the CLI its flag, the KFP step its pipeline parameter (:func:`with_hint`).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ConfigError", "DataError", "NerwheelError", "with_hint"]


class NerwheelError(Exception):
    """An expected failure whose message is the whole story; ``field``: the config field the fix is in, if any."""

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        self.field = field


class ConfigError(NerwheelError, ValueError):
    """A setting (config file, flag, pipeline parameter, function argument) has a value the job cannot use."""


class DataError(NerwheelError, ValueError):
    """The data given cannot be used as a whole (no records, no entities, a file that is not what it must be)."""


def with_hint(exc: BaseException, hints: Mapping[str, str], how: str) -> str:
    """``exc``'s message plus ``(how: hint)`` when its ``field`` has a hint (``(CLI: --precedence)``)."""
    field = getattr(exc, "field", None)
    hint = hints.get(field) if field else None
    return f"{exc} ({how}: {hint})" if hint else str(exc)
