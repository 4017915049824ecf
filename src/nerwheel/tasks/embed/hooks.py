"""The embedding task's answers to the hooks of :mod:`nerwheel.tasks` that take records.

The shared ``nerwheel train | evaluate | predict`` commands work on records
(texts with labels). The embedding task's data are a corpus, queries and
graded judgements (:mod:`nerwheel.tasks.embed.beir`), so its training,
evaluation and encoding have their own commands (``nerwheel embed ...``);
these hooks say so, naming the command, instead of guessing. What the shared
machinery needs from every task, the embedding task gives in full: the
export (the shared export step and deploy), the gate's view of its metrics,
the serving adapter, and its training config (``--create-config``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["evaluate", "export", "load_config", "load_predictor", "predict_rows", "read", "train", "write_default"]


def _own_commands() -> Any:
    from nerwheel.tasks import TaskError

    return TaskError("the embedding task works on a corpus, queries and judgements, not records, with its own "
                     "commands: `nerwheel embed encode TEXTS --model M` (embed texts), `nerwheel embed evaluate "
                     "--model M --beir DIR` (score), `nerwheel embed train --model BASE --pairs PAIRS --out DIR` "
                     "(train); see `nerwheel embed --help`")


def read(path: str | Path, format: str | None = None, **options: Any) -> Any:
    raise _own_commands()


def train(config: Any, **records: Any) -> Path:
    raise _own_commands()


def evaluate(model: Any, records: Sequence[Any], out_dir: str | Path, **options: Any) -> dict[str, Any]:
    raise _own_commands()


def load_predictor(path_or_url: str | Path, **options: Any) -> Any:
    raise _own_commands()


def predict_rows(predictor: Any, records: Sequence[Any]) -> list[dict[str, Any]]:
    raise _own_commands()


def export(model_dir: str | Path, out_dir: str | Path, quantize: str | None = None, *, overwrite: bool = False,
           **options: Any) -> Any:
    """:func:`nerwheel.tasks.embed.export.export_encoder` under the shared export's signature (the shared
    options, ``eval_records`` and ``atol`` among them, have no meaning for an encoder: parity is by cosine)."""
    from nerwheel.tasks.embed.export import export_encoder

    return export_encoder(model_dir, out_dir, quantize, overwrite=overwrite)


def write_default(path: str | Path) -> Path:
    """A commented YAML of every training setting at its default, for ``nerwheel embed train --config``."""
    from nerwheel.tasks.embed.train import EmbedTrainConfig

    lines = ["# nerwheel embed train --config THIS_FILE --pairs PAIRS --out DIR (flags win over this file)"]
    for name, f in EmbedTrainConfig.model_fields.items():
        if f.description:
            lines.append(f"# {f.description}")
        value = f.default
        lines.append(f"{name}: {'null' if value is None else value if not isinstance(value, str) else repr(value)}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> Any:
    raise _own_commands()
