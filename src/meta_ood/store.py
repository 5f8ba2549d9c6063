"""The softmax store: per-pixel class probabilities of one model variant on one evaluation set.

A store is a folder ``results/<run>/softmax/<model>/<variant>/<dataset>/`` holding

* ``images/<index:06d>.h5`` -- one HDF5 file per image (``index`` is the image's position in
  the dataset), written under a temporary name and renamed when complete;
* ``index.shard-<i>-of-<n>.json`` -- one small index per shard writer (see :func:`parse_shard`);
* ``index.json`` -- the merged index the readers open (:func:`merge_index`). A store without it
  is incomplete and is refused by :class:`StoreReader`.

Image file layout (plain HDF5, readable with any HDF5 tool):

=============  ===============================  ============================================
dataset        shape / dtype                    contents
=============  ===============================  ============================================
``probs``      (C, H, W) uint16 | f16 | f32     softmax probabilities, see *encodings* below
``label``      (H, W) uint8                     train-id ground truth (255 = void)
``label_ids``  (H, W) uint8, optional           label-id ground truth, where the dataset has one
``logits``     (C, H, W) f16 (f32), optional    raw logits for max-logit / energy scorers
=============  ===============================  ============================================

``probs`` and ``logits`` are chunked one class plane per chunk with the standard HDF5
``shuffle`` + ``deflate`` (gzip) filters, so ``h5py`` or ``h5dump`` decode them without this
module. This module compresses and decompresses the planes itself, in parallel threads (zlib
releases the GIL), and hands finished chunks to HDF5 (``write_direct_chunk``). The file
attributes repeat the image's index, name and path and the store metadata, so a file is
self-describing and a resumed run can tell whether an existing file is reusable.

Encodings of the probabilities (``dtype`` argument):

* ``"fixed16"`` (default) -- ``round(p * 65535)`` as uint16; ``p = q / 65535`` on read.
  Max abs error 0.5 / 65535 = 7.6e-6 on every probability (uniform absolute precision).
* ``"float16"`` -- IEEE half precision: max abs error 2.4e-4 (for p in [0.5, 1]), relative
  precision 2^-11 down to 6e-5.
* ``"float32"`` -- exact.

Why ``fixed16``: measured on synthetic softmax maps that look like a segmentation network's
output (``bench/bench_store.py``: logits at 1/8 resolution, bilinearly upsampled, 84 % of the
pixels with max probability > 0.99), 512 x 1024 pixels, 19 classes, one plane per chunk,
single thread, ratio = bytes / bytes of float32 HDF5 (76 B/pixel, the released code's format):

=========================================  ======  ========  ===========  ========  =======
option                                     ratio   B/pixel   max |dp|     write     read
=========================================  ======  ========  ===========  ========  =======
float32, HDF5 uncompressed (baseline)      1.000   76.0      0            90 ms     93 ms
float32 + shuffle + gzip 1                 0.779   59.2      0            738 ms    132 ms
float16 + shuffle + gzip 1                 0.263   20.0      2.4e-4       749 ms    142 ms
float16 + shuffle + gzip 4                 0.251   19.0      2.4e-4       842 ms    112 ms
float16 + shuffle + lzf                    0.297   22.6      2.4e-4       632 ms    114 ms
float16 + row delta + shuffle + zlib 1     0.250   19.0      2.4e-4       737 ms    238 ms
float16 + row delta + shuffle + zlib 6     0.226   17.2      2.4e-4       1334 ms   183 ms
float16 + row delta + shuffle + lzma 0     0.216   16.4      2.4e-4       1660 ms   499 ms
fixed16 + shuffle + zlib 1  (chosen)       0.102   7.7       7.6e-6       140 ms    95 ms
fixed16 + shuffle + zlib 6                 0.087   6.6       7.6e-6       391 ms    152 ms
fixed16 + row delta + shuffle + zlib 1     0.122   9.3       7.6e-6       151 ms    120 ms
fixed16, no shuffle, zlib 1                0.129   9.8       7.6e-6       155 ms    55 ms
sqrt(p) fixed16 + shuffle + zlib 1         0.271   20.6      1.5e-5       294 ms    139 ms
=========================================  ======  ========  ===========  ========  =======

The low byte of a float16 probability is close to random (small probabilities keep 11 bits of
relative precision), so float16 stays near 20 B/pixel whatever the compressor; fixed point
rounds the many tiny probabilities of confident pixels to exact zeros, which deflate removes,
and it is 5x faster to write because deflate spends its time on incompressible bytes. The
price is the entropy of the most confident pixels: their normalized entropy changes by at most
2.9e-4 (float16: 9.5e-5). That is far below the segment thresholds (0.3 .. 0.7) and moves the
pixel metrics by nothing the tables show: on synthetic in/OoD maps (3 x 512 x 1024, one
less-confident OoD rectangle) AUROC moved by <= 1.6e-6 (float16: 2e-7) and FPR at 95 % TPR by
<= 9e-6 (float16: 8e-6). The maximum softmax probability and the margins are 30x more
accurate than with float16.
Levels above 1 buy < 15 % in size for 1.4-3x the write time.

Full resolution (``python bench/bench_store.py``: 3 maps of 19 x 1024 x 2048, a shared 2-core
machine under load, page-cache reads): 8.0 B/pixel vs 77.0 for the float32 HDF5 files (ratio
0.104), max abs error 7.7e-6, max change of the normalized entropy 3.1e-4; writing 116 MB/s of
float32 probabilities (0.7 images/s) vs 170 MB/s, reading 283 MB/s (1.8 images/s, 373 MB/s
without the validation) vs 2.3 GB/s from the page cache, one image in 0.4 s. Decompression
dominates the reads (0.19 s of 0.28 s per image single-threaded); it and compression scale with
free cores. From storage slower than about 400 MB/s (network file systems) the 10x smaller
files read faster than the float32 ones.

Sharding: ``n`` writers (``shard=(i, n)``, 0-based) each write the contiguous image range
:func:`shard_range` into the same folder and finish with their own shard index; when all are
done, :func:`merge_index` checks that every image ``0..N-1`` is present exactly once and writes
``index.json``. A single writer (``n = 1``) writes ``index.json`` itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from meta_ood import __version__
from meta_ood.errors import InputError
from meta_ood.io import atomic_path, write_text_atomic
from meta_ood.labels import EvalConvention

__all__ = [
    "DEFAULT_DTYPE",
    "ENCODINGS",
    "FORMAT",
    "FORMAT_VERSION",
    "StoreReader",
    "StoreWriter",
    "StoredImage",
    "max_abs_error",
    "merge_index",
    "parse_shard",
    "sha256_file",
    "shard_range",
]

log = logging.getLogger(__name__)

FORMAT = "meta-ood-softmax-store"
FORMAT_VERSION = 1
ENCODINGS = ("fixed16", "float16", "float32")
DEFAULT_DTYPE = "fixed16"
FIXED_SCALE = 65535
INDEX_NAME = "index.json"
IMAGES_DIR = "images"

_STORED_DTYPE = {"fixed16": np.dtype(np.uint16), "float16": np.dtype(np.float16), "float32": np.dtype(np.float32)}
_PROB_SCALE = {"fixed16": 1.0 / FIXED_SCALE, "float16": 1.0, "float32": 1.0}
# Tolerance on |sum_c p_c - 1| of the probabilities handed to the writer (softmax in float32 is
# within ~1e-6); the reader adds the rounding of the encoding on top.
WRITE_SUM_TOL = 1e-3
_SHARD_FILE = re.compile(r"^index\.shard-(\d+)-of-(\d+)\.json$")
_SHUFFLE_DEFLATE = ("shuffle", "deflate")


def max_abs_error(dtype: str) -> float:
    """The documented bound on ``|stored - original|`` of one probability for an encoding."""
    return {"fixed16": 0.5 / FIXED_SCALE + 1e-7, "float16": 2.0**-12, "float32": 0.0}[_check_dtype(dtype)]


def _check_dtype(dtype: str) -> str:
    if dtype not in ENCODINGS:
        raise InputError(f"softmax store dtype {dtype!r} is not supported; expected one of {', '.join(ENCODINGS)}")
    return dtype


def _read_sum_tolerance(encoding: str, num_classes: int) -> float:
    """Tolerance on |sum - 1| when reading: the writer's tolerance plus the rounding of C values."""
    per_value = {"fixed16": 0.5 / FIXED_SCALE, "float16": 2.0**-11, "float32": 1e-7}[encoding]
    if encoding == "float16":  # relative rounding: the errors of all classes add up to <= 2^-11 * sum
        return WRITE_SUM_TOL + per_value + num_classes * 2.0**-25
    return WRITE_SUM_TOL + num_classes * per_value


# ---------------------------------------------------------------------------------------------
# Small helpers: sharding, checkpoint hashes, the thread pool
# ---------------------------------------------------------------------------------------------


def shard_range(n_images: int, shard_index: int, n_shards: int, align: int = 1) -> range:
    """The contiguous image range of shard ``shard_index`` (0-based) out of ``n_shards``.

    Ranges are balanced (sizes differ by at most one, the first ``n_images % n_shards`` shards
    get the extra image), cover ``0..n_images-1`` exactly once, and may be empty when there are
    more shards than images. With ``align > 1`` the balancing is over blocks of ``align``
    images, so every shard starts at a multiple of ``align``: inference batches (blocks of
    ``batch_size`` images) are then the same whether a dataset is sharded or not, and so are
    the probabilities (batched convolutions are not bit-identical across batch compositions).
    """
    if int(align) < 1:
        raise InputError(f"shard alignment must be >= 1, got {align}")
    align = int(align)
    if align > 1:
        blocks = shard_range(-(-n_images // align) if n_images > 0 else 0, shard_index, n_shards)
        return range(min(blocks.start * align, n_images), min(blocks.stop * align, n_images))
    if n_images < 0:
        raise InputError(f"number of images must be >= 0, got {n_images}")
    if n_shards < 1:
        raise InputError(f"number of shards must be >= 1, got {n_shards}")
    if not 0 <= shard_index < n_shards:
        raise InputError(
            f"shard index {shard_index} out of range for {n_shards} shards (shards are numbered 0..{n_shards - 1})"
        )
    q, r = divmod(n_images, n_shards)
    start = shard_index * q + min(shard_index, r)
    return range(start, start + q + (1 if shard_index < r else 0))


def parse_shard(text: str | Sequence[int]) -> tuple[int, int]:
    """Parse the command-line shard syntax ``"i/n"`` (0-based: ``0/4`` .. ``3/4``) into ``(i, n)``.

    A pair ``(i, n)`` is accepted and validated as well. Shard numbers are 0-based like Python
    indices and :func:`shard_range`; ``"4/4"`` is rejected with a message saying so.
    """
    if isinstance(text, str):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise InputError(f"shard {text!r} is not of the form i/n with 0 <= i < n (e.g. 0/4 .. 3/4)")
        i, n = int(m.group(1)), int(m.group(2))
    else:
        try:
            i, n = (int(v) for v in text)
        except (TypeError, ValueError):
            raise InputError(f"shard {text!r} is not a pair (i, n) or a string 'i/n'") from None
    if n < 1:
        raise InputError(f"shard {i}/{n}: the number of shards must be >= 1")
    if not 0 <= i < n:
        raise InputError(f"shard {i}/{n}: the shard index must satisfy 0 <= i < n (shards are numbered 0..{n - 1})")
    return i, n


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints can be several hundred MB)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (cannot compute its sha256)")
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def _default_threads() -> int:
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


def _map(fn, items: Sequence, threads: int | None) -> list:
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


def _quantize(plane: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "fixed16":
        tmp = np.multiply(plane, np.float32(FIXED_SCALE), dtype=np.float32)
        np.rint(tmp, out=tmp)
        np.clip(tmp, 0, FIXED_SCALE, out=tmp)
        return tmp.astype(np.uint16)
    return np.asarray(plane, dtype=_STORED_DTYPE[encoding])


def _compress(arr: np.ndarray, level: int) -> bytes:
    return zlib.compress(_shuffle(arr), level)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StoredImage:
    """One image of a store. ``probs`` is float32 (C, H, W) unless read with ``raw=True``."""

    name: str
    path: str
    probs: np.ndarray | None
    label: np.ndarray
    label_ids: np.ndarray | None
    logits: np.ndarray | None
    index: int = -1


def _convention_dict(convention: EvalConvention | Mapping[str, int] | None) -> dict[str, int] | None:
    if convention is None:
        return None
    if isinstance(convention, EvalConvention):
        return dataclasses.asdict(convention)
    keys = ("train_id_in", "train_id_out", "void_id")
    missing = [k for k in keys[:2] if k not in convention]
    if missing:
        raise InputError(f"dataset convention {dict(convention)!r} lacks {', '.join(missing)}")
    return {k: int(convention[k]) for k in keys if k in convention}


def _image_file(index: int) -> str:
    return f"{IMAGES_DIR}/{index:06d}.h5"


def _format_indices(indices: Sequence[int], limit: int = 12) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (at most ``limit`` runs, then a count)."""
    runs: list[tuple[int, int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    if len(runs) > limit:
        parts.append(f"... ({len(indices)} in all)")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------


class StoreWriter:
    """Writes the images of one shard of a store into ``folder``.

    Parameters
    ----------
    folder: the store folder (created if needed).
    num_classes: C, the number of probability planes.
    dtype: probability encoding, one of :data:`ENCODINGS` (default ``"fixed16"``).
    model, checkpoint_sha: the model name and the sha256 of its checkpoint (None if untrained /
        unknown); recorded in the index and in every image file.
    dataset, convention: the dataset kind and its evaluation convention (train_id_in / out /
        void), an :class:`~meta_ood.labels.EvalConvention`, a mapping or None.
    store_logits: also store the logits (float16; float32 when ``dtype="float32"``).
    shard: ``(i, n)`` or ``"i/n"``, 0-based; the writer accepts the images of
        ``shard_range(total, i, n, align)``.
    total: N, the number of images of the whole dataset (required when n > 1).
    compression_level: zlib level of the probability and logit planes (1 = fast, see module doc).
    threads: 1 compresses the class planes in the calling thread; otherwise (default) they are
        compressed in a shared pool of min(8, available cores) threads.

    Opening a writer marks the store incomplete: it removes ``index.json``, its own shard's old
    index and shard indices written for a different shard count. Image files are kept (see
    :meth:`resume`). ``write`` may be called from several threads.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        num_classes: int,
        dtype: str = DEFAULT_DTYPE,
        *,
        model: str | None = None,
        checkpoint_sha: str | None = None,
        dataset: str | None = None,
        convention: EvalConvention | Mapping[str, int] | None = None,
        store_logits: bool = False,
        shard: tuple[int, int] | str = (0, 1),
        total: int | None = None,
        compression_level: int = 1,
        threads: int | None = None,
        align: int = 1,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        if int(num_classes) < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.dtype = _check_dtype(dtype)
        self.shard = parse_shard(shard)
        if total is None:
            if self.shard[1] != 1:
                raise InputError(f"shard {self.shard[0]}/{self.shard[1]}: the total number of images is required")
        elif int(total) < 0:
            raise InputError(f"total number of images must be >= 0, got {total}")
        self.total = None if total is None else int(total)
        self.expected = None if total is None else shard_range(self.total, *self.shard, align=align)
        if not 0 <= int(compression_level) <= 9:
            raise InputError(f"compression_level must be in 0..9, got {compression_level}")
        self.compression_level = int(compression_level)
        self.threads = threads
        self.store_logits = bool(store_logits)
        self.logits_dtype = np.dtype(np.float32 if self.dtype == "float32" else np.float16)
        self.meta: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "writer": f"meta_ood {__version__}",
            "num_classes": self.num_classes,
            "dtype": self.dtype,
            "prob_scale": _PROB_SCALE[self.dtype],
            "max_abs_error": max_abs_error(self.dtype),
            "model": model,
            "checkpoint_sha256": checkpoint_sha,
            "dataset": {"kind": dataset, "convention": _convention_dict(convention)},
            "has_logits": self.store_logits,
            "logits_dtype": self.logits_dtype.name if self.store_logits else None,
            "settings": dict(settings or {}),
        }
        # the producer's options that change the stored values (e.g. batch size, autocast, tiling):
        # an image file written under other settings is never reused
        self._settings = json.dumps(self.meta["settings"], sort_keys=True)
        self._entries: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        (self.folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        self._drop_stale_indices()

    # -- public ---------------------------------------------------------------------------

    @property
    def written(self) -> list[int]:
        """Indices written (or adopted by :meth:`resume`) so far, sorted."""
        with self._lock:
            return sorted(self._entries)

    def image_path(self, index: int) -> Path:
        """Where the file of image ``index`` lives."""
        return self.folder / _image_file(index)

    def write(
        self,
        index: int,
        name: str,
        path: str,
        probs: np.ndarray,
        label: np.ndarray,
        label_ids: np.ndarray | None = None,
        logits: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Validate and write image ``index`` (its global position in the dataset); return its index entry.

        ``probs`` is (C, H, W) floating point; ``label`` and ``label_ids`` are (H, W) with values
        0..255; ``logits`` (C, H, W) is required exactly when the store keeps logits. NaN/inf,
        negative probabilities or per-pixel sums off 1 by more than 1e-3 raise an InputError
        naming the image, and nothing is written.
        """
        index = self._check_index(index)
        where = f"image {index} ({name!r})"
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[0] != self.num_classes:
            raise InputError(f"{where}: probabilities must have shape (C={self.num_classes}, H, W), got {probs.shape}")
        if not np.issubdtype(probs.dtype, np.floating):
            raise InputError(f"{where}: probabilities must be floating point, got {probs.dtype}")
        h, w = probs.shape[1:]
        if h == 0 or w == 0:
            raise InputError(f"{where}: empty image ({h}x{w})")
        _validate_probs(probs, WRITE_SUM_TOL, where)
        label = _as_label(label, (h, w), where, "label")
        label_ids = None if label_ids is None else _as_label(label_ids, (h, w), where, "label_ids")
        stored_logits = None
        if self.store_logits:
            if logits is None:
                raise InputError(f"{where}: the store keeps logits (store_logits=True) but none were given")
            stored_logits = self._check_logits(np.asarray(logits), probs.shape, where)

        level = self.compression_level
        enc = self.dtype
        prob_chunks = _map(lambda c: _compress(_quantize(probs[c], enc), level), range(self.num_classes), self.threads)
        logit_chunks = None
        if stored_logits is not None:
            logit_chunks = _map(lambda c: _compress(stored_logits[c], level), range(self.num_classes), self.threads)

        target = self.image_path(index)
        with atomic_path(target) as tmp:
            with h5py.File(tmp, "w", locking=False) as f:
                attrs = {
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "index": index,
                    "name": str(name),
                    "path": str(path),
                    "num_classes": self.num_classes,
                    "dtype": self.dtype,
                    "prob_scale": _PROB_SCALE[self.dtype],
                    "model": self.meta["model"] or "",
                    "checkpoint_sha256": self.meta["checkpoint_sha256"] or "",
                    "has_logits": self.store_logits,
                    "settings": self._settings,
                }
                for k, v in attrs.items():
                    f.attrs[k] = v
                self._put_planes(f, "probs", _STORED_DTYPE[enc], (h, w), prob_chunks)
                if logit_chunks is not None:
                    self._put_planes(f, "logits", self.logits_dtype, (h, w), logit_chunks)
                _put_label(f, "label", label)
                if label_ids is not None:
                    _put_label(f, "label_ids", label_ids)
        entry = _entry(index, str(name), str(path), h, w, label_ids is not None)
        with self._lock:
            self._entries[index] = entry
        return entry

    def resume(self, index: int, name: str | None = None) -> bool:
        """Adopt an existing file for image ``index`` if it is complete and matches this store.

        A file matches when it opens, belongs to image ``index`` (and ``name`` when given), uses
        the same encoding, number of classes, model, checkpoint hash and logits setting, and
        holds every class plane. Returns True when adopted (no need to write it again).
        """
        index = self._check_index(index)
        target = self.image_path(index)
        if not target.is_file():
            return False
        try:
            entry = self._check_existing(target, index, name)
        except Exception as exc:  # any unreadable or foreign file is simply rewritten
            log.info("%s: not reused (%s); it will be rewritten", target, exc)
            return False
        if entry is None:
            return False
        with self._lock:
            self._entries[index] = entry
        return True

    def finalize(self) -> Path:
        """Write this shard's index ``index.shard-<i>-of-<n>.json`` (and ``index.json`` when n = 1).

        Raises ValueError if an image of the shard's range was not written.
        """
        i, n = self.shard
        with self._lock:
            entries = dict(self._entries)
        if self.expected is None:  # single writer without a declared total: indices must be 0..k-1
            expected = range(len(entries))
            total = len(entries)
        else:
            expected, total = self.expected, self.total
        missing = [k for k in expected if k not in entries]
        if missing:
            raise ValueError(
                f"{self.folder}: shard {i}/{n} is incomplete: images {_format_indices(missing)} were not written"
            )
        meta = dict(self.meta)
        meta.update(
            total=total,
            shards=n,
            shard=[i, n],
            range=[expected.start, expected.stop],
            images=[entries[k] for k in expected],
        )
        out = self.folder / f"index.shard-{i}-of-{n}.json"
        write_text_atomic(out, json.dumps(meta, indent=1) + "\n")
        if n == 1:
            merge_index(self.folder)
        return out

    # -- internals --------------------------------------------------------------------------

    def _drop_stale_indices(self) -> None:
        """A folder being written is incomplete: remove ``index.json``, this shard's old index and
        the shard indices of an earlier run with another shard count (the image files stay)."""
        i, n = self.shard
        for p in self.folder.iterdir():
            m = _SHARD_FILE.match(p.name)
            stale = p.name == INDEX_NAME or (m is not None and (int(m.group(2)) != n or int(m.group(1)) == i))
            if stale:
                log.info("%s: removing %s (the store is being rewritten)", self.folder, p.name)
                p.unlink(missing_ok=True)

    def _check_index(self, index: int) -> int:
        index = int(index)
        if self.expected is not None and index not in self.expected:
            i, n = self.shard
            raise ValueError(
                f"image index {index} is outside shard {i}/{n} (images {self.expected.start}..{self.expected.stop - 1})"
            )
        if index < 0:
            raise ValueError(f"image index must be >= 0, got {index}")
        return index

    def _check_logits(self, logits: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
        if logits.shape != shape:
            raise InputError(f"{where}: logits must have the shape of the probabilities {shape}, got {logits.shape}")
        with np.errstate(over="ignore"):  # overflow is reported below
            stored = np.asarray(logits, dtype=self.logits_dtype)
        if not np.isfinite(stored).all():
            bad = "NaN/inf" if not np.isfinite(logits).all() else f"values beyond the {self.logits_dtype.name} range"
            raise InputError(f"{where}: logits contain {bad}; expected finite values (use dtype='float32' for huge logits)")
        return stored

    def _put_planes(self, f: h5py.File, key: str, dtype: np.dtype, hw: tuple[int, int], chunks: list[bytes]) -> None:
        shape = (len(chunks), *hw)
        ds = f.create_dataset(
            key,
            shape=shape,
            dtype=dtype,
            chunks=(1, *hw),
            shuffle=True,
            compression="gzip",
            compression_opts=self.compression_level,
            track_times=False,
        )
        for c, blob in enumerate(chunks):
            ds.id.write_direct_chunk((c, 0, 0), blob, 0)

    def _check_existing(self, target: Path, index: int, name: str | None) -> dict[str, Any] | None:
        with h5py.File(target, "r", locking=False) as f:
            a = f.attrs
            want = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "index": index,
                "num_classes": self.num_classes,
                "dtype": self.dtype,
                "model": self.meta["model"] or "",
                "checkpoint_sha256": self.meta["checkpoint_sha256"] or "",
                "has_logits": self.store_logits,
                "settings": self._settings,
            }
            for k, v in want.items():
                if k not in a or _attr(a[k]) != v:
                    log.info("%s: %s is %r, expected %r; it will be rewritten", target, k, _attr(a.get(k)), v)
                    return None
            if name is not None and _attr(a.get("name")) != name:
                log.info("%s: holds image %r, expected %r; it will be rewritten", target, _attr(a.get("name")), name)
                return None
            probs = f["probs"]
            c, h, w = probs.shape
            if c != self.num_classes or probs.id.get_num_chunks() != c or f["label"].shape != (h, w):
                return None
            if self.store_logits and ("logits" not in f or f["logits"].shape != probs.shape or f["logits"].id.get_num_chunks() != c):
                return None
            has_ids = "label_ids" in f
            if has_ids and f["label_ids"].shape != (h, w):
                return None
            return _entry(index, _attr(a["name"]), _attr(a["path"]), h, w, has_ids)


def _entry(index: int, name: str, path: str, h: int, w: int, has_label_ids: bool) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "path": path,
        "file": _image_file(index),
        "height": int(h),
        "width": int(w),
        "has_label_ids": bool(has_label_ids),
    }


def _attr(value: Any) -> Any:
    """HDF5 attributes come back as numpy scalars or bytes; turn them into plain Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _as_label(label: Any, hw: tuple[int, int], where: str, what: str) -> np.ndarray:
    label = np.asarray(label)
    if label.shape != hw:
        raise InputError(f"{where}: {what} must have shape {hw} (the probabilities' H, W), got {label.shape}")
    if label.dtype == np.uint8:
        return label
    if not np.issubdtype(label.dtype, np.integer):
        raise InputError(f"{where}: {what} must hold integers 0..255, got dtype {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise InputError(f"{where}: {what} values must be in 0..255, got {label.min()}..{label.max()}")
    return label.astype(np.uint8)


def _put_label(f: h5py.File, key: str, label: np.ndarray) -> None:
    f.create_dataset(key, data=label, chunks=label.shape, compression="gzip", compression_opts=1, track_times=False)


def _validate_probs(probs: np.ndarray, tol: float, where: str, check_min: bool = True) -> None:
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


# ---------------------------------------------------------------------------------------------
# Merging shard indices
# ---------------------------------------------------------------------------------------------

_SAME_KEYS = ("format", "version", "num_classes", "dtype", "model", "checkpoint_sha256", "dataset", "has_logits", "total")


def merge_index(folder: str | os.PathLike) -> Path:
    """Combine ``index.shard-<i>-of-<n>.json`` of ``folder`` into ``index.json``; return its path.

    All shard indices must agree on the shard count and the store metadata, and together list
    every image ``0..N-1`` exactly once with its file present; otherwise an InputError names the
    missing (or duplicated) images and shards and nothing is written.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: softmax store folder not found")
    shards: dict[int, tuple[Path, dict[str, Any]]] = {}
    counts: set[int] = set()
    for p in sorted(folder.iterdir()):
        m = _SHARD_FILE.match(p.name)
        if not m:
            continue
        i, n = int(m.group(1)), int(m.group(2))
        counts.add(n)
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: unreadable shard index ({exc})") from None
        shards[i] = (p, meta)
    if not shards:
        raise InputError(f"{folder}: no shard indices (index.shard-<i>-of-<n>.json) found; no shard has finished")
    if len(counts) > 1:
        raise InputError(
            f"{folder}: shard indices for different shard counts ({', '.join(f'of-{n}' for n in sorted(counts))}); "
            "delete the stale ones of an earlier run"
        )
    n = counts.pop()
    first_path, first = shards[min(shards)]
    for key in _SAME_KEYS:
        for p, meta in shards.values():
            if meta.get(key) != first.get(key):
                raise InputError(
                    f"{p}: {key} = {meta.get(key)!r} differs from {first_path.name} ({first.get(key)!r}); "
                    "all shards of a store must come from the same model, checkpoint and settings"
                )
    total = int(first["total"])
    seen: dict[int, dict[str, Any]] = {}
    dupes: list[int] = []
    for p, meta in shards.values():
        for e in meta["images"]:
            k = int(e["index"])
            if k in seen:
                dupes.append(k)
            seen[k] = e
    if dupes:
        raise InputError(f"{folder}: images {_format_indices(dupes)} are listed by more than one shard index")
    missing = [k for k in range(total) if k not in seen]
    extra = [k for k in seen if not 0 <= k < total]
    if missing or extra:
        absent = [i for i in range(n) if i not in shards]
        parts = []
        if missing:
            parts.append(f"images {_format_indices(missing)} of 0..{total - 1} are missing")
        if extra:
            parts.append(f"images {_format_indices(extra)} are outside 0..{total - 1}")
        if absent:
            parts.append(f"shard indices not found: {', '.join(f'{i}/{n}' for i in absent)}")
        raise InputError(f"{folder}: cannot merge the softmax store: {'; '.join(parts)}")
    images = [seen[k] for k in range(total)]
    lost = [e["index"] for e in images if not (folder / e["file"]).is_file()]
    if lost:
        raise InputError(f"{folder}: image files of images {_format_indices(lost)} are missing under {IMAGES_DIR}/")
    meta = {k: v for k, v in first.items() if k not in ("shard", "range", "images")}
    meta.update(shards=n, images=images)
    out = folder / INDEX_NAME
    write_text_atomic(out, json.dumps(meta, indent=1) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------


class StoreReader(Sequence[StoredImage]):
    """Random and sequential access to a finished store (one with ``index.json``).

    ``reader[i]`` reads image ``i`` with float32 probabilities; :meth:`read` offers the stored
    representation (``raw=True``: uint16 fixed point, float16 or float32 as written; multiply
    uint16 by :attr:`prob_scale`), skipping the probabilities (``probs=False``, ground truth
    only) or the logits. Iteration follows the image order and reads one image ahead in a
    background thread. Every read checks the file (corrupt or truncated -> InputError naming
    it) and the probabilities (NaN/inf or per-pixel sums off 1 -> InputError naming the image)
    unless ``validate=False``.
    """

    def __init__(self, folder: str | os.PathLike, *, validate: bool = True, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.validate = validate
        self.threads = threads
        index = self.folder / INDEX_NAME
        if not index.is_file():
            if not self.folder.is_dir():
                hint = " (the folder does not exist)"
            elif any(_SHARD_FILE.match(p.name) for p in self.folder.iterdir()):
                hint = "; it has shard indices: merge them (merge_index) once every shard has finished"
            else:
                hint = "; expected the output folder of dump_softmax"
            raise InputError(f"{self.folder}: not a softmax store (no {INDEX_NAME}){hint}")
        try:
            meta = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{index}: unreadable store index ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{index}: not a softmax store index (format {FORMAT!r} expected)")
        if meta.get("version") != FORMAT_VERSION:
            raise InputError(f"{index}: store format version {meta.get('version')!r} is not supported (expected {FORMAT_VERSION})")
        for key in ("num_classes", "dtype", "images", "has_logits"):
            if key not in meta:
                raise InputError(f"{index}: store index lacks {key!r}")
        if meta["dtype"] not in ENCODINGS:
            raise InputError(f"{index}: unknown probability encoding {meta['dtype']!r}")
        self.meta: dict[str, Any] = meta
        self._images: list[dict[str, Any]] = meta["images"]
        self._by_name: dict[str, int] | None = None

    # -- metadata ----------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def dtype(self) -> str:
        """The probability encoding: ``fixed16``, ``float16`` or ``float32``."""
        return self.meta["dtype"]

    @property
    def prob_scale(self) -> float:
        """Factor from the raw stored probabilities to probabilities (1/65535 for fixed16)."""
        return _PROB_SCALE[self.dtype]

    @property
    def max_abs_error(self) -> float:
        return max_abs_error(self.dtype)

    @property
    def model(self) -> str | None:
        return self.meta.get("model")

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.meta.get("checkpoint_sha256")

    @property
    def dataset_kind(self) -> str | None:
        return (self.meta.get("dataset") or {}).get("kind")

    @property
    def convention(self) -> EvalConvention | None:
        conv = (self.meta.get("dataset") or {}).get("convention")
        return None if conv is None else EvalConvention(**conv)

    @property
    def has_logits(self) -> bool:
        return bool(self.meta["has_logits"])

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self._images]

    @property
    def paths(self) -> list[str]:
        return [e["path"] for e in self._images]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(H, W) of every image."""
        return [(int(e["height"]), int(e["width"])) for e in self._images]

    def index_of(self, name: str) -> int:
        """Position of the image called ``name``."""
        if self._by_name is None:
            self._by_name = {e["name"]: k for k, e in enumerate(self._images)}
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.folder}: no image named {name!r}") from None

    def file_of(self, index: int) -> Path:
        return self.folder / self._images[index]["file"]

    # -- access ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> StoredImage:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("slicing a store is not supported; index single images")
        return self.read(index)

    def __iter__(self) -> Iterator[StoredImage]:
        return self.iter()

    def iter(self, **read_kwargs: Any) -> Iterator[StoredImage]:
        """All images in order, reading the next one in the background while the current one is used."""
        n = len(self)
        if n == 0:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="meta-ood-store-prefetch") as ex:
            fut = ex.submit(self.read, 0, **read_kwargs)
            for k in range(n):
                item = fut.result()
                if k + 1 < n:
                    fut = ex.submit(self.read, k + 1, **read_kwargs)
                yield item

    def read(
        self,
        index: int,
        *,
        raw: bool = False,
        probs: bool = True,
        logits: bool | None = None,
        validate: bool | None = None,
    ) -> StoredImage:
        """Read image ``index`` (negative counts from the end).

        raw: return the probabilities as stored instead of float32.
        probs: False skips the probabilities (``StoredImage.probs`` is None).
        logits: read the logits (default: when the store has them).
        validate: check the probabilities (default: the reader's ``validate``).
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"image index {index} out of range for a store of {n} images")
        index = index % n
        entry = self._images[index]
        validate = self.validate if validate is None else validate
        want_logits = self.has_logits if logits is None else bool(logits)
        if want_logits and not self.has_logits:
            raise InputError(f"{self.folder}: the store has no logits (written without store_logits)")
        file = self.folder / entry["file"]
        hw = (int(entry["height"]), int(entry["width"]))
        shape = (self.num_classes, *hw)
        try:
            with h5py.File(file, "r", locking=False) as f:
                name = _attr(f.attrs.get("name"))
                if name != entry["name"]:
                    raise InputError(f"{file}: holds image {name!r}, but {INDEX_NAME} lists {entry['name']!r} there")
                label = self._dataset(f, "label", hw, file)[()]
                label_ids = self._dataset(f, "label_ids", hw, file)[()] if entry.get("has_label_ids") else None
                p = self._read_planes(self._dataset(f, "probs", shape, file), raw) if probs else None
                lg = self._read_planes(self._dataset(f, "logits", shape, file), raw) if want_logits else None
        except InputError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError, zlib.error) as exc:
            raise InputError(
                f"{file}: corrupt or truncated softmax store file ({type(exc).__name__}: {exc}); "
                "delete it and run dump_softmax again"
            ) from None
        if p is not None and validate:
            self._validate(p, raw, f"{file} (image {index}, {entry['name']!r})")
        return StoredImage(
            name=entry["name"],
            path=entry["path"],
            probs=p,
            label=label,
            label_ids=label_ids,
            logits=lg,
            index=index,
        )

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _dataset(f: h5py.File, key: str, shape: tuple[int, ...], file: Path) -> h5py.Dataset:
        if key not in f:
            raise InputError(f"{file}: corrupt softmax store file: dataset {key!r} is missing")
        ds = f[key]
        if ds.shape != shape:
            raise InputError(f"{file}: corrupt softmax store file: {key!r} has shape {ds.shape}, expected {shape}")
        return ds

    def _read_planes(self, ds: h5py.Dataset, raw: bool) -> np.ndarray:
        """Decompress the class planes in parallel; float32 unless ``raw`` (fixed16 is rescaled)."""
        c, h, w = ds.shape
        stored = ds.dtype
        to_float = not raw
        out = np.empty((c, h, w), dtype=np.float32 if to_float else stored)
        scale = np.float32(_PROB_SCALE[self.dtype]) if stored == np.uint16 else None
        plist = ds.id.get_create_plist()
        filters = tuple(plist.get_filter(k)[3].decode() for k in range(plist.get_nfilters()))
        fast = ds.chunks == (1, h, w) and filters == _SHUFFLE_DEFLATE

        def one(k: int) -> None:
            plane = None
            if fast:
                mask, blob = ds.id.read_direct_chunk((k, 0, 0))
                if mask == 0:
                    plane = _unshuffle(zlib.decompress(blob), stored, (h, w))
            if plane is None:  # files laid out differently: let HDF5 decode
                plane = ds[k]
            if scale is not None and to_float:
                np.multiply(plane, scale, out=out[k])
            else:
                out[k] = plane

        if fast:
            _map(one, range(c), self.threads)
        else:  # h5py's own decoding is not thread-safe on one file handle
            for k in range(c):
                one(k)
        return out

    def _validate(self, p: np.ndarray, raw: bool, where: str) -> None:
        tol = _read_sum_tolerance(self.dtype, self.num_classes)
        if raw and p.dtype == np.uint16:
            sums = p.sum(axis=0, dtype=np.uint32)
            bad = np.abs(sums.astype(np.int64) - FIXED_SCALE) > tol * FIXED_SCALE
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise InputError(
                    f"{where}: invalid probabilities: {int(bad.sum())} pixels whose class probabilities do not sum "
                    f"to 1 +- {tol:.1e} (first at row {r}, column {c}: sum {sums[r, c] / FIXED_SCALE!r})"
                )
            return
        try:
            _validate_probs(p, tol, where, check_min=False)
        except InputError as exc:
            raise InputError(f"{exc}; the store is damaged, run dump_softmax again") from None
