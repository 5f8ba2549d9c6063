"""Writing the images of one shard of a softmax store.

Each image becomes one HDF5 file, written under a temporary name and renamed when complete,
whose attributes repeat the store metadata, so that a resumed run can tell whether an existing
file is reusable. The class planes are compressed in parallel (:mod:`meta_ood.store.codec`) and
handed to HDF5 as finished chunks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from meta_ood import __version__
from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.labels import EvalConvention
from meta_ood.store.codec import (
    DEFAULT_DTYPE,
    PROB_SCALE,
    STORED_DTYPE,
    WRITE_SUM_TOL,
    attr_value,
    check_dtype,
    compress_plane,
    max_abs_error,
    parallel_map,
    quantize,
    validate_probs,
)
from meta_ood.store.index import (
    FORMAT,
    FORMAT_VERSION,
    IMAGES_DIR,
    drop_stale_indices,
    format_indices,
    image_entry,
    image_file,
    merge_index,
    parse_shard,
    shard_index_path,
    shard_range,
    write_index,
)

__all__ = ["StoreWriter"]

log = logging.getLogger(__name__)


def _convention_dict(convention: EvalConvention | Mapping[str, int] | None) -> dict[str, int] | None:
    """The evaluation convention as the plain dict recorded in the index (None stays None)."""
    if convention is None:
        return None
    if isinstance(convention, EvalConvention):
        return dataclasses.asdict(convention)
    keys = ("train_id_in", "train_id_out", "void_id")
    missing = [k for k in keys[:2] if k not in convention]
    if missing:
        raise InputError(f"dataset convention {dict(convention)!r} lacks {', '.join(missing)}")
    return {k: int(convention[k]) for k in keys if k in convention}


def _as_label(label: Any, hw: tuple[int, int], where: str, what: str) -> np.ndarray:
    """A ground-truth map as uint8 of shape ``hw``; other shapes or values outside 0..255 are refused."""
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
    """Store a ground-truth map as one deflated chunk (labels compress well and are read whole)."""
    f.create_dataset(key, data=label, chunks=label.shape, compression="gzip", compression_opts=1, track_times=False)


class StoreWriter:
    """Writes the images of one shard of a store into ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        The store folder (created if needed).
    num_classes : int
        C, the number of probability planes.
    dtype : str
        Probability encoding, one of :data:`~meta_ood.store.codec.ENCODINGS` (default ``"fixed16"``).
    model, checkpoint_sha : str or None
        The model name and the sha256 of its checkpoint (None if untrained / unknown); recorded
        in the index and in every image file.
    dataset : str or None
        The dataset kind.
    convention : EvalConvention, mapping or None
        The dataset's evaluation convention (train_id_in / out / void).
    store_logits : bool
        Also store the logits (float16; float32 when ``dtype="float32"``).
    shard : (int, int) or str
        ``(i, n)`` or ``"i/n"``, 0-based; the writer accepts the images of
        ``shard_range(total, i, n, align)``.
    total : int or None
        N, the number of images of the whole dataset (required when n > 1).
    compression_level : int
        zlib level of the probability and logit planes (1 = fast; higher levels buy little,
        see ``bench/README.md``).
    threads : int or None
        1 compresses the class planes in the calling thread; otherwise (default) they are
        compressed in a shared pool of min(8, available cores) threads.
    align : int
        Shard alignment passed to :func:`~meta_ood.store.index.shard_range`.
    settings : mapping or None
        The producer's options that change the stored values; a file written under other
        settings is never reused.

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
        self.dtype = check_dtype(dtype)
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
            "prob_scale": PROB_SCALE[self.dtype],
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
        drop_stale_indices(self.folder, self.shard)

    # -- public ---------------------------------------------------------------------------

    @property
    def written(self) -> list[int]:
        """Indices written (or adopted by :meth:`resume`) so far, sorted."""
        with self._lock:
            return sorted(self._entries)

    def image_path(self, index: int) -> Path:
        """Where the file of image ``index`` lives."""
        return self.folder / image_file(index)

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
        validate_probs(probs, WRITE_SUM_TOL, where)
        label = _as_label(label, (h, w), where, "label")
        label_ids = None if label_ids is None else _as_label(label_ids, (h, w), where, "label_ids")
        stored_logits = None
        if self.store_logits:
            if logits is None:
                raise InputError(f"{where}: the store keeps logits (store_logits=True) but none were given")
            stored_logits = self._check_logits(np.asarray(logits), probs.shape, where)

        level = self.compression_level
        enc = self.dtype
        planes = range(self.num_classes)
        prob_chunks = parallel_map(lambda c: compress_plane(quantize(probs[c], enc), level), planes, self.threads)
        logit_chunks = None
        if stored_logits is not None:
            logit_chunks = parallel_map(lambda c: compress_plane(stored_logits[c], level), planes, self.threads)

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
                    "prob_scale": PROB_SCALE[self.dtype],
                    "model": self.meta["model"] or "",
                    "checkpoint_sha256": self.meta["checkpoint_sha256"] or "",
                    "has_logits": self.store_logits,
                    "settings": self._settings,
                }
                for k, v in attrs.items():
                    f.attrs[k] = v
                self._put_planes(f, "probs", STORED_DTYPE[enc], (h, w), prob_chunks)
                if logit_chunks is not None:
                    self._put_planes(f, "logits", self.logits_dtype, (h, w), logit_chunks)
                _put_label(f, "label", label)
                if label_ids is not None:
                    _put_label(f, "label_ids", label_ids)
        entry = image_entry(index, str(name), str(path), h, w, label_ids is not None)
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
                f"{self.folder}: shard {i}/{n} is incomplete: images {format_indices(missing)} were not written"
            )
        meta = dict(self.meta)
        meta.update(
            total=total,
            shards=n,
            shard=[i, n],
            range=[expected.start, expected.stop],
            images=[entries[k] for k in expected],
        )
        out = shard_index_path(self.folder, self.shard)
        write_index(out, meta)
        if n == 1:
            merge_index(self.folder)
        return out

    # -- internals --------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        """``index`` as an int; ValueError if it lies outside this writer's shard."""
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
        """The logits in their stored dtype; InputError on a wrong shape, NaN/inf or overflow."""
        if logits.shape != shape:
            raise InputError(f"{where}: logits must have the shape of the probabilities {shape}, got {logits.shape}")
        with np.errstate(over="ignore"):  # overflow is reported below
            stored = np.asarray(logits, dtype=self.logits_dtype)
        if not np.isfinite(stored).all():
            bad = "NaN/inf" if not np.isfinite(logits).all() else f"values beyond the {self.logits_dtype.name} range"
            raise InputError(f"{where}: logits contain {bad}; expected finite values (use dtype='float32' for huge logits)")
        return stored

    def _put_planes(self, f: h5py.File, key: str, dtype: np.dtype, hw: tuple[int, int], chunks: list[bytes]) -> None:
        """Create a (C, H, W) shuffle + deflate dataset, one plane per chunk, from compressed chunks."""
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
        """The index entry of ``target`` if it is a complete file of this store's image ``index``, else None."""
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
                if k not in a or attr_value(a[k]) != v:
                    log.info("%s: %s is %r, expected %r; it will be rewritten", target, k, attr_value(a.get(k)), v)
                    return None
            found = attr_value(a.get("name"))
            if name is not None and found != name:
                log.info("%s: holds image %r, expected %r; it will be rewritten", target, found, name)
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
            return image_entry(index, attr_value(a["name"]), attr_value(a["path"]), h, w, has_ids)
