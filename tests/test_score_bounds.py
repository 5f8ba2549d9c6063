"""How far the dump's score planes can move from the scores of the stored 16-bit probabilities.

The dump computes the normalized entropy from the float32 softmax; before score planes existed,
the pixel evaluation computed it from the fixed16 probabilities read back from the store. Per
pixel, the two differ by at most the bound documented in the README,

    (C - 1) * d * (1 - ln d) / ln C + 1 / 65535,    d = 0.5 / 65535,

since rounding one probability to the 16-bit grid changes ``-p ln p`` by at most
``d * (1 - ln d)`` (for p rounded to 0: ``-d ln d``; otherwise ``d * |ln p + 1|``), the largest
class changes the least, and the code adds at most half a step of 1 / 65535 on each side.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from meta_ood.device_planes import device_planes
from meta_ood.scores import normalized_entropy
from meta_ood.store.codec import FIXED_SCALE


def entropy_bound(num_classes: int) -> float:
    """The documented per-pixel bound on |entropy(float32 softmax) - entropy(fixed16 probabilities)|."""
    d = 0.5 / FIXED_SCALE
    return (num_classes - 1) * d * (1 - math.log(d)) / math.log(num_classes) + 1 / FIXED_SCALE


def _entropy_gap(logits: torch.Tensor) -> np.ndarray:
    """|stored entropy code / 65535 - normalized entropy of the stored fixed16 probabilities| per pixel."""
    planes = device_planes(logits, ("entropy",), "fixed16")[0]
    old = normalized_entropy(planes.probs.astype(np.float32) / np.float32(FIXED_SCALE))
    return np.abs(planes.scores["entropy"] / FIXED_SCALE - old.astype(np.float64))


@pytest.mark.parametrize("num_classes", [3, 19])
def test_entropy_of_worst_case_pixels_stays_within_the_bound(num_classes):
    """One dominant class and C - 1 classes of probability q, q swept across the rounding step: the
    worst case of the bound (all small classes just below 0.5 / 65535 round to zero)."""
    q = np.geomspace(1e-8, 1e-3, 5000)
    p = np.empty((num_classes, 1, q.size))
    p[1:] = q
    p[0] = 1 - (num_classes - 1) * q
    gap = _entropy_gap(torch.from_numpy(np.log(p)).float()[None])
    bound = entropy_bound(num_classes)
    assert gap.max() <= bound
    # the bound is nearly attained: the worst pixels lose (C - 1) terms -q ln q at q just below d
    assert gap.max() >= 0.9 * (bound - 1 / FIXED_SCALE)


def test_entropy_of_network_like_maps_stays_within_the_bound():
    """Smooth, mostly confident 19-class maps (logits at 1/8 resolution, upsampled) as a network gives."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(1, 19, 16, 32, generator=g)
    layout = torch.nn.functional.one_hot(coarse.argmax(1), 19).permute(0, 3, 1, 2).float()
    logits = torch.nn.functional.interpolate(3 * coarse + 7 * layout, size=(128, 256), mode="bilinear",
                                             align_corners=False)
    gap = _entropy_gap(logits)
    assert 0 < gap.max() <= entropy_bound(19)
