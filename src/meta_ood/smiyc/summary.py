"""One compact summary per frame: the distinct ROI scores and their anomaly / non-anomaly counts.

Every pixel quantity of both protocols is a function of how many anomaly and non-anomaly pixels
hold each score value, so one pass over a frame reduces it to a :class:`FrameSummary` (at most
65,536 entries for float16 maps, the benchmark's file format: one ``np.bincount`` of the bit
patterns, no sort; float32 maps: ``np.unique`` per class). From it follow, without touching the
pixels again:

* the official percentile edges (:func:`official_quantiles` reproduces ``np.quantile``'s linear
  interpolation between order statistics as numpy 1.23, the official pin, computes it: the
  difference of the two order statistics in the map's dtype, the rest in float64) and the
  counts of ``np.histogram`` over any edges (:meth:`FrameSummary.histogram`);
* the exact pooled counts (:meth:`FrameSummary.codes`).

:func:`comparison_threshold` gives the value ``scores > threshold`` compares with under the
official code's numpy 1.x promotion rules (in the map's dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meta_ood.errors import InputError
from meta_ood.pixel_eval.encoding import dequantize, quantize

__all__ = ["VOID", "FrameSummary", "code_summary", "comparison_threshold", "greater", "official_quantiles", "roi_rows", "summarize"]

#: Label of void pixels (ignored everywhere); 0 = not anomaly, 1 = anomaly.
VOID = 255
_F16_SIGN = 0x8000
_F16_CODES = np.arange(1 << 16, dtype=np.uint32)
# The float16 bit pattern of every order code (code order = value order): code c < 0x8000 holds
# pattern ~c (negative values), else c & 0x7FFF; and its value.
_F16_PATTERN = np.where(_F16_CODES >= _F16_SIGN, _F16_CODES & 0x7FFF, ~_F16_CODES & 0xFFFF).astype(np.intp)
_F16_BY_CODE = _F16_PATTERN.astype(np.uint16).view(np.float16).astype(np.float64)
#: The float16 NaN bit patterns.
_F16_NAN_PATTERNS = np.flatnonzero((np.arange(1 << 16) & 0x7FFF) > 0x7C00)
#: Label -> class (0, 1, 2 = void, 3 = invalid) and -> ``class << 16`` (the count's key).
_CLASS_OF_LABEL = np.full(256, 3, np.uint8)
_CLASS_OF_LABEL[[0, 1, VOID]] = [0, 1, 2]
_KEY_OF_LABEL = _CLASS_OF_LABEL.astype(np.uint32) << 16


@dataclass(frozen=True)
class FrameSummary:
    """Distinct ROI score ``values`` (ascending, float64, exact copies of the map's values) with
    the number of anomaly (``pos``) and non-anomaly (``neg``) pixels holding each; ``dtype`` is
    the score map's dtype (the official code computes in it)."""

    values: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    dtype: np.dtype

    @property
    def num_pos(self) -> int:
        """Anomaly pixels in the ROI."""
        return int(self.pos.sum())

    @property
    def num_neg(self) -> int:
        """Non-anomaly pixels in the ROI."""
        return int(self.neg.sum())

    def histogram(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(anomaly, non-anomaly) counts of ``np.histogram(x, bins=edges)`` for ascending float64
        ``edges``: bin j holds ``edges[j] <= x < edges[j + 1]``, the last bin also ``x == edges[-1]``."""
        lo = np.searchsorted(self.values, edges[:-1], side="left")
        hi = np.searchsorted(self.values, edges[-1:], side="right")
        cut = np.concatenate((lo, hi))
        out = []
        for counts in (self.pos, self.neg):
            cum = np.concatenate(([0], np.cumsum(counts)))
            out.append(np.diff(cum[cut]).astype(np.int64))
        return out[0], out[1]

    def codes(self, bits: int, encoding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bins, pos, neg) of the exact protocol's histogram: the distinct bins of
        :func:`~meta_ood.pixel_eval.encoding.quantize` of the values, with summed counts."""
        bins = quantize(self.values, bits, encoding).astype(np.int64)
        if bins.size == 0:
            return bins, self.pos.copy(), self.neg.copy()
        start = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # quantize keeps the order
        return bins[start], np.add.reduceat(self.pos, start), np.add.reduceat(self.neg, start)


def roi_rows(labels: np.ndarray) -> slice:
    """The rows from the first to the last one holding a non-void pixel of ``labels`` (empty when
    all is void): everything the evaluation looks at lies in this contiguous band."""
    if labels.dtype == np.uint8:  # non-void somewhere <=> the row's minimum is below 255
        holds = labels.min(axis=1, initial=VOID) != VOID
    else:
        holds = (labels != VOID).any(axis=1)
    rows = np.flatnonzero(holds)
    return slice(int(rows[0]), int(rows[-1]) + 1) if rows.size else slice(0, 0)


def _check_frame(scores: np.ndarray, labels: np.ndarray, where: str) -> None:
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise InputError(f"{where}: scores {scores.shape} and labels {labels.shape}: expected equal (H, W) shapes")
    if scores.dtype.kind != "f":
        raise InputError(f"{where}: scores of dtype {scores.dtype}: expected floating point anomaly scores")
    if labels.dtype.kind not in "iub":
        raise InputError(f"{where}: labels of dtype {labels.dtype}: expected integer labels 0, 1 or {VOID}")


def _label_classes(labels: np.ndarray) -> np.ndarray:
    """0 / 1 / 2 (void) / 3 (any other label) per pixel (uint8)."""
    if labels.dtype == np.uint8:
        return np.take(_CLASS_OF_LABEL, labels)
    classes = np.full(labels.shape, 3, np.uint8)
    for label, cls in ((0, 0), (1, 1), (VOID, 2)):
        classes[labels == label] = cls
    return classes


def _label_error(labels: np.ndarray, where: str) -> InputError:
    bad = np.unique(labels[_label_classes(labels) == 3])[:5].tolist()
    return InputError(f"{where}: labels contain {bad}: expected 0, 1 or {VOID}")


def _nan_error(where: str, n: int) -> InputError:
    return InputError(f"{where}: scores contain {n} NaN value(s): expected real anomaly scores (+-inf allowed)")


def _f16_nan_outside(bits: np.ndarray, rows: slice) -> int:
    """NaN bit patterns of a float16 map outside the band ``rows``."""
    return sum(int(np.count_nonzero((part & 0x7FFF) > 0x7C00)) for part in (bits[: rows.start], bits[rows.stop :]))


def _summary_float16(scores: np.ndarray, labels: np.ndarray, where: str) -> FrameSummary:
    # one count per (label class, bit pattern) in the rows holding the ROI (all void around them):
    # uint8 labels map to ``class << 16`` by a table
    rows = roi_rows(labels)
    bits, inner = scores.view(np.uint16), labels[rows]
    key = (np.take(_KEY_OF_LABEL, inner) if inner.dtype == np.uint8
           else np.left_shift(_label_classes(inner), 16, dtype=np.uint32))
    key |= bits[rows]
    counts = np.bincount(key.reshape(-1), minlength=4 << 16).reshape(4, 1 << 16)
    del key
    if counts[3].any():
        raise _label_error(labels, where)
    n_nan = int(counts[:3, _F16_NAN_PATTERNS].sum()) + _f16_nan_outside(bits, rows)
    if n_nan:
        raise _nan_error(where, n_nan)
    neg, pos = counts[0, _F16_PATTERN], counts[1, _F16_PATTERN]  # bit-pattern order -> value order
    nz = np.flatnonzero(neg | pos)
    values = _F16_BY_CODE[nz]
    neg, pos = neg[nz], pos[nz]
    if values.size > 1 and (values[1:] == values[:-1]).any():  # -0 and +0: one value
        start = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        values, neg, pos = values[start], np.add.reduceat(neg, start), np.add.reduceat(pos, start)
    return FrameSummary(values, pos.astype(np.int64), neg.astype(np.int64), np.dtype(np.float16))


def _summary_sorted(scores: np.ndarray, labels: np.ndarray, where: str) -> FrameSummary:
    classes = _label_classes(labels)
    if (classes == 3).any():
        raise _label_error(labels, where)
    n_nan = int(np.count_nonzero(np.isnan(scores)))
    if n_nan:
        raise _nan_error(where, n_nan)
    parts = [np.unique(scores[classes == c].astype(np.float64), return_counts=True) for c in (1, 0)]
    values = np.union1d(parts[0][0], parts[1][0])
    counts = []
    for v, n in parts:
        full = np.zeros(values.size, np.int64)
        full[np.searchsorted(values, v)] = n
        counts.append(full)
    return FrameSummary(values, counts[0], counts[1], scores.dtype)


def summarize(scores: np.ndarray, labels: np.ndarray, where: str = "frame") -> FrameSummary:
    """The :class:`FrameSummary` of one frame (labels 0 / 1 / :data:`VOID`), after checking its
    inputs once: equal (H, W) shapes, a floating point map without NaN (void included), labels 0,
    1 or 255."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    _check_frame(scores, labels, where)
    if not scores.dtype.isnative:
        scores = scores.astype(scores.dtype.newbyteorder("="))
    if scores.dtype == np.float16:
        return _summary_float16(scores, labels, where)
    return _summary_sorted(scores, labels, where)


def code_summary(codes: np.ndarray, labels: np.ndarray, in_id: int, out_id: int, encoding: str) -> FrameSummary:
    """The :class:`FrameSummary` of one image of a softmax store: ``codes`` (H, W) are the 16-bit bins
    of the pixel histogram's ``encoding`` (as the store keeps the scores), pixels labelled ``out_id``
    are anomalies, ``in_id`` not, all others void. Its values are the scores the codes stand for in
    the dtype a score file of them would hold (float16 for the "float16" encoding, else float32)."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    if codes.dtype != np.uint16 or codes.shape != labels.shape:
        raise InputError(f"codes {codes.dtype} {codes.shape}, labels {labels.shape}: expected uint16 codes of the "
                         "labels' shape")
    key = np.full(labels.shape, 2 << 16, np.uint32)
    key[labels == in_id] = 0
    key[labels == out_id] = 1 << 16
    key |= codes
    counts = np.bincount(key.reshape(-1), minlength=3 << 16).reshape(3, 1 << 16)
    nz = np.flatnonzero(counts[0] | counts[1])
    dtype = np.dtype(np.float16 if encoding == "float16" else np.float32)
    values = dequantize(nz, 16, encoding).astype(dtype).astype(np.float64)  # code order is value order
    return FrameSummary(values, counts[1, nz].astype(np.int64), counts[0, nz].astype(np.int64), dtype)


def _order_statistics(values: np.ndarray, counts: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The k-th smallest (0-based) of the multiset ``values`` x ``counts``."""
    return values[np.searchsorted(np.cumsum(counts), k, side="right")]


def official_quantiles(values: np.ndarray, counts: np.ndarray, q: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``np.quantile(x, q)`` (method "linear") of the multiset ``values`` x ``counts`` of a map of
    ``dtype``, with numpy 1.23's arithmetic: virtual index ``(n - 1) q``, neighbours clipped to the
    last element, ``a + (b - a) g`` (``b - (b - a)(1 - g)`` for ``g >= 0.5``), ``b - a`` in ``dtype``."""
    n = int(counts.sum())
    virtual = (n - 1) * np.asarray(q, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above], nxt[above] = -1, -1
    below = virtual < 0
    prev[below], nxt[below] = 0, 0
    prev_i, nxt_i = prev.astype(np.intp), nxt.astype(np.intp)
    gamma = virtual - prev_i
    a = _order_statistics(values, counts, np.where(prev_i < 0, n + prev_i, prev_i)).astype(dtype)
    b = _order_statistics(values, counts, np.where(nxt_i < 0, n + nxt_i, nxt_i)).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.subtract(b, a)
        out = np.add(a, diff * gamma)
        np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def comparison_threshold(threshold: float, dtype: np.dtype) -> np.generic:
    """``threshold`` as the official ``anomaly_p > threshold`` sees it under numpy 1.x value-based
    casting: a scalar within the map dtype's range (or +-inf) is converted to that dtype, a larger
    one to the smallest float type that holds it."""
    t = float(threshold)
    for kind in (np.dtype(dtype), np.dtype(np.float32), np.dtype(np.float64)):
        if kind.itemsize < np.dtype(dtype).itemsize:
            continue
        if not np.isfinite(t) or abs(t) <= float(np.finfo(kind).max):
            return kind.type(t)
    return np.float64(t)


_SIGNED_TWIN = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32}


def greater(scores: np.ndarray, threshold: np.generic) -> np.ndarray:
    """``scores > threshold``, exactly. For a positive finite ``threshold`` of the map's own dtype it
    compares the bit patterns as signed integers (positive floats are ordered like their patterns,
    negative ones and -0.0 have the sign bit set), several times faster than float16 arithmetic;
    NaN scores, which the evaluation refuses, would count as greater there."""
    scores = np.asarray(scores)
    twin = _SIGNED_TWIN.get(scores.dtype)
    if (twin is not None and scores.dtype.isnative and isinstance(threshold, scores.dtype.type)
            and 0 < threshold < np.inf):
        return scores.view(twin) > np.asarray(threshold).view(twin)
    return scores > threshold
