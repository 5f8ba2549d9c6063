"""The paper's figures 3, 4, 5, 7 and 14 and the example heatmaps of figures 1, 2 and 6.

One module per figure family: :mod:`meta_ood.report.figures_pixel` (3, 4, 5, 14, from the
pixel-evaluation JSONs) and :mod:`meta_ood.report.figures_segments` (7 and the examples, from
the segment evaluation, the meta classifier's tables and the softmax stores), with the shared
colours and style in :mod:`meta_ood.report.figures_style`. Every figure is saved as PNG (150
dpi) and PDF and returns the numbers it plotted (documented per function), so that they can be
checked against the inputs.
The scene figures 1, 2, 10 and 13 (:mod:`meta_ood.report.figures_scenes`) and 6, 15 and 16
(:mod:`meta_ood.report.figures_scenes_meta`) draw chosen images of the softmax stores.
"""

from __future__ import annotations

from meta_ood.report.figures_pixel import accuracy_threshold, figure3, figure4, figure5, figure14
from meta_ood.report.figures_segments import examples, figure7
from meta_ood.report.figures_scenes import figure1, figure2, figure10, figure13
from meta_ood.report.figures_scenes_meta import figure6, figure15, figure16
from meta_ood.report.figures_style import DPI

__all__ = [
    "DPI",
    "accuracy_threshold",
    "examples",
    "figure1",
    "figure2",
    "figure6",
    "figure10",
    "figure13",
    "figure15",
    "figure16",
    "figure3",
    "figure4",
    "figure5",
    "figure7",
    "figure14",
]
