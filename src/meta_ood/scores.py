"""Per-pixel dispersion maps computed from softmax probabilities or logits.

All functions take a class-first array ``(C, H, W)`` of any floating dtype (float16 stores
included) and return a ``float32`` map ``(H, W)``. Work is done in blocks of image rows so that
no ``(C, H, W)`` temporaries in float32 or float64 are allocated for large images; float16 input
is cast block by block.

Two entropies are provided, because the released reference implementation uses two:

* :func:`normalized_entropy` -- ``-sum_c p_c log p_c / log C`` after renormalizing every pixel
  to sum 1 (as ``scipy.stats.entropy`` does). This is the OoD score of the paper (eq. 7), and
  :func:`entropy_mask` thresholds it to obtain the predicted OoD pixels.
* :func:`reference_entropy` -- the reference's metric map
  ``E = sum_c p_c log(p_c + eps) / log(1/C)`` in float32 (``eps`` = float32 machine epsilon),
  the input of the ``E*`` segment metrics. It is slightly negative for one-hot pixels and
  slightly below 1 for uniform ones.

Score convention: every scorer in :data:`SCORERS` returns a map where HIGHER means MORE
anomalous (more likely out-of-distribution). The raw "maximum softmax probability" is available
as :func:`msp` (higher = more confident), while the scorer registered under ``"msp"`` is
``1 - msp`` (which coincides with the variation ratio, the name used in the paper's
meta-classification features); ``"max_logit"`` is the negated maximum logit and ``"energy"`` is
the free energy ``-T logsumexp(logits / T)``. The first four lie in [0, 1]
(:data:`UNIT_INTERVAL_SCORERS`); the logit scorers are unbounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
from scipy import special

from meta_ood.errors import InputError

__all__ = [
    "EntropyMap",
    "as_float32",
    "LOGIT_SCORERS",
    "SCORERS",
    "UNIT_INTERVAL_SCORERS",
    "compute_entropy_map",
    "energy",
    "entropy_mask",
    "margin_values",
    "max_logit",
    "msp",
    "normalized_entropy",
    "probability_margin",
    "reference_entropy",
    "reference_entropy_values",
    "top2",
    "variation_ratio",
    "variation_values",
]

_F32_TINY = np.float32(np.finfo(np.float32).tiny)
_F32_EPS = np.float32(np.finfo(np.float32).eps)

#: Float32 entropies closer than this to a threshold are re-decided with the reference formula.
#: The fast float32 evaluation differs from the reference value by well under 1e-6.
DECISION_MARGIN = 1e-4

#: Target number of float32 values per processed block (about 1 MiB).
_BLOCK_VALUES = 1 << 18


def _check_class_first(arr: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a (C, H, W) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name}: expected a floating point array, got dtype {arr.dtype}")
    if arr.shape[0] < 2:
        raise InputError(f"{name}: expected at least 2 classes on axis 0, got shape {arr.shape}")
    return arr


_F16_SCALE = np.float32(2.0 ** 112)
_F16_SPECIAL = 0x7C00  # float16 bit patterns >= this are inf / nan or carry the sign bit


def _f16_to_f32(src: np.ndarray, dst: np.ndarray) -> None:
    """Exact float16 -> float32 conversion into ``dst`` by bit manipulation.

    Shifting the 15 magnitude bits of a float16 into place gives a float32 whose exponent is
    off by 127 - 15 = 112, for normal and subnormal numbers alike; one multiplication by
    2**112 fixes it. This is several times faster than numpy's float16 cast. Arrays with
    negative, infinite or NaN entries take numpy's cast so that they are reported faithfully.
    """
    bits = src.view(np.uint16)
    if bits.size == 0 or int(bits.max()) >= _F16_SPECIAL:
        np.copyto(dst, src, casting="unsafe")
        return
    u = dst.view(np.uint32)
    np.copyto(u, bits, casting="unsafe")
    np.left_shift(u, 13, out=u)
    np.multiply(dst, _F16_SCALE, out=dst)


def as_float32(arr: np.ndarray) -> np.ndarray:
    """``arr`` as a float32 array (no copy if it already is one); fast path for float16."""
    arr = np.asarray(arr)
    if arr.dtype == np.float32:
        return arr
    if arr.dtype == np.float16 and arr.dtype.isnative:
        out = np.empty(arr.shape, np.float32)
        _f16_to_f32(arr, out)
        return out
    return arr.astype(np.float32)


def _row_blocks(arr: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Consecutive blocks of rows of a (C, H, W) array: ``(rows, x, scratch)``.

    ``x`` is the block cast to float32 (C, n, W) and ``scratch`` a float32 buffer of the same
    shape; both reuse the same memory from block to block, so callers may overwrite them.
    """
    c, h, w = arr.shape
    step = max(1, _BLOCK_VALUES // max(1, c * w))
    xbuf = np.empty((c, min(step, h), w), np.float32)
    ybuf = np.empty_like(xbuf)
    for r0 in range(0, h, step):
        rows = slice(r0, min(h, r0 + step))
        n = rows.stop - rows.start
        x = xbuf[:, :n]
        src = arr[:, rows]
        if src.dtype == np.float16 and src.dtype.isnative:
            _f16_to_f32(src, x)
        else:
            np.copyto(x, src, casting="unsafe")
        yield rows, x, ybuf[:, :n]


def _blocked_map(arr: np.ndarray, fn: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> np.ndarray:
    """Float32 (H, W) map of a (C, H, W) array, block by block of rows.

    ``fn(x, scratch, out)`` writes the map of the float32 block ``x`` (C, n, W) into ``out``
    (n, W); it may overwrite ``x`` and ``scratch`` (see :func:`_row_blocks`).
    """
    out = np.empty(arr.shape[1:], np.float32)
    for rows, x, scratch in _row_blocks(arr):
        fn(x, scratch, out[rows])
    return out


def _plane_sum(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Sum over the class axis, adding the class planes in order 0, 1, ..., C-1."""
    if out is None:
        out = x[0].copy()
    else:
        np.copyto(out, x[0])
    for c in range(1, x.shape[0]):
        out += x[c]
    return out


def _entropy_block(x: np.ndarray, y: np.ndarray, log_c: float) -> tuple[np.ndarray, np.ndarray]:
    """Renormalized normalized entropy (float32) and the per-pixel probability sums of a block."""
    np.maximum(x, _F32_TINY, out=y)
    np.log(y, out=y)
    y *= x
    plogp = _plane_sum(y)
    total = _plane_sum(x)
    # -sum (p/s) log(p/s) = log s - (sum p log p) / s
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.log(total) - plogp / total
    ent *= np.float32(1.0 / log_c)
    return ent, total


def _index_dtype(num_classes: int) -> type:
    return np.uint8 if num_classes <= 256 else np.uint16


def _argmax_block(x: np.ndarray) -> np.ndarray:
    """First maximal class per pixel (same tie rule as ``np.argmax``), uint8 for <= 256 classes."""
    best = x[0].copy()
    dtype = _index_dtype(x.shape[0])
    idx = np.zeros(best.shape, dtype)
    greater = np.empty(best.shape, bool)
    for c in range(1, x.shape[0]):
        np.greater(x[c], best, out=greater)
        np.copyto(idx, dtype(c), where=greater)
        np.maximum(best, x[c], out=best)
    return idx


def _reference_mask_entropy(p: np.ndarray) -> np.ndarray:
    """The reference's mask entropy ``scipy.stats.entropy(p) / log(C)`` for float32 ``p`` (C, n).

    Evaluated like the reference: renormalization, ``entr`` and the class sum in float32 (the
    class sum adds the planes in order), the division by ``log(C)`` in float64.
    """
    p = np.asarray(p, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        pk = p / _plane_sum(p)[None]
    s = _plane_sum(special.entr(pk))
    return s.astype(np.float64) / np.log(p.shape[0])


@dataclass
class EntropyMap:
    """Normalized entropy of every pixel plus exact threshold decisions.

    ``entropy`` is the float32 normalized entropy. Pixels whose float32 value lies within
    :data:`DECISION_MARGIN` of one of ``thresholds`` were re-evaluated with the reference
    formula; their flat indices and values are ``near_index`` / ``near_value``. :meth:`mask`
    therefore reproduces the reference's ``entropy >= t`` decision for those thresholds.
    ``argmax`` (first maximal class, uint8) is filled when requested.
    """

    entropy: np.ndarray
    thresholds: tuple[float, ...]
    near_index: np.ndarray
    near_value: np.ndarray
    argmax: np.ndarray | None = None

    def mask(self, t: float) -> np.ndarray:
        """Boolean map ``entropy >= t`` for one of the thresholds given at construction."""
        t = float(t)
        if t not in self.thresholds:
            raise ValueError(f"threshold {t} was not requested when the entropy map was built "
                             f"(available: {self.thresholds})")
        m = self.entropy >= np.float64(t)
        if self.near_index.size:
            m.ravel()[self.near_index] = self.near_value >= t
        return m


def compute_entropy_map(probs: np.ndarray, thresholds: Iterable[float] = (),
                        with_argmax: bool = False, name: str = "probs") -> EntropyMap:
    """One blocked pass over ``probs`` computing the normalized entropy (and the argmax).

    Raises :class:`InputError` for a wrong shape or dtype, non-finite or negative values.
    """
    probs = _check_class_first(probs, name)
    c, h, w = probs.shape
    ts = tuple(sorted({float(t) for t in thresholds}))
    tarr = np.asarray(ts, np.float32)
    if ts:
        lo_bound = np.float32(ts[0] - DECISION_MARGIN)
        hi_bound = np.float32(ts[-1] + DECISION_MARGIN)
    log_c = math.log(c)
    ent = np.empty((h, w), np.float32)
    amax = np.empty((h, w), _index_dtype(c)) if with_argmax else None
    near_idx: list[np.ndarray] = []
    near_val: list[np.ndarray] = []
    for rows, x, scratch in _row_blocks(probs):
        e, total = _entropy_block(x, scratch, log_c)
        if not np.isfinite(total).all():
            bad = np.argwhere(~np.isfinite(total))[0]
            raise InputError(f"{name}: non-finite probability at pixel (row {rows.start + bad[0]}, "
                             f"column {bad[1]}); expected finite softmax probabilities")
        if not (total > 0).all():
            bad = np.argwhere(~(total > 0))[0]
            raise InputError(f"{name}: the class probabilities of pixel (row {rows.start + bad[0]}, "
                             f"column {bad[1]}) sum to {float(total[tuple(bad)])}; expected softmax "
                             f"probabilities summing to 1")
        if x.min() < 0:
            raise InputError(f"{name}: negative probability in rows {rows.start}..{rows.stop - 1}; "
                             f"expected softmax probabilities in [0, 1]")
        ent[rows] = e
        if amax is not None:
            amax[rows] = _argmax_block(x)
        if ts:
            # pixels within the margin of a threshold; cheap pre-selection of the range first
            e_flat = e.ravel()
            local = np.flatnonzero((e_flat > lo_bound) & (e_flat < hi_bound))
            if local.size:
                ev = e_flat[local]
                pos = np.searchsorted(tarr, ev)
                lo = tarr[np.maximum(pos - 1, 0)]
                hi = tarr[np.minimum(pos, len(ts) - 1)]
                local = local[(np.abs(ev - lo) < DECISION_MARGIN) | (np.abs(ev - hi) < DECISION_MARGIN)]
            if local.size:
                near_idx.append(local + rows.start * w)
                near_val.append(_reference_mask_entropy(x.reshape(c, -1)[:, local]))
    return EntropyMap(
        entropy=ent,
        thresholds=ts,
        near_index=np.concatenate(near_idx) if near_idx else np.zeros(0, np.intp),
        near_value=np.concatenate(near_val) if near_val else np.zeros(0, np.float64),
        argmax=amax,
    )


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Normalized entropy ``-sum_c p_c log p_c / log C`` in [0, 1], float32 (H, W).

    Each pixel is first renormalized to sum 1 (as ``scipy.stats.entropy`` does); this matters
    for float16 stores whose class sums deviate from 1 by up to about 1e-3. ``0 log 0 = 0``.
    """
    return compute_entropy_map(probs).entropy


def entropy_mask(probs: np.ndarray, t: float) -> np.ndarray:
    """Predicted OoD pixels ``normalized_entropy >= t`` (bool (H, W)), as the reference decides.

    The reference computes ``scipy.stats.entropy(probs) / log(C)``. Here the entropy is
    evaluated in float32 and every pixel within :data:`DECISION_MARGIN` of ``t`` is re-evaluated
    with exactly the reference's formula, so the decision equals the reference's for float32
    input. Void pixels are not removed here.
    """
    return compute_entropy_map(probs, (t,)).mask(t)


def _reference_entropy_block(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """Write ``sum_c x_c log(x_c + eps) / log(1/C)`` of float32 ``x`` (C, ...) into ``out``, using
    the buffer ``y`` (shape of ``x``); float32 throughout, class planes added in order."""
    np.add(x, _F32_EPS, out=y)
    np.log(y, out=y)
    y *= x
    np.divide(_plane_sum(y), np.float32(np.log(1.0 / x.shape[0])), out=out)


def reference_entropy(probs: np.ndarray) -> np.ndarray:
    """The reference's entropy heat map ``sum_c p_c log(p_c + eps) / log(1/C)``, float32 (H, W).

    ``eps`` is the float32 machine epsilon; the sum over classes adds the class planes in order
    and all arithmetic is float32, as in the reference. No renormalization.
    """
    return _blocked_map(_check_class_first(probs, "probs"), _reference_entropy_block)


def reference_entropy_values(p: np.ndarray) -> np.ndarray:
    """:func:`reference_entropy` for a (C, n) array of pixels (float32 result, length n)."""
    p = as_float32(p)
    c, n = p.shape
    out = np.empty(n, np.float32)
    step = max(1, _BLOCK_VALUES // c)
    buf = np.empty((c, min(step, n)), np.float32)
    for s in range(0, n, step):
        x = p[:, s:s + step]
        _reference_entropy_block(x, buf[:, :x.shape[1]], out[s:s + step])
    return out


def top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest value, second largest value (ties count twice) and first argmax over axis 0.

    ``p`` is (C, ...) and is read as float32; the returned values are float32 and the argmax
    is uint8 (uint16 for more than 256 classes).
    """
    p = np.asarray(p)
    first = np.asarray(p[0], np.float32).copy()
    second = np.full(first.shape, -np.inf, np.float32)
    dtype = _index_dtype(p.shape[0])
    idx = np.zeros(first.shape, dtype)
    greater = np.empty(first.shape, bool)
    for c in range(1, p.shape[0]):
        v = np.asarray(p[c], np.float32)
        np.greater(v, first, out=greater)
        # the new second largest is max(second, min(first, v))
        np.maximum(second, np.minimum(first, v), out=second)
        np.copyto(idx, dtype(c), where=greater)
        np.maximum(first, v, out=first)
    return first, second, idx


def _blocked_top2_map(probs: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Float32 (H, W) map ``fn(p1, p2)`` of the two largest class probabilities of every pixel."""

    def block(x: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> None:
        p1, p2, _ = top2(x)
        out[...] = fn(p1, p2)

    return _blocked_map(_check_class_first(probs, "probs"), block)


def margin_values(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """``float32(1 - p1 + p2)`` evaluated in float64 and rounded once (the reference's ``D``)."""
    return ((1.0 - p1.astype(np.float64)) + p2).astype(np.float32)


def variation_values(p1: np.ndarray) -> np.ndarray:
    """``float32(1 - p1)`` evaluated in float64 and rounded once (the reference's ``V``)."""
    return (1.0 - p1.astype(np.float64)).astype(np.float32)


def variation_ratio(probs: np.ndarray) -> np.ndarray:
    """Variation ratio ``1 - max_c p_c`` (float32 (H, W)); higher = more anomalous."""
    return _blocked_top2_map(probs, lambda p1, p2: variation_values(p1))


def probability_margin(probs: np.ndarray) -> np.ndarray:
    """Probability margin ``1 - p_(1) + p_(2)`` (float32 (H, W)); higher = more anomalous.

    ``p_(1) >= p_(2)`` are the two largest class probabilities (equal on ties).
    """
    return _blocked_top2_map(probs, margin_values)


def msp(probs: np.ndarray) -> np.ndarray:
    """Maximum softmax probability ``max_c p_c`` (float32 (H, W)); higher = more confident.

    Note the direction: the scorer registered as ``SCORERS["msp"]`` is ``1 - msp``.
    """
    return _blocked_top2_map(probs, lambda p1, p2: p1.copy())


def _one_minus_msp(probs: np.ndarray) -> np.ndarray:
    """``1 - max_c p_c``: the maximum softmax probability oriented as an anomaly score."""
    return variation_ratio(probs)


def max_logit(logits: np.ndarray) -> np.ndarray:
    """Negated maximum logit ``-max_c l_c`` (float32 (H, W)); higher = more anomalous."""

    def block(x: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> None:
        np.negative(np.max(x, axis=0), out=out)

    return _blocked_map(_check_class_first(logits, "logits"), block)


def energy(logits: np.ndarray, T: float = 1.0) -> np.ndarray:
    """Free energy ``-T logsumexp(logits / T)`` over classes (float32 (H, W)).

    In-distribution pixels have a large log-sum-exp and therefore a low energy, so higher
    means more anomalous.
    """
    logits = _check_class_first(logits, "logits")
    if not (T > 0 and math.isfinite(T)):
        raise InputError(f"energy: temperature T must be a positive finite number, got {T!r}")
    inv_t = np.float32(1.0 / T)

    def block(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
        x *= inv_t
        m = np.max(x, axis=0)
        np.subtract(x, m[None], out=y)
        np.exp(y, out=y)
        lse = np.log(_plane_sum(y)) + m
        np.multiply(lse, np.float32(-T), out=out)

    return _blocked_map(logits, block)


#: Pixel-wise OoD scorers, name -> function of a (C, H, W) array; higher = more anomalous.
SCORERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "entropy": normalized_entropy,
    "variation_ratio": variation_ratio,
    "margin": probability_margin,
    "msp": _one_minus_msp,
    "max_logit": max_logit,
    "energy": energy,
}

#: Names in :data:`SCORERS` that take logits instead of softmax probabilities.
LOGIT_SCORERS: frozenset[str] = frozenset({"max_logit", "energy"})

#: Names in :data:`SCORERS` whose scores lie in [0, 1] (up to float32 rounding). The others
#: (negated max logit, free energy) are unbounded and take the pixel evaluation's float16
#: histogram encoding (:func:`meta_ood.pixel_eval.score_encoding`).
UNIT_INTERVAL_SCORERS: frozenset[str] = frozenset({"entropy", "variation_ratio", "margin", "msp"})
