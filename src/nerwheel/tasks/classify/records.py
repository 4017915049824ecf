"""The classifier's in-memory forms: a :class:`Message` (what is scored) and a :class:`LabelSet` (the classes).

A message is scored with the previous turn as optional ``context``; the model
reads the pair as the tokenizer's sentence pair (context first, message second;
an empty context means the message alone). ``label`` is a class *name* (never
an index: indices belong to one model's head, names survive a relabelling).
``meta`` keeps provenance: who labelled it (``source``), with what confidence
(``score``), and the teachers' votes.

Label names come from a ``labels.json`` (``{"0": "low_value", "1": "normal"}``
or a plain list), from the config, or from the data; :class:`LabelSet` is the
ordered list, and its order is the model head's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nerwheel.errors import DataError
from nerwheel.records import FrozenMeta

__all__ = ["LABELS_FILE", "LabelError", "LabelSet", "Message"]

#: The label map beside a data file (``kuake_qqr/labels.json``) or inside a model directory.
LABELS_FILE = "labels.json"


class LabelError(DataError):
    """A label map that cannot be used (unreadable, duplicate names, gaps in the indices)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to classify; ``label`` is the class name (None: unlabelled)."""

    id: str
    message: str
    context: str = ""
    label: str | None = None
    meta: Mapping[str, Any] = field(default_factory=FrozenMeta)

    def __post_init__(self) -> None:
        if not isinstance(self.meta, FrozenMeta):
            object.__setattr__(self, "meta", FrozenMeta(self.meta))

    @property
    def text(self) -> str:
        """The message itself: what leakage checks, dedup and the stages that only look at text compare."""
        return self.message

    @property
    def source(self) -> str | None:
        return self.meta.get("source")

    @property
    def score(self) -> float | None:
        return self.meta.get("score")

    def with_label(self, label: str | None, **meta: Any) -> Message:
        return replace(self, label=label, meta=FrozenMeta({**self.meta, **meta}))

    def with_meta(self, **updates: Any) -> Message:
        return replace(self, meta=FrozenMeta({**self.meta, **updates}))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "message": self.message, "context": self.context, "label": self.label}
        if self.meta:
            d["meta"] = dict(self.meta)
        return d


@dataclass(frozen=True)
class LabelSet:
    """The classes in head order: ``names[i]`` is the class of logit ``i``."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        dupes = sorted({n for n in self.names if self.names.count(n) > 1})
        if dupes:
            raise LabelError(f"label names must be unique; repeated: {', '.join(dupes)}")
        bad = [n for n in self.names if not isinstance(n, str) or not n.strip()]
        if bad:
            raise LabelError(f"label names must be non-empty strings, got {bad!r}")

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def to_json(self) -> dict[str, str]:
        """The ``labels.json`` form: ``{"0": "low_value", ...}``."""
        return {str(i): n for i, n in enumerate(self.names)}

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / LABELS_FILE
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | Sequence[str], where: str = "labels") -> LabelSet:
        """``{"0": "a", "1": "b"}`` (indices 0..n-1, no gaps) or ``["a", "b"]``."""
        if isinstance(data, Mapping):
            try:
                pairs = sorted((int(k), v) for k, v in data.items())
            except (TypeError, ValueError):
                raise LabelError(f"{where}: keys must be class indices (\"0\", \"1\", ...), got "
                                 f"{list(data)[:5]}") from None
            if [i for i, _ in pairs] != list(range(len(pairs))):
                raise LabelError(f"{where}: indices must run 0..{len(pairs) - 1} without gaps, got "
                                 f"{[i for i, _ in pairs]}")
            return cls(tuple(v for _, v in pairs))
        if isinstance(data, (list, tuple)):
            return cls(tuple(data))
        raise LabelError(f"{where}: expected {{\"0\": \"name\", ...}} or a list of names, got {type(data).__name__}")

    @classmethod
    def read(cls, path: str | Path) -> LabelSet:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LabelError(f"{p}: no such labels file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LabelError(f"{p}: not a JSON label map ({exc})") from None
        return cls.from_mapping(data, str(p))

    @classmethod
    def beside(cls, data_path: str | Path) -> LabelSet | None:
        """The ``labels.json`` in the data file's folder, if there is one."""
        p = Path(data_path).parent / LABELS_FILE
        return cls.read(p) if p.is_file() else None

    @classmethod
    def from_messages(cls, messages: Iterable[Message]) -> LabelSet:
        """The labels present, sorted (integers by value, so "0".."10" keep their order)."""
        names = {m.label for m in messages if m.label is not None}
        return cls(tuple(sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))))
