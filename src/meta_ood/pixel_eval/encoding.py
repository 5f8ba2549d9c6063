"""Score encodings: how a pixel score becomes the integer bin of a histogram, and back.

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

:func:`score_encoding` gives the encoding of a scorer of :data:`meta_ood.scores.SCORERS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.scores import SCORERS, UNIT_INTERVAL_SCORERS

__all__ = ["ENCODINGS", "MAX_BITS", "dequantize", "quantize", "score_encoding"]

#: Largest number of bits of a histogram's score bins.
MAX_BITS = 24
#: Score encodings of a histogram: "unit" (scores in [0, 1]), "float16" (unbounded scores).
ENCODINGS: tuple[str, ...] = ("unit", "float16")
_F16_SIGN = 0x8000


def check_bits(bits: Any, name: str = "bits") -> int:
    """``bits`` as an int after checking it lies in 1 .. :data:`MAX_BITS`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise InputError(f"{name}={bits!r}: expected an integer in 1..{MAX_BITS}")
    return int(bits)


def check_encoding(encoding: Any, bits: int) -> str:
    """``encoding`` after checking it is one of :data:`ENCODINGS` and fits ``bits``."""
    if encoding not in ENCODINGS:
        raise InputError(f"encoding={encoding!r}: expected one of {list(ENCODINGS)}")
    if encoding == "float16" and bits != 16:
        raise InputError(f"encoding='float16' with bits={bits}: the float16 codes need bits=16")
    return str(encoding)


def _bin_dtype(bits: int) -> type:
    return np.uint16 if bits <= 16 else np.uint32


def score_encoding(scorer: str) -> str:
    """Histogram encoding of a scorer of :data:`meta_ood.scores.SCORERS`: "unit" for the scores
    bounded to [0, 1], "float16" for the unbounded ones (max logit, energy)."""
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
    """Integer bins of scores (see the module docstring).

    ``encoding="unit"``: ``floor(clip(s, 0, 1) * (2**bits - 1) + 0.5)``, an unsigned integer array
    of the input's shape (uint16 for ``bits <= 16``, else uint32); values outside [0, 1] are
    clipped. ``encoding="float16"``: the order-preserving uint16 code of ``float16(s)`` (``bits``
    must be 16; +-inf allowed). NaN raises :class:`InputError`.
    """
    bits = check_bits(bits)
    encoding = check_encoding(encoding, bits)
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
    bits = check_bits(bits)
    encoding = check_encoding(encoding, bits)
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
