"""Per-class score densities and quantiles of a :class:`PooledHistogram`, for violin plots (figure 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.pixel_eval.histogram import PooledHistogram

__all__ = ["score_histogram_for_violin"]


def _hist_quantiles(counts: np.ndarray, values: np.ndarray, qs: Sequence[float]) -> dict[float, float]:
    """Quantiles of the binned data with numpy's ``method='inverted_cdf'``: the smallest value v
    with (number of pixels <= v) >= q * n."""
    n = int(counts.sum())
    cum = np.cumsum(counts)
    out = {}
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise InputError(f"quantile {q}: expected a value in [0, 1]")
        if n == 0:
            out[float(q)] = float("nan")
            continue
        target = q * n
        idx = int(np.searchsorted(cum, target, side="left")) if target > 0 else int(np.flatnonzero(counts)[0])
        out[float(q)] = float(values[idx])
    return out


def _violin_bins(hist: PooledHistogram, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (n_bins + 1) and the coarse bin of every fine bin with a pixel (-1 elsewhere)."""
    counts = hist.pos + hist.neg
    coarse = np.full(counts.size, -1, dtype=np.int64)
    if hist.encoding == "unit":
        m = (1 << hist.bits) - 1
        coarse = np.minimum((np.arange(m + 1, dtype=np.int64) * n_bins) // m, n_bins - 1)
        return np.linspace(0.0, 1.0, n_bins + 1), coarse
    nz = np.flatnonzero(counts)
    v = hist.values()[nz]
    finite = np.isfinite(v)
    lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (-1.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    pos = (np.clip(v, lo, hi) - lo) / (hi - lo) * n_bins  # -inf / +inf go to the end bins
    coarse[nz] = np.minimum(np.floor(pos).astype(np.int64), n_bins - 1)
    return np.linspace(lo, hi, n_bins + 1), coarse


def score_histogram_for_violin(
    hist: PooledHistogram,
    n_bins: int = 100,
    quantiles: Sequence[float] = (0.01, 0.25, 0.5, 0.75, 0.99),
) -> dict[str, Any]:
    """Per-class density of scores on ``n_bins`` equal bins, plus quantiles.

    The bins cover [0, 1] for the "unit" encoding and the observed range [min, max] of the finite
    scores of both classes for "float16" (-inf / +inf pixels are counted in the end bins). Derived
    from the pooled histogram: fine bin k goes to the coarse bin that holds its value (unit:
    ``min(floor(k * n_bins / M), n_bins - 1)``). ``density`` integrates to 1 over the bins
    (relative pixel frequency divided by the bin width). Quantiles, ``min``, ``max`` and ``mean``
    are computed on the quantized scores at full resolution. Keys: ``encoding``, ``edges``
    (n_bins + 1), ``centers``, and ``in`` / ``out`` each with ``n``, ``counts``, ``density``,
    ``quantiles`` (q -> value), ``min``, ``max``, ``mean`` (NaN when the class has no pixel).
    """
    if int(n_bins) < 1:
        raise InputError(f"n_bins={n_bins}: expected a positive number of bins")
    n_bins = int(n_bins)
    edges, coarse = _violin_bins(hist, n_bins)
    width = float(edges[-1] - edges[0]) / n_bins
    values = hist.values()
    out: dict[str, Any] = {"encoding": hist.encoding, "edges": edges, "centers": 0.5 * (edges[:-1] + edges[1:])}
    for key, counts in (("in", hist.neg), ("out", hist.pos)):
        n = int(counts.sum())
        nz = np.flatnonzero(counts)
        c = np.bincount(coarse[nz], weights=counts[nz], minlength=n_bins).astype(np.int64)
        out[key] = {
            "n": n,
            "counts": c,
            "density": c / (n * width) if n else np.zeros(n_bins),
            "quantiles": _hist_quantiles(counts, values, quantiles),
            "min": float(values[nz[0]]) if n else float("nan"),
            "max": float(values[nz[-1]]) if n else float("nan"),
            "mean": float(np.dot(counts[nz], values[nz]) / n) if n else float("nan"),
        }
    return out
