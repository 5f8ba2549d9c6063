"""Probability encodings and class-plane (de)compression of the softmax store.

Planes are byte-shuffled and deflated here, in a shared thread pool (zlib releases the GIL), in
the exact byte layout of HDF5's ``shuffle`` + ``deflate`` filters, so the finished chunks can
be handed to HDF5 directly and any HDF5 tool decodes them.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from meta_ood.errors import InputError

__all__ = [
    "DEFAULT_DTYPE",
    "ENCODINGS",
    "FIXED_SCALE",
    "PROB_SCALE",
    "SHUFFLE_DEFLATE",
    "STORED_DTYPE",
    "WRITE_SUM_TOL",
    "attr_value",
    "check_dtype",
    "compress_plane",
    "decompress_plane",
    "max_abs_error",
    "parallel_map",
    "quantize",
    "read_sum_tolerance",
    "validate_probs",
]

ENCODINGS = ("fixed16", "float16", "float32")
DEFAULT_DTYPE = "fixed16"
FIXED_SCALE = 65535

STORED_DTYPE = {"fixed16": np.dtype(np.uint16), "float16": np.dtype(np.float16), "float32": np.dtype(np.float32)}
PROB_SCALE = {"fixed16": 1.0 / FIXED_SCALE, "float16": 1.0, "float32": 1.0}
# Tolerance on |sum_c p_c - 1| of the probabilities handed to the writer (softmax in float32 is
# within ~1e-6); the reader adds the rounding of the encoding on top.
WRITE_SUM_TOL = 1e-3
# The HDF5 filter pipeline of a plane this module can decode itself.
SHUFFLE_DEFLATE = ("shuffle", "deflate")

T = TypeVar("T")
R = TypeVar("R")


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if it is one of :data:`ENCODINGS`; raise an InputError otherwise."""
    if dtype not in ENCODINGS:
        raise InputError(f"softmax store dtype {dtype!r} is not supported; expected one of {', '.join(ENCODINGS)}")
    return dtype


def max_abs_error(dtype: str) -> float:
    """The documented bound on ``|stored - original|`` of one probability for an encoding."""
    return {"fixed16": 0.5 / FIXED_SCALE + 1e-7, "float16": 2.0**-12, "float32": 0.0}[check_dtype(dtype)]


def read_sum_tolerance(encoding: str, num_classes: int) -> float:
    """Tolerance on |sum - 1| when reading: the writer's tolerance plus the rounding of C values."""
    per_value = {"fixed16": 0.5 / FIXED_SCALE, "float16": 2.0**-11, "float32": 1e-7}[encoding]
    if encoding == "float16":  # relative rounding: the errors of all classes add up to <= 2^-11 * sum
        return WRITE_SUM_TOL + per_value + num_classes * 2.0**-25
    return WRITE_SUM_TOL + num_classes * per_value


# ---------------------------------------------------------------------------------------------
# The shared thread pool
# ---------------------------------------------------------------------------------------------


def _default_threads() -> int:
    """min(8, cores available to this process): planes are few, and the pool is shared."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not available on every platform
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The shared pool that (de)compresses class planes; its tasks never wait on the pool."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_default_threads(), thread_name_prefix="meta-ood-store")
        return _POOL


def parallel_map(fn: Callable[[T], R], items: Sequence[T], threads: int | None) -> list[R]:
    """``[fn(x) for x in items]``, in the shared pool unless ``threads == 1`` or there is one item."""
    if threads == 1 or len(items) <= 1:
        return [fn(x) for x in items]
    return list(_pool().map(fn, items))


# ---------------------------------------------------------------------------------------------
# Plane codecs (byte shuffle + deflate, compatible with HDF5's shuffle and deflate filters)
# ---------------------------------------------------------------------------------------------


def _shuffle(arr: np.ndarray) -> np.ndarray:
    """HDF5 shuffle: byte k of every element together, k = 0..itemsize-1."""
    n = arr.dtype.itemsize
    flat = np.ascontiguousarray(arr).reshape(-1)
    if n == 1:
        return flat.view(np.uint8)
    return np.ascontiguousarray(flat.view(np.uint8).reshape(-1, n).T)


def _unshuffle(raw: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Invert :func:`_shuffle`: ``raw`` holds the bytes of an array of ``dtype`` and ``shape``."""
    n = dtype.itemsize
    src = np.frombuffer(raw, dtype=np.uint8)
    count = int(np.prod(shape))
    if src.size != count * n:
        raise ValueError(f"decompressed chunk has {src.size} bytes, expected {count * n}")
    if n == 1:
        return src.reshape(shape).copy()
    src = src.reshape(n, count)
    out = np.empty((count, n), dtype=np.uint8)
    for k in range(n):  # one strided copy per byte position: ~10x faster than copying the transpose
        out[:, k] = src[k]
    return out.view(dtype).reshape(shape)


def quantize(plane: np.ndarray, encoding: str) -> np.ndarray:
    """A probability plane in its stored representation (fixed16: ``round(p * 65535)``)."""
    if encoding == "fixed16":
        tmp = np.multiply(plane, np.float32(FIXED_SCALE), dtype=np.float32)
        np.rint(tmp, out=tmp)
        np.clip(tmp, 0, FIXED_SCALE, out=tmp)
        return tmp.astype(np.uint16)
    return np.asarray(plane, dtype=STORED_DTYPE[encoding])


def compress_plane(arr: np.ndarray, level: int) -> bytes:
    """One HDF5 chunk: ``arr`` byte-shuffled and deflated at zlib ``level``."""
    return zlib.compress(_shuffle(arr), level)


def decompress_plane(blob: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Decode a chunk written by :func:`compress_plane` (or by HDF5's shuffle + deflate)."""
    return _unshuffle(zlib.decompress(blob), dtype, shape)


# ---------------------------------------------------------------------------------------------
# Checks shared by the writer and the reader
# ---------------------------------------------------------------------------------------------


def validate_probs(probs: np.ndarray, tol: float, where: str, check_min: bool = True) -> None:
    """One pass for NaN/inf and sums (NaN and inf propagate into the per-pixel sum), one for the minimum."""
    sums = probs.sum(axis=0, dtype=np.float32)
    bad = ~(np.abs(sums - np.float32(1.0)) <= np.float32(tol))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        n_nonfinite = int((~np.isfinite(sums)).sum())
        what = f"{n_nonfinite} pixels with NaN/inf, " if n_nonfinite else ""
        raise InputError(
            f"{where}: invalid probabilities: {what}{int(bad.sum())} pixels whose class probabilities do not sum "
            f"to 1 +- {tol:.1e} (first at row {r}, column {c}: sum {float(sums[r, c])!r}); "
            "expected finite softmax probabilities"
        )
    if not check_min:
        return
    lo = float(probs.min())
    if lo < -tol:
        raise InputError(f"{where}: invalid probabilities: minimum {lo!r} is negative; expected softmax probabilities")


def attr_value(value: Any) -> Any:
    """HDF5 attributes come back as numpy scalars or bytes; turn them into plain Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
