"""Benchmark: the cost of paired comparisons against the SMIYC evaluation of the same methods.

Writes ``bench_smiyc.py``'s synthetic anomaly set (``--frames`` frames, one in six 720 x 1280, the rest
1024 x 2048, float16 hdf5), evaluates it once with ``smiyc_eval`` (both protocols, no bootstrap: the
evaluation a paired table comes after), and builds the exact per-frame histograms of ``--methods``
methods: the same frames with the scores mapped through ``s ** g`` and shifted per frame, so each method has
its own histogram of the full size and its own ranking. Then times the paired image bootstrap
(``--n-boot`` resamples, the same draws for all methods) of every method against the first (what
table 1's marks and ``table_paired`` do) and prints its share of the methods' SMIYC evaluation time
(goal: under 10 %).

    python bench/bench_paired.py                      # 100 frames, 6 methods, 1000 resamples
    python bench/bench_paired.py --frames 12 --methods 3 --n-boot 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_smiyc import write_set  # noqa: E402

from meta_ood.pixel_eval import PooledHistogram  # noqa: E402
from meta_ood.pixel_eval.paired import paired_against  # noqa: E402
from meta_ood.smiyc.evaluate import _ordered_map, default_jobs, file_frames, smiyc_eval  # noqa: E402
from meta_ood.smiyc.summary import summarize  # noqa: E402


def histograms(frames, gammas, jobs):
    """Exact float16 histograms of the methods ``s ** g`` (one image per frame), from each frame's summary."""
    hists = [PooledHistogram(16, 12, "float16") for _ in gammas]

    def summaries(f):
        s = summarize(*f.load())
        out = []
        rng = np.random.default_rng(abs(hash(f.fid)) % 2**32)
        for k, g in enumerate(gammas):  # a per-frame shift changes the pooled ranking: the methods differ
            shift = 0.0 if k == 0 else 0.03 * rng.normal()
            values = np.clip(np.power(s.values.astype(np.float64), g) + shift, 0, 1).astype(np.float16)
            order = np.argsort(values, kind="stable")
            merged = type(s)(values[order], s.pos[order], s.neg[order], s.dtype)
            out.append(merged.codes(16, "float16"))
        return out

    for f, per_method in zip(frames, _ordered_map(summaries, frames, jobs)):
        for h, counts in zip(hists, per_method):
            h.update_counts(*counts, image_id=f.fid)
    return hists


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--methods", type=int, default=6)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    jobs = default_jobs()
    with tempfile.TemporaryDirectory(prefix="bench_paired_") as tmp:
        scores, labels, n_pix = write_set(Path(tmp), "anomaly", args.frames, args.seed)
        frames = file_frames(scores, labels)
        print(f"{len(frames)} frames ({n_pix / 1e6:.1f} M pixels), {args.methods} methods, {args.n_boot} resamples, "
              f"{jobs} threads")
        t0 = time.perf_counter()
        smiyc_eval(scores, labels, "anomaly", n_boot=0, jobs=jobs)
        t_eval = time.perf_counter() - t0
        print(f"smiyc_eval of one method: {t_eval:.2f} s; of {args.methods} methods: {args.methods * t_eval:.2f} s")
        gammas = np.linspace(1.0, 2.0, args.methods)
        t0 = time.perf_counter()
        hists = histograms(frames, gammas, jobs)
        t_hist = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = paired_against(hists[1:], hists[0], n_boot=args.n_boot, seed=args.seed)
        t_paired = time.perf_counter() - t0
    print(f"exact histograms of the {args.methods} methods: {t_hist:.2f} s (part of smiyc_eval in a run)")
    diffs = ", ".join(f"{r['auprc']['diff']:+.4f}" for r in results)
    print(f"paired bootstrap, {args.methods - 1} methods against the first: {t_paired:.2f} s (AP differences: {diffs})")
    print(f"bench_paired: paired bootstrap / SMIYC evaluation = {100 * t_paired / (args.methods * t_eval):.1f} % "
          "(goal < 10 %)")


if __name__ == "__main__":
    main()
