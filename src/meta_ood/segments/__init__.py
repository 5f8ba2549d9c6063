"""Predicted OoD segments, ground-truth OoD segments and their hand-crafted metrics.

Definitions follow the released reference implementation (MetaSeg part of the paper's code,
``compute_metrics_components`` / ``compute_metrics_mask``); ``shared/golden/README.md`` section 1
documents them and the tests compare against its input/output pairs. In short, for an entropy
threshold ``t``:

* predicted OoD mask ``M = {normalized entropy >= t} minus ground-truth void``; predicted
  segments are the 8-connected components of ``M``, numbered 1, 2, ... in row-major order of
  their first pixel. Ground-truth segments are the 8-connected components of ``G = {gt == ood_id}``.
* a boundary pixel of a segment ``P`` has an 8-neighbour inside the image that is not in ``P``
  (the image border does not count); interior = ``P`` minus boundary. Component maps hold
  ``+k`` on interior and ``-k`` on boundary pixels of segment ``k`` and 0 elsewhere.
* ``iou`` is MetaSeg's adjusted IoU: ``|P & G| / (|P| + |A|)`` with ``A`` the union of the
  8-connected components of ``G \\ M`` that are 8-adjacent to ``P`` (0 when ``P`` misses ``G``);
  ``iou0 = 1`` marks a segment without any OoD ground truth (a false positive).
* ``E``, ``D``, ``V`` are the reference's float32 pixel maps (:func:`meta_ood.scores.reference_entropy`,
  probability margin, variation ratio); per segment their mean, interior / boundary means,
  population variances ``mean(h^2) - mean(h)^2`` and the ``*_rel`` products with the relative
  sizes ``S_rel = S / S_bd``, ``S_rel_in = S_in / S_bd`` are reported.
* ``cprob<c>`` = mean probability of class ``c``; ``ndist<c>`` = share of (segment pixel,
  outside 8-neighbour) pairs whose neighbour has argmax ``c``; ``mean_x`` / ``mean_y`` = mean row /
  column index.

Two conventions where the reference would fail: a segment without boundary pixels (it covers the
whole image) gets ``S_rel = S``, ``S_rel_in = S_in`` and boundary statistics 0 instead of a
division by zero; component maps are int16 like the reference's unless an image has more than
32767 segments, in which case they are int32.

Everything is vectorized, and the work is organised around what the thresholds share:

* :mod:`~meta_ood.segments.pixels` -- one pass over the probabilities: the three largest class
  probabilities and the argmax of every pixel from integer operations on their bit patterns, a
  proven entropy bound that rules out most non-OoD pixels, and for the rest ``E`` (the
  reference's float32 formula) and their threshold levels (exactly the reference's decisions).
  ``D``, ``V`` and the class probabilities of the candidates are kept.
* :mod:`~meta_ood.segments.image` -- the candidates sorted by level (the masks of increasing
  thresholds are nested, so a level's pixels are a prefix); per-segment sums of all thresholds
  from one accumulation per channel (``np.bincount``) pushed down the nesting tree; per threshold
  one :func:`scipy.ndimage.label` of ``M \\ G`` in the bounding box of the candidates and the
  ground truth, boundary sums and neighbourhood class counts from pairs found once.
* :mod:`~meta_ood.segments.ground_truth` -- the gt segments (labelled once) and the segments of
  ``M`` from the pieces ``M \\ G`` joined through ``M & G`` on a small graph, numbered like
  :func:`scipy.ndimage.label` would number them; the adjusted IoU of both tables from the pieces.

Results of one pass over several thresholds equal the single-threshold results up to
floating-point summation order (about 1e-14).

Modules: :mod:`~meta_ood.segments.keys` (table columns, feature sets),
:mod:`~meta_ood.segments.frame` (padded window, compressed frames, 8-neighbourhoods),
:mod:`~meta_ood.segments.pixels` (per-pixel inputs), :mod:`~meta_ood.segments.tables` (nested
sums, metric columns), :mod:`~meta_ood.segments.ground_truth` (gt segments, segments from
pieces), :mod:`~meta_ood.segments.image` (one image, all thresholds) and
:mod:`~meta_ood.segments.metrics` (the public entry points).
"""

from __future__ import annotations

from meta_ood.segments.keys import FEATURES_PAPER, FEATURES_RELEASED, GT_KEYS, PRED_KEYS, feature_names
from meta_ood.segments.metrics import gt_segment_metrics, segment_metrics, segment_metrics_multi

__all__ = [
    "FEATURES_PAPER",
    "FEATURES_RELEASED",
    "GT_KEYS",
    "PRED_KEYS",
    "feature_names",
    "gt_segment_metrics",
    "segment_metrics",
    "segment_metrics_multi",
]
