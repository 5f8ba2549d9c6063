"""The order numpy 1.23's default ``argsort`` gives to equal values, for the official merged curve.

The official evaluation (run under its pinned numpy 1.23) sorts the merged per-frame thresholds with
``np.argsort(thresholds)``: numpy's introsort (quicksort with median-of-three pivots, insertion sort
for ranges of at most 16 elements, heapsort past a depth limit), which is not stable. Which of several
frames sharing the top threshold comes first decides the first point of the official curve, hence
its AP. The introsort is deterministic: the same values in the same order always give the same
permutation, so the official choice can be reproduced by replaying it step by step.
:func:`introsort_argsort` does that on a Python list (one comparison per step, as the C code makes
them); newer numpy releases sort differently (SIMD sorts, other partitioning) and do not give it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SMALL_RANGE", "introsort_argsort"]

#: Ranges of at most this many elements are finished by insertion sort (numpy's ``SMALL_QUICKSORT``
#: is 15 on ``right - left``, i.e. 16 elements).
SMALL_RANGE = 16


def _heapsort(v: list[int], idx: list[int], lo: int, n: int) -> None:
    """Heapsort of ``idx[lo:lo + n]`` by ``v`` (the depth-limit fallback), 1-based heap as in numpy."""

    def at(k: int) -> int:
        return idx[lo + k - 1]

    def put(k: int, value: int) -> None:
        idx[lo + k - 1] = value

    def sift(i: int, top: int, size: int) -> None:
        j = 2 * i
        while j <= size:
            if j < size and v[at(j)] < v[at(j + 1)]:
                j += 1
            if v[top] < v[at(j)]:
                put(i, at(j))
                i, j = j, 2 * j
            else:
                break
        put(i, top)

    for start in range(n // 2, 0, -1):
        sift(start, at(start), n)
    while n > 1:
        top = at(n)
        put(n, at(1))
        n -= 1
        sift(1, top, n)


def introsort_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` as numpy 1.23 computes it for a 1-D float array (default kind).

    Equal values end in the order numpy 1.23 leaves them; values and their order equal any
    ``argsort`` up to ties. The comparisons are made on the values' ranks (``np.unique``: NaN after
    every number and equal to NaN, as numpy orders floats). Pure Python, about a microsecond per
    element and level: called only when the order of ties matters.
    """
    v = np.unique(np.asarray(values, dtype=np.float64).ravel(), return_inverse=True)[1].ravel().tolist()
    n = len(v)
    idx = list(range(n))
    if n < 2:
        return np.asarray(idx, dtype=np.intp)
    stack: list[tuple[int, int, int]] = []
    lo, hi = 0, n - 1
    depth = 2 * (n.bit_length() - 1)
    while True:
        if depth < 0:
            _heapsort(v, idx, lo, hi - lo + 1)
        else:
            while hi - lo > SMALL_RANGE - 1:
                mid = lo + ((hi - lo) >> 1)
                if v[idx[mid]] < v[idx[lo]]:
                    idx[mid], idx[lo] = idx[lo], idx[mid]
                if v[idx[hi]] < v[idx[mid]]:
                    idx[hi], idx[mid] = idx[mid], idx[hi]
                if v[idx[mid]] < v[idx[lo]]:
                    idx[mid], idx[lo] = idx[lo], idx[mid]
                pivot = v[idx[mid]]
                i, j = lo, hi - 1
                idx[mid], idx[j] = idx[j], idx[mid]
                while True:
                    i += 1
                    while v[idx[i]] < pivot:
                        i += 1
                    j -= 1
                    while pivot < v[idx[j]]:
                        j -= 1
                    if i >= j:
                        break
                    idx[i], idx[j] = idx[j], idx[i]
                idx[i], idx[hi - 1] = idx[hi - 1], idx[i]
                depth -= 1
                if i - lo < hi - i:  # the larger part waits on the stack
                    stack.append((i + 1, hi, depth))
                    hi = i - 1
                else:
                    stack.append((lo, i - 1, depth))
                    lo = i + 1
            for k in range(lo + 1, hi + 1):  # insertion sort of the small range
                item = idx[k]
                key = v[item]
                m = k
                while m > lo and key < v[idx[m - 1]]:
                    idx[m] = idx[m - 1]
                    m -= 1
                idx[m] = item
        if not stack:
            break
        lo, hi, depth = stack.pop()
    return np.asarray(idx, dtype=np.intp)
