"""Camera, canvas and ground layout of a street scene: the frame every street element draws into."""

from __future__ import annotations

import math

import numpy as np

from meta_ood.datasets.demo.geometry import _grey, _hsv, _jitter, _smooth
from meta_ood.datasets.demo.label_ids import _SLOT_EXTRA, TERRAIN, UNLABELED


class _Canvas:
    """Image, label ids, camera and lateral layout of one street scene.

    World units are camera heights; the camera looks along the road at height 1 above the ground
    (``Y = 0``); a point at lateral offset ``L``, depth ``D`` and height ``Y`` projects to
    ``x = vx + f L / D`` and ``y = yh + f (1 - Y) / D``. The ground plane therefore has the
    lateral coordinate ``X = (x - vx) / (y - yh)`` along every line through the vanishing point.
    """


    def __init__(self, rng: np.random.Generator, h: int, w: int, mode: str = "cityscapes",
                 rare_slot: int | None = None, force_ego: bool = False) -> None:
        self.rng, self.h, self.w = rng, h, w
        # 'coco': an empty street (no vehicles, people or ego hood) as a COCO-format background
        self.coco = mode == "coco"
        self.laf = mode == "lostandfound" or (self.coco and rng.random() < 0.5)
        self.rare_slot = rare_slot
        # the class this scene must show besides its rare vehicles (see render_cityscapes)
        self.forced = _SLOT_EXTRA[rare_slot % len(_SLOT_EXTRA)] if rare_slot is not None else None
        self.forced_side = 1 if rng.random() < 0.5 else -1
        self.force_ego = force_ego
        self.img = np.zeros((h, w, 3), np.float32)
        self.ids = np.full((h, w), UNLABELED, np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        self.yy = yy.astype(np.float32) + 0.5
        self.xx = xx.astype(np.float32) + 0.5
        self.n_fine = rng.standard_normal((h, w), dtype=np.float32)
        self.n_mid = _smooth(rng, h, w, 2.5 * w / 256 + 1.0)
        self.n_coarse = _smooth(rng, h, w, 12.0 * w / 256 + 2.0)
        self.f = w * rng.uniform(0.48, 0.62)
        self.yh = h * (rng.uniform(0.3, 0.4) if self.laf else rng.uniform(0.36, 0.5))
        self.vx = w * rng.uniform(0.4, 0.6)
        self.required: set[int] = set()
        self._palette()
        self._layout()

    def _bbox(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
        """Slices of the pixel box ``[x0, x1] x [y0, y1]`` clipped to the image, or None if empty."""
        c0, c1 = max(0, int(math.floor(x0))), min(self.w, int(math.ceil(x1)) + 1)
        r0, r1 = max(0, int(math.floor(y0))), min(self.h, int(math.ceil(y1)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def side_columns(self, side: int) -> tuple[slice, slice] | None:
        """Slices of the image columns left (``side < 0``) or right of the vanishing point, or None if there are none."""
        c0, c1 = (0, int(math.floor(self.vx))) if side < 0 else (int(math.ceil(self.vx)), self.w)
        if c1 <= c0:
            return None
        return slice(0, self.h), slice(c0, c1)

    def road_edge(self, side: int) -> float:
        """Lateral position of the left (``side < 0``) or right road edge."""
        return self.road[0] if side < 0 else self.road[1]

    def project(self, lat: float, depth: float, height: float = 0.0) -> tuple[float, float]:
        """Image position (x, y) of the world point ``(lat, depth, height)``."""
        return self.vx + self.f * lat / depth, self.yh + self.f * (1.0 - height) / depth

    def sprite(self, lat: float, depth: float, half_w: float, top: float, bottom: float = 0.0):
        """A front-parallel frame at ``(lat, depth)``: (slices, u, v, pixels per unit) or None."""
        s = self.f / depth
        x0, y0 = self.project(lat, depth)
        sl = self._bbox(x0 - half_w * s, x0 + half_w * s, y0 - top * s, y0 + bottom * s)
        if sl is None:
            return None
        u = (self.xx[sl] - x0) / s
        v = (y0 - self.yy[sl]) / s
        return sl, u, v, s

    def box_faces(self, l0: float, l1: float, d0: float, d1: float, y0: float, y1: float):
        """Slices and the visible faces (name, mask, u, v) of an axis-aligned box, far faces first."""
        xs, ys = [], []
        for lat in (l0, l1):
            for dep in (d0, d1):
                for hgt in (y0, y1):
                    x, y = self.project(lat, dep, hgt)
                    xs.append(x)
                    ys.append(y)
        sl = self._bbox(min(xs), max(xs), min(ys), max(ys))
        if sl is None:
            return None, []
        dx = self.xx[sl] - self.vx
        dy = self.yy[sl] - self.yh
        faces = []
        side = l1 if l1 < 0 else (l0 if l0 > 0 else None)
        if side is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                dep = self.f * side / dx
            hgt = 1.0 - dy * dep / self.f
            m = np.isfinite(dep) & (dep >= d0) & (dep <= d1) & (hgt >= y0) & (hgt <= y1)
            faces.append(("side", m, dep, hgt))
        if y1 < 1.0:
            with np.errstate(divide="ignore", invalid="ignore"):
                dep = self.f * (1.0 - y1) / dy
            lat = dx * dep / self.f
            m = (dy > 0) & (lat >= l0) & (lat <= l1) & (dep >= d0) & (dep <= d1)
            faces.append(("top", m, lat, dep))
        lat = dx * d0 / self.f
        hgt = 1.0 - dy * d0 / self.f
        faces.append(("rear", (lat >= l0) & (lat <= l1) & (hgt >= y0) & (hgt <= y1), lat, hgt))
        return sl, faces

    def side_plane(self, sl, lat: float):
        """(depth, height) of the vertical plane ``L = lat`` at the pixels of ``sl`` (NaN where invalid)."""
        dx = self.xx[sl] - self.vx
        with np.errstate(divide="ignore", invalid="ignore"):
            dep = self.f * lat / dx
        dep = np.where(dep > 0, dep, np.nan)
        return dep, 1.0 - (self.yy[sl] - self.yh) * dep / self.f

    def paint(self, sl, mask: np.ndarray, colour: np.ndarray, label: int | None) -> None:
        """Set colour (one or per pixel) and, unless ``label`` is None, the label id on ``mask`` within ``sl``."""
        if not mask.any():
            return
        region = self.img[sl]
        colour = np.asarray(colour, np.float32)
        region[mask] = colour if colour.ndim == 1 else colour[mask]
        if label is not None:
            self.ids[sl][mask] = label

    def tex(self, sl, base, fine: float = 0.04, mid: float = 0.04, coarse: float = 0.06) -> np.ndarray:
        """``base`` modulated by the scene's fine, mid and coarse noise at ``sl``."""
        k = 1.0 + fine * self.n_fine[sl] + mid * self.n_mid[sl] + coarse * self.n_coarse[sl]
        return np.asarray(base, np.float32) * k[..., None]

    def _leafy(self, sl, shade: np.ndarray | float = 0.0) -> np.ndarray:
        """Foliage colour at ``sl``: dark and light vegetation mixed by noise (``shade`` brightens)."""
        t = np.clip(0.5 + 0.3 * self.n_mid[sl] + 0.25 * self.n_fine[sl] + shade, 0, 1)[..., None]
        return self.pal["veg_dark"] * (1 - t) + self.pal["veg_light"] * t

    def _palette(self) -> None:
        """Draw the colours of the scene (road, sidewalk, vegetation, terrain, sky, poles, markings)."""
        rng = self.rng
        p: dict[str, np.ndarray] = {}
        p["road"] = _grey(rng, 0.26, 0.55, 0.06)
        r = rng.random()
        if r < 0.45:
            p["sidewalk"] = _grey(rng, 0.38, 0.7, 0.05)
        elif r < 0.75:
            p["sidewalk"] = _jitter(rng, (0.58, 0.4, 0.35), 0.12)
        else:
            p["sidewalk"] = _jitter(rng, (0.66, 0.62, 0.52), 0.1)
        hue = rng.uniform(0.17, 0.33)
        p["veg_dark"] = _hsv(hue + rng.normal(0, 0.02), rng.uniform(0.45, 0.85), rng.uniform(0.12, 0.3))
        p["veg_light"] = _hsv(hue + rng.normal(0, 0.03), rng.uniform(0.35, 0.75), rng.uniform(0.35, 0.6))
        p["terrain"] = _hsv(rng.uniform(0.08, 0.3), rng.uniform(0.22, 0.6), rng.uniform(0.35, 0.62))
        p["terrain2"] = _hsv(rng.uniform(0.07, 0.25), rng.uniform(0.15, 0.5), rng.uniform(0.3, 0.55))
        sky = rng.random()
        if sky < 0.5:
            top, bottom = _hsv(rng.uniform(0.55, 0.62), rng.uniform(0.35, 0.65), rng.uniform(0.6, 0.9)), _hsv(rng.uniform(0.53, 0.6), rng.uniform(0.05, 0.25), rng.uniform(0.8, 0.98))
        elif sky < 0.85:
            g = rng.uniform(0.6, 0.9)
            top, bottom = _grey(rng, g - 0.1, g, 0.03), _grey(rng, g, min(g + 0.1, 0.98), 0.02)
        else:
            top, bottom = _hsv(rng.uniform(0.58, 0.66), rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.8)), _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.45), rng.uniform(0.75, 0.95))
        p["sky_top"], p["sky_bottom"] = top, bottom
        p["pole"] = _grey(rng, 0.25, 0.6, 0.05)
        p["marking"] = _jitter(rng, (0.9, 0.9, 0.88) if rng.random() < 0.85 else (0.9, 0.78, 0.25), 0.06)
        self.pal = p

    def _layout(self) -> None:
        """Lateral bands of the ground (road, curbs, sidewalks, terrain, ...) and the plane positions."""
        rng, U = self.rng, self.rng.uniform
        if self.laf:
            rl, rr = U(1.8, 4.2), U(1.8, 3.8)
        else:
            rl, rr = U(2.4, 6.0), U(1.3, 3.2)
        self.road = (-rl, rr)
        bands: list[tuple[float, float, str]] = [(-rl, rr, "road")]
        self.facade_x: dict[int, float] = {}
        self.mid_x: dict[int, float] = {}
        self.sidewalk: dict[int, tuple[float, float]] = {}
        self.outer: dict[int, tuple[float, float]] = {}
        self.guard_rail: dict[int, bool] = {}
        for side in (-1, 1):
            edge = -rl if side < 0 else rr
            strips: list[tuple[str, float]] = []
            if not self.laf and rng.random() < 0.12:
                strips.append(("parking", U(1.6, 2.4)))
            has_sidewalk = rng.random() < (0.6 if self.laf else 0.88)
            if has_sidewalk:
                strips.append(("curb", U(0.1, 0.18)))
                strips.append(("sidewalk", U(1.2, 3.6)))
            else:
                strips.append(("terrain", U(0.8, 3.0)))
            self.guard_rail[side] = (not has_sidewalk) and rng.random() < 0.5
            extra = 0.0 if (self.forced == TERRAIN and side == self.forced_side) else rng.random()
            if extra < 0.45:
                strips.append(("terrain", U(0.6, 2.5)))
            elif extra < 0.55:
                strips.append(("ground", U(0.5, 1.5)))
            pos = abs(edge)
            for kind, width in strips:
                lo, hi = pos, pos + width
                if kind == "sidewalk":
                    self.sidewalk[side] = (lo, hi)
                    self.mid_x[side] = side * hi
                bands.append((side * hi, side * lo, kind) if side < 0 else (side * lo, side * hi, kind))
                pos = hi
            self.facade_x[side] = side * pos
            self.mid_x.setdefault(side, side * (pos - 0.02))
            if side not in self.sidewalk:
                self.sidewalk[side] = (abs(edge) + 0.1, pos)
            self.outer[side] = (abs(edge) + 0.3, pos)
        outer_kinds = ["terrain", "ground", "sidewalk"]
        bands.sort(key=lambda b: b[0])
        left_kind = outer_kinds[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        right_kind = outer_kinds[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        self.bands = [(-np.inf, bands[0][0], left_kind)] + bands + [(bands[-1][1], np.inf, right_kind)]
        self.band_bounds = np.array([b[0] for b in self.bands[1:]], np.float32)
        # lane markings: (lateral position, width, dash period or 0 for solid, duty cycle)
        marks = []
        lane = U(2.0, 2.6)
        centre = -U(0.9, 1.4) if not self.laf else -U(0.6, 1.6)
        if centre > -rl + 0.5:
            marks.append((centre, U(0.07, 0.12), 0.0 if rng.random() < 0.35 else U(5.0, 10.0), U(0.35, 0.6)))
        pos = centre - lane
        while pos > -rl + 0.6 and rng.random() < 0.7:
            marks.append((pos, U(0.07, 0.11), U(5.0, 10.0), U(0.35, 0.55)))
            pos -= lane
        for edge, sgn in ((-rl, 1), (rr, -1)):
            if rng.random() < 0.5:
                marks.append((edge + sgn * U(0.25, 0.45), U(0.06, 0.1), 0.0, 1.0))
        self.markings = marks
        self.crosswalk = (U(6.0, 30.0), U(2.0, 3.5), U(0.5, 0.9)) if (not self.laf and rng.random() < 0.15) else None
        self.lanes = [0.0] + ([centre - lane / 2] if centre - lane / 2 > -rl + 0.7 else []) + \
                     ([centre - 1.5 * lane] if centre - 1.5 * lane > -rl + 0.7 else [])
