"""SegmentMeIfYouCan score files and label masks: ``<fid>.hdf5`` maps, folder layout, submission zip.

A method's scores for a dataset live in ``anomaly_p/<method>/<dataset>/<fid>.hdf5``, each file
holding one (H, W) dataset ``value`` (higher = more anomalous). The official tooling writes them
as float16; they are read back at their stored dtype (float16 or float32). Labels are
``<fid>_labels_semantic.png`` masks with 0 (not anomaly), 1 (anomaly) and 255 (void), as in the
datasets' ``labels_masks/`` folders.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.smiyc.protocol import VOID

try:  # ISA-L's inflate gives zlib's bytes in about half the time
    from isal.isal_zlib import decompress as _decompress
    from isal.isal_zlib import error as _DecompressError
except ImportError:  # pragma: no cover - isal is a pinned dependency; plain zlib gives the same arrays
    _decompress, _DecompressError = zlib.decompress, zlib.error

__all__ = [
    "LABEL_SUFFIX",
    "SCORE_DTYPES",
    "SCORE_SUFFIX",
    "label_ids",
    "method_dir",
    "paired_frames",
    "read_label",
    "read_scores",
    "score_dtype",
    "score_ids",
    "unlabelled_ids",
    "write_label",
    "write_scores",
    "write_submission_zip",
]

SCORE_SUFFIX = ".hdf5"
LABEL_SUFFIX = "_labels_semantic.png"
#: Score dtypes a file may store; writing defaults to float16 like the official tooling.
SCORE_DTYPES = ("float16", "float32")
_DATASET = "value"


def method_dir(root: str | os.PathLike, method: str, dataset: str) -> Path:
    """Folder of one method's score files for one dataset: ``<root>/anomaly_p/<method>/<dataset>``."""
    for name, value in (("method", method), ("dataset", dataset)):
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise InputError(f"{name} {value!r}: expected a plain folder name")
    return Path(root) / "anomaly_p" / method / dataset


def write_scores(path: str | os.PathLike, scores: np.ndarray, dtype: str = "float16") -> Path:
    """Write one (H, W) score map as dataset ``value`` of an hdf5 file (``dtype`` float16 or float32)."""
    if dtype not in SCORE_DTYPES:
        raise InputError(f"dtype {dtype!r}: expected one of {list(SCORE_DTYPES)}")
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.dtype.kind != "f":
        raise InputError(f"{path}: scores of shape {scores.shape} / dtype {scores.dtype}: expected a float (H, W) map")
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset(_DATASET, data=scores.astype(dtype), compression="gzip")
    return path


def _chunk_offsets(dsid: h5py.h5d.DatasetID) -> list[tuple[int, ...]]:
    """Offsets of a dataset's stored chunks: one index walk (``chunk_iter``) where HDF5 offers it."""
    offsets: list[tuple[int, ...]] = []
    try:
        dsid.chunk_iter(lambda info: offsets.append(info.chunk_offset))
        return offsets
    except (AttributeError, NotImplementedError, RuntimeError):  # older HDF5: one lookup per chunk
        return [dsid.get_chunk_info(i).chunk_offset for i in range(dsid.get_num_chunks())]


def _deflate_chunks(ds: h5py.Dataset) -> list[tuple[tuple[int, ...], int, bytes]] | None:
    """The raw chunks (offset, filter mask, bytes) of a chunked dataset whose only filter is
    deflate (gzip, as the official tooling writes), or None for any other layout."""
    if ds.chunks is None or ds.compression != "gzip" or ds.id.get_create_plist().get_nfilters() != 1:
        return None
    dsid = ds.id
    return [(offset, *dsid.read_direct_chunk(offset)) for offset in _chunk_offsets(dsid)]


def _inflate(chunks: list[tuple[tuple[int, ...], int, bytes]], shape: tuple[int, ...], chunk: tuple[int, ...],
             dtype: np.dtype, fill: float) -> np.ndarray:
    """The array of deflated chunks; inflating runs outside h5py's global lock, so threads decode in parallel."""
    grid = -(-shape[0] // chunk[0]) * -(-shape[1] // chunk[1])
    out = np.empty(shape, dtype=dtype) if len(chunks) == grid else np.full(shape, fill, dtype=dtype)
    for (r, c), mask, data in chunks:
        block = np.frombuffer(_decompress(data) if mask == 0 else data, dtype=dtype).reshape(chunk)
        h, w = min(chunk[0], shape[0] - r), min(chunk[1], shape[1] - c)
        out[r : r + h, c : c + w] = block[:h, :w]
    return out


def read_scores(path: str | os.PathLike) -> np.ndarray:
    """The (H, W) ``value`` map of a score file, at its stored dtype (float16 or float32)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as fh:
            if _DATASET not in fh:
                raise InputError(f"{path}: no dataset {_DATASET!r} (found {sorted(fh.keys())})")
            ds = fh[_DATASET]
            shape, dtype, chunk, fill = ds.shape, ds.dtype, ds.chunks, ds.fillvalue
            chunks = _deflate_chunks(ds) if len(shape) == 2 and dtype.name in SCORE_DTYPES else None
            value = ds[()] if chunks is None else None
        if chunks is not None:
            value = _inflate(chunks, shape, chunk, dtype, fill)
        value = value.astype(value.dtype.newbyteorder("="), copy=False)
    except OSError as exc:
        raise InputError(f"{path}: cannot read hdf5 score file ({exc})") from None
    except (zlib.error, _DecompressError, ValueError) as exc:
        raise InputError(f"{path}: corrupt compressed chunk in the score file ({exc})") from None
    if value.ndim != 2 or value.dtype.name not in SCORE_DTYPES:
        raise InputError(
            f"{path}: {_DATASET!r} of shape {value.shape} / dtype {value.dtype}: expected an (H, W) map "
            f"of {' or '.join(SCORE_DTYPES)}"
        )
    return value


def score_dtype(path: str | os.PathLike) -> np.dtype:
    """Stored dtype of a score file's ``value`` map (read from the file's metadata only)."""
    try:
        with h5py.File(path, "r") as fh:
            if _DATASET not in fh:
                raise InputError(f"{path}: no dataset {_DATASET!r} (found {sorted(fh.keys())})")
            return fh[_DATASET].dtype
    except OSError as exc:
        raise InputError(f"{path}: cannot read hdf5 score file ({exc})") from None


def write_label(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write a label mask (0 / 1 / 255) as an 8-bit PNG."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.isin(labels, (0, 1, VOID)).all():
        raise InputError(f"{path}: expected an (H, W) mask of 0, 1 and {VOID}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8), mode="L").save(path)
    return path


def read_label(path: str | os.PathLike) -> np.ndarray:
    """A label mask as a uint8 (H, W) array (values are checked by the evaluation)."""
    try:
        with Image.open(path) as img:
            labels = np.asarray(img)
    except OSError as exc:
        raise InputError(f"{path}: cannot read label image ({exc})") from None
    if labels.ndim != 2:
        raise InputError(f"{path}: label image of shape {labels.shape}: expected a single-channel mask")
    return labels.astype(np.uint8) if labels.dtype != np.uint8 else labels


def score_ids(folder: str | os.PathLike) -> dict[str, Path]:
    """Frame id -> score file of every ``<fid>.hdf5`` in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: score folder not found")
    return {p.name[: -len(SCORE_SUFFIX)]: p for p in sorted(folder.glob(f"*{SCORE_SUFFIX}"))}


def label_ids(folder: str | os.PathLike) -> dict[str, Path]:
    """Frame id -> label mask of every ``<fid>_labels_semantic.png`` in ``folder`` (or its ``labels_masks/``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: label folder not found")
    if (folder / "labels_masks").is_dir():
        folder = folder / "labels_masks"
    return {p.name[: -len(LABEL_SUFFIX)]: p for p in sorted(folder.glob(f"*{LABEL_SUFFIX}"))}


def write_submission_zip(root: str | os.PathLike, out: str | os.PathLike,
                         folders: Sequence[str | os.PathLike] | None = None) -> Path:
    """Zip the ``<fid>.hdf5`` files of ``anomaly_p/<method>/<folder>/`` under ``root``, paths relative to it.

    ``folders``: the score folders to submit (default: every ``anomaly_p/*/*`` folder); each must lie
    below ``root/anomaly_p`` and hold score files.
    """
    root = Path(root)
    if folders is None:
        files = sorted((root / "anomaly_p").glob(f"*/*/*{SCORE_SUFFIX}"))
    else:
        files = []
        for folder in map(Path, folders):
            if root / "anomaly_p" not in folder.parents or not sorted(folder.glob(f"*{SCORE_SUFFIX}")):
                raise InputError(f"{folder}: expected a folder of <fid>{SCORE_SUFFIX} score files below {root / 'anomaly_p'}")
            files += sorted(folder.glob(f"*{SCORE_SUFFIX}"))
    if not files:
        raise InputError(f"{root}: no anomaly_p/<method>/<dataset>/<fid>{SCORE_SUFFIX} files to submit")
    out = Path(out)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for f in files:
            zf.write(f, f.relative_to(root).as_posix())
    return out


def _preview(ids: list[str]) -> str:
    return f"{ids[:5]}{' ...' if len(ids) > 5 else ''}"


def unlabelled_ids(scores_dir: str | os.PathLike, labels_dir: str | os.PathLike) -> list[str]:
    """Sorted ids of the score files in ``scores_dir`` without a label mask in ``labels_dir``.

    In the benchmark layout a method's folder holds every frame, so these are its unlabelled
    (test) frames, which :func:`paired_frames` skips unless ``strict``.
    """
    return sorted(set(score_ids(scores_dir)) - set(label_ids(labels_dir)))


def paired_frames(
    scores_dir: str | os.PathLike, labels_dir: str | os.PathLike, strict: bool = False
) -> list[tuple[str, Path, Path]]:
    """(fid, score file, label mask) of every labelled frame, sorted by fid.

    Score files without a label (the benchmark's unlabelled test frames, see
    :func:`unlabelled_ids`) are skipped, or refused with ``strict``. Raises :class:`InputError`
    when a labelled frame has no score file or there is no label mask at all.
    """
    scores, labels = score_ids(scores_dir), label_ids(labels_dir)
    missing = sorted(set(labels) - set(scores))
    if missing:
        raise InputError(
            f"{len(missing)} labelled frames without {SCORE_SUFFIX} score file in {scores_dir}: {_preview(missing)}; "
            f"write a <fid>{SCORE_SUFFIX} score map for every labelled frame"
        )
    extra = sorted(set(scores) - set(labels))
    if strict and extra:
        raise InputError(
            f"{len(extra)} score files without {LABEL_SUFFIX} label in {labels_dir}: {_preview(extra)}; "
            "strict mode refuses them (evaluate without strict / --strict to skip these unlabelled frames)"
        )
    if not labels:
        found = f" ({len(scores)} score files in {scores_dir})" if scores else ""
        raise InputError(
            f"{labels_dir}: no <fid>{LABEL_SUFFIX} label masks found{found}; expected the dataset's "
            "labels_masks/ folder or its parent"
        )
    return [(fid, scores[fid], labels[fid]) for fid in sorted(labels)]
