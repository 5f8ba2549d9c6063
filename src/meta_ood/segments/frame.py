"""The padded image window of the segment computations and its 8-neighbourhood helpers."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["OFFSETS", "STRUCT", "Frame", "adjacent_union", "bbox_slices", "component_dtype"]

#: 8-connectivity structure of :func:`scipy.ndimage.label`.
STRUCT = np.ones((3, 3), dtype=bool)
#: (row, column) offsets of the 8 neighbours of a pixel.
OFFSETS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))


def component_dtype(n: int) -> type:
    """Integer dtype of a component map with ``n`` segments: int16, or int32 above 32767."""
    return np.int16 if n <= np.iinfo(np.int16).max else np.int32


class Frame:
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
        self.offsets = np.array([dr * self.stride + dc for dr, dc in OFFSETS], np.int64)
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
        for dr, dc in OFFSETS:
            acc |= out[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
        return acc


def bbox_slices(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Bounding box of padded-window coordinates, grown by one pixel and clipped to ``shape``."""
    return (slice(max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, shape[0])),
            slice(max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, shape[1])))


def adjacent_union(pix: np.ndarray, pix_labels: np.ndarray, nb_labels_flat: np.ndarray,
                   other_sizes: np.ndarray, offsets: np.ndarray, n_seg: int,
                   pixels_in_segments: bool = True) -> np.ndarray:
    """For each of ``n_seg`` segments, the total size of the distinct ``other`` components
    8-adjacent to it.

    ``pix`` are padded-window flat indices of labelled pixels with labels ``pix_labels``;
    ``nb_labels_flat`` is the padded label map (0 = no label) looked up at their neighbours
    ``pix + offsets``. With ``pixels_in_segments`` the pixels belong to the segments and the map
    labels the other components (sizes ``other_sizes``, indexed by label), otherwise the reverse.
    """
    n_other = other_sizes.size
    keys = []
    for off in offsets:
        lab = nb_labels_flat[pix + off]
        hit = lab > 0
        if hit.any():
            own = pix_labels[hit].astype(np.int64)
            if pixels_in_segments:
                keys.append(own * n_other + lab[hit])
            else:
                keys.append(lab[hit].astype(np.int64) * n_other + own)
    if not keys:
        return np.zeros(n_seg)
    pairs = np.unique(np.concatenate(keys))
    seg, other = np.divmod(pairs, n_other)
    return np.bincount(seg, weights=other_sizes[other], minlength=n_seg + 1)[1:n_seg + 1]

