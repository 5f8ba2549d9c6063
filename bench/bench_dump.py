"""Benchmark: the non-network part of a softmax dump, per image, previous design vs device planes.

A stand-in network (logits = log of ``bench_store.synthetic_softmax`` maps plus a little noise,
with one low-confidence "OoD" box) feeds three ways of storing an image of 1024 x 2048 pixels,
19 classes:

* previous (the design before the score planes): on the device ``torch.softmax(logits.float(), 1)``
  and the copy of the float32 probabilities to the host; on the host ``validate_probs``, fixed16
  ``quantize`` and shuffle + zlib 1 of the C planes, then the HDF5 file (``write_direct_chunk``
  with ``dataset_options("zlib")``, label gzip 1) -- what ``StoreWriter.write`` did;
* new, with probabilities (segment datasets): ``device_planes(logits, ("entropy",), "fixed16",
  keep_probs=True, shuffle=True)`` on the device, as the dump calls it; ``StoreWriter(..., threads=1)
  .write(..., planes=p)`` (the store's default codec, LZ4; ``--codec`` for another);
* new, without probabilities (every other dataset): the same with ``keep_probs=False``.

Printed per design: device part and host part (seconds per image, best of ``--repeats``, mean
over the images; torch and the writer single-threaded), bytes per pixel of the probabilities and
of the whole file; the host part of the new design with a 4-thread writer; and, for reference,
one forward pass of each published network with random weights (on the CPU at a reduced size).
On the CPU the device part is an upper bound of what a GPU spends on it (milliseconds there).
``--device cuda`` runs the device part and the networks on the GPU (float16 autocast, full size)
and adds images/s of the forward pass alone and of the whole dump.

    python bench/bench_dump.py                                   # 3 images of 1024 x 2048, CPU
    python bench/bench_dump.py --images 2 --repeats 1 --no-networks
    python bench/bench_dump.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from meta_ood.device_planes import device_planes
from meta_ood.io import atomic_path
from meta_ood.models import autocast_context, build
from meta_ood.store import CODECS, DEFAULT_CODEC, StoreWriter
from meta_ood.store.codec import WRITE_SUM_TOL, compress_plane, dataset_options, quantize, validate_probs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import synthetic_softmax  # noqa: E402

SCORERS = ("entropy",)
IN_ID, OUT_ID, VOID = 1, 2, 255  # LostAndFound train ids
NETWORKS = ("deeplabv3plus_wrn38", "dualgcn_resnet50")
HOST_GOAL_S = 0.1  # host part per image with 4 threads, new design with probabilities


def ood_box(h: int, w: int, seed: int) -> tuple[slice, slice]:
    """A seeded box of about 1 % of the image in its lower half (the OoD object)."""
    rng = np.random.default_rng(seed)
    r0, c0 = int(rng.integers(h // 2, h - h // 10)), int(rng.integers(0, w - w // 10))
    return slice(r0, r0 + h // 10), slice(c0, c0 + w // 10)


def stand_in_logits(h: int, w: int, num_classes: int = 19, seed: int = 0) -> torch.Tensor:
    """(1, C, H, W) float32 logits: log of a synthetic softmax plus noise, flattened in the OoD box."""
    p = torch.from_numpy(synthetic_softmax(h, w, num_classes, seed))
    g = torch.Generator().manual_seed(seed + 1000)
    logits = torch.log(p.clamp_min(1e-30)) + 0.05 * torch.randn(p.shape, generator=g)
    rows, cols = ood_box(h, w, seed)
    logits[:, rows, cols] *= 0.15  # an uncertain region: high entropy, predicted OoD segments
    return logits[None].contiguous()


def lostandfound_label(h: int, w: int, seed: int = 0) -> np.ndarray:
    """LostAndFound-style ground truth: in-distribution road, a void band and ego area, the OoD box."""
    lab = np.full((h, w), IN_ID, np.uint8)
    lab[: h // 5] = VOID
    lab[h - h // 10:, w // 4: 3 * w // 4] = VOID
    rows, cols = ood_box(h, w, seed)
    lab[rows, cols] = OUT_ID
    return lab


def sync(dev: torch.device) -> None:
    """Wait for the device (timings of asynchronous CUDA work)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def previous_device(logits: torch.Tensor) -> np.ndarray:
    """The previous device part: float32 softmax, copied to the host, (N, C, H, W)."""
    return torch.softmax(logits.float(), 1).cpu().numpy()


def write_previous(folder: Path, index: int, name: str, probs: np.ndarray, label: np.ndarray) -> Path:
    """The previous ``StoreWriter.write`` on one thread: validate, quantize, shuffle + zlib 1, HDF5."""
    where = f"image {index} ({name!r})"
    validate_probs(probs, WRITE_SUM_TOL, where)
    chunks = [compress_plane(quantize(probs[c], "fixed16"), 1, "zlib") for c in range(probs.shape[0])]
    h, w = probs.shape[1:]
    target = folder / "images" / f"{index:06d}.h5"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        with h5py.File(tmp, "w", locking=False) as f:
            for k, v in {"format": "meta-ood-softmax", "version": 1, "index": index, "name": name,
                         "num_classes": probs.shape[0], "dtype": "fixed16", "prob_scale": 1 / 65535}.items():
                f.attrs[k] = v
            ds = f.create_dataset("probs", shape=probs.shape, dtype=np.uint16, chunks=(1, h, w), track_times=False,
                                  **dataset_options("zlib", 1))
            for c, blob in enumerate(chunks):
                ds.id.write_direct_chunk((c, 0, 0), blob, 0)
            f.create_dataset("label", data=label, chunks=label.shape, compression="gzip", compression_opts=1,
                             track_times=False)
    return target


@dataclass
class DumpCost:
    """Per-image seconds of the device and host parts, and bytes per pixel."""

    device_s: float
    host_s: float
    probs_bpp: float
    file_bpp: float


def _best(fn: Callable[[], object], repeats: int, dev: torch.device) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls of ``fn`` (device synchronized), and the last result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        sync(dev)
        t0 = time.perf_counter()
        out = fn()
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _sizes(files: Sequence[Path], pixels: int) -> tuple[float, float]:
    """Bytes per pixel of the ``probs`` datasets and of the whole files."""
    probs = 0
    for p in files:
        with h5py.File(p, "r", locking=False) as f:
            probs += f["probs"].id.get_storage_size() if "probs" in f else 0
    return probs / pixels, sum(p.stat().st_size for p in files) / pixels


def measure_previous(logits: Sequence[torch.Tensor], labels: Sequence[np.ndarray], folder: Path,
                     repeats: int, dev: torch.device) -> DumpCost:
    """Device and host part of the previous design, per image."""
    dev_t, host_t, files = [], [], []
    for k, (lg, lab) in enumerate(zip(logits, labels)):
        t, probs = _best(lambda: previous_device(lg), repeats, dev)
        dev_t.append(t)
        t, path = _best(lambda: write_previous(folder, k, f"image{k}", probs[0], lab), repeats, torch.device("cpu"))
        host_t.append(t)
        files.append(path)
    return DumpCost(float(np.mean(dev_t)), float(np.mean(host_t)), *_sizes(files, len(files) * labels[0].size))


def measure_new(logits: Sequence[torch.Tensor], labels: Sequence[np.ndarray], folder: Path, repeats: int,
                dev: torch.device, keep_probs: bool, threads: int | None = 1, codec: str = DEFAULT_CODEC) -> DumpCost:
    """Device part (``device_planes``) and host part (``StoreWriter.write``) of the new design, per image."""
    writer = StoreWriter(folder, logits[0].shape[1], "fixed16", model="stand-in", total=len(logits),
                         store_probs=keep_probs, scorers=SCORERS, threads=threads, codec=codec)
    dev_t, host_t = [], []
    for k, (lg, lab) in enumerate(zip(logits, labels)):
        t, planes = _best(lambda: device_planes(lg, SCORERS, "fixed16", keep_probs=keep_probs, shuffle=True), repeats, dev)
        dev_t.append(t)
        t, _ = _best(lambda: writer.write(k, f"image{k}", f"image{k}.png", label=lab, planes=planes[0]),
                     repeats, torch.device("cpu"))
        host_t.append(t)
    writer.finalize()
    files = [writer.image_path(k) for k in range(len(logits))]
    return DumpCost(float(np.mean(dev_t)), float(np.mean(host_t)), *_sizes(files, len(files) * labels[0].size))


def forward_seconds(arch: str, h: int, w: int, dev: torch.device, repeats: int) -> float:
    """Seconds of one forward pass of ``arch`` (random weights, one image; float16 autocast on CUDA)."""
    model = build(arch, num_classes=19).to(dev).eval()
    x = torch.randn(1, 3, h, w, device=dev)

    def run() -> torch.Tensor:
        with torch.inference_mode(), autocast_context(dev, True):
            return model(x).float()

    if dev.type == "cuda":
        run()  # warm-up: cuDNN algorithm selection, allocator
    t, _ = _best(run, repeats, dev)
    return t


def main() -> None:
    """Measure the three designs and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="timings per image and part (the best counts)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the device part and networks run")
    ap.add_argument("--net-size", default=None, help="HxW of the network forward (default 512x1024 on cpu, "
                    "the image size on cuda)")
    ap.add_argument("--no-networks", action="store_true", help="skip the forward passes of the real networks")
    ap.add_argument("--workdir", default=None, help="where to write (default: a temporary folder)")
    ap.add_argument("--codec", default=DEFAULT_CODEC, choices=CODECS, help="plane codec of the new design")
    args = ap.parse_args()

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    torch.set_num_threads(1)
    n, h, w = args.images, args.height, args.width
    logits = [stand_in_logits(h, w, args.classes, seed=k).to(dev) for k in range(n)]
    labels = [lostandfound_label(h, w, seed=k) for k in range(n)]
    print(f"{n} stand-in images of {args.classes} x {h} x {w} on {dev}; torch threads 1, writer threads 1, "
          f"best of {args.repeats}; os.cpu_count() = {os.cpu_count()}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench_dump.", dir=args.workdir))
    try:
        prev = measure_previous(logits, labels, work / "previous", args.repeats, dev)
        new_p = measure_new(logits, labels, work / "new_probs", args.repeats, dev, keep_probs=True, codec=args.codec)
        new_s = measure_new(logits, labels, work / "new_scores", args.repeats, dev, keep_probs=False, codec=args.codec)
        new_p4 = measure_new(logits, labels, work / "new_probs_t4", args.repeats, dev, keep_probs=True, threads=4, codec=args.codec)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    where = "GPU" if dev.type == "cuda" else "CPU, upper bound of a GPU"
    print(f"\n{'design':38s}{'device s/img':>14s}{'host s/img':>12s}{'probs B/px':>12s}{'file B/px':>11s}")
    for label, c in (("previous (float32 softmax, zlib)", prev), (f"new, with probabilities ({args.codec})", new_p),
                     (f"new, without probabilities ({args.codec})", new_s)):
        print(f"{label:38s}{c.device_s:14.3f}{c.host_s:12.3f}{c.probs_bpp:12.2f}{c.file_bpp:11.2f}")
    print(f"(device part measured on the {where})")
    ok = new_p4.host_s <= HOST_GOAL_S
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    note = f"; only {cores} cores here, so 4 threads could not run in parallel" if cores < 4 else ""
    print(f"\nhost part, new with probabilities, StoreWriter(threads=4): {new_p4.host_s:.3f} s per image -> "
          f"{'meets' if ok else 'MISSES'} the goal <= {HOST_GOAL_S} s per image with 4 threads "
          f"(os.cpu_count() = {os.cpu_count()}; the writer's shared pool has min(8, cores) = {min(8, cores)} "
          f"workers{note})")

    fwd: dict[str, float] = {}
    if not args.no_networks:
        nh, nw = (map(int, args.net_size.lower().split("x")) if args.net_size
                  else ((h, w) if dev.type == "cuda" else (h // 2, w // 2)))
        mode = "float16 autocast" if dev.type == "cuda" else "float32, 1 thread"
        for arch in NETWORKS:
            try:
                fwd[arch] = forward_seconds(arch, nh, nw, dev, 1 if dev.type == "cpu" else args.repeats)
            except (RuntimeError, MemoryError) as exc:  # out of memory, unsupported op
                print(f"forward {arch}: skipped ({type(exc).__name__}: {str(exc)[:120]})")
                continue
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(f"forward {arch} (random weights, 1 x 3 x {nh} x {nw}, {dev}, {mode}): {fwd[arch]:.3f} s "
                  f"({1 / fwd[arch]:.2f} images/s); peak RSS so far {rss:.1f} GiB")
        if dev.type == "cuda" and (nh, nw) == (h, w):
            for arch, t in fwd.items():
                seq_prev = t + prev.device_s + prev.host_s
                seq_new = t + new_p.device_s + new_p.host_s
                pipe_new = max(t + new_p.device_s, new_p4.host_s)
                print(f"whole dump {arch}: forward alone {1 / t:.2f} images/s; previous {1 / seq_prev:.2f}, "
                      f"new with probabilities {1 / seq_new:.2f} images/s sequential on one host core; "
                      f"new with the writer thread overlapping the next forward {1 / pipe_new:.2f} images/s")
        elif fwd:
            print(f"(networks at a reduced size, for scale only: the dumped image has {h * w / (nh * nw):g}x the pixels)")

    r_host = prev.host_s / new_p.host_s
    print(f"\nhost part ratio without probabilities: {prev.host_s / new_s.host_s:.1f}x "
          f"({prev.host_s:.3f} s -> {new_s.host_s:.3f} s per image)")
    print(f"device + host ratio with probabilities: {(prev.device_s + prev.host_s) / (new_p.device_s + new_p.host_s):.2f}x "
          f"({prev.device_s + prev.host_s:.3f} s -> {new_p.device_s + new_p.host_s:.3f} s per image, device part on {dev})")
    print(f"bench_dump: {r_host:.1f}x faster non-network dump on one core (host part, with probabilities: "
          f"{prev.host_s:.3f} s -> {new_p.host_s:.3f} s per image)")


if __name__ == "__main__":
    main()
