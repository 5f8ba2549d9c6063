"""Streaming per-bin score histograms of in-distribution and OoD pixels, and their metrics.

All ranking metrics computed from a :class:`PooledHistogram` are *exact* for the quantized
scores (:mod:`meta_ood.pixel_eval.encoding`): they equal scikit-learn's ``roc_auc_score``,
``average_precision_score``, ``roc_curve`` and ``precision_recall_curve`` evaluated on
``dequantize(quantize(s))`` (ties included), while memory does not depend on the number of
pixels. Thresholds (``best_f1_threshold``, curve thresholds) are reported in score units; the
encoding is saved with the histogram, so a loaded histogram reports the same units.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from meta_ood.errors import InputError
from meta_ood.pixel_eval.encoding import ENCODINGS, check_bits, check_encoding, dequantize, quantize
from meta_ood.pixel_eval.ranking import metrics_from_counts

__all__ = ["PooledHistogram", "metrics"]

_FORMAT = "meta_ood.PooledHistogram/2"
_FORMATS_READ = ("meta_ood.PooledHistogram/1", _FORMAT)  # version 1 predates encodings: "unit"



class PooledHistogram:
    """Streaming per-bin counts of in-distribution (negative) and OoD (positive) pixels.

    * ``encoding``: how scores map to bins, "unit" (scores in [0, 1]) or "float16" (unbounded
      scores, ``bits`` = 16); see :mod:`meta_ood.pixel_eval.encoding`.
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
        self.bits = check_bits(bits)
        self.encoding = check_encoding(encoding, self.bits)
        ib = self.bits if image_bits is None else check_bits(image_bits, "image_bits")
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
        """Number of images added."""
        return len(self._ids)

    @property
    def image_ids(self) -> list[str]:
        """Image ids in the order the images were added."""
        return list(self._ids)

    @property
    def n_pos(self) -> int:
        """Number of OoD pixels."""
        return int(self.pos.sum())

    @property
    def n_neg(self) -> int:
        """Number of in-distribution pixels."""
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
        name, where = self._check_image(scores, labels, in_id, out_id, image_id)
        try:
            bins = quantize(np.asarray(scores).reshape(-1), self.bits, self.encoding)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        self._add(bins, labels, in_id, out_id, name)

    def update_codes(
        self, codes: np.ndarray, labels: np.ndarray, in_id: int, out_id: int, image_id: str | int | None = None
    ) -> None:
        """Add one image whose scores are already binned: ``codes`` (H, W) uint16 are the 16-bit bins
        of this histogram's encoding (:func:`~meta_ood.pixel_eval.encoding.quantize`, as a softmax
        store keeps them). Equal to :meth:`update` with the scores the codes stand for."""
        name, where = self._check_image(codes, labels, in_id, out_id, image_id)
        codes = np.asarray(codes)
        if self.bits != 16 or codes.dtype != np.uint16:
            raise InputError(f"{where}: codes of dtype {codes.dtype} for a {self.bits}-bit histogram: "
                             "expected uint16 codes and bits=16")
        self._add(codes.reshape(-1), labels, in_id, out_id, name)

    def _check_image(
        self, scores: np.ndarray, labels: np.ndarray, in_id: int, out_id: int, image_id: str | int | None
    ) -> tuple[str, str]:
        """The image's id and how errors name it, after checking shapes, label dtype, ids and uniqueness."""
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
        return name, where

    def update_counts(self, bins: np.ndarray, pos: np.ndarray, neg: np.ndarray, image_id: str | int | None = None) -> None:
        """Add one image given by its counts: strictly increasing ``bins`` of this histogram's
        encoding with the OoD (``pos``) and in-distribution (``neg``) pixels of each. Equal to
        :meth:`update` with the scores the counts stand for, without a per-image dense array."""
        name = "" if image_id is None else str(image_id)
        bins = np.asarray(bins, dtype=np.int64)
        pos, neg = np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64)
        if not (bins.ndim == 1 and bins.shape == pos.shape == neg.shape):
            raise InputError(f"image {name!r}: bins {bins.shape}, pos {pos.shape}, neg {neg.shape}: expected equal 1-d shapes")
        if bins.size and (bins[0] < 0 or bins[-1] >= 1 << self.bits or (np.diff(bins) <= 0).any()):
            raise InputError(f"image {name!r}: expected strictly increasing bins in 0..{(1 << self.bits) - 1}")
        if (pos < 0).any() or (neg < 0).any():
            raise InputError(f"image {name!r}: negative pixel counts")
        if name and name in self._id_set:
            raise InputError(f"image id {name!r} was already added to this histogram: expected unique image ids")
        self.pos[bins] += pos
        self.neg[bins] += neg
        coarse = bins >> (self.bits - self.image_bits)
        codes, counts = [], []
        for offset, n in ((0, neg), (1 << self.image_bits, pos)):
            keep = n > 0
            c, k = coarse[keep], n[keep]
            start = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if c.size else np.zeros(0, np.int64)
            codes.append(c[start] + offset)
            counts.append(np.add.reduceat(k, start) if c.size else k)
        self._register_id(name)
        self._codes.append(np.concatenate(codes).astype(np.uint32))
        self._counts.append(np.concatenate(counts).astype(np.int32))

    def _add(self, bins: np.ndarray, labels: np.ndarray, in_id: int, out_id: int, name: str) -> None:
        """Count the binned pixels of one image by label: in-distribution, OoD, or ignored."""
        nb = 1 << self.bits
        lab = np.asarray(labels).reshape(-1)
        code = bins.astype(np.int64)
        is_out = lab == out_id
        code[is_out] += nb
        code[~(is_out | (lab == in_id))] = 2 * nb  # ignored pixels land in a dropped overflow bin
        h = np.bincount(code, minlength=2 * nb + 1)
        nz = np.flatnonzero(h[:nb] | h[nb : 2 * nb])
        self.update_counts(nz, h[nb:][nz], h[:nb][nz], name)

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
    return metrics_from_counts(hist.pos, hist.neg, hist.values(), tpr_level, curve_points)
