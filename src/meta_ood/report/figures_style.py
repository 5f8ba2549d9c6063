"""The look shared by all figures: colours, matplotlib style, figure creation and saving.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, independent of the pyplot
backend, and saved as PNG (150 dpi) and PDF, each under a temporary name that is renamed when
complete.

Colours (colour-blind safe, seaborn "colorblind"): the plain model blue, the model after OoD
training green; in the violins in-distribution pixels light blue and OoD pixels orange; red is
kept for thresholds, random guessing and the road miss rate, as in the paper.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.report.results import unique  # noqa: F401 - the figure modules import it from here

__all__ = [
    "BLUE",
    "DPI",
    "FP_COLOR",
    "LAYOUT_PROBLEMS",
    "GREEN",
    "IN_COLOR",
    "ORANGE",
    "OUT_COLOR",
    "RED",
    "REMOVED_COLOR",
    "TP_COLOR",
    "join_title",
    "label_colors",
    "new_figure",
    "place_labels",
    "result_array",
    "save_figure",
    "style_rc",
    "text_problems",
    "unique",
]

DPI = 150
_CB = sns.color_palette("colorblind").as_hex()
BLUE, ORANGE, GREEN, VERMILLION, PINK, GREY, SKY = _CB[0], _CB[1], _CB[2], _CB[3], _CB[4], _CB[7], _CB[9]
RED = "#d62728"
IN_COLOR, OUT_COLOR = SKY, ORANGE
# Okabe-Ito: distinguishable for all. Removed segments: reddish purple, unlike void (grey), faded image
# content, true (green) and false (vermillion) positives, in every figure that shows them.
TP_COLOR, FP_COLOR, REMOVED_COLOR = "#009e73", "#d55e00", "#cc79a7"
_LABEL_COLORS = {"plain": BLUE, "baseline": BLUE, "ood training": GREEN, "ood t.": GREEN, "void ood training": GREEN}


def style_rc() -> dict[str, Any]:
    """matplotlib settings of every figure (seaborn whitegrid, small fonts, embedded TrueType in PDFs)."""
    rc = dict(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("notebook", font_scale=0.8))
    rc.update({
        "axes.titlesize": 10.5,
        "axes.titleweight": "bold",
        "axes.labelsize": 9.5,
        "legend.fontsize": 8.5,
        "legend.framealpha": 0.9,
        "xtick.labelsize": 8.5,
        "ytick.labelsize": 8.5,
        "axes.edgecolor": "0.3",
        "grid.color": "0.88",
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "savefig.dpi": DPI,
        "figure.dpi": 100,
        "image.interpolation": "nearest",
    })
    return rc


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


#: Offsets (points) and alignments tried, in order, for a point label (:func:`place_labels`).
_LABEL_OFFSETS = ((7, 6, "left"), (7, -14, "left"), (-7, 6, "right"), (-7, -14, "right"), (0, 12, "center"),
                  (0, -20, "center"), (12, -4, "left"), (-12, -4, "right"), (7, 18, "left"), (-7, 18, "right"),
                  (7, -26, "left"), (-7, -26, "right"))


def _renderer(fig: Figure):
    """An Agg renderer of the figure, drawn once so that the layout (and every position) is final."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def place_labels(ax: Any, items: Sequence[tuple[float, float, str, str]], fontsize: float = 7.5) -> list[Any]:
    """Annotate points ``(x, y, text, colour)`` without overlapping labels: each label takes the first of a
    few offsets around its point where it overlaps no label placed before and stays inside the axes (else
    the offset of least overlap). Call once the figure is otherwise complete."""
    renderer = _renderer(ax.figure)
    frame = ax.get_window_extent(renderer)
    placed, out = [], []
    for x, y, text, color in items:
        best = None
        for dx, dy, ha in _LABEL_OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=fontsize,
                              color=color, zorder=6)
            b = ann.get_window_extent(renderer)
            cost = sum(max(0.0, min(b.x1, p.x1) - max(b.x0, p.x0)) * max(0.0, min(b.y1, p.y1) - max(b.y0, p.y0))
                       for p in placed)
            cost += 0.5 * (max(0.0, frame.x0 - b.x0) + max(0.0, b.x1 - frame.x1)
                           + max(0.0, frame.y0 - b.y0) + max(0.0, b.y1 - frame.y1)) * b.height
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, b)
            else:
                ann.remove()
            if cost == 0:
                break
        placed.append(best[2])
        out.append(best[1])
    return out


#: Text-layout problems of the figures saved in this process (:func:`text_problems`), by PNG path.
LAYOUT_PROBLEMS: dict[str, list[str]] = {}


def text_problems(fig: Figure, tolerance: float = 1.0) -> list[str]:
    """The visible, non-empty text artists of a drawn figure that leave the canvas or overlap another one
    (bounding boxes in display pixels, ``tolerance`` pixels of slack); one line each."""
    from matplotlib.text import Text

    renderer = _renderer(fig)
    width, height = fig.bbox.width, fig.bbox.height
    # tick labels exist for ticks outside the view too; only those of the drawn ticks count
    tick_labels, drawn = set(), set()
    for ax in fig.axes:
        for axis in ax._axis_map.values():
            for tick in axis.majorTicks + axis.minorTicks:
                tick_labels.update((id(tick.label1), id(tick.label2)))
            if axis.get_visible() and ax.axison:  # a twin's shared axis is hidden; set_axis_off hides both
                for tick in axis._update_ticks():
                    drawn.update((id(tick.label1), id(tick.label2)))
    boxes = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or (t.axes is not None and not t.axes.get_visible()):
            continue
        if id(t) in tick_labels and id(t) not in drawn:
            continue
        boxes.append((t.get_text().replace("\n", " "), t.get_window_extent(renderer)))
    out = []
    for text, b in boxes:
        if b.x0 < -tolerance or b.y0 < -tolerance or b.x1 > width + tolerance or b.y1 > height + tolerance:
            out.append(f"{text[:40]!r} leaves the canvas")
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > tolerance and dy > tolerance:
                out.append(f"{ta[:40]!r} overlaps {tb[:40]!r}")
    return out


def save_figure(fig: Figure, out_png: str | os.PathLike, out_pdf: str | os.PathLike) -> None:
    """Write the figure as PNG and PDF, each atomically; release its memory. Text that leaves the canvas or
    overlaps other text is recorded in :data:`LAYOUT_PROBLEMS` (the tests require none)."""
    problems = LAYOUT_PROBLEMS[str(out_png)] = text_problems(fig)
    if problems:
        logging.getLogger(__name__).warning("%s: text layout: %s", out_png, "; ".join(problems))
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    with atomic_path(out_pdf) as tmp:
        fig.savefig(tmp, format="pdf")
    fig.clear()


#: Spare colours of labels without a fixed one, in order; beyond them the colours repeat.
_SPARE = [PINK, VERMILLION, _CB[5], _CB[6], GREY, _CB[8], *sns.color_palette("dark", 10).as_hex()]


def _label_color(label: str, index: int) -> str:
    """The fixed colour of a known label (a shared baseline's "Plain (shared with ...)" is "Plain"), else the
    ``index``-th spare colour."""
    c = _LABEL_COLORS.get(str(label).split("(")[0].strip().lower())
    if c is not None:
        return c
    return _SPARE[index % len(_SPARE)]


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label: plain blue, OoD training green, other labels distinct spare colours (repeating
    only when there are more labels than colours)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    k = 0
    for label in labels:
        fixed = str(label).split("(")[0].strip().lower() in _LABEL_COLORS
        c = _label_color(label, k)
        tries = 0
        while c in used and not fixed and tries < len(_SPARE):
            k, tries = k + 1, tries + 1
            c = _label_color(label, k)
        if not fixed:
            k += 1
        out[label] = c
        used.add(c)
    return out




def result_array(data: Mapping[str, Any], keys: Sequence[str], path: Any) -> np.ndarray:
    """``data[k0][k1]...`` as a float array; InputError naming the file when absent."""
    cur: Any = data
    for k in keys:
        if not isinstance(cur, Mapping) or k not in cur:
            raise InputError(f"{path}: lacks {'.'.join(keys)!s}")
        cur = cur[k]
    try:
        return np.asarray([np.nan if v is None else v for v in cur], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {'.'.join(keys)} is not a list of numbers") from None


def join_title(*parts: str | None) -> str:
    """A panel title of the non-empty parts, joined by dashes."""
    return " — ".join(p for p in parts if p)
