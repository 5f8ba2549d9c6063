"""LostAndFound obstacles: 3-D bodies on the road, painted as ``_LAF_MARK`` + their official id."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from meta_ood.datasets.demo.geometry import _convex, _hash01, _hsv, _jitter
from meta_ood.datasets.demo.label_ids import _LAF_BLOB_IDS, _LAF_CRATE_IDS, _LAF_MARK, _LAF_NON_HAZARD_IDS, _LAF_PYLON_IDS
from meta_ood.datasets.demo.street_objects import _BOX_SHADE, _Objects


class _Obstacles(_Objects):
    """Plans and draws the obstacles of a LostAndFound-format scene (shaded faces, ground shadow)."""

    def _obstacle(self, lat: float, depth: float, kind: str, size: float, laf_id: int) -> None:
        """Draw one obstacle (crate, pylon, blob or lying timber) with its LostAndFound id."""
        rng, U = self.rng, self.rng.uniform
        label = _LAF_MARK + laf_id
        hue = U(0.42, 1.15)  # anything but the yellow-greens of vegetation and terrain
        unusual = (_hsv(hue, U(0.75, 1.0), U(0.7, 1.0)), _hsv(hue + U(0.3, 0.6), U(0.6, 1.0), U(0.1, 0.95)))
        self._ground_shadow(lat - size * 0.6, lat + size * 0.6, depth - 0.1 * size, depth + size * 0.9, U(0.25, 0.5))
        if kind == "crate":
            w, d, h = size, size * U(0.6, 1.0), size * U(0.5, 0.9)
            cell = size * U(0.12, 0.25)
            sl, faces = self.box_faces(lat - w / 2, lat + w / 2, depth, depth + d, 0.0, h)
            for name, m, a, b in faces:
                checker = ((np.floor(a / cell) + np.floor(b / cell)) % 2).astype(bool)
                col = np.where(checker[..., None], unusual[0], unusual[1]) * {"side": 0.72, "top": 1.08, "rear": 0.95}[name]
                self.paint(sl, m, col * (1 + 0.03 * self.n_fine[sl])[..., None], label)
        elif kind == "pylon":
            h = size * U(1.1, 1.6)
            sp = self.sprite(lat, depth, size * 0.5, h)
            if sp is None:
                return
            sl, u, v, _ = sp
            plate = (np.abs(u) <= 0.45 * size) & (v >= 0) & (v <= 0.08 * size)
            cone = _convex(u, v, [(-0.33 * size, 0.08 * size), (0.33 * size, 0.08 * size), (0.05 * size, h), (-0.05 * size, h)])
            n = int(rng.integers(3, 6))
            stripes = ((np.floor(v / h * n * 2)) % 2).astype(bool)
            shade = (1.0 - 0.25 * np.clip(np.abs(u) / (0.33 * size), 0, 1))[..., None]
            self.paint(sl, plate, unusual[1] * 0.7, label)
            self.paint(sl, cone, np.where(stripes[..., None], unusual[0], unusual[1]) * shade, label)
        elif kind == "blob":
            rx, ry = size * U(0.4, 0.6), size * U(0.3, 0.5)
            sp = self.sprite(lat, depth, rx * 1.3, ry * 2.4)
            if sp is None:
                return
            sl, u, v, _ = sp
            ang = np.arctan2(v - ry, u)
            wob = 1 + 0.18 * np.sin(3 * ang + U(0, 6)) + 0.1 * np.sin(5 * ang + U(0, 6))
            m = (u / rx) ** 2 + ((v - ry) / ry) ** 2 <= wob ** 2
            cell = size * U(0.15, 0.25)
            cu, cv = np.floor(u / cell), np.floor(v / cell)
            ju, jv = _hash01(cu, cv, 1.0), _hash01(cu, cv, 2.0)
            spots = ((u / cell - cu - 0.2 - 0.6 * ju) ** 2 + (v / cell - cv - 0.2 - 0.6 * jv) ** 2) < U(0.04, 0.08)
            shade = (0.75 + 0.35 * np.clip((v - ry * 0.3) / (2 * ry), 0, 1))[..., None]
            self.paint(sl, m, np.where(spots[..., None], unusual[1], unusual[0]) * shade, label)
        else:  # lying timber or post (random non-hazards)
            w, d, h = size * U(1.2, 2.0), size * U(0.12, 0.2), size * U(0.1, 0.18)
            base = (0.78, 0.12, 0.1) if laf_id == 33 else (0.55, 0.4, 0.25)
            sl, faces = self.box_faces(lat - w / 2, lat + w / 2, depth, depth + d, 0.0, h)
            for name, m, _, _ in faces:
                col = self.tex(sl, _jitter(rng, base, 0.1) * _BOX_SHADE[name], 0.05, 0.05, 0.0)
                self.paint(sl, m, col, label)

    def _plan_obstacles(self, bottom: float) -> list[tuple[float, Callable[[], None]]]:
        """1-3 obstacles on the road whose total area is about 0.3-3 % of the image."""
        rng, U = self.rng, self.rng.uniform
        n = int(rng.choice([1, 2, 3], p=[0.5, 0.33, 0.17]))
        total = math.exp(U(math.log(0.004), math.log(0.025))) * self.h * self.w
        plans = []
        for k in range(n):
            r = rng.random() * (0.9 if k == 0 else 1.0)
            kind = "crate" if r < 0.36 else ("pylon" if r < 0.64 else ("blob" if r < 0.9 else "timber"))
            fill = {"crate": 0.75, "pylon": 0.55, "blob": 0.8, "timber": 0.3}[kind]
            area = total / n * U(0.7, 1.3)
            ybase = U(self.yh + 0.25 * (bottom - self.yh), bottom)
            s = ybase - self.yh  # pixels per unit at that depth
            size = float(np.clip(math.sqrt(area / fill) / s, 0.12, 1.4))
            depth = self.f / s
            lo, hi = self.road[0] + 0.6 * size + 0.2, self.road[1] - 0.6 * size - 0.2
            if hi <= lo:
                continue
            lat = U(lo, hi)
            if kind == "crate":
                laf_id = int(rng.choice(_LAF_CRATE_IDS))
            elif kind == "pylon":
                laf_id = int(rng.choice(_LAF_PYLON_IDS))
            elif kind == "blob":
                laf_id = int(rng.choice(_LAF_BLOB_IDS))
            else:
                laf_id = int(rng.choice(_LAF_NON_HAZARD_IDS))
            plans.append((depth, lambda a=lat, b=depth, k=kind, sz=size, i=laf_id: self._obstacle(a, b, k, sz, i)))
        return plans
