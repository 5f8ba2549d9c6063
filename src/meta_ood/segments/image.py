"""Per-image segment data shared by all entropy thresholds, and the per-threshold tables."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage

from meta_ood.errors import InputError
from meta_ood.segments.frame import OFFSETS, STRUCT, Frame, component_dtype
from meta_ood.segments.ground_truth import GroundTruth, MaskLabels
from meta_ood.segments.keys import HEATMAPS
from meta_ood.segments.pixels import class_values, pixel_data
from meta_ood.segments.tables import lane_bincount, lane_keys, pred_table, tree_sums

__all__ = ["ImageSegments"]

_OUTSIDE_LEVEL = np.int8(127)


def _as_weights(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``values`` as float64 in the buffer ``out``."""
    np.copyto(out, values, casting="unsafe")
    return out


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
    of its own top level (its "atom"), and the sums are then pushed down the nesting tree
    (:func:`~meta_ood.segments.tables.tree_sums`). Only the labelling, the boundary pixels and the
    neighbourhood counts are done per threshold.

    The candidates are kept sorted by descending level (stable): the pixels of the mask of level
    ``i`` are then the first ``m[i]`` of them, and per-level work touches only those. The pixels
    that are a boundary pixel at some level (``ilev < lev``) and their (pixel, outside neighbour)
    pairs of all levels are found once (:meth:`_init_pairs`). Per level, one
    :func:`scipy.ndimage.label` call labels ``M \\ G``; :class:`~meta_ood.segments.ground_truth.GroundTruth`
    joins those pieces into the segments of ``M``.
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
        nlev = len(self.levels)
        self.num_classes = c
        self.shape = (h, w)
        gmask = gt == ood_id
        px = pixel_data(probs, gt == void_id, self.levels)
        cand, lev = px.cand, px.lev
        rows, cols = np.divmod(cand, w)
        g_img = np.flatnonzero(gmask)
        g_rows, g_cols = np.divmod(g_img, w)
        fr = Frame([(rows, cols), (g_rows, g_cols)], (h, w))
        self.frame = fr

        # level map of the padded window; outside the image counts as "always OoD" so that the
        # image border never makes a boundary pixel
        cand_fp = fr.flat(rows, cols)
        levw = np.full(fr.shape, -1, np.int8)
        levw[0, :] = levw[-1, :] = _OUTSIDE_LEVEL
        levw[:, 0] = levw[:, -1] = _OUTSIDE_LEVEL
        levw.ravel()[cand_fp] = lev
        hh, ww = fr.inner
        nb_min = levw[1:-1, 1:-1].copy()
        for dr, dc in OFFSETS:
            np.minimum(nb_min, levw[1 + dr:1 + dr + hh, 1 + dc:1 + dc + ww], out=nb_min)
        ilev = nb_min.ravel()[fr.inner_flat(rows, cols)]
        del nb_min

        # candidates by descending level; m[i] = number of pixels in the mask of level i
        order = np.argsort((nlev - 1) - lev, kind="stable")
        self.order = order
        self.m = np.concatenate([np.cumsum(np.bincount(lev, minlength=nlev)[::-1])[::-1], [0]])
        self.fp_s = cand_fp[order]
        self.img_s = cand[order]
        self.ilev_s = ilev[order]
        self._init_pairs(levw, lev[order], fr.window(px.argmax))

        # what the per-segment sums read: E / D / V, class probabilities, ground truth
        self.px = px
        self.gt_flat = gmask.ravel()
        self.g_s = self.gt_flat[self.img_s]  # level order: the pixel is a gt pixel

        # ground-truth segments and everything about them that does not depend on t
        self.gt = GroundTruth(fr, px, g_img, g_rows - (fr.r0 - 1), g_cols - (fr.c0 - 1), levw, label, (h, w))
        self.g_pos = np.flatnonzero(self.g_s)  # level-order positions of gt candidates, their gt index
        self.g_pos_index = self.gt.index[self.fp_s[self.g_pos]]

        # from here on, outside the image is outside every mask; the pieces M \ G are labelled
        levw[0, :] = levw[-1, :] = -1
        levw[:, 0] = levw[:, -1] = -1
        levw.ravel()[self.gt.fp] = -1
        self.levw_pieces = levw

    def _init_pairs(self, levw: np.ndarray, lev_s: np.ndarray, argmax_w: np.ndarray) -> None:
        """Boundary pixels and (boundary pixel, outside neighbour) pairs of all levels.

        A candidate is a boundary pixel at some level iff ``ilev < lev``; those pixels (positions
        ``bpos`` in level order) are the only ones with pairs. A pair of pixel ``p`` and in-image
        neighbour ``q`` enters the neighbourhood class distribution of ``p``'s segment at the
        levels ``lev(q) < i <= lev(p)``. The pairs are sorted by ``(lev(q), -lev(p))`` so that
        those of one level are one contiguous run per ``lev(q) < i``.
        """
        nlev = len(self.levels)
        fr = self.frame
        bpos = np.flatnonzero(self.ilev_s < lev_s)
        self.bpos = bpos
        self.b_ilev = self.ilev_s[bpos]
        self.b_count = np.searchsorted(bpos, self.m)
        bfp = self.fp_s[bpos]
        blev = lev_s[bpos]
        lev_flat = levw.ravel()
        key_dtype = np.uint8 if (nlev + 1) * nlev <= 256 else np.int16  # 8 bits: one radix pass
        pos, cls, key = [], [], []
        for off in fr.offsets:
            q = bfp + off
            lq = lev_flat[q]
            hit = np.flatnonzero(lq < blev)  # the outside ring has level 127: never a pair
            pos.append(bpos[hit])
            cls.append(argmax_w.ravel()[q[hit]])
            key.append(((lq[hit].astype(np.int16) + 1) * nlev + (nlev - 1 - blev[hit])).astype(key_dtype))
        key = np.concatenate(key) if key else np.zeros(0, key_dtype)  # small: radix sort
        order = np.argsort(key, kind="stable")
        self.pair_pos = np.concatenate(pos)[order] if pos else np.zeros(0, np.int64)
        self.pair_cls = np.concatenate(cls)[order] if cls else np.zeros(0, np.uint8)
        self.pair_start = np.searchsorted(key[order], np.arange((nlev + 1) * nlev + 1))

    def _pairs_at(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Level-order positions of the boundary pixels and classes of their outside neighbours,
        one entry per pair counted at level ``i``."""
        nlev = len(self.levels)
        runs = [(self.pair_start[(b + 1) * nlev], self.pair_start[(b + 1) * nlev + nlev - i])
                for b in range(-1, i)]
        return (np.concatenate([self.pair_pos[lo:hi] for lo, hi in runs]),
                np.concatenate([self.pair_cls[lo:hi] for lo, hi in runs]))

    # -- predicted segments ----------------------------------------------------------------

    def _pred_level(self, i: int, pieces_flat: np.ndarray, ml: MaskLabels, lab: np.ndarray,
                    n: int) -> tuple[dict, np.ndarray]:
        """Per-threshold parts of the predicted-segment metrics of level ``i`` (``pieces_flat``:
        the window label map of ``M \\ G``, ``ml``: the segments, ``lab``: their labels at the
        level's pixels in level order)."""
        c = self.num_classes
        m = lab.size
        comp = np.zeros(self.shape, component_dtype(n))
        flat = comp.ravel()
        flat[self.img_s[:m]] = lab
        if n == 0:
            return {}, comp

        # boundary pixels (ilev < i <= lev): sizes and E/D/V sums directly
        bidx = self.bpos[np.flatnonzero(self.b_ilev[:self.b_count[i]] < i)]
        flat[self.img_s[bidx]] *= -1
        blab = lab[bidx].astype(np.int64)
        part: dict[str, np.ndarray] = {"n_bd": np.bincount(blab, minlength=n + 1)[1:].astype(np.float64)}
        bcand = self.order[bidx]
        for hname in HEATMAPS:
            v = self.px.heat[hname][bcand].astype(np.float64)
            part[hname + "_s1"] = np.bincount(blab, v, n + 1)[1:]
            part[hname + "_s2"] = np.bincount(blab, v * v, n + 1)[1:]

        # neighbourhood class distribution: pairs (boundary pixel, in-image neighbour outside M)
        pos, cls = self._pairs_at(i)
        pairs = np.bincount(lab[pos].astype(np.int64) * c + cls, minlength=(n + 1) * c).reshape(n + 1, c)[1:]
        part["ndist"] = pairs / np.maximum(pairs.sum(axis=1), 1)[:, None].astype(np.float64)

        # adjusted IoU: components of G \ M that are 8-adjacent to a segment
        part["adj"] = self.gt.outside_adjacency(i, pieces_flat, ml, n)
        return part, comp

    def _cand_lane_keys(self, keys: np.ndarray) -> np.ndarray:
        """:func:`~meta_ood.segments.tables.lane_keys` of ``keys`` (level order) in candidate
        order, the order of the per-pixel values."""
        cand_keys = np.empty_like(keys)
        cand_keys[self.order] = keys
        return lane_keys(cand_keys)

    def _heat_sums(self, lkeys: np.ndarray, nbins: int, values: np.ndarray) -> list[np.ndarray]:
        """Per-bin count, E, E^2, D, D^2, V, V^2 from candidate-order lane keys (``values``: a
        float64 buffer of one entry per candidate)."""
        sums = [lane_bincount(lkeys, None, nbins)]
        for h in HEATMAPS:
            v = _as_weights(self.px.heat[h], values)
            sums.append(lane_bincount(lkeys, v, nbins))
            sums.append(lane_bincount(lkeys, np.multiply(v, v, out=v), nbins))
        return sums

    def _total_atoms(self, keys: np.ndarray, nbins: int) -> np.ndarray:
        """Per-atom sums over all pixels (``keys`` in level order): count, E, E^2, D, D^2, V, V^2,
        row, column, OoD ground truth and the C class probabilities (rows of the result)."""
        px = self.px
        lkeys = self._cand_lane_keys(keys)
        values = np.empty(keys.size)  # one reused weight buffer
        sums = self._heat_sums(lkeys, nbins, values)
        rows = px.cand // self.shape[1]
        sums.append(lane_bincount(lkeys, _as_weights(rows, values), nbins))
        sums.append(lane_bincount(lkeys, _as_weights(np.subtract(px.cand, rows * self.shape[1], out=rows),
                                                     values), nbins))
        sums.append(lane_bincount(lkeys, _as_weights(self.gt_flat[px.cand], values), nbins))
        for bits in px.cand_bits:
            sums.append(lane_bincount(lkeys, class_values(bits, px.dtype, values), nbins))
        return np.stack(sums)

    def _interior_atoms(self, keys: np.ndarray, nbins: int) -> np.ndarray:
        """Per-atom sums over interior pixels (``keys`` in level order): count, E, E^2, D, D^2, V, V^2."""
        return np.stack(self._heat_sums(self._cand_lane_keys(keys), nbins, np.empty(keys.size)))

    def run(self, want_pred: bool = True, want_gt: bool = True) -> dict[float, tuple]:
        """``{t: (pred_df, pred_components, gt_df, gt_components)}``; skipped parts are None."""
        nlev = len(self.levels)
        n_cand = self.fp_s.size
        key_tot = np.empty(n_cand, np.int64)
        key_in = np.empty(n_cand, np.int64)
        bases, counts, parents, parts, comps, gts = [], [], [], [], [], []
        base = 0
        prev_lab = None
        mask = np.empty(self.levw_pieces.shape, bool)
        pieces = np.empty(self.levw_pieces.shape, np.int32)
        pflat = pieces.ravel()
        for i in range(nlev):
            # the pieces M \ G, then the segments of M
            np.greater_equal(self.levw_pieces, i, out=mask)
            n_pieces = ndimage.label(mask, structure=STRUCT, output=pieces)
            m, m_next = int(self.m[i]), int(self.m[i + 1])
            lp = pflat[self.fp_s[:m]]
            ml = self.gt.mask_labels(i, pieces, n_pieces)
            n = ml.n
            lab = ml.of_piece[lp]
            g = self.g_pos[:np.searchsorted(self.g_pos, m)]
            lab[g] = ml.of_gt[self.g_pos_index[:g.size]]
            if want_pred:
                key_tot[m_next:m] = base + lab[m_next:]
                sel = np.flatnonzero(self.ilev_s[:m] == i)
                key_in[sel] = base + lab[sel]
                parent = np.zeros(n + 1, np.int64)
                if prev_lab is not None:
                    parent[lab] = prev_lab[:m]
                part, comp = self._pred_level(i, pflat, ml, lab, n)
                bases.append(base)
                counts.append(n)
                parents.append(parent)
                parts.append(part)
                comps.append(comp)
                base += n + 1
                prev_lab = lab
            if want_gt:
                piece_size = np.bincount(lp, minlength=n_pieces + 1).astype(np.float64)
                piece_size[0] = 0
                gts.append(self.gt.level_table(i, pflat, piece_size))

        tables = [None] * nlev
        if want_pred:
            key_in[self.ilev_s < 0] = base  # never interior: a spare bin
            tot = tree_sums(self._total_atoms(key_tot, base), bases, counts, parents)
            inn = tree_sums(self._interior_atoms(key_in, base + 1), bases, counts, parents)
            for i in range(nlev):
                tables[i] = pred_table(self.num_classes, counts[i], tot[i], inn[i], parts[i])
        out = {}
        for t in self.thresholds:
            i = self.levels.index(t)
            pred = (tables[i], comps[i]) if want_pred else (None, None)
            gt = gts[i] if want_gt else (None, None)
            out[t] = pred + gt
        return out
