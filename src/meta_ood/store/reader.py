"""Reading a finished softmax store: random access and prefetching iteration over its images.

Every read checks the file (corrupt or truncated files are named) and, unless told otherwise,
the probabilities, so a damaged store fails loudly instead of skewing the metrics.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zstandard
from lz4.block import LZ4BlockError

from meta_ood.errors import InputError
from meta_ood.labels import EvalConvention
from meta_ood.store.codec import (
    FIXED_SCALE,
    PROB_SCALE,
    CODEC_FILTERS,
    attr_value,
    decompress_plane,
    max_abs_error,
    parallel_map,
    read_sum_tolerance,
    validate_probs,
)
from meta_ood.scores import LOGIT_SCORERS
from meta_ood.store.index import INDEX_NAME, SCORES_GROUP, load_index
from meta_ood.store.planes import planes_from_probs

__all__ = ["StoreReader", "StoredImage"]


@dataclasses.dataclass
class StoredImage:
    """One image of a store. ``probs`` is float32 (C, H, W) unless read with ``raw=True``;
    ``scores`` maps the scorers read to their uint16 codes (:mod:`meta_ood.store.planes`)."""

    name: str
    path: str
    probs: np.ndarray | None
    label: np.ndarray
    label_ids: np.ndarray | None
    logits: np.ndarray | None
    index: int = -1
    scores: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    argmax: np.ndarray | None = None
    labelled: bool = True


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
        self.meta: dict[str, Any] = load_index(self.folder)
        self._images: list[dict[str, Any]] = self.meta["images"]
        self._by_name: dict[str, int] | None = None

    # -- metadata ----------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """C, the number of probability planes."""
        return int(self.meta["num_classes"])

    @property
    def dtype(self) -> str:
        """The probability encoding: ``fixed16``, ``float16`` or ``float32``."""
        return self.meta["dtype"]

    @property
    def prob_scale(self) -> float:
        """Factor from the raw stored probabilities to probabilities (1/65535 for fixed16)."""
        return PROB_SCALE[self.dtype]

    @property
    def max_abs_error(self) -> float:
        """The bound on ``|stored - original|`` of one probability in this store's encoding."""
        return max_abs_error(self.dtype)

    @property
    def model(self) -> str | None:
        """The name of the model that wrote the store."""
        return self.meta.get("model")

    @property
    def checkpoint_sha256(self) -> str | None:
        """The sha256 of the model's checkpoint (None if untrained / unknown)."""
        return self.meta.get("checkpoint_sha256")

    @property
    def dataset_kind(self) -> str | None:
        """The kind of the evaluation set the store covers."""
        return (self.meta.get("dataset") or {}).get("kind")

    @property
    def convention(self) -> EvalConvention | None:
        """The evaluation set's label convention (train_id_in / out / void)."""
        conv = (self.meta.get("dataset") or {}).get("convention")
        return None if conv is None else EvalConvention(**conv)

    @property
    def has_logits(self) -> bool:
        """Whether the store keeps the logits next to the probabilities."""
        return bool(self.meta["has_logits"])

    @property
    def has_probs(self) -> bool:
        """Whether the store keeps the (C, H, W) probabilities (else only score planes and argmax)."""
        return bool(self.meta["has_probs"])

    @property
    def scorers(self) -> list[str]:
        """The scorers whose planes are stored (others are computed from the probabilities on read)."""
        return sorted(self.meta["scores"])

    @property
    def codec(self) -> str:
        """The plane compression: ``zstd`` or ``zlib``."""
        return self.meta["codec"]

    def can_score(self, scorer: str) -> bool:
        """Whether :meth:`read` can return ``scorer``'s plane: stored, or computable from what is stored."""
        if scorer in self.meta["scores"]:
            return True
        return self.has_probs and (scorer not in LOGIT_SCORERS or self.has_logits)

    @property
    def names(self) -> list[str]:
        """The image names, in image order."""
        return [e["name"] for e in self._images]

    @property
    def paths(self) -> list[str]:
        """The source image paths, in image order."""
        return [e["path"] for e in self._images]

    @property
    def labelled(self) -> list[bool]:
        """Whether each image has ground truth (False: a benchmark's unlabelled test frame, all void)."""
        return [bool(e.get("labelled", True)) for e in self._images]

    @property
    def labelled_indices(self) -> list[int]:
        """Positions of the labelled images: the frames every evaluation uses."""
        return [k for k, e in enumerate(self._images) if e.get("labelled", True)]

    def labelled_or_raise(self) -> list[int]:
        """:attr:`labelled_indices`, or an InputError when the store has no labelled image to evaluate."""
        indices = self.labelled_indices
        if not indices:
            raise InputError(f"{self.folder}: none of its {len(self)} images has a label (a test split without "
                             "distributed ground truth): it gets score files but cannot be evaluated")
        return indices

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
        """The HDF5 file of image ``index``."""
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

    def iter(self, indices: Sequence[int] | None = None, **read_kwargs: Any) -> Iterator[StoredImage]:
        """The images ``indices`` (default: all) in order, reading the next one in the background while
        the current one is used."""
        order = list(range(len(self))) if indices is None else [int(k) for k in indices]
        n = len(order)
        if n == 0:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="meta-ood-store-prefetch") as ex:
            fut = ex.submit(self.read, order[0], **read_kwargs)
            for k in range(n):
                item = fut.result()
                if k + 1 < n:
                    fut = ex.submit(self.read, order[k + 1], **read_kwargs)
                yield item

    def read(
        self,
        index: int,
        *,
        raw: bool = False,
        probs: bool | None = None,
        logits: bool | None = None,
        scores: Sequence[str] = (),
        argmax: bool = False,
        validate: bool | None = None,
    ) -> StoredImage:
        """Read image ``index`` (negative counts from the end).

        Parameters
        ----------
        index : int
            Position of the image in the store.
        raw : bool
            Return the probabilities as stored instead of float32.
        probs : bool or None
            Read the probabilities (default: when the store has them); False skips them.
        logits : bool or None
            Read the logits (default: when the store has them).
        scores : sequence of str
            Scorers whose uint16 code planes to read (``StoredImage.scores``); a scorer without
            a stored plane is computed from the probabilities (and logits) when the store has them.
        argmax : bool
            Read the predicted class plane (``StoredImage.argmax``).
        validate : bool or None
            Check the probabilities (default: the reader's ``validate``).
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"image index {index} out of range for a store of {n} images")
        index = index % n
        entry = self._images[index]
        validate = self.validate if validate is None else validate
        want_logits = self.has_logits if logits is None else bool(logits)
        want_probs = self.has_probs if probs is None else bool(probs)
        if want_logits and not self.has_logits:
            raise InputError(f"{self.folder}: the store has no logits (written without store_logits)")
        if want_probs and not self.has_probs:
            raise InputError(
                f"{self.folder}: the store keeps no probabilities (only score planes); they are kept for the "
                "datasets of evaluation.segment_datasets, or for all with inference.probabilities: all"
            )
        missing = [k for k in scores if k not in self.meta["scores"]]
        for k in missing:
            if not self.can_score(k):
                raise InputError(
                    f"{self.folder}: the store has no {k!r} score plane (it has {self.scorers}) and no "
                    f"{'logits' if k in LOGIT_SCORERS and self.has_probs else 'probabilities'} to compute it from; "
                    "run dump_softmax again with this scorer in the configuration"
                )
        file = self.folder / entry["file"]
        hw = (int(entry["height"]), int(entry["width"]))
        shape = (self.num_classes, *hw)
        where = f"{file} (image {index}, {entry['name']!r})"
        try:
            with h5py.File(file, "r", locking=False) as f:
                name = attr_value(f.attrs.get("name"))
                if name != entry["name"]:
                    raise InputError(f"{file}: holds image {name!r}, but {INDEX_NAME} lists {entry['name']!r} there")
                label = self._read_planes(self._dataset(f, "label", hw, file), True)
                label_ids = (self._read_planes(self._dataset(f, "label_ids", hw, file), True)
                             if entry.get("has_label_ids") else None)
                # planes a file lacks (files of format 1) are computed from the float32 probabilities
                fallback = bool(missing) or (argmax and "argmax" not in f)
                p = self._read_planes(self._dataset(f, "probs", shape, file), raw) if want_probs else None
                p_float = p if p is not None and not raw else None
                if fallback and p_float is None:
                    p_float = self._read_planes(self._dataset(f, "probs", shape, file), False)
                need_l = want_logits or any(k in LOGIT_SCORERS for k in missing)
                lg = self._read_planes(self._dataset(f, "logits", shape, file), raw) if need_l else None
                codes = {k: self._read_planes(self._dataset(f, f"{SCORES_GROUP}/{k}", hw, file), True)
                         for k in scores if k not in missing}
                amax = self._read_planes(self._dataset(f, "argmax", hw, file), True) if argmax and "argmax" in f else None
        except InputError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError, struct.error, zlib.error, zstandard.ZstdError, LZ4BlockError) as exc:
            raise InputError(
                f"{file}: corrupt or truncated softmax store file ({type(exc).__name__}: {exc}); "
                "delete it and run dump_softmax again"
            ) from None
        if validate:
            if p is not None:
                self._validate(p, raw, where)
            if p_float is not None and p_float is not p:
                self._validate(p_float, False, where)
        if fallback:
            computed = planes_from_probs(p_float, missing, None if lg is None else np.asarray(lg, np.float32), where)
            codes.update({k: computed.scores[k] for k in missing})  # stored planes are kept as stored
            if argmax and amax is None:
                amax = computed.argmax
        return StoredImage(
            name=entry["name"],
            path=entry["path"],
            probs=p,
            label=label,
            label_ids=label_ids,
            logits=lg if want_logits else None,
            index=index,
            scores={k: codes[k] for k in scores},
            argmax=amax,
            labelled=bool(entry.get("labelled", True)),
        )

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _dataset(f: h5py.File, key: str, shape: tuple[int, ...], file: Path) -> h5py.Dataset:
        """Dataset ``key`` of ``f``; InputError naming ``file`` if it is missing or has another shape."""
        if key not in f:
            raise InputError(f"{file}: corrupt softmax store file: dataset {key!r} is missing")
        ds = f[key]
        if ds.shape != shape:
            raise InputError(f"{file}: corrupt softmax store file: {key!r} has shape {ds.shape}, expected {shape}")
        return ds

    def _read_planes(self, ds: h5py.Dataset, raw: bool) -> np.ndarray:
        """Decompress a (C, H, W) dataset plane by plane in parallel, or an (H, W) one; float32
        unless ``raw`` (fixed16 is rescaled)."""
        flat = ds.ndim == 2
        c, h, w = (1, *ds.shape) if flat else ds.shape
        stored = ds.dtype
        to_float = not raw
        out = np.empty((c, h, w), dtype=np.float32 if to_float else stored)
        scale = np.float32(PROB_SCALE[self.dtype]) if stored == np.uint16 else None
        plist = ds.id.get_create_plist()
        filters = tuple(plist.get_filter(k)[0] for k in range(plist.get_nfilters()))
        codec = next((k for k, v in CODEC_FILTERS.items() if v == filters), None)
        fast = codec is not None and ds.chunks == ((h, w) if flat else (1, h, w))

        def one(k: int) -> None:
            plane = None
            if fast:
                mask, blob = ds.id.read_direct_chunk((0, 0) if flat else (k, 0, 0))
                if mask == 0:
                    plane = decompress_plane(blob, stored, (h, w), codec)
            if plane is None:  # files laid out differently: let HDF5 decode
                plane = ds[()] if flat else ds[k]
            if scale is not None and to_float:
                np.multiply(plane, scale, out=out[k])
            else:
                out[k] = plane

        if fast:
            parallel_map(one, range(c), self.threads)
        else:  # h5py's own decoding is not thread-safe on one file handle
            for k in range(c):
                one(k)
        return out[0] if flat else out

    def _validate(self, p: np.ndarray, raw: bool, where: str) -> None:
        """Check probabilities read back: finite and summing to 1 within the encoding's tolerance."""
        tol = read_sum_tolerance(self.dtype, self.num_classes)
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
            validate_probs(p, tol, where, check_min=False)
        except InputError as exc:
            raise InputError(f"{exc}; the store is damaged, run dump_softmax again") from None
