"""SegmentMeIfYouCan (SMIYC) evaluation: the official protocol reproduced exactly, score files, CLI.

==============================================  ==============================================
module                                          contents
==============================================  ==============================================
:mod:`~meta_ood.smiyc.summary`                  one read and check per frame: the ROI's distinct
                                                values with their anomaly / non-anomaly counts
:mod:`~meta_ood.smiyc.protocol`                 per-frame percentile bins, merged curve, AP /
                                                FPR95 / AUROC / best F1 (``PixBinaryClass``)
:mod:`~meta_ood.smiyc.components`               sIoU / PPV / F1 per tau (``SegEval``; also used by
                                                :mod:`meta_ood.segment_eval`)
:mod:`~meta_ood.smiyc.scorefiles`               ``<fid>.hdf5`` score maps, label masks, layout, zip
:mod:`~meta_ood.smiyc.evaluate`                 :func:`smiyc_eval`: official + exact protocols,
                                                frames on threads
:mod:`~meta_ood.smiyc.cli`                      the ``meta-ood smiyc-eval`` sub-command
==============================================  ==============================================
"""

from __future__ import annotations

from meta_ood.smiyc.components import (
    OFFICIAL_DATASET_TRACKS,
    SIZE_FILTERS,
    TAU,
    FrameComponents,
    component_metrics,
    filter_track,
    frame_components,
)
from meta_ood.smiyc.evaluate import FrameInput, array_frames, evaluate_frames, file_frames, smiyc_eval
from meta_ood.smiyc.protocol import Curve, FrameBins, curve_metrics, merge_frames, percentile_bins, uniform_bins
from meta_ood.smiyc.scorefiles import (
    method_dir,
    paired_frames,
    read_label,
    read_scores,
    unlabelled_ids,
    write_label,
    write_scores,
    write_submission_zip,
)

__all__ = [
    "OFFICIAL_DATASET_TRACKS",
    "SIZE_FILTERS",
    "TAU",
    "Curve",
    "FrameBins",
    "FrameComponents",
    "FrameInput",
    "array_frames",
    "component_metrics",
    "curve_metrics",
    "evaluate_frames",
    "file_frames",
    "filter_track",
    "frame_components",
    "merge_frames",
    "method_dir",
    "paired_frames",
    "percentile_bins",
    "read_label",
    "read_scores",
    "smiyc_eval",
    "uniform_bins",
    "unlabelled_ids",
    "write_label",
    "write_scores",
    "write_submission_zip",
]
