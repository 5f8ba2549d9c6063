"""The index files of a softmax store, and how the images are split between shard writers.

Each writer of shard ``i`` of ``n`` writes ``index.shard-<i>-of-<n>.json`` listing its images;
:func:`merge_index` checks that the shards together hold every image exactly once and writes
``index.json``, the file the readers open (:func:`load_index`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meta_ood.errors import InputError
from meta_ood.io import write_text_atomic
from meta_ood.store.codec import ENCODINGS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IMAGES_DIR",
    "INDEX_NAME",
    "READ_VERSIONS",
    "SCORES_GROUP",
    "drop_stale_indices",
    "format_indices",
    "image_entry",
    "image_file",
    "load_index",
    "merge_index",
    "parse_shard",
    "sha256_file",
    "shard_index_path",
    "shard_range",
    "write_index",
]

log = logging.getLogger(__name__)

FORMAT = "meta-ood-softmax-store"
FORMAT_VERSION = 2
#: Versions the readers accept: 1 had no score planes (they are computed from the probabilities).
READ_VERSIONS = (1, 2)
INDEX_NAME = "index.json"
IMAGES_DIR = "images"
#: HDF5 group of the score planes in an image file.
SCORES_GROUP = "scores"

_SHARD_FILE = re.compile(r"^index\.shard-(\d+)-of-(\d+)\.json$")
# Metadata every shard index of one store must agree on.
_SAME_KEYS = ("format", "version", "num_classes", "dtype", "model", "checkpoint_sha256", "dataset", "has_logits",
              "has_probs", "codec", "scores", "total")


# ---------------------------------------------------------------------------------------------
# Sharding and checkpoint hashes
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


# ---------------------------------------------------------------------------------------------
# Index entries and files
# ---------------------------------------------------------------------------------------------


def format_indices(indices: Sequence[int], limit: int = 12) -> str:
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


def image_file(index: int) -> str:
    """The file of image ``index``, relative to the store folder."""
    return f"{IMAGES_DIR}/{index:06d}.h5"


def image_entry(index: int, name: str, path: str, h: int, w: int, has_label_ids: bool,
                labelled: bool = True) -> dict[str, Any]:
    """The index entry of one image file; ``labelled`` False marks a frame without ground truth (no metric uses it)."""
    return {
        "index": index,
        "name": name,
        "path": path,
        "file": image_file(index),
        "height": int(h),
        "width": int(w),
        "has_label_ids": bool(has_label_ids),
        "labelled": bool(labelled),
    }


def shard_index_path(folder: Path, shard: tuple[int, int]) -> Path:
    """Where the writer of ``shard = (i, n)`` puts its index."""
    i, n = shard
    return folder / f"index.shard-{i}-of-{n}.json"


def write_index(path: Path, meta: dict[str, Any]) -> None:
    """Write an index (shard or merged) atomically, as indented JSON."""
    write_text_atomic(path, json.dumps(meta, indent=1) + "\n")


def drop_stale_indices(folder: Path, shard: tuple[int, int]) -> None:
    """Mark ``folder`` incomplete before ``shard = (i, n)`` is written.

    Removes ``index.json``, the shard's own old index and the shard indices of an earlier run
    with another shard count; the image files stay (a writer may reuse them).
    """
    i, n = shard
    for p in folder.iterdir():
        m = _SHARD_FILE.match(p.name)
        stale = p.name == INDEX_NAME or (m is not None and (int(m.group(2)) != n or int(m.group(1)) == i))
        if stale:
            log.info("%s: removing %s (the store is being rewritten)", folder, p.name)
            p.unlink(missing_ok=True)


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
        raise InputError(f"{folder}: images {format_indices(dupes)} are listed by more than one shard index")
    missing = [k for k in range(total) if k not in seen]
    extra = [k for k in seen if not 0 <= k < total]
    if missing or extra:
        absent = [i for i in range(n) if i not in shards]
        parts = []
        if missing:
            parts.append(f"images {format_indices(missing)} of 0..{total - 1} are missing")
        if extra:
            parts.append(f"images {format_indices(extra)} are outside 0..{total - 1}")
        if absent:
            parts.append(f"shard indices not found: {', '.join(f'{i}/{n}' for i in absent)}")
        raise InputError(f"{folder}: cannot merge the softmax store: {'; '.join(parts)}")
    images = [seen[k] for k in range(total)]
    lost = [e["index"] for e in images if not (folder / e["file"]).is_file()]
    if lost:
        raise InputError(f"{folder}: image files of images {format_indices(lost)} are missing under {IMAGES_DIR}/")
    meta = {k: v for k, v in first.items() if k not in ("shard", "range", "images")}
    meta.update(shards=n, images=images)
    out = folder / INDEX_NAME
    write_index(out, meta)
    return out


def load_index(folder: Path) -> dict[str, Any]:
    """Read and check ``index.json`` of a finished store; an InputError says what is wrong.

    A folder without it gets a hint: still being written (shard indices present, merge them)
    or not a store at all.
    """
    index = folder / INDEX_NAME
    if not index.is_file():
        if not folder.is_dir():
            hint = " (the folder does not exist)"
        elif any(_SHARD_FILE.match(p.name) for p in folder.iterdir()):
            hint = "; it has shard indices: merge them (merge_index) once every shard has finished"
        else:
            hint = "; expected the output folder of dump_softmax"
        raise InputError(f"{folder}: not a softmax store (no {INDEX_NAME}){hint}")
    try:
        meta = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{index}: unreadable store index ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{index}: not a softmax store index (format {FORMAT!r} expected)")
    if meta.get("version") not in READ_VERSIONS:
        raise InputError(
            f"{index}: store format version {meta.get('version')!r} is not supported (expected one of {READ_VERSIONS})"
        )
    if meta["version"] == 1:  # full probabilities, shuffle + deflate, no score planes
        meta.update(has_probs=True, codec="zlib", scores={})
    for key in ("num_classes", "dtype", "images", "has_logits"):
        if key not in meta:
            raise InputError(f"{index}: store index lacks {key!r}")
    if meta["dtype"] not in ENCODINGS:
        raise InputError(f"{index}: unknown probability encoding {meta['dtype']!r}")
    return meta
