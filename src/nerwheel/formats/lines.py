"""Line reading shared by every line-based format.

Decodes each line on its own so one bad byte sequence rejects one line, not the
file. A UTF-8 BOM on the first line and CRLF endings are tolerated (stripped) and
counted, because Windows tools produce them and rejecting them would lose data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nerwheel.formats.base import Reject

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based
    text: str


def iter_lines(path: Path, *, skip_blank: bool = True) -> Iterator[Line | Reject]:
    """Yield decoded lines (without line ending) or a :class:`Reject` for undecodable ones."""
    name = str(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Reject(name, number, f"invalid UTF-8 at byte {exc.start}: {raw[exc.start:exc.start + 4]!r}",
                             raw.decode("utf-8", errors="replace"))
                continue
            if skip_blank and not text.strip():
                continue
            yield Line(number, text)
