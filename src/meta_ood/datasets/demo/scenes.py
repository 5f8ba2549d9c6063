"""Cityscapes-, LostAndFound- and Fishyscapes-format images and labels drawn from street scenes."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from meta_ood import labels as L
from meta_ood.datasets.demo.config import DemoConfig
from meta_ood.datasets.demo.geometry import _convex, _hash01, _hsv, _hsv_array, _regular, _to_uint8
from meta_ood.datasets.demo.label_ids import _LAF_MARK, _RARE_GROUPS, EGO, ROAD
from meta_ood.datasets.demo.naming import _attempt_rng, _rng
from meta_ood.datasets.demo.street import _Street


def render_cityscapes(cfg: DemoConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of Cityscapes-format ``split``: (RGB uint8, official label ids uint8).

    Each image is guaranteed one group of the rarer classes (tram + bicycle + terrain, bus +
    motorcyclist + wall, truck + cyclist + fence, cyclist + motorcycle + traffic light; by
    ``index % 4``), so four consecutive images show all 19 classes; a scene in which one of them
    ended up hidden is redrawn with the next sub-seed.
    """
    for attempt in range(8):
        scene = _Street(_attempt_rng(cfg.seed, split, index, attempt), cfg.height, cfg.width, rare_slot=index % len(_RARE_GROUPS))
        img, ids = scene.render()
        if scene.required <= set(np.unique(ids).tolist()):
            break
    return img, ids


def render_lostandfound(cfg: DemoConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """LostAndFound-format image ``index``: (RGB uint8, LostAndFound label ids uint8).

    A scene whose obstacles ended up (almost) hidden is redrawn with the next sub-seed, so every
    image shows at least 0.2 % obstacle pixels.
    """
    hazard = np.array([lab.id for lab in L.LOSTANDFOUND_LABELS if lab.train_id == L.LOSTANDFOUND.train_id_out]) + _LAF_MARK
    for attempt in range(8):
        scene = _Street(_attempt_rng(cfg.seed, "lostandfound", index, attempt), cfg.height, cfg.width, mode="lostandfound")
        img, ids = scene.render()
        if np.isin(ids, hazard).sum() >= 0.002 * ids.size:
            break
    lab = np.zeros_like(ids)
    lab[ids == ROAD] = 1
    obst = ids >= _LAF_MARK
    lab[obst] = ids[obst] - _LAF_MARK
    return img, lab


def fishyscapes_lostandfound_label(laf_ids: np.ndarray) -> np.ndarray:
    """Fishyscapes labels (0 free road, 1 obstacle, 255 void) of a LostAndFound label-id image."""
    train = L.LOSTANDFOUND_ID_TO_TRAIN[laf_ids]
    lab = np.full(laf_ids.shape, L.VOID_ID, dtype=np.uint8)
    lab[train == L.LOSTANDFOUND.train_id_in] = L.FISHYSCAPES.train_id_in
    lab[train == L.LOSTANDFOUND.train_id_out] = L.FISHYSCAPES.train_id_out
    return lab


def _foreign_object(rng: np.random.Generator, h: int, w: int, cy: float, cx: float, r: float):
    """Mask (float alpha) and colours of one foreign object centred at (cy, cx) with radius ``r`` px."""
    U = rng.uniform
    y0, y1 = max(0, int(cy - 1.6 * r)), min(h, int(cy + 1.6 * r) + 1)
    x0, x1 = max(0, int(cx - 1.6 * r)), min(w, int(cx + 1.6 * r) + 1)
    if y1 <= y0 or x1 <= x0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    du, dv = (xx - cx) / r, (yy - cy) / r
    rho = np.sqrt(du ** 2 + dv ** 2)
    th = np.arctan2(dv, du)
    kind = int(rng.integers(4))
    if kind == 0:  # rainbow star / flower
        n = int(rng.integers(5, 9))
        edge = 0.6 + 0.4 * np.cos(n * th + U(0, 6))
        inside = rho <= edge
        col = _hsv_array(th / (2 * np.pi) + rho * U(0.3, 0.8) + U(0, 1), U(0.7, 1.0), U(0.75, 1.0) * (1 - 0.3 * rho))
    elif kind == 1:  # ring target
        inside = rho <= U(0.85, 1.0)
        bands = (np.floor(rho / U(0.12, 0.22)) % 2).astype(bool)
        a, b = _hsv(U(0, 1), 1.0, 1.0), _hsv(U(0, 1), U(0.6, 1.0), U(0.1, 0.9))
        col = np.where(bands[..., None], a, b)
    elif kind == 2:  # swirl blob
        edge = 0.85 + 0.15 * np.sin(3 * th + U(0, 6)) + 0.08 * np.sin(7 * th)
        inside = rho <= edge
        swirl = np.sin(th * int(rng.integers(2, 5)) + rho * U(6, 14))
        col = _hsv_array(U(0, 1) + 0.25 * swirl, 0.9, 0.6 + 0.35 * swirl)
    else:  # faceted crystal with a metallic sheen
        pts = _regular(0.0, 0.0, 1.0, int(rng.integers(5, 8)), U(0, 6))
        inside = _convex(du, dv, pts)
        facet = np.floor((th + np.pi) / (2 * np.pi) * 6)
        col = _hsv_array(np.full(du.shape, U(0, 1)) + facet * 0.03, U(0.5, 0.9), 0.45 + 0.5 * _hash01(facet, facet, 3.0))
    alpha = ndimage.gaussian_filter(inside.astype(np.float32), 0.6)
    return (slice(y0, y1), slice(x0, x1)), alpha, col.astype(np.float32)


def render_fishyscapes(cfg: DemoConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Fishyscapes-Static-format image ``index``: (RGB uint8, labels 0 in / 1 out / 255 void)."""
    rng = _rng(cfg.seed, "fishyscapes", index)
    h, w = cfg.height, cfg.width
    scene = _Street(rng, h, w, rare_slot=int(rng.integers(4)), force_ego=True)
    img_u8, ids = scene.render()
    img = img_u8.astype(np.float32) / 255.0
    lab = np.where(L.CITYSCAPES_ID_TO_TRAIN[ids] == L.VOID_ID, L.VOID_ID, 0).astype(np.uint8)
    border = max(1, round(2 * w / 256))
    lab[:border, :] = lab[-border:, :] = lab[:, :border] = lab[:, -border:] = L.VOID_ID
    ego_rows = np.flatnonzero((ids == EGO).any(axis=1))
    bottom = float(ego_rows[0]) if ego_rows.size else float(h)
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    total = rng.uniform(0.01, 0.03) * h * w
    brightness = float(np.clip(img.mean() / 0.45, 0.5, 1.4))
    for _ in range(n):
        area = total / n * rng.uniform(0.75, 1.25)
        r = math.sqrt(area / (math.pi * 0.8))
        cy = rng.uniform(max(scene.yh - 0.1 * h, r), max(bottom - r - border - 1, scene.yh))
        cx = rng.uniform(r + border, w - r - border)
        obj = _foreign_object(rng, h, w, cy, cx, r)
        if obj is None:
            continue
        sl, alpha, col = obj
        col = col * brightness + rng.normal(0, 0.01, col.shape).astype(np.float32)
        img[sl] = img[sl] * (1 - alpha[..., None]) + col * alpha[..., None]
        lab[sl][alpha > 0.5] = 1
    return _to_uint8(img), lab
