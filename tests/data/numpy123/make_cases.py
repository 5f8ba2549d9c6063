"""Write ``argsort_ties.npz``: arrays with many equal values and ``np.argsort`` of each under numpy 1.23.

Run with numpy 1.23.x (the official SegmentMeIfYouCan code's pin), e.g. in a fresh virtualenv:

    python -m venv /tmp/np123 && /tmp/np123/bin/pip install numpy==1.23.3
    /tmp/np123/bin/python tests/data/numpy123/make_cases.py

Keys: ``values_<k>`` (float64, 1-D), ``order_<k>`` (int32: ``np.argsort(values_<k>)``, default kind),
``order32_<k>`` (the same on the values cast to float32), ``numpy_version``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

assert np.__version__.startswith("1.23."), f"needs numpy 1.23.x, this is {np.__version__}"


def cases(rng: np.random.Generator) -> list[np.ndarray]:
    """Tie-rich arrays: coarse random values, constant runs, per-frame descending edges concatenated as
    the official merge concatenates them (each frame's edges from 1.0 down), sizes 1 to 3000."""
    out = [np.ones(1), np.ones(2), np.ones(16), np.ones(17), np.ones(40), np.ones(1000)]
    for n in (5, 15, 16, 17, 18, 31, 33, 100, 257, 1000, 3000):
        out.append(np.round(rng.random(n) * 9) / 8)
    for frames in (2, 3, 8, 24, 60):
        parts = []
        for _ in range(frames):
            k = int(rng.integers(3, 60))
            edges = np.unique(np.concatenate([[1.0], np.round(rng.random(k) * 64) / 64]))[::-1]
            parts.append(edges)
        out.append(np.concatenate(parts))
    out.append(np.concatenate([np.arange(500.0), np.full(20, 499.0), np.arange(500.0)[::-1]]))
    out.append(rng.integers(0, 3, 2000).astype(np.float64))
    for n in (1000, 4000):  # a median-of-three worst case: the depth limit hands ranges to heapsort
        half, killer = n // 2, np.zeros(n)
        for i in range(1, half + 1):
            if i % 2:
                killer[i - 1], killer[i] = i, half + i
            killer[half + i - 1] = 2 * i
        out.append(killer)
    for n in (40, 700):  # NaN after every number, +-inf among them
        v = np.round(rng.random(n) * 8) / 8
        v[rng.random(n) < 0.1] = np.nan
        v[rng.random(n) < 0.05] = np.inf
        v[rng.random(n) < 0.05] = -np.inf
        out.append(v)
    return out


def main() -> None:
    rng = np.random.default_rng(20261205)
    arrays = {"numpy_version": np.array(np.__version__)}
    for k, values in enumerate(cases(rng)):
        arrays[f"values_{k}"] = values
        arrays[f"order_{k}"] = np.argsort(values).astype(np.int32)
        arrays[f"order32_{k}"] = np.argsort(values.astype(np.float32)).astype(np.int32)
    path = Path(__file__).with_name("argsort_ties.npz")
    np.savez_compressed(path, **arrays)
    print(f"{path}: {len(arrays) // 3} arrays, numpy {np.__version__}")


if __name__ == "__main__":
    main()
