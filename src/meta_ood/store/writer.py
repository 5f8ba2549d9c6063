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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from meta_ood import __version__
from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.labels import EvalConvention
from meta_ood.pixel_eval.encoding import score_encoding
from meta_ood.scores import LOGIT_SCORERS
from meta_ood.store.codec import (
    CODEC_LEVEL,
    DEFAULT_CODEC,
    DEFAULT_DTYPE,
    LEVEL_RANGE,
    PROB_SCALE,
    STORED_DTYPE,
    WRITE_SUM_TOL,
    attr_value,
    check_codec,
    check_dtype,
    compress_plane,
    compress_shuffled,
    dataset_options,
    max_abs_error,
    parallel_map,
    quantize,
    validate_probs,
)
from meta_ood.store.index import (
    FORMAT,
    FORMAT_VERSION,
    IMAGES_DIR,
    SCORES_GROUP,
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
from meta_ood.store.planes import ImagePlanes, check_planes, check_scorers, planes_from_probs

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
    codec : str
        Plane compression after a byte shuffle, one of :data:`~meta_ood.store.codec.CODECS`:
        ``"lz4"`` (default), ``"zstd"`` or ``"zlib"`` (deflate, the earlier default).
    compression_level : int or None
        Level of the codec (default :data:`~meta_ood.store.codec.CODEC_LEVEL`: 1; higher levels
        buy little, see ``bench/README.md``).
    store_probs : bool
        Keep the (C, H, W) probabilities (needed by the segment metrics); without them a file
        holds the score planes, the argmax and the ground truth only.
    scorers : sequence of str
        The scorers whose planes are stored (``entropy`` always is).
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
        compression_level: int | None = None,
        threads: int | None = None,
        align: int = 1,
        settings: Mapping[str, Any] | None = None,
        codec: str = DEFAULT_CODEC,
        store_probs: bool = True,
        scorers: Sequence[str] = ("entropy",),
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
        self.codec = check_codec(codec)
        level = CODEC_LEVEL[self.codec] if compression_level is None else int(compression_level)
        lo, hi = LEVEL_RANGE[self.codec]
        if not lo <= level <= hi:
            raise InputError(f"compression_level {level} of codec {self.codec}: expected {lo}..{hi}")
        self.compression_level = level
        self.threads = threads
        self.store_logits = bool(store_logits)
        self.store_probs = bool(store_probs)
        self.scorers = check_scorers(scorers)
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
            "has_probs": self.store_probs,
            "codec": self.codec,
            "compression_level": self.compression_level,
            "scores": {k: score_encoding(k) for k in self.scorers},
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
        probs: np.ndarray | None = None,
        label: np.ndarray | None = None,
        label_ids: np.ndarray | None = None,
        logits: np.ndarray | None = None,
        *,
        planes: ImagePlanes | None = None,
        labelled: bool = True,
    ) -> dict[str, Any]:
        """Validate and write image ``index`` (its global position in the dataset); return its index entry.

        Either ``probs`` (C, H, W) floating point (and ``logits`` (C, H, W) when the store keeps
        them or a logit scorer needs them): the score planes are computed here, on the CPU; or
        ``planes``, finished in the store's representation (a dump computes them on the device,
        :func:`meta_ood.device_planes.device_planes`). ``label`` and ``label_ids`` are (H, W)
        with values 0..255. NaN/inf, negative probabilities or per-pixel sums off 1 by more
        than 1e-3 raise an InputError naming the image, and nothing is written. ``labelled`` False
        marks a frame whose ground truth is not distributed (its label is all void): readers list
        it, the evaluations skip it.
        """
        index = self._check_index(index)
        where = f"image {index} ({name!r})"
        if label is None:
            raise InputError(f"{where}: the ground-truth label is required")
        if planes is None:
            planes = self._planes_from_probs(probs, logits, where)
        elif probs is not None or logits is not None:
            raise InputError(f"{where}: pass either probs/logits or finished planes, not both")
        else:
            self._check_planes(planes, where)
        h, w = planes.argmax.shape
        label = _as_label(label, (h, w), where, "label")
        label_ids = None if label_ids is None else _as_label(label_ids, (h, w), where, "label_ids")

        enc, codec, level = self.dtype, self.codec, self.compression_level
        tasks: list[tuple[str, np.ndarray, str]] = []  # (dataset, plane, "quantize" | "stored" | "shuffled")
        if self.store_probs:
            mode = "shuffled" if planes.shuffled else ("stored" if planes.probs.dtype == STORED_DTYPE[enc] else "quantize")
            tasks += [("probs", planes.probs[c], mode) for c in range(self.num_classes)]
        if self.store_logits:
            tasks += [("logits", planes.logits[c], "stored") for c in range(self.num_classes)]
        tasks += [(f"{SCORES_GROUP}/{k}", planes.scores[k], "stored") for k in self.scorers]
        tasks += [("argmax", planes.argmax, "stored"), ("label", label, "stored")]
        if label_ids is not None:
            tasks += [("label_ids", label_ids, "stored")]

        def one(task: tuple[str, np.ndarray, str]) -> bytes:
            _, plane, mode = task
            if mode == "shuffled":
                return compress_shuffled(plane, level, codec)
            return compress_plane(quantize(plane, enc) if mode == "quantize" else plane, level, codec)

        blobs = parallel_map(one, tasks, self.threads)
        chunks: dict[str, list[bytes]] = {}
        for (key, _, _), blob in zip(tasks, blobs):
            chunks.setdefault(key, []).append(blob)

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
                    "has_probs": self.store_probs,
                    "codec": self.codec,
                    "scores": json.dumps(list(self.scorers)),
                    "settings": self._settings,
                    "labelled": bool(labelled),
                }
                for k, v in attrs.items():
                    f.attrs[k] = v
                if self.store_probs:
                    self._put_planes(f, "probs", STORED_DTYPE[enc], (h, w), chunks["probs"])
                if self.store_logits:
                    self._put_planes(f, "logits", self.logits_dtype, (h, w), chunks["logits"])
                for k in self.scorers:
                    ds = self._put_planes(f, f"{SCORES_GROUP}/{k}", np.dtype(np.uint16), (h, w), chunks[f"{SCORES_GROUP}/{k}"])
                    ds.attrs["encoding"] = score_encoding(k)
                self._put_planes(f, "argmax", planes.argmax.dtype, (h, w), chunks["argmax"])
                for key in ("label", "label_ids"):
                    if key in chunks:
                        self._put_planes(f, key, np.dtype(np.uint8), (h, w), chunks[key])
        entry = image_entry(index, str(name), str(path), h, w, label_ids is not None, labelled)
        with self._lock:
            self._entries[index] = entry
        return entry

    def _planes_from_probs(self, probs: np.ndarray | None, logits: np.ndarray | None, where: str) -> ImagePlanes:
        """Validate float probabilities (and logits) and compute the image's planes from them on the CPU."""
        if probs is None:
            raise InputError(f"{where}: no probabilities and no planes were given")
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[0] != self.num_classes:
            raise InputError(f"{where}: probabilities must have shape (C={self.num_classes}, H, W), got {probs.shape}")
        if not np.issubdtype(probs.dtype, np.floating):
            raise InputError(f"{where}: probabilities must be floating point, got {probs.dtype}")
        h, w = probs.shape[1:]
        if h == 0 or w == 0:
            raise InputError(f"{where}: empty image ({h}x{w})")
        validate_probs(probs, WRITE_SUM_TOL, where)
        stored_logits = None
        if logits is not None or self.store_logits:
            if logits is None:
                raise InputError(f"{where}: the store keeps logits (store_logits=True) but none were given")
            stored_logits = self._check_logits(np.asarray(logits), probs.shape, where)
        needs_logits = [k for k in self.scorers if k in LOGIT_SCORERS]
        if needs_logits and logits is None:
            raise InputError(f"{where}: scorers {needs_logits} are computed from logits, but none were given")
        planes = planes_from_probs(probs, self.scorers, None if logits is None else np.asarray(logits, np.float32), where)
        planes.logits = stored_logits
        return planes

    def _check_planes(self, planes: ImagePlanes, where: str) -> None:
        """InputError unless ``planes`` holds exactly what this store keeps, in its stored dtypes."""
        hw = tuple(planes.argmax.shape)
        if len(hw) != 2 or 0 in hw:
            raise InputError(f"{where}: argmax must be a non-empty (H, W) plane, got shape {planes.argmax.shape}")
        check_planes(planes, self.scorers, hw, where)
        shape = (self.num_classes, *hw)
        if self.store_probs:
            p = planes.probs
            want, want_shape = STORED_DTYPE[self.dtype], shape
            if planes.shuffled:
                want, want_shape = np.dtype(np.uint8), (self.num_classes, want.itemsize, *hw)
            if p is None or p.shape != want_shape or p.dtype != want:
                got = "none" if p is None else f"{p.dtype}{tuple(p.shape)}"
                how = " shuffled bytes" if planes.shuffled else ""
                raise InputError(f"{where}: probabilities {got}; expected{how} {want}{want_shape} ({self.dtype})")
        if self.store_logits:
            if planes.logits is None:
                raise InputError(f"{where}: the store keeps logits (store_logits=True) but none were given")
            planes.logits = self._check_logits(np.asarray(planes.logits), shape, where)

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

    def _put_planes(self, f: h5py.File, key: str, dtype: np.dtype, hw: tuple[int, int], chunks: list[bytes]) -> h5py.Dataset:
        """Create a shuffled, compressed dataset from finished chunks: (C, H, W) with one plane per
        chunk when there are several, (H, W) in one chunk for a single plane."""
        shape = (len(chunks), *hw) if key in ("probs", "logits") else hw
        ds = f.create_dataset(key, shape=shape, dtype=dtype, chunks=(1, *hw) if len(shape) == 3 else hw,
                              track_times=False, **dataset_options(self.codec, self.compression_level))
        offset = (0,) * len(shape)
        for c, blob in enumerate(chunks):
            ds.id.write_direct_chunk((c, 0, 0) if len(shape) == 3 else offset, blob, 0)
        return ds

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
                "has_probs": self.store_probs,
                "codec": self.codec,
                "scores": json.dumps(list(self.scorers)),
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
            if "argmax" not in f or f["label"].shape != f["argmax"].shape:
                return None
            h, w = f["argmax"].shape
            planes = {"argmax": 1, **{f"{SCORES_GROUP}/{k}": 1 for k in self.scorers}}
            if self.store_probs:
                planes["probs"] = self.num_classes
            if self.store_logits:
                planes["logits"] = self.num_classes
            for key, n in planes.items():
                if key not in f or f[key].shape[-2:] != (h, w) or f[key].id.get_num_chunks() != n:
                    return None
            has_ids = "label_ids" in f
            if has_ids and f["label_ids"].shape != (h, w):
                return None
            labelled = bool(attr_value(a["labelled"])) if "labelled" in a else True
            return image_entry(index, attr_value(a["name"]), attr_value(a["path"]), h, w, has_ids, labelled)
