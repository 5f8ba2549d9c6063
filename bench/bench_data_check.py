"""Benchmark: the automatic whole-dataset check on Cityscapes-size pairs, one process against all cores, and cached.

Writes ``--pairs`` synthetic Cityscapes-format pairs at full resolution (2048 x 1024:
``leftImg8bit`` RGB PNG with street-like smooth regions and sensor noise, ``gtFine``
``labelIds`` and ``labelTrainIds`` PNGs), then times

* the baseline: :func:`meta_ood.check_data.check_data` in one process (the opt-in check's old loop),
* the same check in ``--workers`` processes (what the start-up check uses: ``--cores``),
* the cached re-check of :func:`meta_ood.check_data_cache.check_data_cached` (one ``stat`` per file),

and prints pairs per second per core, the speed-up, and the time the check of Cityscapes train
+ val (3,475 pairs) would take on 8 cores at the measured per-core rate and parallel efficiency.

    python bench/bench_data_check.py --pairs 24
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from meta_ood import labels as L
from meta_ood.check_data import check_data
from meta_ood.check_data_cache import check_data_cached

CITYSCAPES_PAIRS = 3475  # train 2975 + val 500
GOAL_SECONDS = 120.0
GOAL_CORES = 8


def write_pairs(root: Path, n: int, height: int, width: int, seed: int = 0) -> None:
    """``n`` Cityscapes-format pairs below ``root`` (split ``train``, one city)."""
    rng = np.random.default_rng(seed)
    img_dir, gt_dir = root / "leftImg8bit" / "train" / "bench", root / "gtFine" / "train" / "bench"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    ids = np.flatnonzero(L.CITYSCAPES_ID_TO_TRAIN >= 0)  # the defined label ids
    yy, xx = np.mgrid[0:height, 0:width]
    for k in range(n):
        # a few large regions (road, buildings, sky, ...) as a coarse label map, upsampled
        coarse = rng.choice(ids, size=(height // 64, width // 64)).astype(np.uint8)
        label_ids = np.kron(coarse, np.ones((64, 64), np.uint8))[:height, :width]
        colour = rng.integers(0, 256, size=(256, 3)).astype(np.float32)
        shade = (0.6 + 0.4 * (yy / height))[..., None]
        img = colour[label_ids] * shade + rng.normal(0, 6, size=(height, width, 3))
        name = f"bench_{k:06d}_000019"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(img_dir / f"{name}_leftImg8bit.png")
        Image.fromarray(label_ids).save(gt_dir / f"{name}_gtFine_labelIds.png")
        train = L.CITYSCAPES_ID_TO_TRAIN[label_ids].astype(np.uint8)
        Image.fromarray(train).save(gt_dir / f"{name}_gtFine_labelTrainIds.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=24)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cityscapes"
        t0 = time.perf_counter()
        write_pairs(root, args.pairs, args.height, args.width)
        size = sum(f.stat().st_size for f in root.rglob("*.png")) / args.pairs / 1e6
        print(f"{args.pairs} pairs of {args.width}x{args.height} written in {time.perf_counter() - t0:.1f} s "
              f"({size:.2f} MB per pair: image + labelIds + labelTrainIds)")
        spec = {"cityscapes_train": {"kind": "cityscapes", "root": str(root), "split": "train"}}
        timings = {}
        for workers in (1, args.workers):
            t0 = time.perf_counter()
            report = check_data(spec, progress=False, workers=workers)
            timings[workers] = time.perf_counter() - t0
            assert report.ok and report.images["cityscapes_train"] == args.pairs, report.problems[:3]
        cache = Path(tmp) / "checks"
        check_data_cached(spec, cache, workers=args.workers, progress=False)
        t0 = time.perf_counter()
        _, done = check_data_cached(spec, cache, workers=args.workers, progress=False)
        cached = time.perf_counter() - t0
        assert done[0].cached
    per_core = args.pairs / timings[1]
    speedup = timings[1] / timings[args.workers]
    efficiency = speedup / args.workers
    projected = CITYSCAPES_PAIRS / (per_core * GOAL_CORES * efficiency)
    print(f"one process (baseline):  {timings[1]:.2f} s = {per_core:.2f} pairs/s per core "
          f"({1000 * timings[1] / args.pairs:.0f} ms per pair)")
    print(f"{args.workers} processes:             {timings[args.workers]:.2f} s, speed-up {speedup:.2f}x "
          f"(parallel efficiency {efficiency:.2f})")
    print(f"cached re-check:         {1000 * cached:.1f} ms for {args.pairs} pairs "
          f"({1e6 * cached / args.pairs:.0f} us per pair: listing and stat)")
    print(f"Cityscapes train + val ({CITYSCAPES_PAIRS} pairs) on {GOAL_CORES} cores at this rate and efficiency: "
          f"{projected:.0f} s (goal < {GOAL_SECONDS:.0f} s: {'met' if projected < GOAL_SECONDS else 'NOT met'}); "
          f"cached: {cached / args.pairs * CITYSCAPES_PAIRS:.1f} s")


if __name__ == "__main__":
    main()
