"""Self-contained HTML reports for the Kubeflow UI: tables and inline SVG charts.

Every stage's component writes one ``Output[HTML]`` that the KFP UI renders in
place. The charts are plain SVG built here (no matplotlib), so the slim stage
images can draw them too, and the file has no external references: it shows the
same in the UI, in a browser from the pipeline root, or attached to a ticket.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Report", "bar_chart", "line_chart", "table"]

_PALETTE = ("#3b6ea8", "#e07b39", "#4a9a5b", "#b94a48", "#7d5ba6", "#8c7b3e")
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f6f6;padding:.6em;overflow:auto}.muted{color:#777}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """An HTML table; numbers are right-aligned, floats shown with 4 decimals."""
    out = ["<table><tr>", *(f"<th>{html.escape(str(h))}</th>" for h in header), "</tr>"]
    for row in rows:
        out.append("<tr>")
        for v in row:
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            out.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def bar_chart(values: Mapping[str, float], *, title: str = "", width: int = 520, bar_height: int = 18,
              max_value: float | None = None) -> str:
    """Horizontal bars, one per key, labelled with the key and the value (inline SVG)."""
    items = list(values.items())
    if not items:
        return '<p class="muted">(nothing to plot)</p>'
    top = max_value if max_value is not None else max((float(v) for _, v in items), default=0.0)
    top = top or 1.0
    label_w, pad, value_w = 150, 4, 70
    plot_w = width - label_w - value_w
    height = len(items) * (bar_height + pad) + (24 if title else 4)
    y0 = 20 if title else 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    if title:
        parts.append(f'<text x="0" y="14" font-size="13" font-weight="bold">{html.escape(title)}</text>')
    for i, (k, v) in enumerate(items):
        y = y0 + i * (bar_height + pad)
        w = max(0.0, float(v)) / top * plot_w
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_height - 5}" font-size="12" text-anchor="end">'
                     f"{html.escape(str(k))}</text>")
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" '
                     f'fill="{_PALETTE[0]}"><title>{html.escape(str(k))}: {_fmt(v)}</title></rect>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_height - 5}" font-size="11">{_fmt(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(series: Mapping[str, Sequence[float]], *, title: str = "", x_label: str = "",
               width: int = 520, height: int = 240) -> str:
    """One polyline per series over x = 1..n, with min/max marked on the y axis (inline SVG)."""
    points = [float(v) for s in series.values() for v in s]
    if not points:
        return '<p class="muted">(nothing to plot)</p>'
    lo, hi = min(points), max(points)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    n = max(len(s) for s in series.values())
    left, right, top, bottom = 56, 12, 24 if title else 8, 28
    pw, ph = width - left - right, height - top - bottom

    def xy(i: int, v: float) -> str:
        x = left + (pw * i / (n - 1) if n > 1 else pw / 2)
        y = top + ph * (1 - (v - lo) / (hi - lo))
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    if title:
        parts.append(f'<text x="0" y="14" font-size="13" font-weight="bold">{html.escape(title)}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#999"/>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#999"/>')
    parts.append(f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end">{hi:.3g}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + ph}" font-size="11" text-anchor="end">{lo:.3g}</text>')
    parts.append(f'<text x="{left + pw}" y="{height - 8}" font-size="11" text-anchor="end">'
                 f"{html.escape(x_label)} 1..{n}</text>")
    for j, (name, values) in enumerate(series.items()):
        color = _PALETTE[j % len(_PALETTE)]
        pts = " ".join(xy(i, float(v)) for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}">'
                     f"<title>{html.escape(name)}</title></polyline>")
        parts.append(f'<text x="{left + 8 + 110 * j}" y="{height - 8}" font-size="11" fill="{color}">'
                     f"{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


class Report:
    """An HTML page built section by section; :meth:`write` saves it as one file."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._body: list[str] = []

    def heading(self, text: str) -> Report:
        self._body.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str) -> Report:
        self._body.append(f"<p>{html.escape(text)}</p>")
        return self

    def items(self, lines: Iterable[str]) -> Report:
        self._body.append("<ul>" + "".join(f"<li>{html.escape(str(x))}</li>" for x in lines) + "</ul>")
        return self

    def key_values(self, values: Mapping[str, Any]) -> Report:
        self._body.append(table(values.items(), ("", "value")))
        return self

    def table(self, rows: Iterable[Sequence[Any]], header: Sequence[str]) -> Report:
        self._body.append(table(rows, header))
        return self

    def raw(self, fragment: str) -> Report:
        """Add an HTML fragment made by this module (a chart); never pass user text here."""
        self._body.append(fragment)
        return self

    def pre(self, text: str) -> Report:
        self._body.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def html(self) -> str:
        return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "".join(self._body) + "</body></html>\n")

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.html(), encoding="utf-8")
        return p
