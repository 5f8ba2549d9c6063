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
package; :mod:`~meta_ood.store.codec` (de)compresses the planes itself, in parallel threads.
The file attributes repeat the image's index, name and path and the store metadata, so a file
is self-describing and a resumed run can tell whether an existing file is reusable.

Encodings of the probabilities (``dtype`` argument):

* ``"fixed16"`` (default) -- ``round(p * 65535)`` as uint16; ``p = q / 65535`` on read.
  Max abs error 0.5 / 65535 = 7.6e-6 on every probability (uniform absolute precision).
* ``"float16"`` -- IEEE half precision: max abs error 2.4e-4 (for p in [0.5, 1]), relative
  precision 2^-11 down to 6e-5.
* ``"float32"`` -- exact.

``fixed16`` files are about a tenth of the float32 HDF5 files and faster to write than
``float16`` ones; the measurements are in ``bench/README.md``.

Sharding: ``n`` writers (``shard=(i, n)``, 0-based) each write the contiguous image range
:func:`shard_range` into the same folder and finish with their own shard index; when all are
done, :func:`merge_index` checks that every image ``0..N-1`` is present exactly once and writes
``index.json``. A single writer (``n = 1``) writes ``index.json`` itself.

Modules: :mod:`~meta_ood.store.codec` (encodings, plane compression),
:mod:`~meta_ood.store.index` (index files, shards), :mod:`~meta_ood.store.writer`
(:class:`StoreWriter`) and :mod:`~meta_ood.store.reader` (:class:`StoreReader`).
"""

from __future__ import annotations

from meta_ood.store.codec import DEFAULT_DTYPE, ENCODINGS, max_abs_error
from meta_ood.store.index import FORMAT, FORMAT_VERSION, merge_index, parse_shard, sha256_file, shard_range
from meta_ood.store.reader import StoredImage, StoreReader
from meta_ood.store.writer import StoreWriter

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
