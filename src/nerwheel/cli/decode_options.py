"""``--nested/--flat`` and ``--extensions``: how a span-head model's output is decoded, for every command that predicts.

Both default to what the model's card says (``model.span.nested`` at training
time; extension labels only when asked), so a command without them answers
exactly like the served model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["decode_kwargs", "decode_options"]


def decode_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--extensions", is_flag=True,
                     help="Span heads: also return extension labels (pos:..., kb:...), decoded apart from the "
                     "target labels.")(f)
    return click.option("--nested/--flat", "nested", default=None,
                        help="Span heads: nested target spans, or flat ones [the model's model.span.nested].")(f)


def decode_kwargs(nested: bool | None, extensions: bool) -> dict[str, Any]:
    """Keyword arguments for :func:`nerwheel.stages.predict.load_predictor` (only what was asked)."""
    return {"nested": nested, "extensions": extensions or None}
