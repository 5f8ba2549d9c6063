"""Benchmark: ``smiyc-eval`` (official SMIYC protocol + exact pooled histogram) vs scikit-learn.

Synthetic road-scene frames: float32 anomaly scores in [0, 1] (smooth background plus noise,
high-scored blobs), a void band at the bottom, a few anomaly blobs per frame. Per frame it times
and measures (tracemalloc peak, numpy reports its buffers to it) the official percentile binning,
the exact histogram update and the component instancer; then the whole evaluation
(``evaluate_frames``, both protocols, bootstrap included) against scikit-learn's exact
``average_precision_score`` on the same pooled ROI pixels (concatenation included).

    python bench/bench_smiyc.py                                  # 100 frames of 1024 x 2048
    python bench/bench_smiyc.py --frames 10 --height 512 --width 1024
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from meta_ood.pixel_eval import PooledHistogram
from meta_ood.smiyc import array_frames, evaluate_frames, frame_components, percentile_bins

VOID = 255


def make_frames(n: int, h: int, w: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``n`` (fid, scores, labels) frames with 0 / 1 / 255 labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for k in range(n):
        lab = np.zeros((h, w), np.uint8)
        lab[int(0.85 * h):] = VOID
        s = 0.25 + 0.1 * np.sin(xx / w * rng.uniform(2, 6) + rng.uniform(0, 6)) * np.cos(yy / h * rng.uniform(2, 6))
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.4 * h, 0.8 * h), rng.uniform(0.1 * w, 0.9 * w)
            ry, rx = rng.uniform(0.02, 0.08) * h, rng.uniform(0.02, 0.08) * w
            blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            lab[blob & (lab != VOID)] = 1
            s = s + blob * rng.uniform(0.2, 0.5)
        s = np.clip(s + rng.normal(0, 0.08, (h, w)), 0, 1).astype(np.float32)
        frames.append((f"{k:05d}", s, lab))
    return frames


def per_frame(fn: Callable[[str, np.ndarray, np.ndarray], Any], frames) -> tuple[float, float]:
    """(mean seconds, max tracemalloc peak in MiB) of ``fn`` over the frames."""
    times, peaks = [], []
    for fid, s, lab in frames:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        fn(fid, s, lab)
        times.append(time.perf_counter() - t0)
        peaks.append((tracemalloc.get_traced_memory()[1] - base) / 2**20)
    return float(np.mean(times)), float(np.max(peaks))


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, tracemalloc peak in MiB) of one call."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, (tracemalloc.get_traced_memory()[1] - base) / 2**20


def sklearn_ap(frames) -> float:
    """scikit-learn's exact AP on the pooled ROI pixels."""
    y = np.concatenate([lab[lab != VOID] == 1 for _, _, lab in frames])
    s = np.concatenate([sc[lab != VOID] for _, sc, lab in frames])
    return float(average_precision_score(y, s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--track", default="anomaly", choices=["anomaly", "obstacle"])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    frames = make_frames(args.frames, args.height, args.width, args.seed)
    n_pix = args.frames * args.height * args.width
    print(f"{args.frames} frames of {args.height}x{args.width} = {n_pix / 1e6:.1f} M pixels, track {args.track}")
    tracemalloc.start()
    hist = PooledHistogram(bits=24, image_bits=12)
    t_bins, m_bins = per_frame(lambda fid, s, lab: percentile_bins(s, lab), frames)
    t_hist, m_hist = per_frame(lambda fid, s, lab: hist.update(s, lab, 0, 1, image_id=fid), frames)
    t_comp, m_comp = per_frame(lambda fid, s, lab: frame_components(s, lab, 0.5, 500, 100, keep_mask=False), frames)
    res, t_eval, m_eval = timed(lambda: evaluate_frames(array_frames(frames), args.track, n_boot=args.n_boot))
    ap_sk, t_sk, m_sk = timed(lambda: sklearn_ap(frames))
    tracemalloc.stop()

    print(f"per frame, official percentile binning : {1e3 * t_bins:8.1f} ms  peak {m_bins:7.1f} MiB")
    print(f"per frame, exact histogram update      : {1e3 * t_hist:8.1f} ms  peak {m_hist:7.1f} MiB")
    print(f"per frame, component instancer         : {1e3 * t_comp:8.1f} ms  peak {m_comp:7.1f} MiB "
          "(once per pixel threshold)")
    print(f"smiyc-eval (both protocols, 2 passes, {args.n_boot} bootstrap resamples): {t_eval:.2f} s "
          f"({1e3 * t_eval / args.frames:.1f} ms/frame), peak {m_eval:.1f} MiB")
    print(f"sklearn average_precision_score on {n_pix / 1e6:.1f} M pooled pixels: {t_sk:.2f} s, peak {m_sk:.1f} MiB")
    print(f"AP official {res['AP']:.6f}  exact {res['exact']['AP']:.6f}  sklearn {ap_sk:.6f}  "
          f"exact - sklearn {res['exact']['AP'] - ap_sk:+.1e}")
    print(f"bench_smiyc: {t_eval / t_sk:.2f}x the time of sklearn average_precision_score for both protocols "
          f"({args.frames} frames of {args.height}x{args.width}; memory {m_eval / max(m_sk, 1e-9):.2f}x)")


if __name__ == "__main__":
    main()
