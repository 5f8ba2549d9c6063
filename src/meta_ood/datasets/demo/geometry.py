"""Geometry, noise and colour helpers shared by the street renderer and the COCO-format proxies."""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image


def _smooth(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise with unit standard deviation and a feature size of about ``cell`` pixels."""
    gh = max(2, int(math.ceil(h / cell)) + 2)
    gw = max(2, int(math.ceil(w / cell)) + 2)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    out = np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    std = float(out.std())
    return out / std if std > 1e-6 else out


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A log-uniform draw in [lo, hi] (a tiny range where ``hi <= lo``)."""
    return math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo * 1.001))))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB colour (float32) of an HSV triple; the hue wraps, saturation and value are clipped."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def _hsv_array(h: np.ndarray, s: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
    """Vectorized HSV -> RGB for arrays in [0, 1] (hue wraps)."""
    h = np.asarray(h, np.float32) % 1.0
    s = np.clip(np.broadcast_to(np.asarray(s, np.float32), h.shape), 0, 1)
    v = np.clip(np.broadcast_to(np.asarray(v, np.float32), h.shape), 0, 1)
    k = (np.array([5.0, 3.0, 1.0], np.float32) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _rgb_to_hsv(rgb: np.ndarray) -> tuple[float, float, float]:
    """HSV triple of an RGB colour (clipped to [0, 1])."""
    return colorsys.rgb_to_hsv(*(float(v) for v in np.clip(rgb, 0, 1)))


def _grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 0.04) -> np.ndarray:
    """A grey in [lo, hi] with a slight random tint per channel."""
    return np.clip(rng.uniform(lo, hi) * (1.0 + rng.normal(0.0, tint, 3)), 0, 1).astype(np.float32)


def _jitter(rng: np.random.Generator, rgb, amount: float = 0.08) -> np.ndarray:
    """``rgb`` with a random gain and a slight per-channel tint of about ``amount``."""
    rgb = np.asarray(rgb, np.float32)
    return np.clip(rgb * rng.uniform(1 - amount, 1 + amount) * (1.0 + rng.normal(0.0, amount / 2, 3)), 0, 1).astype(np.float32)


def _hash01(a: np.ndarray, b: np.ndarray, c: float = 0.0) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer cell (a, b)."""
    x = np.sin(np.asarray(a, np.float64) * 12.9898 + np.asarray(b, np.float64) * 78.233 + c * 37.719) * 43758.5453
    return (x - np.floor(x)).astype(np.float32)


def _convex(u: np.ndarray, v: np.ndarray, pts) -> np.ndarray:
    """Mask of the convex polygon ``pts`` ((k, 2) in the (u, v) frame, either orientation)."""
    pts = np.asarray(pts, np.float64)
    area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    if area < 0:
        pts = pts[::-1]
    m = np.ones(u.shape, bool)
    for (u0, v0), (u1, v1) in zip(pts, np.roll(pts, -1, axis=0)):
        m &= (u1 - u0) * (v - v0) - (v1 - v0) * (u - u0) >= 0
    return m


def _segment(u: np.ndarray, v: np.ndarray, p0, p1, width: float) -> np.ndarray:
    """Mask of a thick line segment from ``p0`` to ``p1``."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    den = du * du + dv * dv
    if den <= 1e-12:
        return (u - p0[0]) ** 2 + (v - p0[1]) ** 2 <= (width / 2) ** 2
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / den, 0.0, 1.0)
    return (u - p0[0] - t * du) ** 2 + (v - p0[1] - t * dv) ** 2 <= (width / 2) ** 2


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    """Mask of the axis-aligned ellipse centred at ``(cu, cv)`` with radii ``ru``, ``rv``."""
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _regular(cu: float, cv: float, r: float, n: int, rot: float = 0.0) -> np.ndarray:
    """Corners ((n, 2)) of a regular ``n``-gon centred at ``(cu, cv)`` with radius ``r``, rotated by ``rot``."""
    a = rot + 2 * np.pi * np.arange(n) / n
    return np.stack([cu + r * np.cos(a), cv + r * np.sin(a)], axis=1)


def _rotated(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates along and across a random direction."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    c, s = math.cos(ang), math.sin(ang)
    return xx * c + yy * s, -xx * s + yy * c


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """An image in [0, 1] as rounded uint8."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
