"""The paper's figures 3, 4, 5, 7 and 14 and the example heatmaps of figures 1, 2 and 6.

One module per figure family: :mod:`meta_ood.report.figures_pixel` (3, 4, 5, 14, from the
pixel-evaluation JSONs) and :mod:`meta_ood.report.figures_segments` (7 and the examples, from
the segment evaluation, the meta classifier's tables and the softmax stores), with the shared
colours and style in :mod:`meta_ood.report.figures_style`. Every figure is saved as PNG (150
dpi) and PDF and returns the numbers it plotted (documented per function), so that they can be
checked against the inputs.
"""

from __future__ import annotations

from meta_ood.report.figures_pixel import accuracy_threshold, figure3, figure4, figure5, figure14
from meta_ood.report.figures_segments import examples, figure7
from meta_ood.report.figures_style import DPI

__all__ = [
    "DPI",
    "accuracy_threshold",
    "examples",
    "figure3",
    "figure4",
    "figure5",
    "figure7",
    "figure14",
]
