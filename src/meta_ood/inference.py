"""Stage 4, dump_softmax: run a segmentation network over an evaluation set and fill a softmax store.

:func:`dump_softmax` takes a model and a dataset (a sequence of
:class:`~meta_ood.datasets.Item`) and writes the images of one shard into a
:mod:`meta_ood.store` folder:

* the model runs on CUDA with autocast (float16) when available and on the CPU in float32
  otherwise, under ``torch.inference_mode``; the softmax over the classes is taken in float32.
  A device asked for by name (``cuda``, ``cuda:N``) that is not usable is an error, never a
  silent fallback to the CPU;
* the softmax, the score planes later stages read (normalized entropy and the configured
  scorers, as 16-bit codes), the argmax and the fixed-point probabilities are computed on the
  device in the same pass (:mod:`meta_ood.device_planes`); only the finished integer planes
  travel to the host. Full probabilities are kept only when asked (``store_probs``: the
  workflow keeps them for the datasets whose segments are computed);
* consecutive images of equal size are batched (``batch_size``);
* ``sliding_window=(h, w, stride)`` evaluates overlapping ``h x w`` tiles (the last row and
  column of tiles are aligned with the image border) and averages the logits of the tiles that
  cover a pixel -- for networks that do not fit full-resolution images in memory;
* compression (LZ4 by default, planes in parallel threads) and writing of batch ``k`` run in
  the background while the network computes batch ``k + 1``;
* images whose file already exists and matches the run (same image, model, checkpoint hash,
  encoding, classes and logits setting) are skipped, so an interrupted job resumes where it
  stopped;
* the shard's index is written at the end (and ``index.json`` when the run is not sharded).

:func:`run_dump` is the entry point of the pipeline rule and of the CLI: it builds the network
by name, loads its checkpoint, opens the dataset and calls :func:`dump_softmax`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from meta_ood.device_planes import device_planes
from meta_ood.errors import InputError
from meta_ood.labels import EvalConvention
from meta_ood.models import autocast_context, normalize
from meta_ood.store import DEFAULT_CODEC, DEFAULT_DTYPE, ImagePlanes, StoreWriter, parse_shard, sha256_file, shard_range
from meta_ood.training import require_device

__all__ = ["DumpResult", "dump_softmax", "predict_logits", "run_dump", "sliding_window_starts"]

log = logging.getLogger(__name__)

#: Options of the config's ``inference`` block that say where and how fast, not what is computed:
#: they are no parameters of the dump rule, so changing them reruns nothing.

# At most this many batches wait for the background writer (bounds host memory).
_MAX_PENDING_WRITES = 2


@dataclass(frozen=True)
class DumpResult:
    """What one :func:`dump_softmax` call did."""

    folder: Path
    shard: tuple[int, int]
    images: range
    written: int
    skipped: int
    shard_index: Path
    index: Path | None


# ---------------------------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------------------------


def sliding_window_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile offsets along one axis: ``0, stride, 2*stride, ...`` plus one tile ending at the border.

    A tile at least as large as the axis gives the single offset 0.
    """
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def _check_window(window: Sequence[int] | None) -> tuple[int, int, int] | None:
    if window is None:
        return None
    try:
        h, w, stride = (int(v) for v in window)
    except (TypeError, ValueError):
        raise InputError(f"sliding_window {window!r}: expected (height, width, stride)") from None
    if min(h, w, stride) < 1:
        raise InputError(f"sliding_window {window!r}: height, width and stride must be >= 1")
    if stride > min(h, w):
        raise InputError(
            f"sliding_window {window!r}: stride {stride} exceeds the tile size {h}x{w}, which would leave pixels out"
        )
    return h, w, stride


def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    sliding_window: Sequence[int] | None = None,
) -> torch.Tensor:
    """Logits ``(N, C, H, W)`` of ``model`` for the normalized batch ``x`` (float32).

    With ``sliding_window=(h, w, stride)`` the logits are the average over the overlapping tiles
    covering each pixel (see :func:`sliding_window_starts` for the tile positions). Call inside
    ``torch.inference_mode()`` (and autocast, if wanted).
    """
    window = _check_window(sliding_window)
    n, _, height, width = x.shape
    if window is None:
        return _checked(model(x), n, height, width).float()
    th, tw, stride = window
    th, tw = min(th, height), min(tw, width)
    ys = sliding_window_starts(height, th, stride)
    xs = sliding_window_starts(width, tw, stride)
    acc: torch.Tensor | None = None
    count = torch.zeros((1, 1, height, width), dtype=torch.float32, device=x.device)
    for y in ys:
        for x0 in xs:
            out = _checked(model(x[:, :, y : y + th, x0 : x0 + tw]), n, th, tw).float()
            if acc is None:
                acc = torch.zeros((n, out.shape[1], height, width), dtype=torch.float32, device=x.device)
            acc[:, :, y : y + th, x0 : x0 + tw] += out
            count[:, :, y : y + th, x0 : x0 + tw] += 1
    assert acc is not None
    return acc / count


def _checked(out: Any, n: int, height: int, width: int) -> torch.Tensor:
    if isinstance(out, (tuple, list)):  # some networks return (main, auxiliary) outputs
        out = out[0]
    if isinstance(out, Mapping) and "out" in out:  # torchvision segmentation models
        out = out["out"]
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != n or tuple(out.shape[2:]) != (height, width):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(
            f"the model returned {shape} for an input of {n} images of {height}x{width}; "
            f"expected logits (N, C, H, W) = ({n}, C, {height}, {width}) at the input resolution"
        )
    return out


def _infer_num_classes(model: nn.Module, device: torch.device) -> int:
    num = getattr(model, "num_classes", None)
    if isinstance(num, int) and num > 0:
        return num
    with torch.inference_mode():
        x = torch.zeros((1, 3, 64, 64), device=device)
        return int(_checked(model(x), 1, 64, 64).shape[1])


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _keep(item: Any) -> Any:
    """DataLoader collate function that leaves items as they are (picklable for worker processes)."""
    return item


class _Subset(torch.utils.data.Dataset):
    def __init__(self, dataset: Sequence, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, Any]:
        return self.indices[k], self.dataset[self.indices[k]]


def _items(dataset: Sequence, indices: Sequence[int], num_workers: int) -> Iterable[tuple[int, Any]]:
    subset = _Subset(dataset, indices)
    if num_workers <= 0:
        return (subset[k] for k in range(len(subset)))
    return torch.utils.data.DataLoader(subset, batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_keep)


def _batches(items: Iterable[tuple[int, Any]], batch_size: int) -> Iterator[list[tuple[int, Any]]]:
    """Group items into batches: images ``k*batch_size .. (k+1)*batch_size-1`` (global indices) of equal size.

    Batches depend on the global image index only, not on where a shard starts, so a sharded
    dump (shards aligned to ``batch_size``) computes exactly the batches of an unsharded one.
    """
    batch: list[tuple[int, Any]] = []
    for index, item in items:
        if batch and (
            index // batch_size != batch[0][0] // batch_size or batch[0][1].image.shape != item.image.shape
        ):
            yield batch
            batch = []
        batch.append((index, item))
    if batch:
        yield batch


def _sample_names(dataset: Sequence, indices: Sequence[int]) -> dict[int, str | None]:
    """Image names without decoding images, where the dataset lists its samples."""
    samples = getattr(dataset, "samples", None)
    if samples is None:
        return {k: None for k in indices}
    return {k: getattr(samples[k], "name", None) for k in indices}


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------


def dump_softmax(
    model: nn.Module,
    dataset: Sequence,
    out_folder: str | os.PathLike,
    *,
    batch_size: int = 1,
    device: str | torch.device = "auto",
    amp: bool = True,
    dtype: str = DEFAULT_DTYPE,
    store_logits: bool = False,
    shard: tuple[int, int] | str = (0, 1),
    sliding_window: Sequence[int] | None = None,
    model_name: str | None = None,
    checkpoint_sha: str | None = None,
    dataset_kind: str | None = None,
    convention: EvalConvention | Mapping[str, int] | None = None,
    num_classes: int | None = None,
    num_workers: int = 0,
    resume: bool = True,
    codec: str = DEFAULT_CODEC,
    compression_level: int | None = None,
    store_probs: bool = True,
    scorers: Sequence[str] = ("entropy",),
    progress: bool = True,
) -> DumpResult:
    """Run ``model`` over the shard's images of ``dataset`` and write them to the store ``out_folder``.

    Parameters
    ----------
    model
        Maps ImageNet-normalized images ``(N, 3, H, W)`` to logits ``(N, C, H, W)``; it is moved
        to ``device`` and put in eval mode (its previous train/eval mode is restored afterwards).
    dataset
        A sequence of :class:`~meta_ood.datasets.Item` (RGB uint8 image, train-id label,
        optional label ids, path, name), e.g. from :func:`meta_ood.datasets.open_dataset`.
    out_folder
        The store folder, ``results/<run>/softmax/<model>/<variant>/<dataset>/``.
    batch_size
        Images per forward pass; only consecutive images of equal size share a batch.
    device, amp
        ``"auto"`` picks CUDA when available; ``"cuda"`` / ``"cuda:N"`` without a usable GPU is
        an :class:`InputError`. ``amp`` enables float16 autocast on CUDA (never on the CPU, where
        it is ignored). The softmax is always computed in float32.
    dtype, store_logits, codec, compression_level
        Store encoding of the probabilities (``fixed16``, ``float16``, ``float32``; see
        :mod:`meta_ood.store`), whether to keep the logits, the plane codec (``lz4``, ``zstd``, ``zlib``)
        and its level (default 1).
    store_probs, scorers
        Keep the (C, H, W) probabilities; the scorers whose planes are stored (``entropy`` always is).
    shard
        ``(i, n)`` or ``"i/n"`` (0-based): process ``shard_range(len(dataset), i, n)`` only.
    sliding_window
        ``(height, width, stride)``: average logits over overlapping tiles (see :func:`predict_logits`).
    model_name, checkpoint_sha, dataset_kind, convention
        Recorded in the store; ``dataset_kind`` and ``convention`` default to the dataset's
        ``name`` and ``convention`` attributes.
    num_classes
        Number of classes; default: ``model.num_classes`` or one probe forward pass.
    num_workers
        DataLoader worker processes for reading and decoding images (0: in this process).
    resume
        Skip images whose existing file matches this run (see :meth:`StoreWriter.resume`).
    progress
        Show a tqdm progress bar.
    """
    i, n = parse_shard(shard)
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    window = _check_window(sliding_window)
    dev = require_device(device, "device")
    total = len(dataset)
    images = shard_range(total, i, n, align=batch_size)
    was_training = model.training
    model.to(dev).eval()
    try:
        classes = int(num_classes) if num_classes is not None else _infer_num_classes(model, dev)
        writer = StoreWriter(
            out_folder,
            classes,
            dtype,
            model=model_name,
            checkpoint_sha=checkpoint_sha,
            dataset=dataset_kind if dataset_kind is not None else getattr(dataset, "name", None),
            convention=convention if convention is not None else getattr(dataset, "convention", None),
            store_logits=store_logits,
            shard=(i, n),
            total=total,
            codec=codec,
            compression_level=compression_level,
            store_probs=store_probs,
            scorers=scorers,
            align=batch_size,
            settings={"batch_size": batch_size, "amp": bool(amp and dev.type == "cuda"),
                      "sliding_window": list(window) if window else None},
        )
        names = _sample_names(dataset, images)
        stored = {k for k in images if resume and writer.resume(k, names[k])}
        # a batch is recomputed whole when any of its images is missing, so that every image is
        # computed in the same batch as in an uninterrupted run (identical probabilities)
        incomplete_blocks = {k // batch_size for k in images if k not in stored}
        pending = [k for k in images if k // batch_size in incomplete_blocks]
        skipped = len(images) - len(pending)
        if skipped:
            log.info("%s: %d of %d images of shard %d/%d already stored; skipping them", out_folder, skipped, len(images), i, n)
        bar = tqdm(
            total=len(images),
            initial=skipped,
            desc=f"dump_softmax {model_name or type(model).__name__} [{i}/{n}]",
            unit="img",
            disable=not progress,
        )
        futures: list[Future] = []
        items = iter(_items(dataset, pending, num_workers))  # start loader workers before our threads
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="meta-ood-dump-writer") as io_pool:
            try:
                for batch in _batches(items, batch_size):
                    planes = _forward(model, batch, dev, amp, window, classes, writer)
                    while len(futures) >= _MAX_PENDING_WRITES:
                        futures.pop(0).result()
                    futures.append(io_pool.submit(_write_batch, writer, batch, planes, bar))
                for fut in futures:
                    fut.result()
            finally:
                for fut in futures:
                    fut.cancel()
                bar.close()
        shard_index = writer.finalize()
    finally:
        model.train(was_training)
    index = Path(out_folder) / "index.json" if n == 1 else None
    log.info("%s: shard %d/%d done (%d written, %d skipped)", out_folder, i, n, len(pending), skipped)
    return DumpResult(Path(out_folder), (i, n), images, len(pending), skipped, shard_index, index)


def _forward(
    model: nn.Module,
    batch: list[tuple[int, Any]],
    dev: torch.device,
    amp: bool,
    window: tuple[int, int, int] | None,
    classes: int,
    writer: StoreWriter,
) -> list[ImagePlanes]:
    """The stored planes of one batch, computed on ``dev`` (softmax and scores in float32)."""
    x = normalize(np.stack([item.image for _, item in batch]), device=dev)
    with torch.inference_mode():
        with autocast_context(dev, amp):
            logits = predict_logits(model, x, window)
        if logits.shape[1] != classes:
            raise InputError(f"the model returned {logits.shape[1]} classes, expected {classes}")
        where = ", ".join(f"image {index} ({item.name!r})" for index, item in batch)
        return device_planes(logits, writer.scorers, writer.dtype, writer.store_probs, writer.store_logits, where,
                             shuffle=True)


def _write_batch(writer: StoreWriter, batch: list[tuple[int, Any]], planes: list[ImagePlanes], bar: tqdm) -> None:
    for (index, item), image_planes in zip(batch, planes):
        writer.write(index, item.name, item.path, label=item.label, label_ids=item.label_ids, planes=image_planes,
                     labelled=getattr(item, "labelled", True))
        bar.update(1)


def run_dump(
    model_name: str,
    checkpoint: str | os.PathLike | None,
    dataset_kind: str,
    dataset_root: str | os.PathLike,
    split: str | None,
    out_folder: str | os.PathLike,
    *,
    num_classes: int = 19,
    dataset_options: Mapping[str, Any] | None = None,
    trusted_checkpoint: bool = False,
    **opts: Any,
) -> DumpResult:
    """Build ``model_name``, load ``checkpoint`` (if not None), open the dataset and run :func:`dump_softmax`.

    ``dataset_options`` are passed to :func:`meta_ood.datasets.open_dataset` (e.g. ``laf_root``
    for Fishyscapes LostAndFound); ``opts`` to :func:`dump_softmax` (``batch_size``, ``device``,
    ``amp``, ``dtype``, ``store_logits``, ``codec``, ``store_probs``, ``scorers``, ``shard``,
    ``sliding_window``, ``num_workers``, ``progress``, ...). The checkpoint's sha256 is recorded in the store, so a resumed run with
    another checkpoint rewrites every image.
    """
    from meta_ood.datasets import open_dataset
    from meta_ood.models import build, load_checkpoint

    dataset = open_dataset(dataset_kind, str(dataset_root), split, **dict(dataset_options or {}))
    model = build(model_name, num_classes=num_classes)
    sha = None
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, trusted=trusted_checkpoint)
        sha = sha256_file(checkpoint)
    return dump_softmax(
        model,
        dataset,
        out_folder,
        model_name=model_name,
        checkpoint_sha=sha,
        dataset_kind=dataset_kind,
        convention=dataset.convention,
        num_classes=num_classes,
        **opts,
    )


def run_dump_stage(
    arch: str,
    num_classes: int,
    checkpoint: str | os.PathLike | None,
    dataset: Mapping[str, Any],
    out_folder: str | os.PathLike,
    options: Mapping[str, Any],
    shard: tuple[int, int] = (0, 1),
    model_name: str | None = None,
    progress: bool = True,
    device_key: str = "inference.device",
) -> DumpResult:
    """The dump_softmax rule: ``dataset`` = {kind, root, split, reader options such as ``laf_root``}.

    ``options`` is the config's ``inference`` block, with ``store_probs`` (keep the
    probabilities of this dataset) and ``scorers`` (the score planes) resolved by the workflow;
    ``device_key`` names the device option in errors.

    ``batch_size``, ``dtype``, ``store_logits``, ``amp``, ``sliding_window``, ``codec``,
    ``store_probs`` and ``scorers`` change what is stored; ``device`` and ``workers`` only say
    where and how fast (the rule reads them from the config, not from its params, so changing
    them reruns nothing).
    """
    sliding = options.get("sliding_window")
    device = require_device(options.get("device", "auto"), device_key)
    result = run_dump(
        arch,
        checkpoint,
        dataset["kind"],
        dataset["root"],
        dataset.get("split"),
        out_folder,
        num_classes=num_classes,
        dataset_options={k: v for k, v in dataset.items() if k not in ("kind", "root", "split")},
        batch_size=int(options.get("batch_size", 1)),
        device=device,
        amp=bool(options.get("amp", True)),
        dtype=options.get("dtype", DEFAULT_DTYPE),
        store_logits=bool(options.get("store_logits", False)),
        codec=options.get("codec", DEFAULT_CODEC),
        store_probs=bool(options.get("store_probs", True)),
        scorers=tuple(options.get("scorers", ("entropy",))),
        num_workers=int(options.get("workers", 0)),
        sliding_window=tuple(sliding) if sliding else None,
        shard=tuple(shard),
        progress=progress,
    )
    if model_name is not None and model_name != arch:
        log.info("model %s (architecture %s): %d images written, %d reused", model_name, arch, result.written, result.skipped)
    return result
