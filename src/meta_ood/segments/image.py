"""Per-image segment data shared by all entropy thresholds, and the per-threshold tables."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy import ndimage

from meta_ood.errors import InputError
from meta_ood.scores import (
    as_float32,
    compute_entropy_map,
    margin_values,
    reference_entropy_values,
    top2,
    variation_values,
)
from meta_ood.segments.frame import OFFSETS, STRUCT, Frame, adjacent_union, bbox_slices, component_dtype
from meta_ood.segments.keys import HEATMAPS, gt_keys
from meta_ood.segments.tables import empty_frame, pred_table, table, tree_sums

__all__ = ["ImageSegments"]

_OUTSIDE_LEVEL = np.int8(127)


class ImageSegments:
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

    def __init__(self, probs: np.ndarray, gt_train: np.ndarray, thresholds: Iterable[float], ood_id: int,
                 void_id: int, gt_label: np.ndarray | None):
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
        fr = Frame((cand, g_img), (h, w))
        self.frame = fr
        self.argmax_w = fr.window(em.argmax)
        flat_probs = probs.reshape(c, -1)

        # candidate pixels: levels and the per-pixel maps, computed once
        self.cand_img = cand
        self.cand_fp = fr.flat(cand)
        self.lev = self._levels(cand)
        # level map of the padded window; outside the image counts as "always OoD" so that the
        # image border never makes a boundary pixel
        levw = np.full(fr.shape, -1, np.int8)
        levw[0, :] = levw[-1, :] = _OUTSIDE_LEVEL
        levw[:, 0] = levw[:, -1] = _OUTSIDE_LEVEL
        levw.ravel()[self.cand_fp] = self.lev
        self.levw = levw
        hh, ww = fr.inner
        nb_min = levw[1:-1, 1:-1].copy()
        for dr, dc in OFFSETS:
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
        self.g_lev = self._levels(g_img)
        gw = np.zeros(fr.shape, bool)
        gw.ravel()[self.g_fp] = True
        self.g_window = gw
        self._init_gt(flat_probs, label, em.argmax)

    # -- helpers -------------------------------------------------------------------------

    def _levels(self, idx: np.ndarray) -> np.ndarray:
        """Highest level whose mask holds each pixel of ``idx`` (-1 for none), int8."""
        tarr = np.asarray(self.levels)
        return (np.searchsorted(tarr, self._decision_values(idx), side="right") - 1).astype(np.int8)

    def _decision_values(self, idx: np.ndarray) -> np.ndarray:
        """Entropy of the pixels ``idx`` as the threshold decisions see it (reference values near
        a threshold)."""
        em = self._em
        vals = em.entropy.ravel()[idx].astype(np.float64)
        if em.near_index.size and idx.size:
            pos = np.minimum(np.searchsorted(em.near_index, idx), em.near_index.size - 1)
            hit = em.near_index[pos] == idx
            vals[hit] = em.near_value[pos[hit]]
        return vals

    def _init_gt(self, flat_probs: np.ndarray, label: np.ndarray, argmax: np.ndarray) -> None:
        """Label the ground-truth segments and fill the columns that do not depend on the threshold."""
        fr, c = self.frame, self.num_classes
        g = self.g_img
        h, w = self.shape
        self.n_gt = 0
        self.gt_components = np.zeros((h, w), np.int16)
        if g.size == 0:
            return
        grows, gcols = np.divmod(self.g_fp, fr.stride)
        gsl = bbox_slices(grows, gcols, fr.shape)
        self.g_slice = gsl
        sub_w = gsl[1].stop - gsl[1].start
        self.g_sub = (grows - gsl[0].start) * sub_w + (gcols - gsl[1].start)
        lab_sub, n = ndimage.label(self.g_window[gsl], structure=STRUCT)
        self.n_gt = n
        lab = lab_sub.ravel()[self.g_sub].astype(np.int64)
        self.g_labels = lab
        bd = fr.outside_neighbour(self.g_window, gsl).ravel()[self.g_sub]
        cnt = np.bincount(2 * lab + bd, minlength=2 * n + 2).reshape(n + 1, 2)[1:]
        size = cnt.sum(axis=1).astype(np.float64)
        self.g_size = size
        comp = np.zeros((h, w), component_dtype(n))
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
        comp = np.zeros(self.shape, component_dtype(n))
        inner = ilev[member] >= i
        lm = lab_c[member]
        comp.ravel()[self.cand_img[member]] = np.where(inner, lm, -lm)
        if n == 0:
            return {}, comp

        # boundary pixels: sizes and E/D/V sums directly
        bidx = member[~inner]
        blab = lab_c[bidx].astype(np.int64)
        part: dict[str, np.ndarray] = {"n_bd": np.bincount(blab, minlength=n + 1)[1:].astype(np.float64)}
        for hname in HEATMAPS:
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
            gml, ngm = ndimage.label(sub, structure=STRUCT)
            gm_lab = gml.ravel()[self.g_sub[gm]].astype(np.int64)
            gm_size = np.bincount(gm_lab, minlength=ngm + 1).astype(np.float64)
            part["adj"] = adjacent_union(self.g_fp[gm], gm_lab, lab_flat, gm_size, fr.offsets, n,
                                         pixels_in_segments=False)
        return part, comp

    def _gt_level(self, i: int, mask: np.ndarray, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Ground-truth-segment table and component map at level ``i`` (``mask`` / ``labels``: the
        predicted mask and its segments in the padded window)."""
        c, n = self.num_classes, self.n_gt
        keys_order = gt_keys(c)
        if n == 0:
            return empty_frame(keys_order), self.gt_components.copy()
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
                sub_lab, n_other = ndimage.label(mask[sl] & ~self.g_window[sl], structure=STRUCT)
                other[sl] = sub_lab
                other_size = np.bincount(sub_lab.ravel(), minlength=n_other + 1).astype(np.float64)
                union += adjacent_union(self.g_fp, lab, other.ravel(), other_size, fr.offsets, n)
        cols = dict(self._gt_static)
        cols["iou"] = np.where(inter > 0, inter / union, 0.0)
        cols["iou0"] = (inter == 0).astype(np.float64)
        cols["rec"] = inter / size
        return table(cols, keys_order), self.gt_components.copy()

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
            labels, n = ndimage.label(mask, structure=STRUCT)
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
            tot = tree_sums(key_tot, self._total_channels, base, bases, counts, parents)
            inn = tree_sums(key_in, self._interior_channels, base + 1, bases, counts, parents)
            for i in range(nlev):
                tables[i] = pred_table(self.num_classes, counts[i], tot[i], inn[i], parts[i])
        out = {}
        for t in self.thresholds:
            i = self.levels.index(t)
            pred = (tables[i], comps[i]) if want_pred else (None, None)
            gt = gts[i] if want_gt else (None, None)
            out[t] = pred + gt
        return out
