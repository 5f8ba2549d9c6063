"""Benchmark: segment metrics of one image for all entropy thresholds, one core.

Builds a seeded synthetic softmax that looks like a segmentation network's output (smooth
multi-scale logits with class regions, plus high-temperature blobs that give graded
high-entropy regions), stored as float16 like the softmax store, and a ground truth with a void
border band, an 'ego vehicle' area and a few OoD objects. Then it times, on the same input,

* the current implementation: ``segment_metrics_multi`` over t = 0.1, 0.2, ..., 0.7 (predicted
  AND ground-truth segment tables), against
* the previous implementation (``meta_ood.segments`` at commit 2e9e645, extracted from git with
  ``git archive`` into a temporary package and imported under another name): the same call, and
* the per-threshold baseline: ``segment_metrics`` called once per threshold, each call
  recomputing the pixel maps (predicted tables only, so the baseline does strictly less work),

and prints seconds per image, the ratio previous / current (goal >= 3x) and how far the two
implementations' tables are apart: the largest absolute difference over all float columns
(goal <= 1e-12) and whether integer columns, row counts, column names, dtypes and the component
maps are identical.

    python bench/bench_segments.py --height 1024 --width 2048 --repeats 3
    python bench/bench_segments.py --height 256 --width 512 --repeats 1
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from meta_ood.segments import segment_metrics, segment_metrics_multi  # noqa: E402

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
GOAL_SECONDS = 2.0
GOAL_SPEEDUP = 3.0
GOAL_MAX_DIFF = 1e-12
PREVIOUS_COMMIT = "2e9e645"
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Integer-valued columns, compared for equality.
INTEGER_PRED = {"iou0", "prc", "S", "S_in", "S_bd"}
INTEGER_GT = {"iou0", "train_class", "label_class", "S", "S_in", "S_bd"} | {f"S_{c}" for c in range(19)}
NUM_CLASSES = 19
OOD_ID = 2
VOID = 255


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int],
                  channels: int) -> np.ndarray:
    """Random values on a coarse grid, bilinearly upsampled to ``shape`` (channels, H, W)."""
    coarse = rng.normal(size=(channels, cells[0] + 1, cells[1] + 1)).astype(np.float32)
    h, w = shape
    rows = np.linspace(0, cells[0], h, dtype=np.float32)
    cols = np.linspace(0, cells[1], w, dtype=np.float32)
    return np.stack([ndimage.map_coordinates(
        coarse[c], np.meshgrid(rows, cols, indexing="ij"), order=1, mode="nearest")
        for c in range(channels)])


def make_input(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic float16 softmax (19, H, W) and ground truth (H, W) in LostAndFound ids."""
    rng = np.random.default_rng(seed)
    shape = (height, width)
    logits = 30.0 * _smooth_field(rng, shape, (6, 12), NUM_CLASSES)
    logits += 8.0 * _smooth_field(rng, shape, (24, 48), NUM_CLASSES)
    # a few dominant class regions
    regions = _smooth_field(rng, shape, (4, 8), 1)[0]
    region_class = rng.integers(0, NUM_CLASSES, size=4)
    edges = np.quantile(regions, [0.25, 0.5, 0.75])
    which = np.searchsorted(edges, regions)
    for k, c in enumerate(region_class):
        logits[c][which == k] += 15.0

    rr, cc = np.mgrid[0:height, 0:width].astype(np.float32)
    rr /= height
    cc /= width
    # temperature: smooth noise plus blobs of high temperature (flat softmax, high entropy)
    inv_temp = 1.0 + 0.4 * _smooth_field(rng, shape, (16, 32), 1)[0]
    blobs = []
    for _ in range(25):
        cy, cx = rng.uniform(0.2, 0.85), rng.uniform(0.05, 0.95)
        ry, rx = rng.uniform(0.01, 0.06), rng.uniform(0.01, 0.05)
        strength = rng.uniform(0.5, 1.0)
        blobs.append((cy, cx, ry, rx))
        inv_temp -= strength * np.exp(-(((rr - cy) / ry) ** 2 + ((cc - cx) / rx) ** 2))
    np.clip(inv_temp, 0.03, None, out=inv_temp)
    logits *= inv_temp[None]
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    probs = logits.astype(np.float16)

    gt = np.ones(shape, np.uint8)
    gt[: int(0.08 * height)] = VOID
    gt[:, : int(0.02 * width)] = VOID
    gt[:, width - int(0.02 * width):] = VOID
    ego = (rr - 1.0) ** 2 / 0.15 ** 2 + (cc - 0.5) ** 2 / 0.45 ** 2 < 1.0
    gt[ego] = VOID
    # OoD objects: some on high-entropy blobs, some elsewhere
    centres = [blobs[i][:2] for i in range(3)] + [tuple(rng.uniform([0.45, 0.2], [0.75, 0.8]))
                                                   for _ in range(2)]
    for cy, cx in centres:
        ry, rx = rng.uniform(0.01, 0.03), rng.uniform(0.005, 0.02)
        gt[((rr - cy) / ry) ** 2 + ((cc - cx) / rx) ** 2 < 1.0] = OOD_ID
    return probs, gt


def load_previous(commit: str = PREVIOUS_COMMIT, root: Path = REPO_ROOT):
    """``meta_ood.segments`` as of ``commit``, imported as a separate top-level package.

    The package is extracted with ``git archive`` into a temporary directory, renamed, and its
    absolute ``meta_ood.segments`` imports are pointed at the copy (everything else it imports,
    e.g. ``meta_ood.scores``, comes from the current checkout). Returns the module and the
    temporary directory (remove it when done), or ``(None, reason)``.
    """
    try:
        tar = subprocess.run(["git", "-C", str(root), "archive", commit, "src/meta_ood/segments"],
                             check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        return None, f"git archive {commit} failed: {err.decode(errors='replace').strip() or exc}"
    tmp = Path(tempfile.mkdtemp(prefix="bench_segments_"))
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(tmp, filter="data")
    name = f"meta_ood_segments_{commit}"
    pkg = tmp / name
    (tmp / "src/meta_ood/segments").rename(pkg)
    for path in pkg.glob("*.py"):
        path.write_text(path.read_text().replace("meta_ood.segments", name))
    sys.path.insert(0, str(tmp))
    try:
        return importlib.import_module(name), tmp
    finally:
        sys.path.remove(str(tmp))


def _best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _interleaved(fns: dict, repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Best time and last result of each function, runs alternating so that load affects all alike."""
    best = {k: float("inf") for k in fns}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            results[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best, results


def compare_tables(new: dict, old: dict) -> tuple[float, list[str]]:
    """Largest absolute difference of the float columns and a list of other differences between
    two ``segment_metrics_multi`` results."""
    worst, problems = 0.0, []
    if list(new) != list(old):
        return float("inf"), [f"thresholds differ: {list(new)} vs {list(old)}"]
    for t in new:
        for what, j, integer in (("pred", 0, INTEGER_PRED), ("gt", 2, INTEGER_GT)):
            a, b = new[t][j], old[t][j]
            ca, cb = new[t][j + 1], old[t][j + 1]
            tag = f"t={t} {what}"
            if ca.dtype != cb.dtype or not np.array_equal(ca, cb):
                problems.append(f"{tag}: component maps differ ({ca.dtype} vs {cb.dtype})")
            if list(a.columns) != list(b.columns) or a.shape != b.shape:
                problems.append(f"{tag}: shape / columns differ ({a.shape} vs {b.shape})")
                continue
            if list(a.dtypes) != list(b.dtypes):
                problems.append(f"{tag}: dtypes differ")
            for col in a.columns:
                x, y = a[col].to_numpy(), b[col].to_numpy()
                if col in integer:
                    if not np.array_equal(x, y):
                        problems.append(f"{tag}: integer column {col} differs")
                elif x.size:
                    worst = max(worst, float(np.max(np.abs(x - y))))
    return worst, problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--previous", default=PREVIOUS_COMMIT,
                        help="git commit of the previous implementation (default %(default)s)")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})

    probs, gt = make_input(args.height, args.width, args.seed)
    pixels = args.height * args.width
    print(f"input: softmax {probs.shape} {probs.dtype}, gt {gt.shape}; "
          f"void {np.mean(gt == VOID):.3f}, OoD {np.mean(gt == OOD_ID):.4f}; 1 thread; "
          f"best of {args.repeats}", flush=True)

    previous, tmp = load_previous(args.previous)
    try:
        fns = {"new": lambda: segment_metrics_multi(probs, gt, THRESHOLDS, OOD_ID)}
        if previous is not None:
            fns["old"] = lambda: previous.segment_metrics_multi(probs, gt, THRESHOLDS, OOD_ID)
        times, results = _interleaved(fns, args.repeats)
    finally:
        if previous is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    t_one, res = times["new"], results["new"]
    t_base, base = _best_time(lambda: [segment_metrics(probs, gt, t, OOD_ID) for t in THRESHOLDS],
                              args.repeats)
    worst = 0.0
    for t, (pred_single, comp_single) in zip(THRESHOLDS, base):
        pred_multi, comp_multi = res[t][0], res[t][1]
        if not np.array_equal(comp_multi, comp_single) or pred_multi.shape != pred_single.shape:
            raise SystemExit(f"one-pass and per-threshold segments differ at t={t}")
        a, b = pred_multi.to_numpy(), pred_single.to_numpy()
        if not np.allclose(a, b, rtol=1e-12, atol=1e-12):
            raise SystemExit(f"one-pass and per-threshold metrics differ at t={t}")
        worst = max(worst, float(np.abs(a - b).max(initial=0.0)))

    print("t     pred segs  (false pos.)  gt segs  pixels in segments")
    for t in THRESHOLDS:
        pred_df, _, gt_df, _ = res[t]
        print(f"{t:.1f}   {len(pred_df):9d}  ({int(pred_df['iou0'].sum()) if len(pred_df) else 0:11d})  "
              f"{len(gt_df):7d}  {int(pred_df['S'].sum()) if len(pred_df) else 0:18d}")
    print(f"one pass, {len(THRESHOLDS)} thresholds: {t_one:.3f} s per image, "
          f"{pixels / t_one / 1e6:.2f} Mpixel/s")
    print(f"baseline (segment_metrics per threshold): {t_base:.3f} s per image, "
          f"{pixels / t_base / 1e6:.2f} Mpixel/s")
    print(f"one-pass vs per-threshold speedup: {t_base / t_one:.2f}x "
          f"(same segments; metrics agree to {worst:.1e}, floating-point summation order)")
    verdict = "met" if t_one <= GOAL_SECONDS else "NOT met"
    print(f"goal <= {GOAL_SECONDS:.1f} s per image for {len(THRESHOLDS)} thresholds: {verdict}")

    if previous is None:
        print(f"previous implementation not available ({tmp}); no comparison")
        return
    t_old = times["old"]
    diff, problems = compare_tables(res, results["old"])
    print(f"previous implementation ({args.previous}), one pass: {t_old:.3f} s per image, "
          f"{pixels / t_old / 1e6:.2f} Mpixel/s")
    print(f"current implementation, one pass: {t_one:.3f} s per image")
    print(f"previous / current: {t_old / t_one:.2f}x (goal >= {GOAL_SPEEDUP:.0f}x: "
          f"{'met' if t_old / t_one >= GOAL_SPEEDUP else 'NOT met'})")
    print(f"max abs difference of float columns, current vs previous: {diff:.1e} "
          f"(goal <= {GOAL_MAX_DIFF:.0e}: {'met' if diff <= GOAL_MAX_DIFF else 'NOT met'})")
    print("integer columns, rows, columns, dtypes and component maps: "
          + ("identical" if not problems else "DIFFERENT"))
    for line in problems[:20]:
        print("  " + line)
    if problems or diff > GOAL_MAX_DIFF:
        raise SystemExit("current and previous implementation disagree")


if __name__ == "__main__":
    main()
