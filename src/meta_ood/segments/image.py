"""Per-image segment data shared by all entropy thresholds, and the per-threshold tables."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from meta_ood.errors import InputError
from meta_ood.segments.frame import OFFSETS, Frame, component_dtype
from meta_ood.segments.ground_truth import GroundTruth, MaskLabels
from meta_ood.segments.keys import HEATMAPS
from meta_ood.segments.kernels import atom_sums, boundary_pairs, label_level, level_pass
from meta_ood.segments.pixels import float16_values, pixel_data
from meta_ood.segments.tables import pred_table, tree_sums

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
    of its own top level (its "atom"), and the sums are then pushed down the nesting tree
    (:func:`~meta_ood.segments.tables.tree_sums`). Only the labelling, the boundary pixels and the
    neighbourhood counts are done per threshold.

    The candidates are kept sorted by descending level (stable): the pixels of the mask of level
    ``i`` are then the first ``m[i]`` of them, and per-level work touches only those. The pixels
    that are a boundary pixel at some level (``ilev < lev``) and their (pixel, outside neighbour)
    pairs of all levels are found once (:meth:`_init_pairs`). Per level, one
    :func:`~meta_ood.segments.kernels.label_level` call labels ``M \\ G`` (its pixels in row-major order,
    numbered as :func:`scipy.ndimage.label` numbers them); :class:`~meta_ood.segments.ground_truth.GroundTruth`
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
        self._init_pairs(levw, lev[order], px.argmax)

        # what the per-segment sums read: E / D / V, class probabilities, ground truth
        self.px = px
        self.gt_flat = gmask.ravel()
        self.g_s = self.gt_flat[self.img_s]  # level order: the pixel is a gt pixel

        # ground-truth segments and everything about them that does not depend on t
        self.gt = GroundTruth(fr, px, g_img, g_rows - (fr.r0 - 1), g_cols - (fr.c0 - 1), levw, label, (h, w))
        self.g_pos = np.flatnonzero(self.g_s)  # level-order positions of gt candidates, their gt index
        self.g_pos_index = self.gt.index[self.fp_s[self.g_pos]]

        # the pixels of the pieces M \ G (candidates outside the ground truth) in row-major order, with their
        # levels (candidates come row-major, then those decided exactly: two sorted runs)
        nongt = np.flatnonzero(~self.gt_flat[cand])
        rast = np.argsort(cand_fp[nongt], kind="stable")
        self.rast_pos = cand_fp[nongt][rast]
        self.rast_lev = lev[nongt][rast]

    def _init_pairs(self, levw: np.ndarray, lev_s: np.ndarray, argmax: np.ndarray) -> None:
        """Boundary pixels and (boundary pixel, outside neighbour) pairs of all levels.

        A candidate is a boundary pixel at some level iff ``ilev < lev``; those pixels (positions
        ``bpos`` in level order) are the only ones with pairs. A pair of pixel ``p`` and in-image
        neighbour ``q`` enters the neighbourhood class distribution of ``p``'s segment at the
        levels ``lev(q) < i <= lev(p)``. The pairs are sorted by ``(lev(q), -lev(p))`` so that
        those of one level are one contiguous run per ``lev(q) < i``
        (:func:`~meta_ood.segments.kernels.boundary_pairs`; ``argmax``: the image's classes).
        """
        nlev = len(self.levels)
        fr = self.frame
        bpos = np.flatnonzero(self.ilev_s < lev_s)
        w = self.shape[1]
        img_offsets = np.array([dr * w + dc for dr, dc in OFFSETS], np.int64)
        self.pair_start = np.empty((nlev + 1) * nlev + 1, np.int64)
        self.pair_pos, self.pair_cls = boundary_pairs(bpos, self.fp_s[bpos], self.img_s[bpos], lev_s[bpos],
                                                      levw.reshape(-1), fr.offsets, img_offsets,
                                                      argmax.reshape(-1), nlev, self.pair_start)

    def _pairs_at(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Level-order positions of the boundary pixels and classes of their outside neighbours,
        one entry per pair counted at level ``i``."""
        nlev = len(self.levels)
        runs = [(self.pair_start[(b + 1) * nlev], self.pair_start[(b + 1) * nlev + nlev - i])
                for b in range(-1, i)]
        return (np.concatenate([self.pair_pos[lo:hi] for lo, hi in runs]),
                np.concatenate([self.pair_cls[lo:hi] for lo, hi in runs]))

    # -- predicted segments ----------------------------------------------------------------

    def _pred_level(self, i: int, pieces_flat: np.ndarray, ml: MaskLabels, lab: np.ndarray, n: int,
                    keys: tuple[int, int, np.ndarray, np.ndarray], prev_lab: np.ndarray | None
                    ) -> tuple[dict, np.ndarray, np.ndarray]:
        """Per-threshold parts of the predicted-segment metrics of level ``i`` (``pieces_flat``:
        the window label map of ``M \\ G``, ``ml``: the segments, ``lab``: their labels at the
        level's pixels in level order), its component map and its segments' parents at level ``i - 1``
        (labels ``prev_lab`` there). ``keys``: (base, m_next, key_tot, key_in), the atom keys to fill
        (:func:`~meta_ood.segments.kernels.level_pass`)."""
        c = self.num_classes
        comp = np.zeros(self.shape, component_dtype(n))
        parent = np.zeros(n + 1, np.int64)
        if n == 0:
            return {}, comp, parent

        # the component map, atom keys, parents, and boundary pixels (ilev < i <= lev): sizes and E/D/V sums
        bd = np.zeros((n + 1, 1 + 2 * len(HEATMAPS)))
        base, m_next, key_tot, key_in = keys
        heat = self.px.heat
        level_pass(i, lab, self.img_s, self.ilev_s, self.order, heat["E"], heat["D"], heat["V"], base, m_next,
                   lab if prev_lab is None else prev_lab, prev_lab is not None, comp.reshape(-1), key_tot, key_in,
                   parent, bd)
        part: dict[str, np.ndarray] = {"n_bd": bd[1:, 0]}
        for j, hname in enumerate(HEATMAPS):
            part[hname + "_s1"] = bd[1:, 1 + 2 * j]
            part[hname + "_s2"] = bd[1:, 2 + 2 * j]

        # neighbourhood class distribution: pairs (boundary pixel, in-image neighbour outside M)
        pos, cls = self._pairs_at(i)
        pairs = np.bincount(lab[pos].astype(np.int64) * c + cls, minlength=(n + 1) * c).reshape(n + 1, c)[1:]
        part["ndist"] = pairs / np.maximum(pairs.sum(axis=1), 1)[:, None].astype(np.float64)

        # adjusted IoU: components of G \ M that are 8-adjacent to a segment
        part["adj"] = self.gt.outside_adjacency(i, pieces_flat, ml, n)
        return part, comp, parent

    def _atom_sums(self, key_tot: np.ndarray, key_in: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom sums (keys in level order; :func:`~meta_ood.segments.kernels.atom_sums`): over all pixels
        count, E, E^2, D, D^2, V, V^2, row, column, OoD ground truth and the C class probabilities (rows of the
        first result, ``nbins`` columns); over interior pixels the first seven (``nbins + 1`` columns)."""
        px = self.px
        tot = np.zeros((nbins, 10 + self.num_classes))
        inn = np.zeros((nbins + 1, 7))
        if px.dtype == np.float16:
            probs, table = px.bits, float16_values(np.float64)
        else:
            probs, table = px.bits.view(np.float32), None
        # in candidate order: the class probabilities are read in row-major order
        keys = np.empty((2, key_tot.size), np.int64)
        keys[0, self.order] = key_tot
        keys[1, self.order] = key_in
        atom_sums(keys[0], keys[1], px.cand, px.heat["E"], px.heat["D"], px.heat["V"], self.gt_flat,
                  self.shape[1], probs, table, tot, inn)
        return tot.T, inn.T

    def run(self, want_pred: bool = True, want_gt: bool = True) -> dict[float, tuple]:
        """``{t: (pred_df, pred_components, gt_df, gt_components)}``; skipped parts are None."""
        nlev = len(self.levels)
        n_cand = self.fp_s.size
        key_tot = np.empty(n_cand, np.int64)
        key_in = np.empty(n_cand, np.int64)
        bases, counts, parents, parts, comps, gts = [], [], [], [], [], []
        base = 0
        prev_lab = None
        pflat = np.zeros(self.frame.shape[0] * self.frame.shape[1], np.int32)  # window label map of the pieces
        work_pos, work_lev = self.rast_pos.copy(), self.rast_lev.copy()
        count = work_pos.size
        for i in range(nlev):
            # the pieces M \ G, then the segments of M
            count, n_pieces, first, piece_size = label_level(work_pos, work_lev, count, i, pflat, self.frame.stride)
            m, m_next = int(self.m[i]), int(self.m[i + 1])
            lp = pflat[self.fp_s[:m]]
            ml = self.gt.mask_labels(i, pflat, n_pieces, first)
            n = ml.n
            lab = ml.of_piece[lp]
            g = self.g_pos[:np.searchsorted(self.g_pos, m)]
            lab[g] = ml.of_gt[self.g_pos_index[:g.size]]
            if want_pred:
                part, comp, parent = self._pred_level(i, pflat, ml, lab, n, (base, m_next, key_tot, key_in),
                                                      prev_lab)
                bases.append(base)
                counts.append(n)
                parents.append(parent)
                parts.append(part)
                comps.append(comp)
                base += n + 1
                prev_lab = lab
            if want_gt:
                gts.append(self.gt.level_table(i, pflat, piece_size.astype(np.float64)))

        tables = [None] * nlev
        if want_pred:
            key_in[self.ilev_s < 0] = base  # never interior: a spare bin
            tot_atoms, inn_atoms = self._atom_sums(key_tot, key_in, base)
            tot = tree_sums(tot_atoms, bases, counts, parents)
            inn = tree_sums(inn_atoms, bases, counts, parents)
            for i in range(nlev):
                tables[i] = pred_table(self.num_classes, counts[i], tot[i], inn[i], parts[i])
        out = {}
        for t in self.thresholds:
            i = self.levels.index(t)
            pred = (tables[i], comps[i]) if want_pred else (None, None)
            gt = gts[i] if want_gt else (None, None)
            out[t] = pred + gt
        return out
