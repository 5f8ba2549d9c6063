"""The softmax store: per-pixel scores, predictions and (optionally) class probabilities of one
model variant on one evaluation set.

A store is a folder ``results/<run>/softmax/<model>/<variant>/<dataset>/`` holding

* ``images/<index:06d>.h5`` -- one HDF5 file per image (``index`` is the image's position in
  the dataset), written under a temporary name and renamed when complete;
* ``index.shard-<i>-of-<n>.json`` -- one small index per shard writer (see :func:`parse_shard`);
* ``index.json`` -- the merged index the readers open (:func:`merge_index`). A store without it
  is incomplete and is refused by :class:`StoreReader`.

Image file layout (format version 2; plain HDF5, readable with any HDF5 tool once the LZ4 /
zstd filters of ``hdf5plugin`` are loaded -- ``import hdf5plugin`` in Python):

=================  ===============================  ==========================================
dataset            shape / dtype                    contents
=================  ===============================  ==========================================
``scores/<name>``  (H, W) uint16                    16-bit codes of a pixel score (normalized
                                                    entropy always, plus the configured scorer;
                                                    attribute ``encoding``), see
                                                    :mod:`~meta_ood.store.planes`
``argmax``         (H, W) uint8                     predicted class
``probs``          (C, H, W) uint16 | f16 | f32     softmax probabilities, optional (the
                                                    segment datasets'); *encodings* below
``label``          (H, W) uint8                     train-id ground truth (255 = void)
``label_ids``      (H, W) uint8, optional           label-id ground truth, where the dataset has one
``logits``         (C, H, W) f16 (f32), optional    raw logits
=================  ===============================  ==========================================

The score planes and the argmax are computed where the logits are, during the dump
(:mod:`meta_ood.device_planes`); the pixel evaluation and the mIoU read only them. Every plane
is one chunk (``probs`` and ``logits``: one class plane per chunk) with HDF5's ``shuffle``
filter followed by ``lz4`` (filter 32004; ``codec="lz4"``, the default), ``zstd`` (filter
32015, level 1; ``codec="zstd"``) or
``deflate`` (``codec="zlib"``, level 1, the format-1 default); :mod:`~meta_ood.store.codec`
(de)compresses the planes itself, in parallel threads. The file attributes repeat the image's
index, name and path and the store metadata, so a file is self-describing and a resumed run can
tell whether an existing file is reusable. Stores of format version 1 (probabilities only) are
still read: their score planes and argmax are computed from the probabilities on read.

Encodings of the probabilities (``dtype`` argument):

* ``"fixed16"`` (default) -- ``round(p * 65535)`` as uint16; ``p = q / 65535`` on read.
  Max abs error 0.5 / 65535 = 7.6e-6 on every probability (uniform absolute precision).
* ``"float16"`` -- IEEE half precision: max abs error 2.4e-4 (for p in [0.5, 1]), relative
  precision 2^-11 down to 6e-5.
* ``"float32"`` -- exact.

``fixed16`` probabilities take 8.8 B/pixel with LZ4 (7.0 with zstd), 12 % of the float32 HDF5 files; the measurements are in
``bench/README.md``.

Sharding: ``n`` writers (``shard=(i, n)``, 0-based) each write the contiguous image range
:func:`shard_range` into the same folder and finish with their own shard index; when all are
done, :func:`merge_index` checks that every image ``0..N-1`` is present exactly once and writes
``index.json``. A single writer (``n = 1``) writes ``index.json`` itself.

Modules: :mod:`~meta_ood.store.codec` (encodings, plane compression),
:mod:`~meta_ood.store.planes` (score planes and their codes),
:mod:`~meta_ood.store.index` (index files, shards), :mod:`~meta_ood.store.writer`
(:class:`StoreWriter`) and :mod:`~meta_ood.store.reader` (:class:`StoreReader`).
"""

from __future__ import annotations

from meta_ood.store.codec import CODECS, DEFAULT_CODEC, DEFAULT_DTYPE, ENCODINGS, max_abs_error
from meta_ood.store.index import FORMAT, FORMAT_VERSION, merge_index, parse_shard, sha256_file, shard_range
from meta_ood.store.planes import ImagePlanes, decode_scores
from meta_ood.store.reader import StoredImage, StoreReader
from meta_ood.store.writer import StoreWriter

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "DEFAULT_DTYPE",
    "ENCODINGS",
    "FORMAT",
    "FORMAT_VERSION",
    "ImagePlanes",
    "StoreReader",
    "StoreWriter",
    "StoredImage",
    "decode_scores",
    "max_abs_error",
    "merge_index",
    "parse_shard",
    "sha256_file",
    "shard_range",
]
