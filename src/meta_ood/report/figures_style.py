"""The look shared by all figures: colours, matplotlib style, figure creation and saving.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, independent of the pyplot
backend, and saved as PNG (150 dpi) and PDF, each under a temporary name that is renamed when
complete.

Colours (colour-blind safe, seaborn "colorblind"): the plain model blue, the model after OoD
training green; in the violins in-distribution pixels light blue and OoD pixels orange; red is
kept for thresholds, random guessing and the road miss rate, as in the paper.
"""

from __future__ import annotations

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
    "result_array",
    "save_figure",
    "style_rc",
    "unique",
]

DPI = 150
_CB = sns.color_palette("colorblind").as_hex()
BLUE, ORANGE, GREEN, VERMILLION, PINK, GREY, SKY = _CB[0], _CB[1], _CB[2], _CB[3], _CB[4], _CB[7], _CB[9]
RED = "#d62728"
IN_COLOR, OUT_COLOR = SKY, ORANGE
TP_COLOR, FP_COLOR, REMOVED_COLOR = "#009e73", "#d55e00", "#56b4e9"  # Okabe-Ito: distinguishable for all
_LABEL_COLORS = {"plain": BLUE, "baseline": BLUE, "ood training": GREEN, "ood t.": GREEN}


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


def save_figure(fig: Figure, out_png: str | os.PathLike, out_pdf: str | os.PathLike) -> None:
    """Write the figure as PNG and PDF, each atomically; release its memory."""
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
