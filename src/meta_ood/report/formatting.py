"""Displayed tables: cells, grouped headers and the CSV, Markdown and LaTeX writers.

Every table is written three times:

* CSV -- one row per table row, full-precision numbers, missing values empty (the DataFrame the
  table function built).
* Markdown -- a pipe table formatted like the paper (missing values "–"); the grouped header of
  the paper is flattened into one header row ("Baseline FP ↓").
* LaTeX -- a booktabs ``tabular`` with ``\\multicolumn`` group headers and ``\\cmidrule`` under
  each group (needs ``\\usepackage{booktabs}``).

A table is described once as a :class:`Layout` of :class:`Header` and :class:`Cell` objects, so
the Markdown and LaTeX versions always show the same cells, with the same values in bold.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.io import write_text_atomic
from meta_ood.report.results import finite_float, finite_int

__all__ = [
    "DASH",
    "Cell",
    "Header",
    "Layout",
    "bold_best",
    "fmt_ci",
    "fmt_count",
    "fmt_eps",
    "fmt_float",
    "latex_escape",
    "to_latex",
    "to_markdown",
    "write_table",
]

DASH = "–"  # shown for a missing value (Markdown); LaTeX gets "--"


@dataclass
class Cell:
    """One displayed cell: its number (for bolding) and its Markdown and LaTeX text."""

    value: float | None
    text: str
    latex: str
    bold: bool = False


def _missing() -> Cell:
    return Cell(None, DASH, "--")


def fmt_float(value: Any, digits: int = 4) -> Cell:
    """A number with ``digits`` decimals ("0.9312"), or a dash when missing."""
    v = finite_float(value)
    if v is None:
        return _missing()
    s = f"{v:.{digits}f}"
    return Cell(v, s, s)


def fmt_count(value: Any) -> Cell:
    """Integer with thousands separators, as in the paper ("33,584")."""
    v = finite_int(value)
    if v is None:
        return _missing()
    s = f"{v:,}"
    return Cell(float(v), s, s.replace(",", "{,}"))


def fmt_eps(value: Any) -> Cell:
    """Road miss rate ε (a fraction) in percent with 2 decimals; values below 0.01 % as "< 0.01"."""
    v = finite_float(value)
    if v is None:
        return _missing()
    pct = 100.0 * v
    if pct == 0.0:
        return Cell(0.0, "0", "0")
    if pct < 0.01:
        return Cell(pct, "< 0.01", "$<$ 0.01")
    s = f"{pct:.2f}"
    return Cell(pct, s, s)


def fmt_ci(value: Any, ci: Any, digits: int = 4, ci_digits: int = 3) -> Cell:
    """A value with its bootstrap interval, compactly: "0.9312 ±0.010", the half width of the interval
    (the bounds themselves go to the csv); LaTeX puts the ± part in small type."""
    cell = fmt_float(value, digits)
    if cell.value is None or not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return cell
    lo, hi = finite_float(ci[0]), finite_float(ci[1])
    if lo is None or hi is None:
        return cell
    half = f"{(hi - lo) / 2:.{ci_digits}f}"
    return Cell(cell.value, f"{cell.text} ±{half}", f"{cell.latex}{{\\scriptsize $\\pm${half}}}")


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Plain text (a label, a dataset name) safe to place in LaTeX."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def bold_best(cells: Iterable[Cell], mode: str) -> None:
    """Mark the best (``"max"`` / ``"min"``) of the cells; ties are all marked; needs two values."""
    cells = [c for c in cells if c.value is not None]
    if len(cells) < 2:
        return
    values = np.array([c.value for c in cells])
    best = values.max() if mode == "max" else values.min()
    if (values == best).all():
        return
    for c in cells:
        if c.value == best:
            c.bold = True


@dataclass
class Header:
    """Header text in Markdown and LaTeX, spanning ``span`` data columns."""

    text: str
    latex: str
    span: int = 1


@dataclass
class Layout:
    """A displayed table: grouped header levels over the data columns, index columns, rows."""

    index: list[Header]                 # titles of the index (row label) columns
    levels: list[list[Header]]          # group levels above the column titles, top first
    columns: list[Header]               # titles of the data columns
    rows: list[tuple[list[Header], list[Cell]]] = field(default_factory=list)
    rules_before: set[int] = field(default_factory=set)  # rows preceded by a horizontal rule
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        """ValueError when a header level or a row does not span the data columns."""
        n = len(self.columns)
        for level in self.levels:
            if sum(h.span for h in level) != n:
                raise ValueError(f"header level spans {sum(h.span for h in level)} columns, expected {n}")
        for labels, cells in self.rows:
            if len(labels) != len(self.index) or len(cells) != n:
                raise ValueError("row does not match the header")


def _md_header_titles(layout: Layout) -> list[str]:
    titles = []
    for j, col in enumerate(layout.columns):
        parts = []
        for level in layout.levels:
            start = 0
            for h in level:
                if start <= j < start + h.span and h.text:
                    parts.append(h.text)
                start += h.span
        parts.append(col.text)
        titles.append(" ".join(p for p in parts if p))
    return titles


def to_markdown(layout: Layout) -> str:
    """The layout as a Markdown pipe table (title line and notes around it)."""
    layout.check()
    head = [h.text for h in layout.index] + _md_header_titles(layout)
    lines = []
    if layout.title:
        lines += [layout.title, ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in head) + " |")
    lines.append("|" + "|".join([" :--- "] * len(layout.index) + [" ---: "] * len(layout.columns)) + "|")
    for labels, cells in layout.rows:
        texts = [_md_escape(h.text) for h in labels]
        for c in cells:
            t = _md_escape(c.text)
            texts.append(f"**{t}**" if c.bold and c.value is not None else t)
        lines.append("| " + " | ".join(texts) + " |")
    for note in layout.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def to_latex(layout: Layout) -> str:
    """The layout as a booktabs ``tabular`` (group headers with ``\\multicolumn`` and ``\\cmidrule``)."""
    layout.check()
    n_idx, n = len(layout.index), len(layout.columns)
    spec = "l" * n_idx + "r" * n
    lines = [f"% {layout.title}" if layout.title else "% meta-ood report table", f"\\begin{{tabular}}{{{spec}}}", r"\toprule"]
    for level in layout.levels:
        cells = [""] * n_idx
        rules = []
        start = n_idx + 1
        for h in level:
            if h.span == 1:
                cells.append(h.latex)
            else:
                cells.append(f"\\multicolumn{{{h.span}}}{{c}}{{{h.latex}}}")
            if h.latex:
                rules.append(f"\\cmidrule(lr){{{start}-{start + h.span - 1}}}")
            start += h.span
        lines.append(" & ".join(cells) + r" \\")
        if rules:
            lines.append(" ".join(rules))
    lines.append(" & ".join([h.latex for h in layout.index] + [h.latex for h in layout.columns]) + r" \\")
    lines.append(r"\midrule")
    for i, (labels, cells) in enumerate(layout.rows):
        if i in layout.rules_before and i > 0:
            lines.append(r"\midrule")
        texts = [h.latex for h in labels]
        texts += [f"\\textbf{{{c.latex}}}" if c.bold and c.value is not None else c.latex for c in cells]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_html(layout: Layout) -> str:
    """The layout as a small HTML page (the table as the Markdown shows it: rounded values, bold, group
    headers), for the HTML report of ``snakemake --report``."""
    layout.check()
    esc = html.escape
    n_idx = len(layout.index)
    head = []
    for level in layout.levels:
        cells = [f'<th colspan="{n_idx}"></th>'] if n_idx else []
        cells += [f'<th colspan="{h.span}">{esc(h.text)}</th>' for h in level]
        head.append("<tr>" + "".join(cells) + "</tr>")
    head.append("<tr>" + "".join(f"<th>{esc(h.text)}</th>" for h in layout.index + layout.columns) + "</tr>")
    body = []
    for i, (labels, cells) in enumerate(layout.rows):
        style = ' class="rule"' if i in layout.rules_before and i > 0 else ""
        texts = [f'<td class="label">{esc(h.text)}</td>' for h in labels]
        texts += [f"<td><b>{esc(c.text)}</b></td>" if c.bold and c.value is not None else f"<td>{esc(c.text)}</td>"
                  for c in cells]
        body.append(f"<tr{style}>" + "".join(texts) + "</tr>")
    notes = "".join(f"<p>{esc(note)}</p>" for note in layout.notes)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>'
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}td.label{text-align:left}"
        "th{border-bottom:1px solid #888}tr.rule td{border-top:2px solid #888}caption{font-weight:bold;text-align:left}"
        f"</style></head><body><table><caption>{esc(layout.title)}</caption><thead>{''.join(head)}</thead>"
        f"<tbody>{''.join(body)}</tbody></table>{notes}</body></html>\n"
    )


def write_table(df: pd.DataFrame, layout: Layout, out_csv: str | os.PathLike, out_md: str | os.PathLike,
                out_tex: str | os.PathLike) -> None:
    """Write the CSV of ``df`` and the Markdown, LaTeX and HTML of ``layout`` (the HTML next to the Markdown,
    ``<name>.html``), each atomically."""
    write_text_atomic(out_csv, df.to_csv(index=False))
    write_text_atomic(out_md, to_markdown(layout))
    write_text_atomic(out_tex, to_latex(layout))
    write_text_atomic(Path(out_md).with_suffix(".html"), to_html(layout))
