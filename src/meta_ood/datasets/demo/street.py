"""The street-scene renderer behind the Cityscapes-, LostAndFound- and Fishyscapes-format images."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from meta_ood.datasets.demo.geometry import _grey, _smooth, _to_uint8
from meta_ood.datasets.demo.label_ids import _RARE_GROUPS, _RARE_LABELS, _SLOT_EXTRA, EGO, OUT_OF_ROI, RECT_BORDER, RIDER, SKY
from meta_ood.datasets.demo.street_background import _Background
from meta_ood.datasets.demo.street_obstacles import _Obstacles


class _Street(_Background, _Obstacles):
    """One street scene, drawn back to front with its Cityscapes label ids (see :class:`_Canvas` for the camera)."""

    def _populate(self, bottom: float) -> list[tuple[float, Callable[[], None]]]:
        """Plan the objects of the scene as (depth, draw) pairs.

        Trees, bushes and poles in every scene; then the people and vehicles of a Cityscapes scene
        or the cars and obstacles of a LostAndFound one (neither in a COCO background).
        """
        rng, U = self.rng, self.rng.uniform
        objs: list[tuple[float, Callable[[], None]]] = []

        def logu(lo: float, hi: float) -> float:
            return math.exp(U(math.log(lo), math.log(hi)))

        def walk(side: int, inner: float = 0.2, outer: float = 0.2) -> float:
            lo, hi = self.sidewalk[side]
            return side * U(lo + inner, max(lo + inner + 0.01, hi - outer))

        def add(depth: float, fn: Callable[[], None]) -> None:
            objs.append((depth, fn))

        laf = self.laf
        for _ in range(int(rng.poisson(1.2 if laf else 3.2))):
            side = int(rng.choice([-1, 1]))
            lo, hi = self.outer[side]
            lat, dep = side * U(lo + 0.3, max(lo + 0.31, hi + 0.5)), logu(3.5, 80)
            add(dep, lambda a=lat, b=dep: self._tree(a, b))
        for _ in range(int(rng.poisson(1.0))):
            side = int(rng.choice([-1, 1]))
            lat, dep = side * (self.outer[side][1] - U(0.2, 0.6)), logu(3, 40)
            add(dep, lambda a=lat, b=dep: self._bush(a, b))
        n_poles = int(rng.poisson(1.5 if laf else 4.0))
        for k in range(n_poles + (0 if laf else 2)):
            side = int(rng.choice([-1, 1]))
            edge = self.road_edge(side)
            lat = edge + side * U(0.3, 0.6)
            if k < n_poles:
                dep = logu(2.8, 70)
                kind = ("sign", "light", "lamp", "plain")[int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15]))]
            else:  # one traffic light and one sign well inside the view
                dep = self.visible_depth(lat, 5.0, 25.0)
                kind = "light" if k == n_poles else "sign"
            group = rng.random() < 0.08
            add(dep, lambda a=lat, b=dep, k=kind, g=group: self._pole(a, b, k, g))
        if self.coco:
            return objs
        if not laf:
            for _ in range(int(rng.poisson(4.0))):
                side = int(rng.choice([-1, 1]))
                lat, dep = walk(side), logu(2.2, 30)
                add(dep, lambda a=lat, b=dep: self._person(a, b))
            if rng.random() < 0.15:
                lat, dep = U(self.road[0] + 0.5, self.road[1] - 0.5), logu(4, 25)
                add(dep, lambda a=lat, b=dep: self._person(a, b))
            for _ in range(int(rng.poisson(1.8))):
                lane = float(rng.choice(self.lanes))
                dep = logu(4.5 if lane == 0 else 3.5, 70)
                add(dep, lambda a=lane + U(-0.2, 0.2), b=dep, fr=lane < 0: self._vehicle(a, b, "car", front=fr))
            for _ in range(int(rng.poisson(3.5))):
                side = int(rng.choice([-1, 1]))
                edge = self.road_edge(side)
                lat, dep = edge - side * U(0.65, 0.8), logu(3, 70)
                add(dep, lambda a=lat, b=dep: self._vehicle(a, b, "car"))
            for _ in range(int(rng.poisson(0.5))):
                side = int(rng.choice([-1, 1]))
                lat, dep = walk(side, 0.4, 0.6), logu(3, 30)
                add(dep, lambda a=lat, b=dep: self._bin(a, b))
            self._rare(add, logu, walk)
        else:
            for _ in range(int(rng.poisson(0.6))):
                side = int(rng.choice([-1, 1]))
                edge = self.road_edge(side)
                lat, dep = edge - side * U(0.65, 0.8), logu(12, 70)
                add(dep, lambda a=lat, b=dep: self._vehicle(a, b, "car"))
            if rng.random() < 0.3:
                dep = logu(30, 80)
                add(dep, lambda b=dep: self._vehicle(U(-0.3, 0.3), b, "car"))
            objs.extend(self._plan_obstacles(bottom - 2.0))
        return objs

    def visible_depth(self, lat: float, lo: float = 3.0, hi: float = 18.0) -> float:
        """A (log-uniform) depth between lo and hi at which lateral offset ``lat`` is inside the image."""
        room = (self.vx if lat < 0 else self.w - self.vx) - 0.08 * self.w
        d_min = max(lo, abs(lat) * self.f / max(room, 1.0) * 1.1)
        d_max = max(hi, 1.5 * d_min)
        return math.exp(self.rng.uniform(math.log(d_min), math.log(d_max)))

    def _rare(self, add, logu, walk) -> None:
        """Trucks, buses, trams, riders, bicycles and motorcycles: one group guaranteed per image by its index."""
        rng, U = self.rng, self.rng.uniform
        slot = self.rare_slot if self.rare_slot is not None else int(rng.integers(4))
        want = list(_RARE_GROUPS[slot % len(_RARE_GROUPS)])
        self.required = {_RARE_LABELS[k] for k in want} | {_SLOT_EXTRA[slot % len(_RARE_GROUPS)]}
        if {"cyclist", "motorcyclist"} & set(want):
            self.required.add(RIDER)
        for extra, p in (("truck", 0.12), ("bus", 0.08), ("cyclist", 0.12), ("parked_bicycle", 0.15)):
            if rng.random() < p:
                want.append(extra)
        near = self.visible_depth

        for kind in want:
            if kind in ("train", "bus", "truck"):
                lane = float(rng.choice(self.lanes)) if kind != "train" else U(self.road[0] + 1.0, min(-0.9, self.road[1] - 1.0))
                dep = logu(6.0, 28.0)
                add(dep, lambda a=lane, b=dep, k=kind: self._vehicle(a, b, k, front=a < -0.5))
            elif kind in ("cyclist", "motorcyclist"):
                side = int(rng.choice([-1, 1]))
                edge = self.road_edge(side)
                lat = edge - side * U(0.4, 0.9)
                dep = near(lat)
                add(dep, lambda a=lat, b=dep, k=kind: self._two_wheeler(a, b, "bicycle" if k == "cyclist" else "motorcycle", True))
            else:
                side = int(rng.choice([-1, 1]))
                lat = walk(side, 0.3, 0.3)
                dep = near(lat, 3.0, 10.0)
                add(dep, lambda a=lat, b=dep, k=kind: self._two_wheeler(a, b, "bicycle" if k == "parked_bicycle" else "motorcycle", False))

    def _ego_shape(self) -> tuple[float, float] | None:
        """Height and centre column of the ego vehicle's hood, or None for a scene without it."""
        rng = self.rng
        if not (self.force_ego or rng.random() < (0.55 if not self.laf else 0.5)):
            return None
        return self.h * rng.uniform(0.07, 0.15), self.w * rng.uniform(0.4, 0.6)

    def _ego(self, shape: tuple[float, float] | None) -> None:
        """Paint the hood (label 'ego vehicle') at the bottom, with a dim reflection of the scene."""
        if shape is None:
            return
        rng = self.rng
        bh, cx = shape
        top = self.h - bh + bh * 0.9 * ((self.xx[0] - cx) / (0.65 * self.w)) ** 2
        m = self.yy >= top[None, :]
        mirror = np.clip((2 * (self.h - bh) - self.yy).astype(np.int64), 0, self.h - 1)
        refl = np.take_along_axis(self.img, np.repeat(mirror[..., None], 3, axis=2), axis=0)
        base = _grey(rng, 0.04, 0.35, 0.08)
        grad = np.clip((self.yy - (self.h - bh)) / bh, 0, 1)[..., None]
        col = base * (1.0 - 0.4 * grad) + refl * rng.uniform(0.1, 0.3) * (1 - grad)
        self.paint((slice(None), slice(None)), m, col, EGO)

    def _borders(self) -> None:
        """Label a thin out-of-roi frame and a rectification-border corner in some images, like the real data."""
        rng = self.rng
        if rng.random() < 0.25:
            k = int(rng.integers(1, 4))
            m = np.zeros((self.h, self.w), bool)
            m[:, :k] = m[:, -k:] = True
            m[:k, :] = True
            self.ids[m] = OUT_OF_ROI
        if rng.random() < 0.15:
            size = self.w * rng.uniform(0.03, 0.08)
            left = rng.random() < 0.5
            xx = self.xx if left else self.w - self.xx
            m = xx + (self.h - self.yy) < size
            self.img[m] = 0.0
            self.ids[m] = RECT_BORDER

    def _lighting(self) -> None:
        """Global shadows, saturation, contrast, gain, gamma, vignetting, blur and sensor noise."""
        rng, U = self.rng, self.rng.uniform
        img = self.img
        not_sky = (self.ids != SKY)[..., None]
        if rng.random() < 0.6:
            sh = _smooth(rng, self.h, self.w, self.w / 5)
            m = np.clip((sh - U(-0.3, 1.0)) * 3, 0, 1)[..., None]
            img *= 1 - m * not_sky * U(0.25, 0.5)
        lum = img.mean(axis=2, keepdims=True)
        img = lum + (img - lum) * U(0.65, 1.25)
        img = (img - 0.45) * U(0.8, 1.2) + 0.45
        img = img * U(0.7, 1.25) * (1.0 + rng.normal(0, 0.04, 3)).astype(np.float32)
        img = np.clip(img, 0, 1) ** U(0.85, 1.2)
        r2 = ((self.xx - self.w / 2) / (self.w / 2)) ** 2 + ((self.yy - self.h / 2) / (self.h / 2)) ** 2
        img *= (1.0 - U(0.0, 0.22) * r2 / 2)[..., None]
        if rng.random() < 0.3:
            img = ndimage.gaussian_filter(img, sigma=(U(0.3, 0.8), U(0.3, 0.8), 0))
        sigma = U(0.006, 0.03)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma + self.n_fine[..., None] * sigma * 0.5
        self.img = img.astype(np.float32)

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw the scene; returns (RGB uint8, label ids uint8; LostAndFound obstacles as 100 + id)."""
        self._sky()
        self._skyline()
        self._ground()
        self._facades()
        self._walls()
        self._guard_rails()
        ego = None if self.coco else self._ego_shape()
        objs = self._populate(self.h - ego[0] if ego is not None else float(self.h))
        objs.sort(key=lambda o: -o[0])
        for _, draw in objs:
            draw()
        self._ego(ego)
        if not (self.laf or self.coco):
            self._borders()
        self._lighting()
        return _to_uint8(self.img), self.ids
