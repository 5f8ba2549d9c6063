"""Benchmark: the softmax store vs the released code's float32 HDF5 files (one per image).

Synthetic softmax maps shaped like a segmentation network's output: per-class logits at 1/8 of
the resolution (a blob layout with a class margin plus noise) bilinearly upsampled to full size,
then a float32 softmax -- smooth maps, ~85 % of the pixels with max probability > 0.99 and a
few percent uncertain pixels along class borders. Both formats store the same probabilities and
ground truth:

* baseline: ``probs<k>.hdf5`` with an uncompressed float32 ``probabilities`` (H, W, C) dataset,
  ``ground_truths`` and ``file_names`` (the layout of the released reference code);
* store: :class:`meta_ood.store.StoreWriter` / :class:`~meta_ood.store.StoreReader`.

Printed: bytes per pixel and their ratio (goal <= 0.40), max abs probability error (goal <=
1e-3) and the largest change of the normalized entropy, write and read throughput (MB/s of
float32 probabilities and images/s) and the latency of reading one image. Reads come from the
page cache (the files were just written). The last results and the comparison of encodings
that chose ``fixed16`` are in ``bench/README.md``.

    python bench/bench_store.py                         # 3 images of 1024 x 2048, 19 classes
    python bench/bench_store.py --images 2 --height 512 --width 1024 --dtype float16
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from meta_ood.store import CODECS, ENCODINGS, StoreReader, StoreWriter


def synthetic_softmax(h: int, w: int, num_classes: int = 19, seed: int = 0) -> np.ndarray:
    """A (C, H, W) float32 softmax map with the smoothness and confidence of a network's output."""
    g = torch.Generator().manual_seed(seed)
    hs, ws = max(h // 8, 2), max(w // 8, 2)
    coarse = torch.randn(1, num_classes, max(h // 128, 2), max(w // 128, 2), generator=g)
    coarse = F.interpolate(coarse, size=(hs, ws), mode="bicubic", align_corners=False)
    layout = F.one_hot(coarse.argmax(1), num_classes).permute(0, 3, 1, 2).float()
    logits = 3.0 * coarse + 7.0 * layout + 1.5 * torch.randn(1, num_classes, hs, ws, generator=g)
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return torch.softmax(logits, 1)[0].numpy()


def normalized_entropy(p: np.ndarray) -> np.ndarray:
    """Per-pixel entropy of a (C, H, W) map divided by log C, in float64."""
    p = p.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(p), 0.0)
    return -t.sum(0) / np.log(p.shape[0])


def folder_bytes(folder: Path) -> int:
    """Total size of the files below ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def write_baseline(folder: Path, maps: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> None:
    """One uncompressed float32 HDF5 file per image, in the released code's layout."""
    folder.mkdir(parents=True)
    for k, (p, lab) in enumerate(zip(maps, labels)):
        with h5py.File(folder / f"probs{k}.hdf5", "w") as f:
            f.create_dataset("probabilities", data=np.ascontiguousarray(p.transpose(1, 2, 0)))
            f.create_dataset("ground_truths", data=lab)
            f.create_dataset("file_names", data=[f"image{k}.png".encode()])


def read_baseline(folder: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and ground truth of baseline image ``k``."""
    with h5py.File(folder / f"probs{k}.hdf5", "r") as f:
        return f["probabilities"][()], f["ground_truths"][()]


def write_store(folder: Path, maps: Sequence[np.ndarray], labels: Sequence[np.ndarray], dtype: str, level: int,
                codec: str = "zstd") -> None:
    """The same images as a softmax store with encoding ``dtype``, plane ``codec`` and its ``level``."""
    w = StoreWriter(folder, maps[0].shape[0], dtype, model="synthetic", total=len(maps), compression_level=level,
                    codec=codec)
    for k, (p, lab) in enumerate(zip(maps, labels)):
        w.write(k, f"image{k}", f"image{k}.png", p, lab)
    w.finalize()


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall-clock time of ``repeat`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    """Write and read both formats and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--dtype", default="fixed16", choices=ENCODINGS)
    ap.add_argument("--level", type=int, default=1, help="compression level of the store's codec")
    ap.add_argument("--codec", default="zstd", choices=CODECS, help="plane codec of the store (zlib: the earlier one)")
    ap.add_argument("--workdir", default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()

    n, h, w = args.images, args.height, args.width
    maps = [synthetic_softmax(h, w, args.classes, seed=k) for k in range(n)]
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (h, w)).astype(np.uint8) for _ in range(n)]
    conf = float(np.mean([(p.max(0) > 0.99).mean() for p in maps]))
    payload = maps[0].nbytes * n / 1e6  # MB of float32 probabilities
    print(f"{n} synthetic softmax maps {args.classes} x {h} x {w} ({conf:.1%} of pixels with max p > 0.99), "
          f"{payload:.0f} MB as float32; store dtype {args.dtype}, {args.codec} level {args.level}")

    work = Path(tempfile.mkdtemp(prefix="bench_store.", dir=args.workdir))
    try:
        base, store = work / "baseline", work / "store"
        t_wb = timed(lambda: write_baseline(base, maps, labels))
        t_ws = timed(lambda: write_store(store, maps, labels, args.dtype, args.level, args.codec))
        t_rb = timed(lambda: [read_baseline(base, k) for k in range(n)], repeat=2)
        reader = StoreReader(store)
        t_rs = timed(lambda: list(reader), repeat=2)
        t_rs_nv = timed(lambda: [reader.read(k, validate=False) for k in range(n)], repeat=2)
        mid = n // 2
        lat_b = statistics.median(timed(lambda: read_baseline(base, mid)) for _ in range(5))
        lat_s = statistics.median(timed(lambda: reader[mid]) for _ in range(5))

        err = max(float(np.abs(reader[k].probs - maps[k]).max()) for k in range(n))
        dent = max(float(np.abs(normalized_entropy(reader[k].probs) - normalized_entropy(maps[k])).max()) for k in range(n))
        gt_ok = all(np.array_equal(reader[k].label, labels[k]) for k in range(n))
        bytes_b, bytes_s = folder_bytes(base), folder_bytes(store)
        px = n * h * w
        ratio = bytes_s / bytes_b

        print(f"{'':24s}{'baseline f32 h5':>18s}{'store':>14s}")
        print(f"{'bytes / pixel':24s}{bytes_b / px:18.2f}{bytes_s / px:14.2f}")
        print(f"{'write MB/s (images/s)':24s}{payload / t_wb:11.0f} ({n / t_wb:4.1f}){payload / t_ws:7.0f} ({n / t_ws:4.1f})")
        print(f"{'read MB/s (images/s)':24s}{payload / t_rb:11.0f} ({n / t_rb:4.1f}){payload / t_rs:7.0f} ({n / t_rs:4.1f})")
        print(f"{'read one image (ms)':24s}{lat_b * 1e3:18.1f}{lat_s * 1e3:14.1f}")
        print(f"store read without validation: {payload / t_rs_nv:.0f} MB/s ({n / t_rs_nv:.1f} images/s)")
        print(f"size ratio store / baseline: {ratio:.3f} (goal <= 0.40) {'OK' if ratio <= 0.40 else 'MISSED'}")
        print(f"max abs probability error: {err:.2e} (goal <= 1e-3) {'OK' if err <= 1e-3 else 'MISSED'}; "
              f"max normalized-entropy change {dent:.2e}; labels exact: {gt_ok}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
