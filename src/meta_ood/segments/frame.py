"""The padded image window of the segment computations and its 8-neighbourhood helpers."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["OFFSETS", "STRUCT", "Frame", "SparseFrame", "component_dtype"]

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

    def __init__(self, coords: Sequence[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int]):
        """``coords``: (rows, columns) arrays of the pixels to cover; ``shape``: the image size."""
        h, w = shape
        coords = [(r, c) for r, c in coords if r.size]
        if coords:
            r0 = max(min(int(r.min()) for r, _ in coords) - 1, 0)
            r1 = min(max(int(r.max()) for r, _ in coords) + 2, h)
            c0 = max(min(int(c.min()) for _, c in coords) - 1, 0)
            c1 = min(max(int(c.max()) for _, c in coords) + 2, w)
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

    def flat(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Flat indices into the padded window of the image pixels (rows, cols)."""
        return (rows - (self.r0 - 1)) * self.stride + (cols - (self.c0 - 1))

    def window(self, image_map: np.ndarray, fill=0) -> np.ndarray:
        out = np.full(self.shape, fill, dtype=image_map.dtype)
        h, w = self.inner
        out[1:-1, 1:-1] = image_map[self.r0:self.r0 + h, self.c0:self.c0 + w]
        return out

    def inner_flat(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Flat indices into the unpadded window of the image pixels (rows, cols)."""
        return (rows - self.r0) * self.inner[1] + (cols - self.c0)


class SparseFrame:
    """A gap-compressed frame for a sparse set of window pixels (e.g. the ground-truth OoD pixels).

    It keeps the rows and columns that hold a pixel of the set and replaces every run of rows or
    columns without one by a single empty row or column. The maps are monotone and two kept
    pixels are 8-adjacent in the frame exactly when they are in the window, so
    :func:`scipy.ndimage.label` of any subset gives the same components, numbered in the same
    row-major order, at the cost of the (often much smaller) compressed area. Every window row
    and column has a place (dropped ones share their run's empty one), so labels can be looked
    up at any window position.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
        """``rows``, ``cols``: window coordinates of the set; ``shape``: the window size."""
        self.rmap, nr = _axis_map(rows, shape[0])
        self.cmap, nc = _axis_map(cols, shape[1])
        self.shape = (nr, nc)
        self.flat = self.rmap[rows] * nc + self.cmap[cols]

    def label_image(self, select: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, int]:
        """Label image (compressed) of the 8-connected components of the pixels ``select``
        (index or mask into the set) and their number."""
        img = np.zeros(self.shape, bool)
        img.ravel()[self.flat[select]] = True
        return ndimage.label(img, structure=STRUCT)

    def label(self, select: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, int]:
        """Labels (int64, in the order of ``select``) and number of the 8-connected components of
        the pixels ``select``."""
        lab, n = self.label_image(select)
        return lab.ravel()[self.flat[select]].astype(np.int64), n


def _axis_map(coords: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Compressed position of every window row (column) and the compressed length: occupied
    ones are kept, each run of empty ones shares one place."""
    keep = np.zeros(length, bool)
    keep[coords] = True
    keep[1:] |= keep[:-1].copy()  # an occupied place and the one after it (a run's first empty one)
    keep[0] = True
    pos = np.cumsum(keep) - 1
    return pos, int(pos[-1]) + 1 if length else 0
