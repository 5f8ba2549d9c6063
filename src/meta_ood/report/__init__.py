"""The report: the paper's tables and figures, rendered from the pipeline's result files only.

Tables (:mod:`meta_ood.report.tables`, read from result files by :mod:`~meta_ood.report.results`)
are written as CSV (machine-readable, full precision), Markdown (pipe table, formatted like the
paper) and LaTeX (booktabs ``tabular``; :mod:`~meta_ood.report.formatting`); figures
(:mod:`meta_ood.report.figures`) as PNG and PDF. Every writer renames a finished temporary file
onto its output, so an interrupted job leaves no half-written file.

======================= ========================================================================
function                paper counterpart
======================= ========================================================================
``table1``              table 1: AUROC / FPR95 / AUPRC per OoD dataset and Cityscapes val mIoU
``table2``              table 2: FP, FN, their sum and road miss rate ε per entropy threshold
``table3``              table 3: meta classifier vs MSP (AUROC / AUPRC) per entropy threshold
``table_components``    SegmentMeIfYouCan component metrics (sIoU, PPV, mean F1) per threshold
``figure3``             violin plots of the normalized entropy of in-distribution / OoD pixels
``figure4``             ROC and precision-recall curves
``figure5``             Cityscapes val mIoU with an OoD class vs the entropy threshold
``figure7``             detection errors FN vs FP with road-miss-rate pie markers
``figure14``            mIoU and AUPRC over the epochs of OoD training
``examples``            entropy heatmaps and OoD predictions of example images (figs 1, 2, 6)
``table_smiyc``         SegmentMeIfYouCan leaderboard, official and exact protocols
                        (:mod:`~meta_ood.report.smiyc`)
``table_smiyc_scenes``  SegmentMeIfYouCan ObstacleTrack metrics per scene
``figure_smiyc_curves`` SegmentMeIfYouCan ROC and precision-recall curves per dataset
``table_paired``        each variant against its baseline: paired differences with intervals
                        (:mod:`~meta_ood.report.paired`)
``table_definitions``   AP / AUROC / FPR95 under each toolkit's definition
                        (:mod:`~meta_ood.report.definitions`)
======================= ========================================================================

Tables return their CSV as a DataFrame, figures the numbers they plot (see each function), so
both can be checked against the result files they were drawn from. The figure functions are
imported on first use, so rendering a table does not import matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from meta_ood.report.definitions import table_definitions
from meta_ood.report.paired import table_paired
from meta_ood.report.smiyc import figure_smiyc_curves, table_smiyc, table_smiyc_scenes
from meta_ood.report.tables import table1, table2, table3, table_components

_FIGURES = ("figure3", "figure4", "figure5", "figure7", "figure14", "examples",
            "figure1", "figure2", "figure6", "figure10", "figure13", "figure15", "figure16")

__all__ = [
    "table1", "table2", "table3", "table_components", *_FIGURES,
    "table_smiyc", "table_smiyc_scenes", "figure_smiyc_curves", "table_paired",
    "table_definitions",
]


def __getattr__(name: str) -> Any:
    if name in _FIGURES:
        return getattr(importlib.import_module("meta_ood.report.figures"), name)
    if name == "figures":
        return importlib.import_module("meta_ood.report.figures")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_FIGURES, "figures"])
