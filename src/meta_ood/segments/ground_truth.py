"""The OoD ground-truth segments of one image, and the predicted segments of a level from the
components of ``M \\ G``.

Per level, the adjusted IoU of a gt segment needs the components of ``M \\ G`` (``M``: the
predicted mask, ``G``: the OoD ground truth) and the predicted segments need those of ``M``.
Only ``M \\ G`` is labelled (:func:`~meta_ood.segments.kernels.label_level`); the components of ``M`` are its
*pieces* joined through the pixels of ``M & G``, found on a small graph (pieces plus those
pixels) with :func:`scipy.sparse.csgraph.connected_components` and numbered like
:func:`scipy.ndimage.label` numbers them, in row-major order of their first pixel
(:class:`MaskLabels`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from meta_ood.segments.frame import Frame, SparseFrame, component_dtype
from meta_ood.segments.keys import gt_keys
from meta_ood.segments.pixels import PixelData, class_values
from meta_ood.segments.tables import empty_frame, table

__all__ = ["GroundTruth", "MaskLabels"]


class MaskLabels:
    """The segments of a predicted mask ``M`` given the labelled pieces of ``M \\ G``.

    ``n`` segments; ``of_piece`` maps a piece label (0 = none) to its segment and ``of_gt`` a gt
    pixel (index into the gt pixels; 0 if it is not in ``M``) to its segment.
    """

    def __init__(self, n: int, of_piece: np.ndarray, of_gt: np.ndarray):
        self.n = n
        self.of_piece = of_piece
        self.of_gt = of_gt

    def at(self, pieces_flat: np.ndarray, q: np.ndarray, gt_index: np.ndarray) -> np.ndarray:
        """Segment labels at window positions ``q`` whose gt index (-1: not a gt pixel) is
        ``gt_index``, from the window piece map ``pieces_flat``."""
        out = self.of_piece[pieces_flat[q]]
        g = np.flatnonzero(gt_index >= 0)
        out[g] = self.of_gt[gt_index[g]]
        return out


class GroundTruth:
    """Ground-truth OoD segments (8-connected components of ``gt == ood_id``) in a padded window.

    Everything that does not depend on the threshold is computed once: the segments (labelled
    in a gap-compressed frame, :class:`~meta_ood.segments.frame.SparseFrame`), their component map
    and static table columns, and for every gt pixel the gt index of each of its 8 neighbours.
    """

    def __init__(self, frame: Frame, pixels: PixelData, g_img: np.ndarray, g_rows: np.ndarray,
                 g_cols: np.ndarray, levw: np.ndarray, label: np.ndarray, shape: tuple[int, int]):
        """``g_img`` / ``g_rows`` / ``g_cols``: flat index and window coordinates of the gt pixels;
        ``levw``: the window level map (outside the image: 127); ``label``: the label ids for
        ``label_class``; ``shape``: the image size."""
        self.frame = frame
        self.img = g_img
        self.fp = g_rows * frame.stride + g_cols
        self.lev = levw.ravel()[self.fp]  # gt pixels are never void
        self.num_classes = c = pixels.bits.shape[0]
        self.n = 0
        self.shape = shape
        self.comp_dtype: type = np.int16
        self.comp_values = np.zeros(0, np.int16)
        self._comp: np.ndarray | None = None
        index = np.full(levw.size, -1, np.int32 if g_img.size < 2**31 else np.int64)
        index[self.fp] = np.arange(g_img.size)
        self.index = index  # gt index of every window pixel, -1 elsewhere
        self.nb_index = [index[self.fp + off] for off in frame.offsets]
        if g_img.size == 0:
            return
        self.sparse = SparseFrame(g_rows, g_cols, frame.shape)
        lab, n = self.sparse.label()
        self.n, self.labels = n, lab
        inside = frame.inside.ravel()
        bd = np.zeros(g_img.size, bool)
        for off, nb in zip(frame.offsets, self.nb_index):
            bd |= (nb < 0) & inside[self.fp + off]
        cnt = np.bincount(2 * lab + bd, minlength=2 * n + 2).reshape(n + 1, 2)[1:]
        size = cnt.sum(axis=1).astype(np.float64)
        self.size = size
        self.comp_dtype = component_dtype(n)
        self.comp_values = np.where(bd, -lab, lab).astype(self.comp_dtype)

        w = shape[1]
        cols = {"S": size, "S_in": cnt[:, 0].astype(np.float64), "S_bd": cnt[:, 1].astype(np.float64)}
        rows_img, cols_img = np.divmod(g_img, w)
        cols["mean_x"] = np.bincount(lab, rows_img.astype(np.float64), n + 1)[1:] / size
        cols["mean_y"] = np.bincount(lab, cols_img.astype(np.float64), n + 1)[1:] / size
        cols["train_class"] = np.full(n, 255.0)
        _, first = np.unique(lab, return_index=True)
        cols["label_class"] = label.ravel()[g_img[first]].astype(np.float64)
        counts = np.bincount(lab * c + pixels.argmax.ravel()[g_img], minlength=(n + 1) * c).reshape(n + 1, c)[1:]
        pg = class_values(np.take(pixels.bits, g_img, axis=1), pixels.dtype, np.empty((c, g_img.size), np.float32))
        for k in range(c):
            cols[f"S_{k}"] = counts[:, k].astype(np.float64)
            cols[f"cprob{k}"] = np.bincount(lab, pg[k], n + 1)[1:] / size
        self.static = cols

    def components(self) -> np.ndarray:
        """The component map of the gt segments (+k interior, -k boundary, 0 elsewhere): the same for every
        level, so built once and shared, read-only."""
        if self._comp is None:
            comp = np.zeros(self.shape, self.comp_dtype)  # zero pages: only the gt rows get written
            comp.ravel()[self.img] = self.comp_values
            comp.flags.writeable = False
            self._comp = comp
        return self._comp

    # -- the segments of M -----------------------------------------------------------------

    def mask_labels(self, i: int, flat: np.ndarray, n_pieces: int, first: np.ndarray) -> MaskLabels:
        """The segments of the predicted mask ``M`` of level ``i`` from the (flat) window label map
        ``flat`` of its ``n_pieces`` pieces ``M \\ G`` and their first window positions ``first`` (index
        1..n): pieces and pixels of ``M & G`` joined by 8-adjacency, numbered in row-major order of
        their first pixel."""
        gin = np.flatnonzero(self.lev >= i)
        of_gt = np.zeros(self.img.size, np.int64)
        if gin.size == 0:
            return MaskLabels(n_pieces, np.arange(n_pieces + 1), of_gt)
        node = np.full(self.img.size, -1, np.int64)
        node[gin] = n_pieces + 1 + np.arange(gin.size)
        src, dst = [], []
        for off, nb in zip(self.frame.offsets, self.nb_index):
            piece = flat[self.fp[gin] + off]
            hit = np.flatnonzero(piece)
            src.append(node[gin[hit]])
            dst.append(piece[hit])
            other = node[np.maximum(nb[gin], 0)]
            hit = np.flatnonzero((nb[gin] >= 0) & (other >= 0))
            src.append(node[gin[hit]])
            dst.append(other[hit])
        src, dst = np.concatenate(src), np.concatenate(dst)
        size = n_pieces + 1 + gin.size
        graph = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(size, size))
        _, comp = csgraph.connected_components(graph, directed=False)
        comp_p, comp_g = comp[1:n_pieces + 1], comp[n_pieces + 1:]

        # first pixel of every component: its smallest piece label (pieces are numbered by first
        # pixel) or its first gt pixel, compared via the number of pieces starting before it
        big = np.iinfo(np.int64).max
        ncomp = comp.max() + 1
        j_min = np.full(ncomp, big)
        np.minimum.at(j_min, comp_p, np.arange(1, n_pieces + 1))
        g_first = np.full(ncomp, big)
        np.minimum.at(g_first, comp_g, self.fp[gin])
        primary = 2 * j_min
        with_gt = np.flatnonzero(g_first < big)
        if with_gt.size:
            rank = np.searchsorted(first[1:n_pieces + 1], g_first[with_gt])  # pieces starting before
            gt_first = j_min[with_gt] > rank
            primary[with_gt[gt_first]] = 2 * rank[gt_first] + 1
        keep = np.setdiff1d(np.arange(ncomp), [comp[0]])  # the background node
        order = keep[np.lexsort((g_first[keep], primary[keep]))]
        final = np.zeros(ncomp, np.int64)
        final[order] = np.arange(1, order.size + 1)
        of_piece = np.concatenate([[0], final[comp_p]])
        of_gt[gin] = final[comp_g]
        return MaskLabels(int(order.size), of_piece, of_gt)

    # -- per level -------------------------------------------------------------------------

    def outside_adjacency(self, i: int, pieces_flat: np.ndarray, ml: MaskLabels, n: int) -> np.ndarray:
        """Per predicted segment of level ``i``, the total size of the distinct components of
        ``G \\ M`` 8-adjacent to it (``pieces_flat``: the window piece map, ``ml``: the segments)."""
        gm = self.lev < i  # gt pixels outside the predicted mask
        if self.n == 0 or not gm.any() or gm.all():
            return np.zeros(n)
        gm_lab, ngm = self.sparse.label(gm)
        gm_size = np.bincount(gm_lab, minlength=ngm + 1).astype(np.float64)
        keys = []
        for off, nb in zip(self.frame.offsets, self.nb_index):
            seg = ml.at(pieces_flat, self.fp[gm] + off, nb[gm])
            hit = np.flatnonzero(seg)
            keys.append(seg[hit] * (ngm + 1) + gm_lab[hit])
        return _sum_distinct(keys, ngm + 1, gm_size, n)

    def level_table(self, i: int, pieces_flat: np.ndarray, piece_size: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Ground-truth-segment table and component map at level ``i``; ``pieces_flat`` is the
        window label map of the components of ``M \\ G`` and ``piece_size`` their sizes."""
        keys_order = gt_keys(self.num_classes)
        if self.n == 0:
            return empty_frame(keys_order), self.components()
        inter = np.bincount(self.labels[self.lev >= i], minlength=self.n + 1)[1:].astype(np.float64)
        union = self.size.copy()
        if inter.any():
            keys = []
            for off in self.frame.offsets:
                piece = pieces_flat[self.fp + off]
                hit = np.flatnonzero(piece)
                keys.append(self.labels[hit] * piece_size.size + piece[hit])
            union += _sum_distinct(keys, piece_size.size, piece_size, self.n)
        cols = dict(self.static)
        cols["iou"] = np.where(inter > 0, inter / union, 0.0)
        cols["iou0"] = (inter == 0).astype(np.float64)
        cols["rec"] = inter / self.size
        return table(cols, keys_order), self.components()


def _sum_distinct(keys: list, n_other: int, sizes: np.ndarray, n: int) -> np.ndarray:
    """Per segment ``1..n``, the sum of ``sizes[other]`` over the distinct pairs in the keys
    ``segment * n_other + other``."""
    pairs = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    seg, other = np.divmod(pairs, n_other)
    return np.bincount(seg, weights=sizes[other], minlength=n + 1)[1:n + 1]
