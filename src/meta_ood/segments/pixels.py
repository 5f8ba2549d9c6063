"""Per-pixel inputs of the segment metrics: threshold levels, E / D / V, argmax, class probabilities.

Only pixels that are OoD at the lowest threshold (the *candidates*) enter the predicted segments,
and for most pixels of a segmentation network's softmax a cheap test proves that they are not:

* Non-negative IEEE floats are ordered like their bit patterns, so the three largest
  probabilities ``p1 >= p2 >= p3`` (ties count repeatedly) and the first argmax of every pixel
  come from unsigned-integer max / min / compare operations on the raw bits (:func:`top_bits`),
  without any float conversion.
* ``bits(p1) >= bits(p2) + a * 2**mantissa_bits`` implies ``p1 >= 2**a * p2`` (exactly for normal
  numbers, conservatively for subnormal ones), and likewise for ``p3``. Whole octaves between
  the top probabilities bound the entropy of the renormalized distribution from above
  (:func:`screen_corners`), and pixels whose bound lies clearly below the lowest threshold are
  not candidates.

The remaining non-void pixels are gathered and evaluated in blocks. ``E`` is the reference's
float32 formula (:func:`meta_ood.scores.reference_entropy_values`), and since
``p log(p + eps)`` differs from ``p log p`` by at most ``eps``, ``E`` also gives the normalized
mask entropy ``log(s) - (sum_c p_c log p_c) / s`` to within a few 1e-6. Every pixel whose
estimate lies within :data:`ESTIMATE_MARGIN` of a threshold is decided again by
:func:`meta_ood.scores.compute_entropy_map`, i.e. exactly as the reference decides it (its
float32 entropy, re-evaluated with the reference formula within
:data:`meta_ood.scores.DECISION_MARGIN` of a threshold); all other decisions agree with it by
construction.

Probabilities of other dtypes than native float16 / float32 are read as float32, as the
reference reads them. Inputs the bit test cannot vouch for (non-finite, negative or
negative-zero values, all-zero pixels, values above 2**60) take
:func:`meta_ood.scores.compute_entropy_map` on the whole image first, which raises the usual
:class:`~meta_ood.errors.InputError`; valid ones of them are then decided exactly, pixel by pixel.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from meta_ood.scores import DECISION_MARGIN, compute_entropy_map, margin_values, variation_values
from meta_ood.segments.kernels import scan_float16, screen_mask, screen_table, top3

__all__ = ["ESTIMATE_MARGIN", "PixelData", "class_values", "float16_values", "pixel_data", "screen_corners", "top_bits"]

#: Estimated mask entropies closer than this to a threshold are decided exactly. The estimate is
#: within about 1e-5 of the reference's float32 entropy, which is itself re-evaluated within
#: DECISION_MARGIN of a threshold; the rest is slack.
ESTIMATE_MARGIN = DECISION_MARGIN + 2e-4
#: Safety distance of the screening bound below the lowest threshold (normalized entropy units).
_SCREEN_SLACK = 1e-3
#: Octave differences between the top probabilities told apart by :func:`screen_corners`.
_OCTAVES = 32
#: Pixels per chunk of the remaining pixels evaluated together by numpy (its buffers stay in cache).
_CHUNK = 1 << 13
#: The per-pixel maps of :attr:`PixelData.heat`, in the row order of the compiled pass.
HEAT_ROWS = ("E", "D", "V")
#: Float dtypes whose bit patterns are compared directly: (unsigned twin, mantissa bits).
_BIT_TWINS = {np.dtype(np.float16): (np.uint16, 10), np.dtype(np.float32): (np.uint32, 23)}
_F32_EPS = np.float32(np.finfo(np.float32).eps)
_F16_VALUES: dict[type, np.ndarray] = {}


def float16_values(dtype: type) -> np.ndarray:
    """The value of every float16 bit pattern as ``dtype`` (exact; computed once)."""
    if dtype not in _F16_VALUES:
        _F16_VALUES[dtype] = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(dtype)
    return _F16_VALUES[dtype]


def class_values(bits: np.ndarray, dtype: np.dtype, out: np.ndarray) -> np.ndarray:
    """Write the values of validated float16 / float32 bit patterns ``bits`` into ``out``
    (float32 or float64, exact) and return it."""
    if dtype == np.float16:
        np.take(float16_values(out.dtype.type), bits, out=out, mode="clip")
    else:
        np.copyto(out, bits.view(np.float32))
    return out


@dataclass
class PixelData:
    """Candidate pixels of one image and everything per pixel that the segment metrics use.

    ``cand`` are the flat image indices of the non-void pixels that are OoD at the lowest
    threshold, ``lev`` (int8) the highest threshold level whose mask holds each of them and
    ``heat`` maps ``"E"``, ``"D"``, ``"V"`` to their (float32) values there. ``argmax`` is the first maximal class of
    every pixel (H, W); ``bits`` (C, H*W) are the probabilities' bit patterns and ``dtype`` their
    float dtype (float16 or float32), for :func:`class_values`.
    """

    cand: np.ndarray
    lev: np.ndarray
    heat: dict[str, np.ndarray]
    argmax: np.ndarray
    bits: np.ndarray
    dtype: np.dtype


def _index_dtype(num_classes: int) -> type:
    return np.uint8 if num_classes <= 256 else np.uint16


def top_bits(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of a (C, H, W) unsigned array: the largest, second and third largest value
    (ties count repeatedly) and the first index of the largest value (:func:`~.kernels.top3`).

    Applied to the bit patterns of non-negative floats this gives the bit patterns of the three
    largest probabilities and the argmax (uint8 for at most 256 classes, else uint16).
    """
    c, h, w = bits.shape
    flat = np.ascontiguousarray(bits).reshape(c, h * w)
    p1, p2, p3 = (np.empty((h, w), bits.dtype) for _ in range(3))
    arg = np.empty((h, w), _index_dtype(c))
    top3(flat, p1.ravel(), p2.ravel(), p3.ravel(), arg.ravel())
    return p1, p2, p3, arg


def _entr(q: np.ndarray) -> np.ndarray:
    """Binary entropy ``h(q)`` in nats (0 at 0 and 1)."""
    q = np.clip(q, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -q * np.log(q) - (1.0 - q) * np.log1p(-q)
    return np.nan_to_num(out, nan=0.0)


def screen_corners(t_min: float, num_classes: int) -> list[tuple[int, int]]:
    """Octave pairs ``(a, b)`` such that ``p1 >= 2**a * p2`` and ``p1 >= 2**b * p3`` prove a
    normalized entropy below ``t_min`` (by :data:`_SCREEN_SLACK`): the minimal corners of that
    (monotone) region, so a pixel is settled when it passes one of them.

    Two bounds, both increasing in the unknown rest of the distribution; the smaller is used.
    Fano: with ``q1 >= 1 / (1 + (C - 1) 2**-a)``, ``H <= h(q1) + (1 - q1) log(C - 1)``. Grouping:
    the mass beyond the top two is ``R <= (C - 2) p3 / (p1 + p2) <= rho = (C - 2) 2**-b`` and
    ``p1 / (p1 + p2) >= pi = 1 / (1 + 2**-a)``, so
    ``H = h(R) + (1 - R) h(p1 / (p1 + p2)) + R H(rest) <= h(rho) + (1 - rho) h(pi) + rho log(C - 2)``
    as long as rho stays where this bound increases with R.
    """
    c = num_classes
    oct_ = np.arange(_OCTAVES, dtype=np.float64)
    q = 1.0 / (1.0 + (c - 1) * 2.0 ** -oct_)
    fano = _entr(q) + (1.0 - q) * math.log(c - 1) if c > 2 else _entr(q)
    bound = np.broadcast_to(fano[:, None], (_OCTAVES, _OCTAVES)).copy()
    if c > 2:
        rho = (c - 2) * 2.0 ** -oct_[None, :]
        pi = 1.0 / (1.0 + 2.0 ** -oct_[:, None])
        grouped = _entr(rho) + (1.0 - rho) * _entr(pi) + rho * math.log(c - 2)
        valid = rho <= 1.0 / (1.0 + 2.0 / (c - 2)) - 0.01  # the bound increases with R up to here
        bound = np.where(valid, np.minimum(bound, grouped), bound)
    settled = bound / math.log(c) < t_min - _SCREEN_SLACK
    settled &= np.arange(_OCTAVES)[None, :] >= np.arange(_OCTAVES)[:, None]  # p3 <= p2: b >= a
    corners = []
    for a in range(_OCTAVES):
        hits = np.flatnonzero(settled[a])
        if hits.size and (not corners or hits[0] < corners[-1][1]):
            corners.append((a, int(hits[0])))
    return corners


def _screen(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, corners: list[tuple[int, int]],
            mantissa: int, out: np.ndarray) -> None:
    """Clear ``out`` where the octaves between ``p1`` and ``p2`` / ``p3`` (bit patterns) pass a
    corner of :func:`screen_corners`."""
    if corners:
        screen_mask(p1.ravel(), p2.ravel(), p3.ravel(), screen_table(corners, mantissa), mantissa, out.ravel())


class _ChunkBuffers:
    """Buffers for evaluating gathered pixels chunk by chunk; reused, so they stay in cache."""

    def __init__(self, num_classes: int, size: int, uint: type, dtype: np.dtype):
        self.dtype = dtype
        self.bits = np.empty((num_classes, size), uint)
        self.x = np.empty((num_classes, size), np.float32)
        self.y = np.empty((num_classes, size), np.float32)
        self.e = np.empty(size, np.float32)
        self.s = np.empty(size, np.float32)

    def load(self, flat_bits: np.ndarray, ii: np.ndarray) -> np.ndarray:
        """Float32 probabilities (C, size) of the pixels ``ii`` (exactly ``size`` indices)."""
        np.take(flat_bits, ii, axis=1, out=self.bits, mode="clip")
        return class_values(self.bits, self.dtype, self.x)

    def reference_entropy(self, x: np.ndarray) -> np.ndarray:
        """:func:`meta_ood.scores.reference_entropy_values` of ``x`` (the same float32 operations
        in the same order, so the same values)."""
        y, e = self.y, self.e
        np.add(x, _F32_EPS, out=y)
        np.log(y, out=y)
        y *= x
        np.copyto(e, y[0])
        for k in range(1, x.shape[0]):
            e += y[k]
        np.divide(e, np.float32(np.log(1.0 / x.shape[0])), out=e)
        return e

    def prob_sum(self, x: np.ndarray) -> np.ndarray:
        """Per-pixel sum of the class probabilities (float32)."""
        s = self.s
        np.copyto(s, x[0])
        for k in range(1, x.shape[0]):
            s += x[k]
        return s


def _bit_source(probs: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """``probs`` in a dtype of :data:`_BIT_TWINS` with the same float32 values, validated like
    :func:`~meta_ood.scores.compute_entropy_map` validates (which raises for bad input)."""
    dt = probs.dtype
    if dt.kind != "f" or probs.shape[0] < 2:
        compute_entropy_map(probs, levels)  # raises the usual InputError
    if dt in _BIT_TWINS and dt.isnative:
        return probs
    return probs.astype(np.float32)  # the reference reads every value as float32


def _bits_ok(p1: np.ndarray, dtype: np.dtype) -> bool:
    """Whether the largest bit patterns prove finite, non-negative values below 2**60 and a
    positive maximum (so a positive sum) at every pixel."""
    return p1.size == 0 or _top_range_ok(int(p1.min()), int(p1.max()), dtype)


def _top_range_ok(p1_min: int, p1_max: int, dtype: np.dtype) -> bool:
    """:func:`_bits_ok` from the smallest and largest top bit pattern."""
    uint = _BIT_TWINS[dtype][0]
    limit = int(np.array(np.inf, dtype).view(uint))
    if float(np.finfo(dtype).max) > 2.0 ** 60:
        limit = int(np.array(2.0 ** 60, dtype).view(uint))
    return p1_max < limit and p1_min > 0


def _exact_levels(x: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Threshold levels of the float32 pixels ``x`` (C, n), decided like the reference."""
    if x.shape[1] == 0:
        return np.zeros(0, np.int8)
    em = compute_entropy_map(x[:, :, None], levels)
    vals = em.entropy.ravel().astype(np.float64)
    vals[em.near_index] = em.near_value
    return (np.searchsorted(np.asarray(levels), vals, side="right") - 1).astype(np.int8)


def _estimated_levels(s: np.ndarray, e: np.ndarray, num_classes: int,
                      levels: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Threshold levels of pixels with probability sums ``s`` and reference entropies ``e``,
    estimated (-1 below the lowest threshold), and a mask of the pixels whose estimate does not
    settle the level (to be decided exactly).

    The normalized mask entropy ``log(s) - (sum_c p_c log p_c) / s`` is estimated with
    ``sum_c p_c log p_c ~ e * log(1 / C)``; pixels with an estimate within :data:`ESTIMATE_MARGIN`
    of a threshold, or a probability sum outside [0.25, 4], are marked. Float32 throughout: the
    margin is far above float32 rounding.
    """
    c = num_classes
    margin = np.float32(ESTIMATE_MARGIN)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.log(s)
        est -= e * np.float32(np.log(1.0 / c)) / s
        est *= np.float32(1.0 / math.log(c))
    near = ~((s > 0.25) & (s < 4.0))
    sub = np.flatnonzero((est >= np.float32(levels[0]) - margin) | near)
    lev = np.full(s.size, -1, np.int8)
    if sub.size:
        es = est[sub]
        ls = np.full(sub.size, -1, np.int8)
        close = near[sub]
        for t in np.asarray(levels, np.float32):
            ls += es >= t
            close |= np.abs(es - t) < margin
        lev[sub] = ls
        near[sub] = close
    return lev, near


@functools.cache
def _f16_terms() -> np.ndarray:
    """``x * log(x + eps)`` of every float16 bit pattern, in float32 by the reference's operations (computed once)."""
    y = float16_values(np.float32).copy()
    with np.errstate(all="ignore"):
        np.add(y, _F32_EPS, out=y)
        np.log(y, out=y)
        y *= float16_values(np.float32)
    return y


def _chunk_levels(flat: np.ndarray, idx: np.ndarray, dtype: np.dtype, levels: tuple[float, ...], exact: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E, level (estimated, or decided exactly with ``exact``) and the undecided mask of the pixels ``idx``,
    evaluated with numpy in chunks of :data:`_CHUNK` pixels."""
    c = flat.shape[0]
    e_all = np.empty(idx.size, np.float32)
    lev_all = np.empty(idx.size, np.int8)
    near_all = np.zeros(idx.size, bool)
    size = max(1, min(_CHUNK, idx.size))
    buf = _ChunkBuffers(c, size, _BIT_TWINS[dtype][0], dtype)
    for b0 in range(0, idx.size, size):
        ii = idx[b0:b0 + size]
        m = ii.size
        if m < size:  # pad the last chunk with a repeated pixel
            ii = np.concatenate([ii, np.full(size - m, ii[-1])])
        x = buf.load(flat, ii)
        e_all[b0:b0 + m] = buf.reference_entropy(x)[:m]
        if exact:
            lev_all[b0:b0 + m] = _exact_levels(x, levels)[:m]
        else:
            lev, near = _estimated_levels(buf.prob_sum(x), buf.e, c, levels)
            lev_all[b0:b0 + m], near_all[b0:b0 + m] = lev[:m], near[:m]
    return e_all, lev_all, near_all


def _scan_float16(bits: np.ndarray, void: np.ndarray, levels: tuple[float, ...]) -> PixelData | None:
    """:func:`_scan` of float16 bit patterns without ``exact``, in one compiled pass
    (:func:`~meta_ood.segments.kernels.scan_float16`)."""
    c, h, w = bits.shape
    flat = np.ascontiguousarray(bits).reshape(c, h * w)
    room = int(void.size - np.count_nonzero(void))  # untouched room costs no memory
    argmax = np.empty((h, w), _index_dtype(c))
    cand, undecided = np.empty(room, np.int64), np.empty(room, np.int64)
    lev = np.empty(room, np.int8)
    heat, heat_u = np.empty((3, room), np.float32), np.empty((3, room), np.float32)
    n, n_u, p1_min, p1_max = scan_float16(
        flat, np.ascontiguousarray(void).reshape(-1), screen_table(screen_corners(levels[0], c), 10),
        float16_values(np.float32), _f16_terms(), np.float32(np.log(1.0 / c)), np.float32(1.0 / math.log(c)),
        np.asarray(levels, np.float32), np.float32(ESTIMATE_MARGIN), argmax.reshape(-1), cand, lev, heat,
        undecided, heat_u)
    if h * w and not _top_range_ok(p1_min, p1_max, np.dtype(np.float16)):
        return None
    cand, lev, heat = cand[:n], lev[:n], heat[:, :n]
    if n_u:
        ii = undecided[:n_u]
        x = class_values(np.take(flat, ii, axis=1), np.dtype(np.float16), np.empty((c, n_u), np.float32))
        lev_u = _exact_levels(x, levels)
        ok = np.flatnonzero(lev_u >= 0)
        cand, lev = np.concatenate([cand, ii[ok]]), np.concatenate([lev, lev_u[ok]])
        heat = np.concatenate([heat, heat_u[:, ok]], axis=1)
    return PixelData(cand=cand, lev=lev, heat=dict(zip(HEAT_ROWS, heat)), argmax=argmax, bits=flat,
                     dtype=np.dtype(np.float16))


def _scan(bits: np.ndarray, dtype: np.dtype, void: np.ndarray, levels: tuple[float, ...],
          exact: bool) -> PixelData | None:
    """Top values and screening of all pixels (bit patterns (C, H, W)), then the evaluation of
    the remaining ones. None if the bits cannot vouch for the values (only without ``exact``,
    where every non-void pixel is decided exactly)."""
    if dtype == np.float16 and not exact:
        return _scan_float16(bits, void, levels)
    c, h, w = bits.shape
    mantissa = _BIT_TWINS[dtype][1]
    p1, p2, p3, argmax = top_bits(bits)
    if not exact and not _bits_ok(p1, dtype):
        return None
    possible = ~void
    if not exact:
        _screen(p1, p2, p3, screen_corners(levels[0], c), mantissa, possible)
    idx = np.flatnonzero(possible)
    del possible, p3
    flat = bits.reshape(c, -1)

    # E and the estimated (or exact) level of the remaining pixels; the undecided ones are decided exactly
    e, lev, near = _chunk_levels(flat, idx, dtype, levels, exact)
    keep = np.flatnonzero((lev >= 0) & ~near)
    undecided = np.flatnonzero(near)
    cand_parts, lev_parts, e_parts = [idx[keep]], [lev[keep]], [e[keep]]
    if undecided.size:
        ii = idx[undecided]
        x = class_values(np.take(flat, ii, axis=1), dtype, np.empty((c, ii.size), np.float32))
        lev_u = _exact_levels(x, levels)
        ok = np.flatnonzero(lev_u >= 0)
        cand_parts.append(ii[ok])
        lev_parts.append(lev_u[ok])
        e_parts.append(e[undecided[ok]])
    cand = np.concatenate(cand_parts)
    lev = np.concatenate(lev_parts)
    e = np.concatenate(e_parts)

    p1c = class_values(p1.ravel()[cand], dtype, np.empty(cand.size, np.float32))
    p2c = class_values(p2.ravel()[cand], dtype, np.empty(cand.size, np.float32))
    heat = {
        "E": e,
        "D": margin_values(p1c, p2c),
        "V": variation_values(p1c),
    }
    return PixelData(cand=cand, lev=lev, heat=heat, argmax=argmax, bits=flat, dtype=dtype)


def pixel_data(probs: np.ndarray, void: np.ndarray, levels: tuple[float, ...]) -> PixelData:
    """Candidates, levels and per-pixel maps of one image (see the module docstring).

    ``probs`` is the (C, H, W) softmax, ``void`` the (H, W) void mask and ``levels`` the ascending
    thresholds. Raises :class:`~meta_ood.errors.InputError` for probabilities the reference
    rejects. The candidates come in row-major order by blocks of rows, those whose level needed
    the exact decision last.
    """
    src = _bit_source(probs, levels)
    uint = _BIT_TWINS[src.dtype][0]
    data = _scan(src.view(uint), src.dtype, void, levels, exact=False)
    if data is None:
        compute_entropy_map(src, levels)  # raises the usual InputError for invalid values
        src = src + src.dtype.type(0)  # valid after all: only -0.0 can remain, make it +0.0
        data = _scan(src.view(uint), src.dtype, void, levels, exact=True)
    return data
