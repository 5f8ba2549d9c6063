"""Benchmark: ``smiyc-eval`` against the official SegmentMeIfYouCan code and scikit-learn, same files.

Writes synthetic frames in the benchmark's file format (``<fid>.hdf5`` float16 score maps,
gzip level 9 as the official tooling writes them, ``<fid>_labels_semantic.png`` masks):

* anomaly set: ``--frames`` frames, one in six of 720 x 1280 and the others 1024 x 2048 (24: 20 + 4), a void
  band at the bottom, 1-3 anomaly blobs per frame;
* obstacle set: ``--frames`` frames of 1080 x 1920, void outside a road trapezoid, small obstacles.

Each side runs in its own process (peak memory = that process's maximum resident set):

* this project: ``meta-ood smiyc-eval --n-boot 0 --jobs J`` (both protocols; its process set up as the
  command sets up its own, :func:`meta_ood.memory.keep_freed_memory`), plus its steps timed on the same
  files (reading, one-pass summary, components);
* the official code (``--official``, default when ``bench/official_smiyc/.venv`` exists; set it
  up with ``bench/official_smiyc/setup.sh``): ``PixBinaryClass`` and ``SegEval`` (the leaderboard
  metrics) on the same files through ``bench/official_smiyc/driver.py``, one process, in fid order;
* scikit-learn: ``average_precision_score`` and ``roc_auc_score`` on the pooled ROI pixels
  (reading and concatenation included) against this project's exact metrics alone.

Prints per track the whole-evaluation ratio official / project (each side's fastest of
``--repeats`` runs, each in a fresh process, all run times shown), per-step ratios, peak memory and
the metric values of both sides.

    python bench/bench_smiyc.py                       # 20 + 4 anomaly frames, 24 obstacle frames
    python bench/bench_smiyc.py --frames 8 --tracks obstacle --no-official
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from scipy import ndimage

VOID = 255
HERE = Path(__file__).resolve().parent
OFFICIAL_PYTHON = HERE / "official_smiyc" / ".venv" / "bin" / "python"
OFFICIAL_DRIVER = HERE / "official_smiyc" / "driver.py"


def _scores(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth background scores as a network gives them: waves, noise correlated over 16 px, a little pixel noise
    (high-score speckles form tens to hundreds of components per frame, a few of them large)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = 0.25 + 0.1 * np.sin(xx / w * rng.uniform(2, 6) + rng.uniform(0, 6)) * np.cos(yy / h * rng.uniform(2, 6))
    coarse = rng.normal(0, 0.07, (h // 16 + 1, w // 16 + 1)).astype(np.float32)
    s += ndimage.zoom(coarse, 16, order=1)[:h, :w]
    return s + rng.normal(0, 0.02, (h, w)).astype(np.float32)


def _blob(rng: np.random.Generator, h: int, w: int, lo: float, hi: float, rows: tuple[float, float]) -> np.ndarray:
    yy, xx = np.ogrid[0:h, 0:w]
    cy, cx = rng.uniform(rows[0] * h, rows[1] * h), rng.uniform(0.15 * w, 0.85 * w)
    ry, rx = rng.uniform(lo, hi) * h, rng.uniform(lo, hi) * w
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


def anomaly_frame(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Street-like scores with 1-3 high-scored anomaly blobs, a void band at the bottom."""
    s, lab = _scores(rng, h, w), np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        blob = _blob(rng, h, w, 0.03, 0.09, (0.35, 0.8))
        lab[blob] = 1
        s = s + blob * rng.uniform(0.2, 0.5)
    lab[int(0.88 * h):] = VOID
    return np.clip(s, 0, 1).astype(np.float16), lab


def obstacle_frame(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Void outside a road trapezoid (high off-road scores), a few small obstacles on the road."""
    s, lab = _scores(rng, h, w), np.zeros((h, w), np.uint8)
    yy, xx = np.ogrid[0:h, 0:w]
    half = (0.05 + 0.45 * np.clip((yy - 0.45 * h) / (0.55 * h), 0, 1)) * w
    road = (yy > 0.45 * h) & (np.abs(xx - w / 2) < half)
    for _ in range(rng.integers(1, 5)):
        blob = _blob(rng, h, w, 0.005, 0.02, (0.6, 0.9)) & road
        lab[blob] = 1
        s = s + blob * rng.uniform(0.3, 0.6)
    lab[~road] = VOID
    s[~road] += 0.4
    return np.clip(s, 0, 1).astype(np.float16), lab


def write_set(root: Path, track: str, n: int, seed: int) -> tuple[Path, Path, int]:
    """Score and label folders of one synthetic set; returns (scores, labels, pixels)."""
    rng = np.random.default_rng(seed)
    sizes = [(1024, 2048)] * (n - n // 6) + [(720, 1280)] * (n // 6) if track == "anomaly" else [(1080, 1920)] * n
    make = anomaly_frame if track == "anomaly" else obstacle_frame
    scores, labels = root / track / "scores", root / track / "labels"
    scores.mkdir(parents=True)
    labels.mkdir(parents=True)
    for k, (h, w) in enumerate(sizes):
        s, lab = make(rng, h, w)
        with h5py.File(scores / f"frame{k:04d}.hdf5", "w") as fh:
            fh.create_dataset("value", data=s, compression=9)
        Image.fromarray(lab).save(labels / f"frame{k:04d}_labels_semantic.png")
    return scores, labels, sum(h * w for h, w in sizes)


def run_project(scores: str, labels: str, track: str, jobs: int) -> dict:
    """(in a child process) The whole evaluation, then its steps on the same files, timed."""
    from meta_ood.smiyc.components import FrameTruth, size_filters
    from meta_ood.smiyc.evaluate import smiyc_eval
    from meta_ood.smiyc.scorefiles import paired_frames, read_label, read_scores
    from meta_ood.smiyc.summary import comparison_threshold, summarize

    t0 = time.perf_counter()
    res = smiyc_eval(scores, labels, track, n_boot=0, jobs=jobs)
    whole = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seg, inst = size_filters(track)
    steps = {"read": 0.0, "summary": 0.0, "components": 0.0}
    for fid, s_path, l_path in paired_frames(scores, labels):
        t = time.perf_counter()
        s, lab = read_scores(s_path), read_label(l_path)
        steps["read"] += time.perf_counter() - t
        t = time.perf_counter()
        summarize(s, lab)
        steps["summary"] += time.perf_counter() - t
        t = time.perf_counter()
        FrameTruth(lab, inst).components(s, comparison_threshold(res["best_F1_threshold"], s.dtype), seg)
        steps["components"] += time.perf_counter() - t
    return {"seconds": whole, "peak_mib": peak, "steps_one_thread": steps, "AP": res["AP"], "FPR95": res["FPR95"],
            "F1_mean": res["F1_mean"], "sIoU_gt": res["sIoU_gt"], "exact_AP": res["exact"]["AP"],
            "exact_AUROC": res["exact"]["AUROC"], "AP_tie_range": res["AP_tie_range"]}


def run_exact(scores: str, labels: str, jobs: int) -> dict:
    """(in a child process) This project's exact pooled metrics alone: summaries and histogram."""
    from meta_ood.pixel_eval import PooledHistogram
    from meta_ood.smiyc.evaluate import _ordered_map, file_frames
    from meta_ood.smiyc.summary import summarize

    t0 = time.perf_counter()
    frames = file_frames(scores, labels)
    hist = PooledHistogram(16, 12, "float16")
    for f, counts in zip(frames, _ordered_map(lambda f: summarize(*f.load()).codes(16, "float16"), frames, jobs)):
        hist.update_counts(*counts, image_id=f.fid)
    m = hist.metrics()
    return {"seconds": time.perf_counter() - t0, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "AP": float(m["auprc"]), "AUROC": float(m["auroc"])}


def run_sklearn(scores: str, labels: str) -> dict:
    """(in a child process) scikit-learn on the pooled ROI pixels, reading and concatenation included."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from meta_ood.smiyc.scorefiles import paired_frames, read_label, read_scores

    t0 = time.perf_counter()
    ys, ss = [], []
    for _, s_path, l_path in paired_frames(scores, labels):
        s, lab = read_scores(s_path), read_label(l_path)
        ys.append(lab[lab != VOID] == 1)
        ss.append(s[lab != VOID])
    y, s = np.concatenate(ys), np.concatenate(ss)
    ap, auroc = float(average_precision_score(y, s)), float(roc_auc_score(y, s))
    return {"seconds": time.perf_counter() - t0, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "AP": ap, "AUROC": auroc}


def _spread(runs: list[dict], key: str) -> str:
    """The runs' times, e.g. ``3 runs: 0.52 0.49 0.55 s``."""
    return f"{len(runs)} runs: " + " ".join(f"{r[key]:.2f}" for r in runs) + " s"


def child(kind: str, *args: str) -> dict:
    """Run ``kind`` in a fresh Python process of this interpreter; its JSON result."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def official(scores: Path, labels: Path, track: str, workdir: Path) -> dict:
    """The official code on the same files, through bench/official_smiyc/driver.py (its own venv and process)."""
    out = workdir / f"official_{track}.json"
    cmd = [str(OFFICIAL_PYTHON), str(OFFICIAL_DRIVER), "--scores", str(scores), "--labels", str(labels),
           "--track", track, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"official driver failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def report_official(off: dict, mine: dict, n: int, track: str) -> None:
    """Whole and per-step ratios official / project, peak memory, and the two sides' numbers."""
    t = off["timing"]
    st = mine["steps_one_thread"]
    print(f"official: {t['total']:7.2f} s  peak {off['peak_rss_mib']:6.0f} MiB  AP {off['pixel']['AP']:.6f} "
          f"FPR95 {off['pixel']['FPR95']:.6f} mean F1 {off['segment']['F1_mean']:.6f} "
          f"sIoU {off['segment']['sIoU_gt']:.6f}  (numpy {off['numpy']}, one process)")
    per = {"read (score file + label, per pass)": (t["PixBinaryClass read"], st["read"]),
           "pixel metrics (PixBinaryClass / frame summary)": (t["PixBinaryClass"] - t["PixBinaryClass read"],
                                                               st["summary"]),
           "component metrics (SegEval / components)": (t["SegEval"] - t["SegEval read"], st["components"])}
    for name, (o, m) in per.items():
        print(f"          {name}: official {1e3 * o / n:.1f} ms, project {1e3 * m / n:.1f} ms per frame "
              f"(one thread) = {o / m:.1f}x")
    diffs = {k: abs(off["pixel"][k] - mine[k]) for k in ("AP", "FPR95")}
    diffs.update({k: abs(off["segment"][k] - mine[k]) for k in ("F1_mean", "sIoU_gt")})
    print("          |official - project|: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(f"bench_smiyc {track}: official / project = {t['total'] / mine['seconds']:.1f}x (goal >= 10x), "
          f"peak memory {off['peak_rss_mib']:.0f} / {mine['peak_mib']:.0f} MiB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind != "sklearn":  # this project's process, set up as the meta-ood command sets up its own
            from meta_ood.memory import keep_freed_memory

            keep_freed_memory()
        fn = {"project": lambda: run_project(args[0], args[1], args[2], int(args[3])),
              "exact": lambda: run_exact(args[0], args[1], int(args[2])),
              "sklearn": lambda: run_sklearn(args[0], args[1])}[kind]
        print(json.dumps(fn()))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24, help="frames per set (anomaly: one in six 720x1280, the rest 1024x2048; obstacle: 1080x1920)")
    ap.add_argument("--tracks", nargs="+", default=["anomaly", "obstacle"], choices=["anomaly", "obstacle"])
    ap.add_argument("--jobs", type=int, default=None, help="threads of this project (default: every core)")
    ap.add_argument("--official", dest="official", action="store_true", default=None,
                    help="also run the official code (default: when bench/official_smiyc/.venv exists)")
    ap.add_argument("--no-official", dest="official", action="store_false")
    ap.add_argument("--no-sklearn", dest="sklearn", action="store_false",
                    help="skip scikit-learn (its memory grows with the pixels: about 1 GB per 10 large frames)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="whole evaluations per side, each in a fresh process; the fastest counts (default 3)")
    args = ap.parse_args()
    from meta_ood.smiyc.evaluate import default_jobs

    jobs = args.jobs or default_jobs()
    use_official = OFFICIAL_PYTHON.exists() if args.official is None else args.official
    if use_official and not OFFICIAL_PYTHON.exists():
        sys.exit(f"{OFFICIAL_PYTHON}: not found; run bench/official_smiyc/setup.sh first")
    if not use_official:
        print(f"official code: skipped ({OFFICIAL_PYTHON} absent; set it up with bench/official_smiyc/setup.sh)")
    print(f"machine: {os.cpu_count()} cores; this project with --jobs {jobs}")
    with tempfile.TemporaryDirectory(prefix="bench_smiyc_") as tmp:
        root = Path(tmp)
        for i, track in enumerate(args.tracks):
            scores, labels, n_pix = write_set(root, track, args.frames, args.seed + i)
            n = len(list(scores.glob("*.hdf5")))
            print(f"\n== {track}: {n} frames, {n_pix / 1e6:.1f} M pixels, float16 hdf5 (gzip 9)")
            runs = [child("project", str(scores), str(labels), track, str(jobs)) for _ in range(args.repeats)]
            mine = min(runs, key=lambda r: r["seconds"])
            print(f"project : {mine['seconds']:7.2f} s (fastest of {_spread(runs, 'seconds')})  peak {mine['peak_mib']:6.0f} MiB  AP {mine['AP']:.6f} "
                  f"FPR95 {mine['FPR95']:.6f} mean F1 {mine['F1_mean']:.6f} sIoU {mine['sIoU_gt']:.6f}")
            st = mine["steps_one_thread"]
            print("          one thread per frame: " + ", ".join(f"{k} {1e3 * v / n:.1f} ms" for k, v in st.items()))
            if use_official:
                offs = [official(scores, labels, track, root) for _ in range(args.repeats)]
                off = min(offs, key=lambda r: r["timing"]["total"])
                print(f"official: fastest of {_spread([o['timing'] for o in offs], 'total')}")
                report_official(off, mine, n, track)
            exact = child("exact", str(scores), str(labels), str(jobs))
            if not args.sklearn:
                print(f"exact metrics alone: {exact['seconds']:.2f} s, peak {exact['peak_mib']:.0f} MiB")
                continue
            sk = child("sklearn", str(scores), str(labels))
            print(f"exact metrics alone: {exact['seconds']:.2f} s, peak {exact['peak_mib']:.0f} MiB; scikit-learn "
                  f"{sk['seconds']:.2f} s, peak {sk['peak_mib']:.0f} MiB; AP {exact['AP']:.10f} vs {sk['AP']:.10f}, "
                  f"AUROC {exact['AUROC']:.10f} vs {sk['AUROC']:.10f}")
            print(f"bench_smiyc {track}: scikit-learn / exact = {sk['seconds'] / exact['seconds']:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
