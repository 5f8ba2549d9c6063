"""Benchmark: streaming PooledHistogram vs scikit-learn on all concatenated pixels.

Synthetic LostAndFound-like data (float32 scores, ~1% OoD, ~20% void). Both paths see the same
in-memory images; the histogram path streams them one by one (update) and then computes the
metrics, the baseline concatenates the evaluated pixels and calls ``roc_auc_score`` and
``average_precision_score``. Peak memory is measured with tracemalloc (numpy reports its
buffers to it) on top of the already allocated images.

    python bench/bench_pixel_eval.py                  # 20 images of 1024 x 2048
    python bench/bench_pixel_eval.py --images 4 --height 512 --width 1024
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from meta_ood.pixel_eval import PooledHistogram, bootstrap

IN_ID, OUT_ID, VOID = 1, 2, 255


def make_images(n: int, h: int, w: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        lab = np.full((h, w), IN_ID, np.uint8)
        lab[: h // 5] = VOID  # sky / ego-vehicle band
        r0, c0 = rng.integers(h // 2, h - h // 10), rng.integers(0, w - w // 10)
        lab[r0 : r0 + h // 10, c0 : c0 + w // 10] = OUT_ID  # ~1% OoD
        s = rng.beta(0.7, 6.0, size=(h, w)).astype(np.float32)
        ood = lab == OUT_ID
        s[ood] = rng.beta(4.0, 2.0, size=int(ood.sum())).astype(np.float32)
        images.append((s, lab))
    return images


def measure(fn):
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    return result, dt, peak


def run_histogram(images, bits: int):
    h = PooledHistogram(bits=bits)
    for k, (s, lab) in enumerate(images):
        h.update(s, lab, IN_ID, OUT_ID, image_id=str(k))
    return h, h.metrics()


def run_sklearn(images):
    keep = [(lab == IN_ID) | (lab == OUT_ID) for _, lab in images]
    scores = np.concatenate([s[m] for (s, _), m in zip(images, keep)])
    y = np.concatenate([lab[m] == OUT_ID for (_, lab), m in zip(images, keep)])
    return {"auroc": roc_auc_score(y, scores), "auprc": average_precision_score(y, scores), "n": y.size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--bits", type=int, default=16)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    images = make_images(args.images, args.height, args.width, args.seed)
    n_pix = args.images * args.height * args.width
    print(f"{args.images} images of {args.height}x{args.width} = {n_pix / 1e6:.1f} M pixels, bits={args.bits}")
    tracemalloc.start()
    (hist, m), t_hist, mem_hist = measure(lambda: run_histogram(images, args.bits))
    base, t_sk, mem_sk = measure(lambda: run_sklearn(images))
    _, t_boot, mem_boot = measure(lambda: bootstrap(hist, n_boot=args.n_boot, seed=0))
    tracemalloc.stop()

    print(f"evaluated pixels: {base['n'] / 1e6:.1f} M (OoD {m['n_pos'] / 1e6:.2f} M)")
    print(f"AUROC  histogram {m['auroc']:.8f}  sklearn {base['auroc']:.8f}  diff {m['auroc'] - base['auroc']:+.2e}")
    print(f"AUPRC  histogram {m['auprc']:.8f}  sklearn {base['auprc']:.8f}  diff {m['auprc'] - base['auprc']:+.2e}")
    print(f"time   histogram update+metrics {t_hist:8.2f} s   sklearn {t_sk:8.2f} s   "
          f"ratio sklearn/histogram = {t_sk / t_hist:.1f}x")
    print(f"memory histogram peak {mem_hist / 2**20:8.1f} MiB   sklearn peak {mem_sk / 2**20:8.1f} MiB   "
          f"ratio sklearn/histogram = {mem_sk / mem_hist:.1f}x")
    print(f"bootstrap ({args.n_boot} resamples over {hist.n_images} images, image_bits={hist.image_bits}): "
          f"{t_boot:.2f} s, peak {mem_boot / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
