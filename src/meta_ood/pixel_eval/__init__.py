"""Pixel-wise evaluation: streaming score histograms, AUROC / AUPRC / FPR95, curves, bootstrap
intervals, mIoU with an extra OoD class, and per-class score densities for violin plots.

Paper section 6 (pixel-wise evaluation) and figure 5 (mIoU on Cityscapes val with entropy >= t
predicted as OoD); figure 3 (violin plots).

==============================================  ==============================================
module                                          contents
==============================================  ==============================================
:mod:`~meta_ood.pixel_eval.encoding`            score -> histogram bin ("unit" or "float16")
:mod:`~meta_ood.pixel_eval.ranking`             AUROC / AUPRC / FPR95 / F1 from bin counts
:mod:`~meta_ood.pixel_eval.histogram`           :class:`PooledHistogram` and :func:`metrics`
:mod:`~meta_ood.pixel_eval.bootstrap`           percentile bootstrap over images
:mod:`~meta_ood.pixel_eval.miou`                :class:`MiouAccumulator`
:mod:`~meta_ood.pixel_eval.violin`              :func:`score_histogram_for_violin`
==============================================  ==============================================

Pixel roles
-----------
For an evaluation dataset with ``train_id_in`` / ``train_id_out`` (LostAndFound 1 / 2,
Fishyscapes 0 / 1): pixels with label ``in_id`` are negatives, ``out_id`` positives; every other
label (void, LostAndFound's "non-hazard" id 0, ...) is ignored.
"""

from __future__ import annotations

from meta_ood.pixel_eval.bootstrap import bootstrap, bootstrap_replicates, bootstrap_weights
from meta_ood.pixel_eval.encoding import ENCODINGS, dequantize, quantize, score_encoding
from meta_ood.pixel_eval.histogram import PooledHistogram, metrics
from meta_ood.pixel_eval.miou import DEFAULT_MIOU_THRESHOLDS, MiouAccumulator
from meta_ood.pixel_eval.violin import score_histogram_for_violin

__all__ = [
    "ENCODINGS",
    "score_encoding",
    "quantize",
    "dequantize",
    "PooledHistogram",
    "metrics",
    "bootstrap",
    "bootstrap_weights",
    "bootstrap_replicates",
    "MiouAccumulator",
    "score_histogram_for_violin",
    "DEFAULT_MIOU_THRESHOLDS",
]
