"""Entropy-maximization loss: forward+backward time and peak memory against the released code's approach.

Baseline (the paper's released code): encode the target with numpy into a dense (N, C, H, W)
float tensor ((1-λ)·one-hot for in-distribution pixels, λ/C for OoD pixels, 0 for void), then
``mean(target * -log_softmax(logits))``. Ours: :func:`meta_ood.losses.entropy_max_loss`
(gather + masked sums, no dense target). Each method runs in a fresh process so that its peak
resident memory is measured alone. Prints times, peak extra memory and the ratios.

Usage: python bench/bench_loss.py [--n 8 --size 480 --repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _inputs(n: int, size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, 19, size, size, generator=g)
    target = torch.randint(0, 19, (n, size, size), generator=g)
    target[: max(1, n // 4), size // 4 : size // 2, size // 4 : size // 2] = 254
    target[:, -size // 10 :, :] = 255
    return logits, target


def _reference_loss(logits, target, lam: float):
    import numpy as np
    import torch

    t = target.numpy().copy()
    t[t == 254] = 19
    t[t == 255] = 20
    onehot = np.eye(21, dtype=np.float64)[t][..., :19]  # (N, H, W, 19)
    enc = np.transpose(onehot, (0, 3, 1, 2)) * (1 - lam)
    enc[np.broadcast_to((t == 19)[:, None], enc.shape)] = lam / 19
    enc = torch.from_numpy(enc).float()
    return torch.mean(enc * -torch.log_softmax(logits, dim=1))


def _ours(logits, target, lam: float):
    from meta_ood.losses import entropy_max_loss

    return entropy_max_loss(logits, target, lam)


def _worker(method: str, n: int, size: int, repeats: int, queue) -> None:
    import torch

    torch.set_num_threads(1)
    logits, target = _inputs(n, size)
    logits.requires_grad_(True)
    fn = _ours if method == "ours" else _reference_loss
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    value = None
    for _ in range(repeats):
        logits.grad = None
        t0 = time.perf_counter()
        loss = fn(logits, target, 0.9)
        loss.backward()
        times.append(time.perf_counter() - t0)
        value = loss.item()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((min(times), (peak - base) / 1024.0, value))


def run(method: str, n: int, size: int, repeats: int):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(method, n, size, repeats, q))
    p.start()
    result = q.get()
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"loss forward+backward, logits {args.n}x19x{args.size}x{args.size} float32, 1 thread, best of {args.repeats}")
    t_ref, m_ref, v_ref = run("reference", args.n, args.size, args.repeats)
    t_our, m_our, v_our = run("ours", args.n, args.size, args.repeats)
    print(f"reference (numpy one-hot target): {t_ref:8.3f} s   peak extra memory {m_ref:8.0f} MiB   loss {v_ref:.8f}")
    print(f"meta_ood.losses:                  {t_our:8.3f} s   peak extra memory {m_our:8.0f} MiB   loss {v_our:.8f}")
    print(f"speed-up: {t_ref / t_our:.1f}x (goal >= 5x)   memory ratio: {m_ref / max(m_our, 1e-9):.1f}x less")
    print(f"relative difference of the loss values: {abs(v_ref - v_our) / abs(v_ref):.2e}")


if __name__ == "__main__":
    main()
