"""Progress bars for long work: tqdm on stderr, shown only where someone is watching.

One switch for every command and every stage. By default bars appear when
stderr is a terminal and stay out of logs, pipes and CI. ``nerwheel
--progress`` (or ``NERWHEEL_PROGRESS=1``) forces them on: to watch a redirected
run, and for tests; ``nerwheel --quiet`` (or ``NERWHEEL_PROGRESS=0``) turns
them off. The stage functions ask :func:`enabled` and need no argument for it;
the tasks ``nerwheel run`` starts get the choice through :func:`env`. Stdout is
never touched: ``nerwheel predict ... | jq`` stays clean.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["ENV", "enabled", "env", "progress", "set_mode"]

ENV = "NERWHEEL_PROGRESS"
_ON = ("1", "true", "yes", "on", "always")
_OFF = ("0", "false", "no", "off", "never")

T = TypeVar("T")


_mode: bool | None = None


def set_mode(mode: bool | None) -> None:
    """This process's choice (``nerwheel --progress`` / ``--quiet``): True always, False never, None: the environment's.

    Kept in the process, not written to the environment, so one command's flag
    does not outlive it; :func:`env` hands it to subprocesses.
    """
    global _mode
    _mode = mode


def env() -> dict[str, str]:
    """``{NERWHEEL_PROGRESS: "1"|"0"}`` for a subprocess that should follow this process's choice (empty: auto)."""
    return {} if _mode is None else {ENV: "1" if _mode else "0"}


def enabled() -> bool:
    """Bars on: :func:`set_mode`'s choice, else ``NERWHEEL_PROGRESS`` (1 on, 0 off), else when stderr is a terminal."""
    if _mode is not None:
        return _mode
    value = os.environ.get(ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress(iterable: Iterable[T] | None = None, *, desc: str, unit: str = "it", total: int | None = None,
             leave: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar on stderr (rate and ETA), disabled unless :func:`enabled`; iterate it or call ``update(n)``."""
    on = enabled()
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=leave, file=sys.stderr, disable=not on,
                dynamic_ncols=True, mininterval=0.5 if on and not sys.stderr.isatty() else 0.1, **kwargs)
