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

Everything is vectorized: :func:`scipy.ndimage.label` for the components (its labels already
follow the row-major order of first pixels), shifted slices and flat-index offsets for
boundaries and neighbourhoods, ``np.bincount`` for the per-segment sums. The heavy per-pixel
work (entropy, E / D / V, argmax, class probabilities) happens once per image, only at the
pixels that can be OoD at the lowest threshold; since the masks of increasing thresholds are
nested, the per-segment sums of all thresholds come from one accumulation over those pixels
(see :class:`_ImageSegments`). Per threshold only the labelling, the boundary pixels, the
neighbourhood counts and the IoU adjacency are computed, inside the bounding box of the OoD
candidates and the ground truth. Results of one pass over several thresholds equal the
single-threshold results up to floating-point summation order (about 1e-14).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from meta_ood.errors import InputError
from meta_ood.labels import NUM_CLASSES, VOID_ID
from meta_ood.scores import (
    as_float32,
    compute_entropy_map,
    margin_values,
    reference_entropy_values,
    top2,
    variation_values,
)

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

_STRUCT = np.ones((3, 3), dtype=bool)
_OFFSETS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
_HEATMAPS = ("E", "D", "V")
_HEAT_SUFFIXES = ("", "_in", "_bd", "_rel", "_rel_in", "_var", "_var_in", "_var_bd", "_var_rel", "_var_rel_in")


def _pred_keys(num_classes: int) -> tuple[str, ...]:
    keys = ["iou", "iou0", "prc", "mean_x", "mean_y"]
    for h in _HEATMAPS:
        keys += [h + s for s in _HEAT_SUFFIXES]
    keys += ["S", "S_in", "S_bd", "S_rel", "S_rel_in"]
    for c in range(num_classes):
        keys += [f"cprob{c}", f"ndist{c}"]
    return tuple(keys)


def _gt_keys(num_classes: int) -> tuple[str, ...]:
    keys = ["iou", "iou0", "rec", "train_class", "label_class", "mean_x", "mean_y", "S", "S_in", "S_bd"]
    for c in range(num_classes):
        keys += [f"S_{c}", f"cprob{c}"]
    return tuple(keys)


#: Columns of the predicted-segment table, in the reference's insertion order (78 for 19 classes).
PRED_KEYS: tuple[str, ...] = _pred_keys(NUM_CLASSES)
#: Columns of the ground-truth-segment table, in the reference's insertion order (48 for 19 classes).
GT_KEYS: tuple[str, ...] = _gt_keys(NUM_CLASSES)

#: The 75 meta-classifier inputs of the released code: every predicted-segment key except the
#: targets ``iou``, ``iou0`` and the unused ``prc``, in plain Python string order (as
#: ``metrics_to_dataset`` sorts them: upper case first, ``cprob10`` before ``cprob2``).
FEATURES_RELEASED: tuple[str, ...] = tuple(sorted(k for k in PRED_KEYS if k not in ("iou", "iou0", "prc")))

_PAPER_SET = frozenset(
    ["E", "V", "D", "S", "S_rel", "S_rel_in", "mean_x", "mean_y"]
    + [f"cprob{c}" for c in range(NUM_CLASSES)]
    + [f"ndist{c}" for c in range(NUM_CLASSES)]
)
#: The 46 metrics of the paper's appendix B, as reference keys, in the same order as
#: :data:`FEATURES_RELEASED`:
#:
#: * ``E`` -- mean normalized entropy over the segment (eq. 11),
#: * ``V`` -- mean variation ratio (eq. 12), ``D`` -- mean probability margin (eq. 13),
#: * ``S`` -- segment size, ``S_rel`` = S / S_bd and ``S_rel_in`` = S_in / S_bd (eq. 14),
#: * ``ndist0`` ... ``ndist18`` -- the neighbourhood class distribution N(j|k) (eq. 15),
#: * ``mean_x``, ``mean_y`` -- the geometric centre C_h, C_w (eq. 16),
#: * ``cprob0`` ... ``cprob18`` -- the mean softmax probability per class ("the plain softmax
#:   probabilities", averaged over the segment like every pixel-wise score).
#:
#: 3 + 3 + 19 + 2 + 19 = 46 for q = 19. The released code additionally feeds interior / boundary
#: means, variances and their ``*_rel`` products of E, D and V (:data:`FEATURES_RELEASED`).
FEATURES_PAPER: tuple[str, ...] = tuple(k for k in FEATURES_RELEASED if k in _PAPER_SET)

_FEATURE_SETS = {"released": FEATURES_RELEASED, "paper": FEATURES_PAPER}


def feature_names(name: str) -> list[str]:
    """Meta-classifier input columns of a named feature set: ``"released"`` (75) or ``"paper"`` (46)."""
    try:
        return list(_FEATURE_SETS[name])
    except (KeyError, TypeError):
        raise InputError(f"unknown feature set {name!r}; expected one of {sorted(_FEATURE_SETS)}") from None


def _empty_frame(keys: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(np.zeros((0, len(keys))), columns=list(keys))


def _component_dtype(n: int) -> type:
    return np.int16 if n <= np.iinfo(np.int16).max else np.int32


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0."""
    out = np.zeros(np.broadcast(num, den).shape, np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


class _Frame:
    """A padded rectangular window of the image in which all per-threshold work happens.

    The window covers every pixel that can be OoD at the lowest threshold and every OoD
    ground-truth pixel, grown by one pixel (clipped to the image), plus a one-pixel ring of
    padding that stands for "outside the image". Flat indices into the padded window make the
    8 neighbours of a pixel ``index + offset`` for a fixed set of offsets.
    """

    def __init__(self, flat_lists: Sequence[np.ndarray], shape: tuple[int, int]):
        h, w = shape
        idx = np.concatenate([np.asarray(a, np.int64) for a in flat_lists])
        if idx.size:
            rows, cols = np.divmod(idx, w)
            r0, r1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, h)
            c0, c1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, w)
        else:
            r0, r1, c0, c1 = 0, min(1, h), 0, min(1, w)
        self.image_shape = shape
        self.r0, self.c0 = r0, c0
        self.inner = (r1 - r0, c1 - c0)
        self.shape = (r1 - r0 + 2, c1 - c0 + 2)
        self.stride = self.shape[1]
        self.offsets = np.array([dr * self.stride + dc for dr, dc in _OFFSETS], np.int64)
        self.inside = np.zeros(self.shape, bool)
        self.inside[1:-1, 1:-1] = True

    def flat(self, image_flat: np.ndarray) -> np.ndarray:
        rows, cols = np.divmod(np.asarray(image_flat, np.int64), self.image_shape[1])
        return (rows - self.r0 + 1) * self.stride + (cols - self.c0 + 1)

    def window(self, image_map: np.ndarray, fill=0) -> np.ndarray:
        out = np.full(self.shape, fill, dtype=image_map.dtype)
        h, w = self.inner
        out[1:-1, 1:-1] = image_map[self.r0:self.r0 + h, self.c0:self.c0 + w]
        return out

    def inner_flat(self, image_flat: np.ndarray) -> np.ndarray:
        """Flat indices into the unpadded window."""
        rows, cols = np.divmod(np.asarray(image_flat, np.int64), self.image_shape[1])
        return (rows - self.r0) * self.inner[1] + (cols - self.c0)

    def outside_neighbour(self, mask: np.ndarray, sl: tuple[slice, slice]) -> np.ndarray:
        """Bool map over ``sl`` of the padded window: the pixel has an in-image 8-neighbour
        that is not in ``mask``."""
        r0, r1, c0, c1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        ph, pw = self.shape
        out = np.zeros((r1 - r0 + 2, c1 - c0 + 2), bool)
        a0, a1, b0, b1 = max(r0 - 1, 0), min(r1 + 1, ph), max(c0 - 1, 0), min(c1 + 1, pw)
        out[a0 - r0 + 1:a1 - r0 + 1, b0 - c0 + 1:b1 - c0 + 1] = (
            ~mask[a0:a1, b0:b1] & self.inside[a0:a1, b0:b1])
        h, w = r1 - r0, c1 - c0
        acc = np.zeros((h, w), bool)
        for dr, dc in _OFFSETS:
            acc |= out[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
        return acc


def _bbox_slices(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Bounding box of padded-window coordinates, grown by one pixel and clipped to ``shape``."""
    return (slice(max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, shape[0])),
            slice(max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, shape[1])))


def _adjacent_union(seg_pix: np.ndarray, seg_labels: np.ndarray, other_labels_flat: np.ndarray,
                    other_sizes: np.ndarray, offsets: np.ndarray, n_seg: int) -> np.ndarray:
    """For each segment, the total size of the distinct ``other`` components 8-adjacent to it.

    ``seg_pix`` are padded-window flat indices of the segments' pixels with labels
    ``seg_labels``; ``other_labels_flat`` is the padded label map of the other components.
    """
    n_other = other_sizes.size
    keys = []
    for off in offsets:
        lab = other_labels_flat[seg_pix + off]
        hit = lab > 0
        if hit.any():
            keys.append(seg_labels[hit].astype(np.int64) * n_other + lab[hit])
    if not keys:
        return np.zeros(n_seg)
    pairs = np.unique(np.concatenate(keys))
    seg, other = np.divmod(pairs, n_other)
    return np.bincount(seg, weights=other_sizes[other], minlength=n_seg + 1)[1:n_seg + 1]


class _ImageSegments:
    """Per-image data shared by all thresholds, and the per-threshold segment tables.

    Thresholds are handled as levels ``0 .. L-1`` (ascending ``t``). Every OoD candidate pixel
    (OoD at the lowest threshold, not void) gets

    * ``lev``: the highest level whose mask contains it (the masks are nested), and
    * ``ilev``: the highest level at which it is an interior pixel (-1 if never), i.e. the
      minimum of ``lev`` over the pixel and its in-image 8-neighbours.

    A pixel is a boundary pixel at level ``i`` exactly when ``ilev < i <= lev``. Segments of
    level ``i + 1`` are nested in segments of level ``i``, so per-segment sums over all pixels
    (and over interior pixels) are accumulated once per image: each pixel is added to the segment
    of its own top level (its "atom"), and the sums are then pushed down the nesting tree. Only
    the labelling, the boundary pixels and the neighbourhood counts are done per threshold.
    """

    def __init__(self, probs, gt_train, thresholds, ood_id, void_id, gt_label):
        probs = np.asarray(probs)
        gt = np.asarray(gt_train)
        if probs.ndim != 3:
            raise InputError(f"probs: expected a (C, H, W) softmax array, got shape {probs.shape}")
        if gt.shape != probs.shape[1:]:
            raise InputError(f"gt_train: shape {gt.shape} does not match the image size {probs.shape[1:]} "
                             f"of the probabilities (probs shape {probs.shape}, expected (C, H, W))")
        if not (np.issubdtype(gt.dtype, np.integer) or gt.dtype == bool):
            raise InputError(f"gt_train: expected integer train ids, got dtype {gt.dtype}")
        if gt_label is None:
            label = gt
        else:
            label = np.asarray(gt_label)
            if label.shape != gt.shape:
                raise InputError(f"gt_label: shape {label.shape} does not match gt_train {gt.shape}")
        if int(ood_id) == int(void_id):
            raise InputError(f"ood_id and void_id must differ, both are {ood_id}")
        ts = []
        for t in thresholds:
            t = float(t)
            if not (0.0 < t <= 1.0):
                raise InputError(f"entropy threshold {t!r} out of range; expected 0 < t <= 1")
            ts.append(t)
        if not ts:
            raise InputError("no entropy threshold given; expected at least one t in (0, 1]")
        self.thresholds = tuple(dict.fromkeys(ts))
        self.levels = tuple(sorted(self.thresholds))
        if len(self.levels) > 120:
            raise InputError(f"too many thresholds ({len(self.levels)}); at most 120 per pass")

        c, h, w = probs.shape
        self.num_classes = c
        self.shape = (h, w)
        em = compute_entropy_map(probs, self.levels, with_argmax=True)
        self._em = em
        void = gt == void_id
        gmask = gt == ood_id

        cand_img = em.mask(self.levels[0])
        cand_img &= ~void
        cand = np.flatnonzero(cand_img)
        del cand_img
        g_img = np.flatnonzero(gmask)
        fr = _Frame((cand, g_img), (h, w))
        self.frame = fr
        self.argmax_w = fr.window(em.argmax)
        flat_probs = probs.reshape(c, -1)

        # candidate pixels: levels and the per-pixel maps, computed once
        tarr = np.asarray(self.levels)
        self.cand_img = cand
        self.cand_fp = fr.flat(cand)
        self.lev = (np.searchsorted(tarr, self._decision_values(cand), side="right") - 1).astype(np.int8)
        # level map of the padded window; outside the image counts as "always OoD" so that the
        # image border never makes a boundary pixel
        levw = np.full(fr.shape, -1, np.int8)
        levw[0, :] = levw[-1, :] = _OUTSIDE_LEVEL
        levw[:, 0] = levw[:, -1] = _OUTSIDE_LEVEL
        levw.ravel()[self.cand_fp] = self.lev
        self.levw = levw
        hh, ww = fr.inner
        nb_min = levw[1:-1, 1:-1].copy()
        for dr, dc in _OFFSETS:
            np.minimum(nb_min, levw[1 + dr:1 + dr + hh, 1 + dc:1 + dc + ww], out=nb_min)
        self.ilev = nb_min.ravel()[fr.inner_flat(cand)]

        pc = as_float32(np.take(flat_probs, cand, axis=1))
        p1, p2, _ = top2(pc)
        maps = {
            "E": reference_entropy_values(pc).astype(np.float64),
            "D": margin_values(p1, p2).astype(np.float64),
            "V": variation_values(p1).astype(np.float64),
        }
        del p1, p2
        self.maps = maps
        rows, cols = np.divmod(cand, w)
        self.cand_gt = gmask.ravel()[cand]
        # channels summed over all pixels of a segment, and over its interior pixels
        self._total_channels = [None, maps["E"], maps["E"] ** 2, maps["D"], maps["D"] ** 2,
                                maps["V"], maps["V"] ** 2, rows.astype(np.float64),
                                cols.astype(np.float64), self.cand_gt.astype(np.float64)] + list(pc)
        self._interior_channels = self._total_channels[:7]

        # ground-truth pixels and everything about gt segments that does not depend on t
        self.g_img = g_img
        self.g_fp = fr.flat(g_img)
        self.g_lev = (np.searchsorted(tarr, self._decision_values(g_img), side="right") - 1).astype(np.int8)
        gw = np.zeros(fr.shape, bool)
        gw.ravel()[self.g_fp] = True
        self.g_window = gw
        self._init_gt(flat_probs, label, em.argmax)

    # -- helpers -------------------------------------------------------------------------

    def _decision_values(self, idx: np.ndarray) -> np.ndarray:
        em = self._em
        vals = em.entropy.ravel()[idx].astype(np.float64)
        if em.near_index.size and idx.size:
            pos = np.minimum(np.searchsorted(em.near_index, idx), em.near_index.size - 1)
            hit = em.near_index[pos] == idx
            vals[hit] = em.near_value[pos[hit]]
        return vals

    def _init_gt(self, flat_probs, label, argmax):
        fr, c = self.frame, self.num_classes
        g = self.g_img
        h, w = self.shape
        self.n_gt = 0
        self.gt_components = np.zeros((h, w), np.int16)
        if g.size == 0:
            return
        grows, gcols = np.divmod(self.g_fp, fr.stride)
        gsl = _bbox_slices(grows, gcols, fr.shape)
        self.g_slice = gsl
        sub_w = gsl[1].stop - gsl[1].start
        self.g_sub = (grows - gsl[0].start) * sub_w + (gcols - gsl[1].start)
        lab_sub, n = ndimage.label(self.g_window[gsl], structure=_STRUCT)
        self.n_gt = n
        lab = lab_sub.ravel()[self.g_sub].astype(np.int64)
        self.g_labels = lab
        bd = fr.outside_neighbour(self.g_window, gsl).ravel()[self.g_sub]
        cnt = np.bincount(2 * lab + bd, minlength=2 * n + 2).reshape(n + 1, 2)[1:]
        size = cnt.sum(axis=1).astype(np.float64)
        self.g_size = size
        comp = np.zeros((h, w), _component_dtype(n))
        comp.ravel()[g] = np.where(bd, -lab, lab)
        self.gt_components = comp

        cols = {"S": size, "S_in": cnt[:, 0].astype(np.float64), "S_bd": cnt[:, 1].astype(np.float64)}
        rows_img, cols_img = np.divmod(g, w)
        cols["mean_x"] = np.bincount(lab, rows_img.astype(np.float64), n + 1)[1:] / size
        cols["mean_y"] = np.bincount(lab, cols_img.astype(np.float64), n + 1)[1:] / size
        cols["train_class"] = np.full(n, 255.0)
        _, first = np.unique(lab, return_index=True)
        cols["label_class"] = label.ravel()[g[first]].astype(np.float64)
        counts = np.bincount(lab * c + argmax.ravel()[g], minlength=(n + 1) * c).reshape(n + 1, c)[1:]
        pg = as_float32(np.take(flat_probs, g, axis=1))
        for k in range(c):
            cols[f"S_{k}"] = counts[:, k].astype(np.float64)
            cols[f"cprob{k}"] = np.bincount(lab, pg[k], n + 1)[1:] / size
        self._gt_static = cols

    # -- per level -------------------------------------------------------------------------

    def _pred_level(self, i: int, mask: np.ndarray, lab_flat: np.ndarray, lab_c: np.ndarray,
                    n: int) -> tuple[dict, np.ndarray]:
        """Per-threshold parts of the predicted-segment metrics of level ``i``."""
        fr, c = self.frame, self.num_classes
        lev, ilev = self.lev, self.ilev
        member = np.flatnonzero(lev >= i)
        comp = np.zeros(self.shape, _component_dtype(n))
        inner = ilev[member] >= i
        lm = lab_c[member]
        comp.ravel()[self.cand_img[member]] = np.where(inner, lm, -lm)
        if n == 0:
            return {}, comp

        # boundary pixels: sizes and E/D/V sums directly
        bidx = member[~inner]
        blab = lab_c[bidx].astype(np.int64)
        part: dict[str, np.ndarray] = {"n_bd": np.bincount(blab, minlength=n + 1)[1:].astype(np.float64)}
        for hname in _HEATMAPS:
            v = self.maps[hname][bidx]
            part[hname + "_s1"] = np.bincount(blab, v, n + 1)[1:]
            part[hname + "_s2"] = np.bincount(blab, v * v, n + 1)[1:]

        # neighbourhood class distribution: pairs (boundary pixel, in-image neighbour outside M)
        bfp = self.cand_fp[bidx]
        bkey = blab * c
        lev_flat = self.levw.ravel()
        arg_flat = self.argmax_w.ravel()
        keys = []
        for off in fr.offsets:
            q = bfp + off
            o = lev_flat[q] < i
            keys.append(bkey[o] + arg_flat[q[o]])
        pairs = np.bincount(np.concatenate(keys), minlength=(n + 1) * c).reshape(n + 1, c)[1:]
        part["ndist"] = pairs / np.maximum(pairs.sum(axis=1), 1)[:, None].astype(np.float64)

        # adjusted IoU: components of G \ M that are 8-adjacent to a segment
        part["adj"] = np.zeros(n)
        gm = self.g_lev < i  # gt pixels outside the predicted mask (gt pixels are never void)
        if self.cand_gt.any() and gm.any():
            gsl = self.g_slice
            sub = np.zeros((gsl[0].stop - gsl[0].start, gsl[1].stop - gsl[1].start), bool)
            sub.ravel()[self.g_sub[gm]] = True
            gml, ngm = ndimage.label(sub, structure=_STRUCT)
            gm_lab = gml.ravel()[self.g_sub[gm]].astype(np.int64)
            gm_size = np.bincount(gm_lab, minlength=ngm + 1).astype(np.float64)
            gfp = self.g_fp[gm]
            found = []
            for off in fr.offsets:
                ln = lab_flat[gfp + off]
                hit = ln > 0
                if hit.any():
                    found.append(ln[hit].astype(np.int64) * (ngm + 1) + gm_lab[hit])
            if found:
                seg, other = np.divmod(np.unique(np.concatenate(found)), ngm + 1)
                part["adj"] = np.bincount(seg, weights=gm_size[other], minlength=n + 1)[1:]
        return part, comp

    def _gt_level(self, i: int, mask: np.ndarray, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        c, n = self.num_classes, self.n_gt
        keys_order = _gt_keys(c)
        if n == 0:
            return _empty_frame(keys_order), self.gt_components.copy()
        fr = self.frame
        lab = self.g_labels
        inter = np.bincount(lab[self.g_lev >= i], minlength=n + 1)[1:].astype(np.float64)
        size = self.g_size
        union = size.copy()
        if inter.any():
            # components of M \ G adjacent to a gt segment lie inside components of M that touch
            # G, so labelling the bounding box of those components is enough
            lab_flat = labels.ravel()
            touching = np.unique(np.concatenate([lab_flat[self.g_fp + off] for off in fr.offsets]
                                                + [lab_flat[self.g_fp]]))
            touching = touching[touching > 0]
            if touching.size:
                boxes = ndimage.find_objects(labels, max_label=int(touching.max()))
                boxes = [boxes[k - 1] for k in touching]
                sl = (slice(max(min(b[0].start for b in boxes) - 1, 0),
                            min(max(b[0].stop for b in boxes) + 1, fr.shape[0])),
                      slice(max(min(b[1].start for b in boxes) - 1, 0),
                            min(max(b[1].stop for b in boxes) + 1, fr.shape[1])))
                other = np.zeros(fr.shape, np.int32)
                sub_lab, n_other = ndimage.label(mask[sl] & ~self.g_window[sl], structure=_STRUCT)
                other[sl] = sub_lab
                other_size = np.bincount(sub_lab.ravel(), minlength=n_other + 1).astype(np.float64)
                union += _adjacent_union(self.g_fp, lab, other.ravel(), other_size, fr.offsets, n)
        cols = dict(self._gt_static)
        cols["iou"] = np.where(inter > 0, inter / union, 0.0)
        cols["iou0"] = (inter == 0).astype(np.float64)
        cols["rec"] = inter / size
        return _table(cols, keys_order), self.gt_components.copy()

    def run(self, want_pred: bool = True, want_gt: bool = True) -> dict[float, tuple]:
        """``{t: (pred_df, pred_components, gt_df, gt_components)}``; skipped parts are None."""
        fr = self.frame
        nlev = len(self.levels)
        lev, ilev = self.lev, self.ilev
        n_cand = lev.size
        key_tot = np.empty(n_cand, np.int64)
        key_in = np.empty(n_cand, np.int64)
        bases, counts, parents, parts, comps, gts = [], [], [], [], [], []
        base = 0
        prev_lab = None
        inside = fr.inside
        for i in range(nlev):
            mask = self.levw >= i
            mask &= inside
            labels, n = ndimage.label(mask, structure=_STRUCT)
            lab_flat = labels.ravel()
            lab_c = lab_flat[self.cand_fp]
            if want_pred:
                sel = np.flatnonzero(lev == i)
                key_tot[sel] = base + lab_c[sel]
                sel = np.flatnonzero(ilev == i)
                key_in[sel] = base + lab_c[sel]
                parent = np.zeros(n + 1, np.int64)
                if prev_lab is not None:
                    parent[lab_c] = prev_lab
                    parent[0] = 0
                part, comp = self._pred_level(i, mask, lab_flat, lab_c, n)
                bases.append(base)
                counts.append(n)
                parents.append(parent)
                parts.append(part)
                comps.append(comp)
                base += n + 1
                prev_lab = lab_c
            if want_gt:
                gts.append(self._gt_level(i, mask, labels))
            del labels, lab_flat, mask

        tables = [None] * nlev
        if want_pred:
            key_in[ilev < 0] = base  # never interior: a spare bin
            tot = _tree_sums(key_tot, self._total_channels, base, bases, counts, parents)
            inn = _tree_sums(key_in, self._interior_channels, base + 1, bases, counts, parents)
            for i in range(nlev):
                tables[i] = self._pred_table(counts[i], tot[i], inn[i], parts[i])
        out = {}
        for t in self.thresholds:
            i = self.levels.index(t)
            pred = (tables[i], comps[i]) if want_pred else (None, None)
            gt = gts[i] if want_gt else (None, None)
            out[t] = pred + gt
        return out

    def _pred_table(self, n: int, tot: np.ndarray, inn: np.ndarray, part: dict) -> pd.DataFrame:
        c = self.num_classes
        keys_order = _pred_keys(c)
        if n == 0:
            return _empty_frame(keys_order)
        size = tot[0]
        n_in = inn[0]
        n_bd = part["n_bd"]
        no_bd = n_bd == 0
        bd_div = np.where(no_bd, 1.0, n_bd)
        s_rel = np.where(no_bd, size, size / bd_div)
        s_rel_in = np.where(no_bd, n_in, n_in / bd_div)
        cols: dict[str, np.ndarray] = {}
        for j, hname in enumerate(_HEATMAPS):
            s1_in, s2_in = inn[1 + 2 * j], inn[2 + 2 * j]
            s1_bd, s2_bd = part[hname + "_s1"], part[hname + "_s2"]
            mean = (s1_in + s1_bd) / size
            var = (s2_in + s2_bd) / size - mean ** 2
            mean_in = _safe_div(s1_in, n_in)
            var_in = np.where(n_in > 0, _safe_div(s2_in, n_in) - mean_in ** 2, 0.0)
            mean_bd = _safe_div(s1_bd, n_bd)
            var_bd = np.where(n_bd > 0, _safe_div(s2_bd, n_bd) - mean_bd ** 2, 0.0)
            cols[hname] = mean
            cols[hname + "_in"] = mean_in
            cols[hname + "_bd"] = mean_bd
            cols[hname + "_rel"] = mean * s_rel
            cols[hname + "_rel_in"] = mean_in * s_rel_in
            cols[hname + "_var"] = var
            cols[hname + "_var_in"] = var_in
            cols[hname + "_var_bd"] = var_bd
            cols[hname + "_var_rel"] = var * s_rel
            cols[hname + "_var_rel_in"] = var_in * s_rel_in
        cols["S"] = size
        cols["S_in"] = n_in
        cols["S_bd"] = n_bd
        cols["S_rel"] = s_rel
        cols["S_rel_in"] = s_rel_in
        cols["mean_x"] = tot[7] / size
        cols["mean_y"] = tot[8] / size
        inter = tot[9]
        cols["iou"] = np.where(inter > 0, inter / (size + part["adj"]), 0.0)
        cols["iou0"] = (inter == 0).astype(np.float64)
        cols["prc"] = np.zeros(n)
        for k in range(c):
            cols[f"cprob{k}"] = tot[10 + k] / size
            cols[f"ndist{k}"] = part["ndist"][:, k]
        return _table(cols, keys_order)


_OUTSIDE_LEVEL = np.int8(127)


def _table(cols: dict[str, np.ndarray], keys: Sequence[str]) -> pd.DataFrame:
    n = len(cols[keys[0]])
    table = np.empty((n, len(keys)))
    for j, name in enumerate(keys):
        table[:, j] = cols[name]
    return pd.DataFrame(table, columns=list(keys))


def _tree_sums(keys: np.ndarray, channels: list, nbins: int, bases: list[int], counts: list[int],
               parents: list[np.ndarray]) -> list[np.ndarray]:
    """Per-level, per-segment sums of ``channels`` from per-atom sums and the nesting tree.

    ``keys`` assigns each candidate pixel to an atom bin ``bases[l] + label`` of the deepest
    level ``l`` whose sum it enters; the sum of a segment of level ``l`` is its atom sum plus
    the sums of its children at level ``l + 1`` (``parents[l + 1]`` maps child -> parent).
    ``channels`` entries are weight arrays (None = pixel count). Returns, per level, an array
    (channels, n_l) without the background label.
    """
    atoms = np.empty((len(channels), nbins))
    for j, w in enumerate(channels):
        atoms[j] = np.bincount(keys, w, nbins)[:nbins]
    out: list[np.ndarray] = [None] * len(bases)  # type: ignore[list-item]
    below = None
    for lvl in range(len(bases) - 1, -1, -1):
        n = counts[lvl]
        sums = atoms[:, bases[lvl]:bases[lvl] + n + 1].copy()
        if below is not None and below.shape[1] > 1:
            par = parents[lvl + 1][1:]
            for j in range(len(channels)):
                sums[j] += np.bincount(par, below[j, 1:], n + 1)
        out[lvl] = sums[:, 1:]
        below = sums
    return out


def segment_metrics(probs: np.ndarray, gt_train: np.ndarray, threshold: float, ood_id: int,
                    void_id: int = VOID_ID) -> tuple[pd.DataFrame, np.ndarray]:
    """Predicted OoD segments of one image at entropy threshold ``threshold``.

    ``probs`` is the softmax (C, H, W) (any float dtype), ``gt_train`` the (H, W) ground truth in
    train ids with OoD label ``ood_id`` and void label ``void_id``. Returns a DataFrame with one
    row per segment (row i = segment i + 1) and the columns :data:`PRED_KEYS`, and the component
    map (+k interior, -k boundary, 0 elsewhere).
    """
    img = _ImageSegments(probs, gt_train, (threshold,), ood_id, void_id, None)
    pred_df, pred_comp, _, _ = img.run(want_gt=False)[float(threshold)]
    return pred_df, pred_comp


def gt_segment_metrics(probs: np.ndarray, gt_train: np.ndarray, threshold: float, ood_id: int,
                       void_id: int = VOID_ID, gt_label: np.ndarray | None = None
                       ) -> tuple[pd.DataFrame, np.ndarray]:
    """Ground-truth OoD segments of one image and how the entropy mask covers them.

    One row per 8-connected component of ``gt_train == ood_id`` with the columns
    :data:`GT_KEYS`; ``label_class`` is ``gt_label`` (default ``gt_train``) at the segment's first
    pixel in row-major order, ``train_class`` is 255 as in the reference. Returns the DataFrame
    and the component map.
    """
    img = _ImageSegments(probs, gt_train, (threshold,), ood_id, void_id, gt_label)
    _, _, gt_df, gt_comp = img.run(want_pred=False)[float(threshold)]
    return gt_df, gt_comp


def segment_metrics_multi(probs: np.ndarray, gt_train: np.ndarray, thresholds: Iterable[float],
                          ood_id: int, void_id: int = VOID_ID, gt_label: np.ndarray | None = None
                          ) -> dict[float, tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]]:
    """All thresholds of one image in one pass.

    The per-pixel maps (entropy, E, D, V, argmax, class probabilities) and everything about the
    ground-truth segments are computed once, and per-segment sums are accumulated once over
    the nested masks; only the labelling, boundaries and neighbourhoods are redone per
    threshold. Returns ``{float(t): (pred_df, pred_components, gt_df, gt_components)}`` in the
    order of ``thresholds`` (duplicates dropped), equal to what :func:`segment_metrics` and
    :func:`gt_segment_metrics` return for each ``t`` up to floating-point summation order.
    """
    img = _ImageSegments(probs, gt_train, tuple(thresholds), ood_id, void_id, gt_label)
    return img.run()
