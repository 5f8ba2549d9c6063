"""Probability encodings and plane (de)compression of the softmax store.

Planes are byte-shuffled and compressed here, in a shared thread pool (the compressors release
the GIL), in the exact byte layout of HDF5's ``shuffle`` filter followed by the ``lz4`` filter
(id 32004; the default) or the ``zstd`` filter (id 32015), both registered by the PyPI package
``hdf5plugin``, or the built-in ``deflate`` filter (``zlib``, the earlier default), so the
finished chunks can be handed to HDF5 directly and any HDF5 tool decodes them (``import
hdf5plugin`` first; for the command-line tools,
``HDF5_PLUGIN_PATH=$(python -c "import hdf5plugin; print(hdf5plugin.PLUGIN_PATH)")``).
Measurements behind the choice are in ``bench/README.md``.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import struct

import hdf5plugin
import lz4.block
import numpy as np
import zstandard

from meta_ood.errors import InputError

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
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
    "compress_shuffled",
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
#: Where the HDF5 filter plugins live (importing hdf5plugin registers them with h5py): set
#: ``HDF5_PLUGIN_PATH`` to it for h5dump / h5ls.
HDF5_PLUGIN_PATH = hdf5plugin.PLUGIN_PATH
#: Plane compressors, each after a byte shuffle: LZ4 (default), zstd, zlib (deflate, the earlier default).
CODECS = ("lz4", "zstd", "zlib")
DEFAULT_CODEC = "lz4"
#: Level of each codec: zstd level, LZ4 acceleration (higher = faster, larger), zlib level; the
#: defaults are chosen by bench/bench_codecs.py (see bench/README.md).
CODEC_LEVEL = {"zstd": 1, "lz4": 1, "zlib": 1}
#: Accepted levels of each codec (zstd's negative levels are its fastest).
LEVEL_RANGE = {"zstd": (-7, 22), "lz4": (1, 64), "zlib": (0, 9)}
#: HDF5 filter ids: shuffle, deflate, zstd, LZ4.
H5_SHUFFLE, H5_DEFLATE, H5_ZSTD, H5_LZ4 = 2, 1, 32015, 32004
#: The HDF5 filter pipeline of each codec (filter ids, in order).
CODEC_FILTERS = {"zstd": (H5_SHUFFLE, H5_ZSTD), "lz4": (H5_SHUFFLE, H5_LZ4), "zlib": (H5_SHUFFLE, H5_DEFLATE)}
SHUFFLE_DEFLATE = CODEC_FILTERS["zlib"]

T = TypeVar("T")
R = TypeVar("R")


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if it is one of :data:`ENCODINGS`; raise an InputError otherwise."""
    if dtype not in ENCODINGS:
        raise InputError(f"softmax store dtype {dtype!r} is not supported; expected one of {', '.join(ENCODINGS)}")
    return dtype


def check_codec(codec: str) -> str:
    """Return ``codec`` if it is one of :data:`CODECS`; raise an InputError otherwise."""
    if codec not in CODECS:
        raise InputError(f"softmax store codec {codec!r} is not supported; expected one of {', '.join(CODECS)}")
    return codec


def dataset_options(codec: str, level: int | None = None) -> dict[str, Any]:
    """``h5py.create_dataset`` keyword arguments of a shuffled dataset compressed with ``codec``."""
    level = CODEC_LEVEL[codec] if level is None else int(level)
    if codec == "zlib":
        return {"shuffle": True, "compression": "gzip", "compression_opts": level}
    if codec == "lz4":  # option 0: the filter's default block size (1 GiB, i.e. one block per plane)
        return {"shuffle": True, "compression": H5_LZ4, "compression_opts": (0,)}
    return {"shuffle": True, "compression": H5_ZSTD, "compression_opts": (level % (1 << 32),)}  # int as unsigned


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


_ZSTD = threading.local()  # zstandard (de)compressor objects are not thread-safe: one per thread


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    cache = _ZSTD.__dict__.setdefault("c", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def _zstd_decompress(blob: bytes, size: int) -> bytes:
    d = _ZSTD.__dict__.get("d")
    if d is None:
        d = _ZSTD.d = zstandard.ZstdDecompressor()
    return d.decompress(blob, max_output_size=size)


def compress_plane(arr: np.ndarray, level: int | None = None, codec: str = "zlib") -> bytes:
    """One HDF5 chunk: ``arr`` byte-shuffled and compressed with ``codec`` (default level: :data:`CODEC_LEVEL`)."""
    return compress_shuffled(_shuffle(arr), level, codec)


def compress_shuffled(buf: np.ndarray, level: int | None = None, codec: str = "zlib") -> bytes:
    """One HDF5 chunk from bytes that are already shuffled (contiguous uint8, e.g. shuffled on the device)."""
    level = CODEC_LEVEL[codec] if level is None else int(level)
    buf = np.ascontiguousarray(buf)
    if codec == "zstd":
        return _zstd_compressor(level).compress(buf)
    if codec == "lz4":
        return lz4_chunk(buf, level)
    return zlib.compress(buf, level)


def lz4_chunk(buf: np.ndarray, acceleration: int = 1) -> bytes:
    """A chunk of the HDF5 LZ4 filter (32004): big-endian total size (int64) and block size (int32),
    then the one block as its big-endian length (int32) and LZ4 data, or raw when it does not shrink."""
    raw = memoryview(np.ascontiguousarray(buf)).cast("B")
    comp = lz4.block.compress(raw, store_size=False, mode="fast", acceleration=int(acceleration)) if len(raw) else b""
    body = comp if len(comp) < len(raw) else bytes(raw)
    return struct.pack(">qi", len(raw), max(1, len(raw))) + struct.pack(">i", len(body)) + body


def lz4_unchunk(blob: bytes) -> bytes:
    """The bytes of an HDF5 LZ4 filter chunk (any block size)."""
    total, block = struct.unpack_from(">qi", blob)
    pos, parts, done = 12, [], 0
    while done < total:
        size = min(block, total - done)
        (clen,) = struct.unpack_from(">i", blob, pos)
        data = blob[pos + 4:pos + 4 + clen]
        parts.append(data if clen == size else lz4.block.decompress(data, uncompressed_size=size))
        pos, done = pos + 4 + clen, done + size
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decompress_plane(blob: bytes, dtype: np.dtype, shape: tuple[int, ...], codec: str = "zlib") -> np.ndarray:
    """Decode a chunk written by :func:`compress_plane` (or by HDF5's shuffle + deflate / zstd filters)."""
    if codec == "zstd":
        raw = _zstd_decompress(blob, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    elif codec == "lz4":
        raw = lz4_unchunk(blob)
    else:
        raw = zlib.decompress(blob)
    return _unshuffle(raw, np.dtype(dtype), shape)


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
