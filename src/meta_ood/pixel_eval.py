"""Pixel-wise evaluation: streaming score histograms, AUROC / AUPRC / FPR95, curves, bootstrap
intervals, mIoU with an extra OoD class, and per-class score densities for violin plots.

Paper section 6 (pixel-wise evaluation) and figure 5 (mIoU on Cityscapes val with entropy >= t
predicted as OoD); figure 3 (violin plots).

Scores and resolution
---------------------
A histogram stores every pixel's score as an integer bin index; the *encoding* says how.

``encoding="unit"`` (default) is for scores in [0, 1] (normalized entropy, variation ratio,
probability margin, 1 - MSP). They are quantized to ``2**bits`` integer bins by

    bin = floor(clip(s, 0, 1) * (2**bits - 1) + 0.5)          (computed in float64)

i.e. rounded half up to the nearest point of the grid ``k / (2**bits - 1)``, k = 0 .. 2**bits - 1.
Bin k therefore holds the scores in ``[(k - 0.5) / M, (k + 0.5) / M)`` with ``M = 2**bits - 1``
(bin 0 and bin M are half as wide), and :func:`dequantize` maps k back to the grid value ``k / M``
(exactly 0.0 and 1.0 at the ends). Scores outside [0, 1] are clipped; NaN is an input error.
With the default ``bits = 16`` the grid spacing is 1.5e-5.

``encoding="float16"`` is for unbounded scores (negated max logit, free energy), which clipping
to [0, 1] would collapse into one bin. Every score is rounded to float16 (numpy's cast, round to
nearest even; magnitudes above 65504 become +-inf) and its 16-bit pattern ``u`` is mapped to the
order-preserving code

    code = ~u (all bits flipped)       for negative values (sign bit set),
    code = u | 0x8000                   for positive values and zero (-0 is taken as +0),

so that integer order equals float order: -inf is code 0x03FF, 0 is 0x8000, +inf 0xFC00 (codes
of NaN patterns stay empty). :func:`dequantize` returns the float16 value of a code (as float64).
``bits`` must be 16; +-inf are allowed, NaN is an input error. The relative resolution is
2**-11 (4.9e-4), i.e. ties are exactly the scores equal after rounding to float16.

With either encoding, all ranking metrics computed from a :class:`PooledHistogram` are *exact*
for the quantized scores: they equal scikit-learn's ``roc_auc_score``, ``average_precision_score``,
``roc_curve`` and ``precision_recall_curve`` evaluated on ``dequantize(quantize(s))`` (ties
included), while memory does not depend on the number of pixels. Thresholds
(``best_f1_threshold``, curve thresholds, violin bins and quantiles) are reported in score units.
:func:`score_encoding` gives the encoding of a scorer of :data:`meta_ood.scores.SCORERS`; the
encoding is saved with the histogram, so a loaded histogram reports the same units.

Pixel roles
-----------
For an evaluation dataset with ``train_id_in`` / ``train_id_out`` (LostAndFound 1 / 2,
Fishyscapes 0 / 1): pixels with label ``in_id`` are negatives, ``out_id`` positives; every other
label (void, LostAndFound's "non-hazard" id 0, ...) is ignored.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from meta_ood.errors import InputError
from meta_ood.labels import NUM_CLASSES, VOID_ID

__all__ = [
    "ENCODINGS",
    "score_encoding",
    "quantize",
    "dequantize",
    "PooledHistogram",
    "metrics",
    "bootstrap",
    "bootstrap_weights",
    "bootstrap_replicates",
    "MiouAccumulator",
    "score_histogram_for_violin",
    "DEFAULT_MIOU_THRESHOLDS",
]

MAX_BITS = 24
#: Score encodings of a histogram: "unit" (scores in [0, 1]), "float16" (unbounded scores).
ENCODINGS: tuple[str, ...] = ("unit", "float16")
_FORMAT = "meta_ood.PooledHistogram/2"
_FORMATS_READ = ("meta_ood.PooledHistogram/1", _FORMAT)  # version 1 predates encodings: "unit"
_F16_SIGN = 0x8000
DEFAULT_MIOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 11))


# --------------------------------------------------------------------------------------------
# quantization
# --------------------------------------------------------------------------------------------


def _check_bits(bits: Any, name: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise InputError(f"{name}={bits!r}: expected an integer in 1..{MAX_BITS}")
    return int(bits)


def _bin_dtype(bits: int) -> type:
    return np.uint16 if bits <= 16 else np.uint32


def _check_encoding(encoding: Any, bits: int) -> str:
    if encoding not in ENCODINGS:
        raise InputError(f"encoding={encoding!r}: expected one of {list(ENCODINGS)}")
    if encoding == "float16" and bits != 16:
        raise InputError(f"encoding='float16' with bits={bits}: the float16 codes need bits=16")
    return str(encoding)


def score_encoding(scorer: str) -> str:
    """Histogram encoding of a scorer of :data:`meta_ood.scores.SCORERS`: "unit" for the scores
    bounded to [0, 1], "float16" for the unbounded ones (max logit, energy)."""
    from meta_ood.scores import SCORERS, UNIT_INTERVAL_SCORERS

    if scorer not in SCORERS:
        raise InputError(f"unknown scorer {scorer!r}; expected one of {sorted(SCORERS)}")
    return "unit" if scorer in UNIT_INTERVAL_SCORERS else "float16"


def _float16_codes(x: np.ndarray) -> np.ndarray:
    """Order-preserving uint16 codes of the float16-rounded values of ``x`` (no NaN)."""
    with np.errstate(over="ignore"):
        u = np.array(x, dtype=np.float16, order="C").view(np.uint16)
    u = np.where(u == _F16_SIGN, np.uint16(0), u)  # -0 -> +0: one bin for zero
    return np.where(u >= _F16_SIGN, ~u, u | np.uint16(_F16_SIGN)).astype(np.uint16)


def quantize(scores: np.ndarray, bits: int = 16, encoding: str = "unit") -> np.ndarray:
    """Integer bins of scores (see "Scores and resolution" in the module docstring).

    ``encoding="unit"``: ``floor(clip(s, 0, 1) * (2**bits - 1) + 0.5)``, an unsigned integer array
    of the input's shape (uint16 for ``bits <= 16``, else uint32); values outside [0, 1] are
    clipped. ``encoding="float16"``: the order-preserving uint16 code of ``float16(s)`` (``bits``
    must be 16; +-inf allowed). NaN raises :class:`InputError`.
    """
    bits = _check_bits(bits)
    encoding = _check_encoding(encoding, bits)
    s = np.asarray(scores)
    if s.dtype.kind not in "fiub":
        raise InputError(f"scores of dtype {s.dtype}: expected a real-valued array")
    if encoding == "float16":
        if s.dtype.kind == "f" and np.isnan(s).any():
            raise InputError(
                f"scores contain {int(np.isnan(s).sum())} NaN value(s): expected real scores (+-inf allowed)"
            )
        return _float16_codes(s)
    m = float((1 << bits) - 1)
    x = s.astype(np.float64, copy=True)
    if np.isnan(x).any():
        raise InputError(f"scores contain {int(np.isnan(x).sum())} NaN value(s): expected values in [0, 1]")
    np.clip(x, 0.0, 1.0, out=x)
    np.multiply(x, m, out=x)
    np.add(x, 0.5, out=x)
    np.floor(x, out=x)
    return x.astype(_bin_dtype(bits))


def dequantize(bins: np.ndarray, bits: int = 16, encoding: str = "unit") -> np.ndarray:
    """Score value (float64) of every bin index: ``k / (2**bits - 1)`` for the "unit" encoding,
    the float16 value of the code for "float16" (NaN for the codes of NaN patterns)."""
    bits = _check_bits(bits)
    encoding = _check_encoding(encoding, bits)
    b = np.asarray(bins)
    if b.dtype.kind not in "iu":
        raise InputError(f"bins of dtype {b.dtype}: expected integer bin indices")
    if b.size and (b.min() < 0 or b.max() > (1 << bits) - 1):
        raise InputError(f"bin indices outside 0..{(1 << bits) - 1} for bits={bits}")
    if encoding == "float16":
        c = b.astype(np.uint16)
        u = np.where(c >= _F16_SIGN, c & np.uint16(0x7FFF), ~c).astype(np.uint16)
        return u.view(np.float16).astype(np.float64)
    return b.astype(np.float64) / float((1 << bits) - 1)


# --------------------------------------------------------------------------------------------
# ranking metrics from (pos, neg) counts, vectorized over rows and streamed over score blocks
# --------------------------------------------------------------------------------------------


class _RankState:
    """Running sums over score columns visited from the highest score down.

    Every row is one histogram (one bootstrap replicate, or the single pooled histogram). Columns
    with no pixel in a row leave the running values unchanged, so zero columns are harmless.
    """

    def __init__(self, n_pos: np.ndarray, n_neg: np.ndarray, tpr_level: float):
        self.P = np.asarray(n_pos, dtype=np.float64)
        self.N = np.asarray(n_neg, dtype=np.float64)
        rows = self.P.shape[0]
        self.level = float(tpr_level)
        self.tps = np.zeros(rows)
        self.fps = np.zeros(rows)
        self.auc_acc = np.zeros(rows)
        self.ap_acc = np.zeros(rows)
        # fpr95: the (0, 0) point of the ROC curve already satisfies tpr >= level when level <= 0
        self.found = np.full(rows, self.level <= 0.0)
        self.fpr_fps = np.zeros(rows)
        self.best_f1 = np.zeros(rows)
        self.best_col = np.full(rows, -1, dtype=np.int64)

    def add(self, pos: np.ndarray, neg: np.ndarray, col_offset: int) -> None:
        """Columns of ``pos`` / ``neg`` (rows x b) are ordered by decreasing score."""
        pos = np.asarray(pos, dtype=np.float64)
        neg = np.asarray(neg, dtype=np.float64)
        tps = np.cumsum(pos, axis=1)
        tps += self.tps[:, None]
        fps = np.cumsum(neg, axis=1)
        fps += self.fps[:, None]
        # AUROC (Mann-Whitney with ties counted 1/2): each negative scores the positives strictly
        # above it plus half of those tied with it.
        self.auc_acc += np.einsum("ij,ij->i", neg, tps - 0.5 * pos)
        denom = tps + fps
        prec = np.divide(tps, denom, out=np.zeros_like(tps), where=denom > 0)
        # average precision: sum over thresholds of (R_k - R_{k-1}) * P_k, R_k - R_{k-1} = pos_k / P
        self.ap_acc += np.einsum("ij,ij->i", pos, prec)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = tps / self.P[:, None]
        reach = tpr >= self.level
        hit = reach.any(axis=1) & ~self.found
        if hit.any():
            first = np.argmax(reach[hit], axis=1)
            self.fpr_fps[hit] = fps[hit, first]
            self.found[hit] = True
        f1 = np.divide(2.0 * tps, tps + fps + self.P[:, None], out=np.zeros_like(tps), where=tps > 0)
        col = np.argmax(f1, axis=1)
        val = f1[np.arange(f1.shape[0]), col]
        better = val > self.best_f1
        self.best_f1[better] = val[better]
        self.best_col[better] = col[better] + col_offset
        self.tps = tps[:, -1].copy()
        self.fps = fps[:, -1].copy()

    def result(self) -> dict[str, np.ndarray]:
        ok = (self.P > 0) & (self.N > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            auroc = np.where(ok, self.auc_acc / (self.P * self.N), np.nan)
            auprc = np.where(ok, self.ap_acc / self.P, np.nan)
            fpr95 = np.where(ok & self.found, self.fpr_fps / self.N, np.nan)
        best_f1 = np.where(ok, self.best_f1, np.nan)
        return {"auroc": auroc, "auprc": auprc, "fpr95": fpr95, "best_f1": best_f1, "best_col": self.best_col}


def _no_pixels_error(n_pos: int, n_neg: int, what: str = "dataset") -> InputError:
    if n_pos == 0:
        return InputError(
            f"{what} has no OoD pixels (label == out_id): n_pos=0, n_neg={n_neg}; AUROC / AUPRC / FPR95 "
            "need at least one OoD and one in-distribution pixel (check out_id and the label files)"
        )
    return InputError(
        f"{what} has no in-distribution pixels (label == in_id): n_pos={n_pos}, n_neg=0; AUROC / AUPRC / "
        "FPR95 need at least one OoD and one in-distribution pixel (check in_id and the label files)"
    )


def _thin_indices(n: int, max_points: int | None) -> np.ndarray:
    """Indices 0..n-1, or about ``max_points`` evenly spaced ones (first and last kept)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 2:
        raise InputError(f"curve_points={max_points}: expected None or an integer >= 2")
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))


def _metrics_from_counts(
    pos: np.ndarray,
    neg: np.ndarray,
    values: np.ndarray,
    tpr_level: float = 0.95,
    curve_points: int | None = None,
) -> dict[str, Any]:
    """Metrics and curves of one histogram; ``pos``/``neg``/``values`` in increasing score order."""
    pos = np.asarray(pos, dtype=np.int64)
    neg = np.asarray(neg, dtype=np.int64)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        raise _no_pixels_error(n_pos, n_neg)
    nz = np.flatnonzero((pos + neg) > 0)[::-1]  # distinct observed scores, decreasing
    p, n, thr = pos[nz], neg[nz], np.asarray(values, dtype=np.float64)[nz]
    state = _RankState(np.array([n_pos]), np.array([n_neg]), tpr_level)
    state.add(p[None, :], n[None, :], 0)
    res = state.result()
    tps = np.cumsum(p)
    fps = np.cumsum(n)
    best = int(res["best_col"][0])
    out: dict[str, Any] = {
        "auroc": float(res["auroc"][0]),
        "auprc": float(res["auprc"][0]),
        "fpr95": float(res["fpr95"][0]),
        "best_f1": float(res["best_f1"][0]),
        "best_f1_threshold": float(thr[best]),
        "best_f1_precision": float(tps[best] / (tps[best] + fps[best])),
        "best_f1_recall": float(tps[best] / n_pos),
        "tpr_level": float(tpr_level),
        "n_pos": n_pos,
        "n_neg": n_neg,
    }
    # ROC curve in scikit-learn's roc_curve(drop_intermediate=False) layout: decreasing
    # thresholds, starting at (0, 0) with threshold +inf.
    fpr = np.concatenate(([0.0], fps / n_neg))
    tpr = np.concatenate(([0.0], tps / n_pos))
    roc_thr = np.concatenate(([np.inf], thr))
    keep = _thin_indices(fpr.size, curve_points)
    out["roc"] = {"fpr": fpr[keep], "tpr": tpr[keep], "thresholds": roc_thr[keep]}
    # PR curve in scikit-learn's precision_recall_curve layout: increasing thresholds, a final
    # point (precision 1, recall 0) without threshold.
    precision = np.concatenate(((tps / (tps + fps))[::-1], [1.0]))
    recall = np.concatenate(((tps / n_pos)[::-1], [0.0]))
    pr_thr = thr[::-1]
    keep = _thin_indices(precision.size, curve_points)
    out["pr"] = {
        "precision": precision[keep],
        "recall": recall[keep],
        "thresholds": pr_thr[keep[keep < pr_thr.size]],
    }
    return out


# --------------------------------------------------------------------------------------------
# pooled histogram
# --------------------------------------------------------------------------------------------


class PooledHistogram:
    """Streaming per-bin counts of in-distribution (negative) and OoD (positive) pixels.

    * ``encoding``: how scores map to bins, "unit" (scores in [0, 1]) or "float16" (unbounded
      scores, ``bits`` = 16); see "Scores and resolution" in the module docstring.
    * ``pos`` / ``neg``: int64 counts per score bin (``2**bits`` each), pooled over all images;
      memory is independent of the number of pixels.
    * Per image, the same counts at the coarser resolution ``image_bits`` (bin ``k >> (bits -
      image_bits)``) are kept sparse (only the nonzero bins), for the image bootstrap. An image
      holds at most ``2 * 2**image_bits`` entries of 8 bytes (64 KiB at the default 12 bits).
      ``image_bits=None`` (or ``= bits``) gives a bootstrap at full resolution (more memory and
      time: both grow with the number of distinct bins). The bootstrap resamples are evaluated on
      scores quantized to ``image_bits``, the point estimate of :meth:`metrics` on ``bits``.
      Coarse bins are consecutive fine bins, so they keep the score order in both encodings
      (float16 codes at ``image_bits`` keep ``image_bits - 6`` of the 10 mantissa bits).
    * ``image_ids``: one id per image (``""`` when none was given); non-empty ids must be unique
      so that merging shards cannot count an image twice.
    """

    def __init__(self, bits: int = 16, image_bits: int | None = 12, encoding: str = "unit"):
        self.bits = _check_bits(bits)
        self.encoding = _check_encoding(encoding, self.bits)
        ib = self.bits if image_bits is None else _check_bits(image_bits, "image_bits")
        if ib > self.bits:
            raise InputError(f"image_bits={ib}: expected at most bits={self.bits}")
        self.image_bits = ib
        self.pos = np.zeros(1 << self.bits, dtype=np.int64)
        self.neg = np.zeros(1 << self.bits, dtype=np.int64)
        self._ids: list[str] = []
        self._id_set: set[str] = set()
        self._codes: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    # -- accumulation ------------------------------------------------------------------------

    @property
    def n_images(self) -> int:
        return len(self._ids)

    @property
    def image_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())

    @property
    def n_neg(self) -> int:
        return int(self.neg.sum())

    def _register_id(self, image_id: str) -> None:
        if image_id:
            if image_id in self._id_set:
                raise InputError(
                    f"image id {image_id!r} was already added to this histogram: expected unique image ids"
                )
            self._id_set.add(image_id)
        self._ids.append(image_id)

    def update(
        self, scores: np.ndarray, labels: np.ndarray, in_id: int, out_id: int, image_id: str | int | None = None
    ) -> None:
        """Add one image: ``scores`` (H, W) (in [0, 1] for the "unit" encoding) and train-id ``labels`` (H, W)."""
        name = "" if image_id is None else str(image_id)
        where = f"image {name!r}" if name else f"image #{self.n_images}"
        scores = np.asarray(scores)
        labels = np.asarray(labels)
        if scores.shape != labels.shape:
            raise InputError(
                f"{where}: scores shape {scores.shape} != labels shape {labels.shape}: expected equal sizes"
            )
        if labels.dtype.kind not in "iub":
            raise InputError(f"{where}: labels of dtype {labels.dtype}: expected integer train ids")
        if int(in_id) == int(out_id):
            raise InputError(f"in_id = out_id = {in_id}: expected different ids for in-distribution and OoD")
        if name and name in self._id_set:
            raise InputError(f"image id {name!r} was already added to this histogram: expected unique image ids")
        try:
            bins = quantize(scores.reshape(-1), self.bits, self.encoding)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        nb = 1 << self.bits
        lab = labels.reshape(-1)
        code = bins.astype(np.int64)
        is_out = lab == out_id
        code[is_out] += nb
        code[~(is_out | (lab == in_id))] = 2 * nb  # ignored pixels land in a dropped overflow bin
        h = np.bincount(code, minlength=2 * nb + 1)[: 2 * nb]
        self.neg += h[:nb]
        self.pos += h[nb:]
        shift = self.bits - self.image_bits
        coarse = h.reshape(2, 1 << self.image_bits, 1 << shift).sum(axis=2).reshape(-1) if shift else h
        nzc = np.flatnonzero(coarse)
        self._register_id(name)
        self._codes.append(nzc.astype(np.uint32))
        self._counts.append(coarse[nzc].astype(np.int32))

    def merge(self, other: "PooledHistogram") -> "PooledHistogram":
        """Add the counts and images of ``other`` to this histogram (in place); returns ``self``."""
        if not isinstance(other, PooledHistogram):
            raise InputError(f"cannot merge a {type(other).__name__} into a PooledHistogram")
        if (other.bits, other.image_bits) != (self.bits, self.image_bits):
            raise InputError(
                f"cannot merge histograms with bits/image_bits {other.bits}/{other.image_bits} into "
                f"{self.bits}/{self.image_bits}: expected equal resolutions"
            )
        if other.encoding != self.encoding:
            raise InputError(
                f"cannot merge a histogram of encoding {other.encoding!r} into one of encoding {self.encoding!r}: "
                "expected scores of the same scorer"
            )
        dup = sorted(self._id_set & other._id_set)
        if dup:
            raise InputError(f"image ids {dup[:5]} occur in both histograms: expected disjoint shards")
        if other is self:
            raise InputError("cannot merge a histogram into itself")
        self.pos += other.pos
        self.neg += other.neg
        for i, c, n in zip(other._ids, other._codes, other._counts):
            self._register_id(i)
            self._codes.append(c)
            self._counts.append(n)
        return self

    # -- persistence -------------------------------------------------------------------------

    def _image_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        indptr = np.zeros(self.n_images + 1, dtype=np.int64)
        if self._codes:
            np.cumsum([c.size for c in self._codes], out=indptr[1:])
            codes = np.concatenate(self._codes)
            counts = np.concatenate(self._counts)
        else:
            codes = np.zeros(0, dtype=np.uint32)
            counts = np.zeros(0, dtype=np.int32)
        return indptr, codes, counts

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` (compressed) atomically: a temporary file next to ``path``, then rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        indptr, codes, counts = self._image_arrays()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(
                    fh,
                    format=np.array(_FORMAT),
                    encoding=np.array(self.encoding),
                    bits=np.array(self.bits),
                    image_bits=np.array(self.image_bits),
                    pos=self.pos,
                    neg=self.neg,
                    image_ids=np.array(self._ids, dtype=np.str_),
                    image_indptr=indptr,
                    image_codes=codes,
                    image_counts=counts,
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PooledHistogram":
        """Read a histogram written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: histogram file not found")
        need = ("bits", "image_bits", "pos", "neg", "image_ids", "image_indptr", "image_codes", "image_counts")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in need if k not in z.files]
                if missing:
                    raise InputError(f"{path}: not a PooledHistogram file (missing {missing})")
                data = {k: z[k] for k in need}
                fmt = str(z["format"]) if "format" in z.files else ""
                encoding = str(z["encoding"]) if "encoding" in z.files else "unit"
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read histogram ({exc})") from None
        if fmt not in _FORMATS_READ:
            raise InputError(f"{path}: format {fmt!r}: expected one of {list(_FORMATS_READ)}")
        if encoding not in ENCODINGS:
            raise InputError(f"{path}: encoding {encoding!r}: expected one of {list(ENCODINGS)}")
        h = cls(int(data["bits"]), int(data["image_bits"]), encoding)
        nb = 1 << h.bits
        if data["pos"].shape != (nb,) or data["neg"].shape != (nb,):
            raise InputError(f"{path}: pos/neg have shapes {data['pos'].shape}/{data['neg'].shape}: expected ({nb},)")
        h.pos = data["pos"].astype(np.int64)
        h.neg = data["neg"].astype(np.int64)
        indptr = data["image_indptr"].astype(np.int64)
        ids = [str(i) for i in data["image_ids"]]
        if indptr.shape != (len(ids) + 1,) or indptr[-1] != data["image_codes"].size:
            raise InputError(f"{path}: inconsistent per-image arrays")
        codes = data["image_codes"].astype(np.uint32)
        counts = data["image_counts"].astype(np.int32)
        for k, image_id in enumerate(ids):
            h._register_id(image_id)
            h._codes.append(codes[indptr[k] : indptr[k + 1]])
            h._counts.append(counts[indptr[k] : indptr[k + 1]])
        return h

    # -- evaluation --------------------------------------------------------------------------

    def values(self) -> np.ndarray:
        """Score value of every bin (``dequantize(arange(2**bits))``, in score units)."""
        return dequantize(np.arange(1 << self.bits, dtype=np.int64), self.bits, self.encoding)

    def metrics(self, tpr_level: float = 0.95, curve_points: int | None = None) -> dict[str, Any]:
        """See :func:`metrics`."""
        return metrics(self, tpr_level=tpr_level, curve_points=curve_points)

    def image_matrix(self) -> sp.csr_matrix:
        """Per-image counts as a sparse (n_images x 2 * 2**image_bits) matrix.

        Column ``b`` holds in-distribution pixels of coarse bin b, column ``2**image_bits + b``
        OoD pixels of coarse bin b.
        """
        indptr, codes, counts = self._image_arrays()
        return sp.csr_matrix(
            (counts.astype(np.int64), codes.astype(np.int64), indptr),
            shape=(self.n_images, 2 << self.image_bits),
        )


def metrics(hist: PooledHistogram, tpr_level: float = 0.95, curve_points: int | None = None) -> dict[str, Any]:
    """AUROC, AUPRC, FPR at ``tpr_level`` TPR, best F1, counts and curves of a histogram.

    * ``auroc``: area under the ROC curve (ties count 1/2), = ``roc_auc_score``.
    * ``auprc``: average precision ``sum_k (R_k - R_{k-1}) P_k`` over decreasing thresholds
      (scikit-learn's ``average_precision_score``; no interpolation).
    * ``fpr95``: FPR at the first threshold, scanning from high scores down, whose
      TPR >= ``tpr_level`` (Fishyscapes / SegmentMeIfYouCan convention).
    * ``best_f1`` / ``best_f1_threshold``: maximal pixel F1 over thresholds, where a pixel is
      predicted OoD iff its (quantized) score >= the threshold (in score units);
      ``best_f1_precision`` / ``_recall``.
    * ``n_pos`` / ``n_neg``: numbers of OoD / in-distribution pixels.
    * ``roc``: dict of ``fpr``, ``tpr``, ``thresholds`` as ``roc_curve(drop_intermediate=False)``;
      ``pr``: dict of ``precision``, ``recall``, ``thresholds`` as ``precision_recall_curve``.
      ``curve_points`` thins both to about that many evenly spaced points (None = all).

    Raises :class:`InputError` when there is no OoD or no in-distribution pixel.
    """
    return _metrics_from_counts(hist.pos, hist.neg, hist.values(), tpr_level, curve_points)


# --------------------------------------------------------------------------------------------
# bootstrap over images
# --------------------------------------------------------------------------------------------


def bootstrap_weights(n_images: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_images) int64: how often each image is drawn in each resample.

    Row r is the count vector of ``n_images`` draws with replacement (a multinomial draw with
    equal probabilities) from ``numpy.random.default_rng(seed)``.
    """
    if n_images < 1:
        raise InputError(f"n_images={n_images}: the bootstrap needs at least one image")
    if n_boot < 1:
        raise InputError(f"n_boot={n_boot}: expected a positive number of resamples")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot).astype(np.int64)


def _iter_blocks(
    mat: sp.csc_matrix, n_cols_half: int, weights: np.ndarray, block: int
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Yield resampled (pos, neg) column blocks in decreasing score order."""
    dense_ok = mat.nnz > 0.1 * mat.shape[0] * mat.shape[1]
    for hi in range(n_cols_half, 0, -block):
        lo = max(0, hi - block)
        cols = np.arange(hi - 1, lo - 1, -1)  # decreasing score
        out = []
        for offset in (n_cols_half, 0):  # positives, negatives
            sub = mat[:, cols + offset]
            if dense_ok:
                out.append(weights @ sub.toarray())
            else:
                out.append(np.asarray((sub.T @ weights.T).T))
        yield out[0], out[1], n_cols_half - hi


def bootstrap_replicates(
    hist: PooledHistogram,
    n_boot: int = 1000,
    seed: int = 0,
    tpr_level: float = 0.95,
    weights: np.ndarray | None = None,
    max_block_bytes: int = 32 << 20,
) -> dict[str, np.ndarray]:
    """Metrics of every bootstrap resample of the images (at ``image_bits`` resolution).

    Resample r pools the per-image histograms with the counts ``weights[r]`` (default
    :func:`bootstrap_weights`), i.e. the images drawn with replacement. All resamples are
    evaluated at once: the weighted sums are one matrix product per block of score bins, and the
    metrics are accumulated block by block from the highest score down.

    Returns ``auroc``, ``auprc``, ``fpr95``, ``best_f1`` (arrays of n_boot; NaN for a resample
    without OoD or without in-distribution pixels) and ``weights``.
    """
    if hist.n_images == 0:
        raise InputError("histogram has no images: the bootstrap resamples images")
    if hist.n_pos == 0 or hist.n_neg == 0:
        raise _no_pixels_error(hist.n_pos, hist.n_neg)
    if weights is None:
        weights = bootstrap_weights(hist.n_images, n_boot, seed)
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != hist.n_images:
        raise InputError(f"weights of shape {weights.shape}: expected (n_boot, {hist.n_images})")
    w = weights.astype(np.float64)
    mat = hist.image_matrix()
    half = 1 << hist.image_bits
    # keep only score bins that occur in some image (same order), for both classes
    used = np.flatnonzero(np.asarray(mat.getnnz(axis=0)).reshape(2, half).sum(axis=0) > 0)
    mat = mat[:, np.concatenate((used, used + half))].astype(np.float64).tocsc()
    n_used = used.size
    per_image_pos = np.asarray(mat[:, n_used:].sum(axis=1)).ravel()
    per_image_neg = np.asarray(mat[:, :n_used].sum(axis=1)).ravel()
    state = _RankState(w @ per_image_pos, w @ per_image_neg, tpr_level)
    block = max(1, int(max_block_bytes // (8 * max(1, w.shape[0]) * 2)))
    for pos, neg, offset in _iter_blocks(mat, n_used, w, block):
        state.add(pos, neg, offset)
    res = state.result()
    return {
        "auroc": res["auroc"],
        "auprc": res["auprc"],
        "fpr95": res["fpr95"],
        "best_f1": res["best_f1"],
        "weights": weights,
    }


def bootstrap(
    hist: PooledHistogram,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    tpr_level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals over images: metric -> (low, high).

    ``low`` / ``high`` are the ``alpha/2`` and ``1 - alpha/2`` quantiles (numpy's default linear
    interpolation) of the resampled ``auroc``, ``auprc``, ``fpr95`` and ``best_f1``; resamples
    without OoD or without in-distribution pixels are left out. Deterministic for a given seed.
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha={alpha}: expected a value in (0, 1)")
    reps = bootstrap_replicates(hist, n_boot=n_boot, seed=seed, tpr_level=tpr_level)
    out: dict[str, tuple[float, float]] = {}
    for key in ("auroc", "auprc", "fpr95", "best_f1"):
        v = reps[key][np.isfinite(reps[key])]
        if v.size == 0:
            raise InputError(
                "every bootstrap resample lacks OoD or in-distribution pixels: too few images with OoD pixels"
            )
        lo, hi = np.quantile(v, [alpha / 2.0, 1.0 - alpha / 2.0])
        out[key] = (float(lo), float(hi))
    return out


# --------------------------------------------------------------------------------------------
# mIoU with an extra OoD class (paper section 6.3, figure 5)
# --------------------------------------------------------------------------------------------


class MiouAccumulator:
    """Confusion counts of a semantic segmentation with pixels of entropy >= t predicted "OoD".

    Per image: ``pred`` (H, W) argmax class in 0..K-1, ``entropy`` (H, W) normalized entropy, and
    ``gt`` (H, W) train ids in 0..K-1 or ``void_id``. For every threshold t, pixels with
    ``entropy >= t`` get the extra prediction "OoD" (index K). Ground-truth void pixels are
    ignored. Cityscapes val has no OoD ground truth, so for every class c

        IoU_c = TP_c / (TP_c + FP_c + FN_c),

    where a gt-c pixel predicted OoD is a false negative of c, and mIoU is the mean over the K
    classes. A class that occurs neither in the ground truth nor in the (non-OoD) prediction has
    an undefined IoU (NaN) and is left out of the mean, as in cityscapesScripts. The key
    ``math.inf`` of :meth:`result` is the plain mIoU without the OoD class.

    Accumulation is one ``np.bincount`` per image over (gt, pred, threshold bucket), the bucket
    being the number of thresholds <= entropy; memory is K * K * (T + 1) counts.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        thresholds: Iterable[float] = DEFAULT_MIOU_THRESHOLDS,
        void_id: int = VOID_ID,
    ):
        if int(num_classes) < 1:
            raise InputError(f"num_classes={num_classes}: expected a positive number of classes")
        self.num_classes = int(num_classes)
        thr = np.asarray(sorted({float(t) for t in thresholds}), dtype=np.float64)
        if thr.size and not np.isfinite(thr).all():
            raise InputError(f"thresholds {thresholds!r}: expected finite values")
        self.thresholds = thr
        self.void_id = int(void_id)
        k, t = self.num_classes, thr.size
        self.counts = np.zeros((k, k, t + 1), dtype=np.int64)
        self.n_images = 0

    def update(self, pred: np.ndarray, entropy: np.ndarray, gt: np.ndarray) -> None:
        pred, entropy, gt = np.asarray(pred), np.asarray(entropy), np.asarray(gt)
        where = f"image #{self.n_images}"
        if not (pred.shape == entropy.shape == gt.shape):
            raise InputError(
                f"{where}: pred {pred.shape}, entropy {entropy.shape}, gt {gt.shape}: expected equal shapes"
            )
        if pred.dtype.kind not in "iu" or gt.dtype.kind not in "iu":
            raise InputError(f"{where}: pred/gt of dtype {pred.dtype}/{gt.dtype}: expected integer class ids")
        k = self.num_classes
        g = gt.reshape(-1).astype(np.int64)
        valid = g != self.void_id
        bad = valid & ((g < 0) | (g >= k))
        if bad.any():
            raise InputError(
                f"{where}: ground truth contains id(s) {np.unique(g[bad])[:10].tolist()}: expected train ids "
                f"0..{k - 1} or void {self.void_id}"
            )
        p = pred.reshape(-1).astype(np.int64)[valid]
        if p.size and (p.min() < 0 or p.max() >= k):
            raise InputError(f"{where}: prediction contains ids outside 0..{k - 1}")
        e = entropy.reshape(-1)[valid]
        if np.isnan(e).any():
            raise InputError(f"{where}: entropy contains NaN: expected values in [0, 1]")
        bucket = np.searchsorted(self.thresholds, e.astype(np.float64), side="right")
        tb = self.thresholds.size + 1
        code = (g[valid] * k + p) * tb + bucket
        self.counts += np.bincount(code, minlength=k * k * tb).reshape(k, k, tb)
        self.n_images += 1

    def merge(self, other: "MiouAccumulator") -> "MiouAccumulator":
        if (other.num_classes, other.void_id) != (self.num_classes, self.void_id) or not np.array_equal(
            other.thresholds, self.thresholds
        ):
            raise InputError("cannot merge mIoU accumulators with different classes, void id or thresholds")
        self.counts += other.counts
        self.n_images += other.n_images
        return self

    def confusion(self, threshold: float = math.inf) -> np.ndarray:
        """(K, K + 1) counts: rows gt class, columns predicted class, last column "OoD"."""
        k = self.num_classes
        if math.isinf(threshold) and threshold > 0:
            j = self.thresholds.size  # nothing is OoD
        else:
            hits = np.flatnonzero(self.thresholds == float(threshold))
            if hits.size == 0:
                raise InputError(f"threshold {threshold}: expected one of {self.thresholds.tolist()} or inf")
            j = int(hits[0])
        conf = np.zeros((k, k + 1), dtype=np.int64)
        conf[:, :k] = self.counts[:, :, : j + 1].sum(axis=2)
        conf[:, k] = self.counts[:, :, j + 1 :].sum(axis=(1, 2))
        return conf

    @staticmethod
    def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
        """Per-class IoU (NaN where the class is absent from gt and prediction)."""
        k = conf.shape[0]
        tp = np.diag(conf[:, :k]).astype(np.float64)
        gt_total = conf.sum(axis=1).astype(np.float64)  # includes gt-c pixels predicted OoD
        pred_total = conf[:, :k].sum(axis=0).astype(np.float64)
        denom = gt_total + pred_total - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def result(self) -> dict[float, dict[str, Any]]:
        """threshold -> ``miou``, ``iou`` (K,), ``ood_fraction``; key ``math.inf`` = without OoD class."""
        if self.counts.sum() == 0:
            raise InputError("no non-void ground-truth pixel was accumulated: cannot compute mIoU")
        out: dict[float, dict[str, Any]] = {}
        for t in [*self.thresholds.tolist(), math.inf]:
            conf = self.confusion(t)
            iou = self.iou_from_confusion(conf)
            out[t] = {
                "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
                "iou": iou,
                "ood_fraction": float(conf[:, -1].sum() / conf.sum()),
            }
        return out


# --------------------------------------------------------------------------------------------
# violin plot data (figure 3)
# --------------------------------------------------------------------------------------------


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
