"""Surfaces, colours and backgrounds of the COCO-format proxy images."""

from __future__ import annotations

import math

import numpy as np

from meta_ood.datasets.demo.geometry import _grey, _hash01, _hsv, _hsv_array, _jitter, _logu, _rgb_to_hsv, _rotated, _smooth
from meta_ood.datasets.demo.street import _Street


def _other_colour(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A second colour for a pattern: any hue, or a lighter/darker shade of ``base``."""
    U = rng.uniform
    if rng.random() < 0.3:
        return np.clip(base * U(0.3, 1.8), 0, 1).astype(np.float32)
    return _hsv(U(0, 1), U(0.0, 1.0), U(0.08, 1.0))


def _coco_texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, r: float | None = None) -> np.ndarray:
    """A full-image appearance in the colour ``base`` for an object of radius about ``r`` pixels.

    Families: fur, wood grain, fabric, metallic, two-tone patches (smooth, object-like surfaces),
    and checkers, stripes, spots, coloured noise and colour gradients at random scales, angles and
    hues (patterned surfaces: the long tail of real COCO objects, packaging, clothes, toys, ...).
    """
    U = rng.uniform
    r = float(r if r is not None else max(h, w) / 4)
    kind = int(rng.integers(5)) if rng.random() < 0.35 else int(rng.integers(5, 10))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # fur: directional smooth noise + grain
        n = _smooth(rng, h, w, 2.0) * 0.12 + rng.standard_normal((h, w), dtype=np.float32) * 0.06
        k = 1 + n
    elif kind == 1:  # wood grain: warped soft bands, low contrast
        warp = _smooth(rng, h, w, max(h, w) / 4) * U(2.0, 5.0)
        k = 1 + 0.1 * np.sin((yy * U(0.2, 0.5) + xx * U(-0.1, 0.1)) + warp)
    elif kind == 2:  # fabric: fine grain
        k = 1 + rng.standard_normal((h, w), dtype=np.float32) * 0.09
    elif kind == 3:  # metallic: strong gradient with a highlight
        g = (xx * math.cos(U(0, 6)) + yy * math.sin(U(0, 6))) / max(h, w)
        k = 0.75 + 0.5 * np.abs(np.sin(g * U(2, 5)))
    elif kind == 4:  # patchy: two tones from thresholded smooth noise
        n = _smooth(rng, h, w, max(h, w) / U(6, 14))
        other = _hsv(U(0, 1), U(0.0, 0.5), U(0.1, 0.95))
        t = np.clip((n - U(-0.3, 0.6)) * 4, 0, 1)[..., None]
        return (base * (1 - t) + other * t) * (1 + 0.04 * rng.standard_normal((h, w, 1), dtype=np.float32))
    else:
        other = _other_colour(rng, base)
        if kind == 5:  # checker
            cell = _logu(rng, 1.5, max(2.0, 0.5 * r))
            u, v = _rotated(rng, h, w)
            t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
        elif kind == 6:  # stripes, straight or wavy
            period = _logu(rng, 2.5, max(3.0, 0.8 * r))
            u, _ = _rotated(rng, h, w)
            if rng.random() < 0.4:
                u = u + _smooth(rng, h, w, max(3.0, r / 2)) * period * U(0.2, 0.8)
            t = (((u / period) % 1.0) < U(0.3, 0.7)).astype(np.float32)
        elif kind == 7:  # spots on a jittered grid
            cell = _logu(rng, 3.0, max(4.0, 0.6 * r))
            u, v = _rotated(rng, h, w)
            cu, cv = np.floor(u / cell), np.floor(v / cell)
            ju, jv = _hash01(cu, cv, U(0, 9)), _hash01(cu, cv, U(10, 19))
            rad = U(0.15, 0.4)
            t = (((u / cell - cu - 0.5 - (ju - 0.5) * (1 - 2 * rad)) ** 2
                  + (v / cell - cv - 0.5 - (jv - 0.5) * (1 - 2 * rad)) ** 2) < rad ** 2).astype(np.float32)
        elif kind == 8:  # coloured noise: hue and value vary smoothly
            hue, sat, val = _rgb_to_hsv(base)
            n1 = _smooth(rng, h, w, _logu(rng, 1.5, max(2.0, r)))
            n2 = _smooth(rng, h, w, _logu(rng, 1.5, max(2.0, r)))
            img = _hsv_array(hue + U(0.05, 0.4) * n1, max(sat, U(0.2, 1.0)), np.clip(val + U(0.1, 0.3) * n2, 0.05, 1))
            return img.astype(np.float32)
        else:  # linear or radial colour gradient
            if rng.random() < 0.5:
                u, _ = _rotated(rng, h, w)
                t = (u - u.min()) / max(float(np.ptp(u)), 1.0)
                t = np.clip((t - U(0.0, 0.6)) * U(1.5, 5.0), 0, 1)
            else:
                cy, cx = U(0, h), U(0, w)
                t = np.clip(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / max(1.0, r * U(0.4, 1.5)), 0, 1)
        t = t[..., None]
        return (base * (1 - t) + other * t) * (1 + 0.03 * rng.standard_normal((h, w, 1), dtype=np.float32))
    return base * k[..., None].astype(np.float32)


#: Probabilities of the COCO-format backgrounds: street, paved ground, indoor, outdoor, abstract.
_COCO_BACKGROUND_P = (0.45, 0.15, 0.15, 0.15, 0.1)


def _coco_background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float | None]:
    """Background of a COCO-format image and, for a street scene, its horizon row (else None).

    Kinds: an empty street (the street renderer without vehicles and people: real COCO is full of
    outdoor scenes, and those without a car or a person survive the filter), paved ground seen
    from above, indoor (wall and floor), outdoor (sky over grass, sand or water) and abstract.
    """
    U = rng.uniform
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    kind = int(rng.choice(5, p=_COCO_BACKGROUND_P))
    if kind == 0:  # street
        scene = _Street(rng, h, w, mode="coco")
        img, _ = scene.render()
        return img.astype(np.float32) / 255.0, float(scene.yh)
    if kind == 1:  # asphalt, flagstones or cobbles seen from above
        base = _grey(rng, 0.25, 0.65, 0.06) if rng.random() < 0.7 else _jitter(rng, (0.55, 0.45, 0.38), 0.15)
        img = base * (1.0 + 0.06 * rng.standard_normal((h, w), dtype=np.float32) + 0.08 * _smooth(rng, h, w, max(h, w) / 6))[..., None]
        if rng.random() < 0.6:
            cell = U(12, 40)
            u, v = _rotated(rng, h, w)
            joints = (((u / cell) % 1.0) < 0.07) | (((v / (cell * U(0.5, 1.5))) % 1.0) < 0.07)
            img = img * (1 - 0.25 * joints)[..., None]
        if rng.random() < 0.4:  # a painted line
            u, _ = _rotated(rng, h, w)
            m = np.abs(u - U(u.min(), u.max())) < U(3, 10)
            img = np.where(m[..., None], _jitter(rng, (0.9, 0.9, 0.88), 0.05), img)
        return img.astype(np.float32), None
    if kind == 2:  # indoor: wall and floor
        split = h * U(0.4, 0.7)
        wall = _hsv(U(0, 1), U(0.0, 0.35), U(0.45, 0.9))
        floor = _hsv(U(0.03, 0.12), U(0.2, 0.6), U(0.25, 0.7)) if rng.random() < 0.6 else _hsv(U(0, 1), U(0.1, 0.5), U(0.2, 0.6))
        img = np.where((yy < split)[..., None], _coco_texture(rng, h, w, wall), _coco_texture(rng, h, w, floor))
    elif kind == 3:  # outdoor: sky over grass, sand or water
        split = h * U(0.3, 0.65)
        t = np.clip(yy / split, 0, 1)[..., None]
        sky = _hsv(U(0.55, 0.62), U(0.2, 0.6), U(0.7, 0.95)) * (1 - t) + _hsv(U(0.55, 0.6), U(0.0, 0.2), U(0.85, 1.0)) * t
        ground = _hsv((U(0.2, 0.35), U(0.08, 0.13), U(0.5, 0.6))[int(rng.integers(3))], U(0.3, 0.7), U(0.35, 0.75))
        img = np.where((yy < split)[..., None], sky, _coco_texture(rng, h, w, ground))
    else:  # abstract smooth colour field
        img = np.stack([0.5 + 0.18 * _smooth(rng, h, w, max(h, w) / U(2, 6)) for _ in range(3)], axis=2)
        img = img * _jitter(rng, (1.0, 1.0, 1.0), 0.3)
    return img.astype(np.float32), None


def _coco_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    """Base colour of an object: a natural one for some animals and plants, else any."""
    U = rng.uniform
    natural = {"cat": (0.08, 0.5), "dog": (0.07, 0.55), "horse": (0.06, 0.6), "cow": (0.08, 0.2),
               "elephant": (0.0, 0.05), "bear": (0.06, 0.6), "sheep": (0.12, 0.12), "potted plant": (0.3, 0.6)}
    if name in natural and rng.random() < 0.7:
        hue, sat = natural[name]
        return _hsv(hue + rng.normal(0, 0.02), sat * U(0.5, 1.2), U(0.15, 0.85))
    return _hsv(U(0, 1), U(0.0, 1.0), U(0.15, 0.95))
