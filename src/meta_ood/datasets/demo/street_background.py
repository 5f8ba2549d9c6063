"""Background of a street scene: sky, skyline, ground bands, facades, walls, fences and guard rails."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from meta_ood.datasets.demo.geometry import _grey, _hash01, _jitter, _smooth
from meta_ood.datasets.demo.label_ids import BUILDING, FENCE, GROUND, GUARD_RAIL, PARKING, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION, WALL
from meta_ood.datasets.demo.street_canvas import _Canvas


_BUILDING_COLOURS = (
    (0.76, 0.69, 0.56), (0.55, 0.55, 0.55), (0.62, 0.33, 0.25), (0.86, 0.85, 0.82), (0.72, 0.6, 0.38),
    (0.42, 0.41, 0.42), (0.7, 0.66, 0.62), (0.5, 0.42, 0.36), (0.66, 0.7, 0.72),
)


@dataclass
class _Plane:
    """Segments along depth of a vertical plane parallel to the road (a facade or a wall line)."""

    start: np.ndarray  # (k,) depth at which each segment starts (ascending)
    end: np.ndarray  # (k,) depth at which it ends
    kind: np.ndarray  # (k,) int code
    top: np.ndarray  # (k,) height (camera heights)
    colour: np.ndarray  # (k, 3)
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class _Background(_Canvas):
    """The static surroundings of a street scene, drawn back to front before any object."""

    def _sky(self) -> None:
        """Fill the image with a sky gradient and clouds."""
        t = np.clip(self.yy / max(self.yh, 1.0), 0, 1)[..., None]
        col = self.pal["sky_top"] * (1 - t) + self.pal["sky_bottom"] * t
        clouds = np.clip(_smooth(self.rng, self.h, self.w, self.w / 8) * 0.5 + self.n_mid * 0.08 - self.rng.uniform(-0.3, 0.8), 0, 1)
        col = col * (1 - 0.5 * clouds[..., None]) + self.rng.uniform(0.75, 1.0) * 0.5 * clouds[..., None]
        self.img[:] = col
        self.ids[:] = SKY

    def _skyline(self) -> None:
        """Distant buildings and trees along the horizon, hazed towards the sky colour."""
        rng = self.rng
        hf = self.h * rng.uniform(0.03, 0.17)
        tops = np.empty(self.w, np.float32)
        kinds = np.empty(self.w, np.uint8)
        x = 0
        while x < self.w:
            width = int(rng.integers(2, max(3, self.w // 20)))
            tops[x:x + width] = self.yh - hf * rng.uniform(0.2, 1.0)
            kinds[x:x + width] = VEGETATION if rng.random() < 0.35 else BUILDING
            x += width
        bumps = _smooth(rng, 1, self.w, 3.0)[0]
        tops = np.where(kinds == VEGETATION, tops + bumps * hf * 0.25, tops)
        sl = self._bbox(0, self.w, float(tops.min()) - 1, self.yh + 2)
        if sl is None:
            return
        m = (self.yy[sl] >= tops[None, sl[1]]) & (self.yy[sl] <= self.yh + 2)
        haze = rng.uniform(0.25, 0.6)
        for label, base in ((BUILDING, _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))]), (VEGETATION, self.pal["veg_dark"])):
            mm = m & (kinds[None, sl[1]] == label)
            col = self.tex(sl, base, 0.05, 0.1, 0.05) * (1 - haze) + self.pal["sky_bottom"] * haze
            self.paint(sl, mm, col, label)

    def _ground(self) -> None:
        """Paint the ground plane band by band (road, curbs, sidewalks, terrain, ...)."""
        r0 = int(math.floor(self.yh))
        sl = (slice(r0, self.h), slice(0, self.w))
        dy = self.yy[sl] - self.yh
        valid = dy > 0.05
        dy = np.maximum(dy, 0.05)
        dep = self.f / dy
        lat = (self.xx[sl] - self.vx) / dy
        idx = np.searchsorted(self.band_bounds, lat, side="right")
        fade = np.clip(dy / (0.2 * self.h), 0, 1)
        for i, (_, _, kind) in enumerate(self.bands):
            m = valid & (idx == i)
            if m.any():
                col, label = self._ground_band(kind, sl, lat, dep, dy, fade)
                self.paint(sl, m, col, label)

    def _ground_band(self, kind: str, sl, lat, dep, dy, fade):
        """Colour and label of one ground band at the pixels of ``sl``."""
        rng, p = self.rng, self.pal
        if kind == "road":
            col = self.tex(sl, p["road"], 0.06, 0.03, 0.07)
            patches = np.clip((self.n_coarse[sl] - 1.0) * 2, 0, 1) * rng.uniform(0.0, 0.18)
            col *= (1 - patches)[..., None]
            wear = 0.75 + 0.25 * np.clip(self.n_mid[sl], -1, 1)
            for pos, width, period, duty in self.markings:
                # at least one pixel wide; thinner lines far away are blended by their coverage
                m = np.abs(lat - pos) < width / 2 + 0.5 / dy
                if period:
                    m &= ((dep / period) % 1.0) < duty
                alpha = (m * np.clip(width * dy, 0.25, 1.0) * wear)[..., None]
                col = col * (1 - alpha) + p["marking"] * alpha
            if self.crosswalk is not None:
                d0, depth, stripe = self.crosswalk
                m = (dep >= d0) & (dep <= d0 + depth) & (((lat / stripe) % 1.0) < 0.5)
                alpha = (m * 0.85 * fade)[..., None]
                col = col * (1 - alpha) + p["marking"] * alpha
            return col, ROAD
        if kind == "curb":
            return self.tex(sl, np.clip(p["sidewalk"] * 1.18, 0, 1), 0.04, 0.03, 0.05), SIDEWALK
        if kind == "sidewalk":
            tile = 0.35 + 0.3 * (float(p["sidewalk"][0]) % 0.1) * 10
            grout = (((lat / tile) % 1.0) < 0.08) | (((dep / tile) % 1.0) < 0.08 * np.clip(dy / 12, 0, 1))
            col = self.tex(sl, p["sidewalk"], 0.05, 0.04, 0.07) * (1 - 0.22 * grout * fade)[..., None]
            return col, SIDEWALK
        if kind == "parking":
            col = self.tex(sl, np.clip(p["road"] * 1.08, 0, 1), 0.07, 0.04, 0.06)
            m = (((dep / 2.6) % 1.0) < 0.05) * fade
            col = col * (1 - 0.8 * m[..., None]) + p["marking"] * 0.8 * m[..., None]
            return col, PARKING
        if kind == "terrain":
            t = np.clip(0.5 + 0.35 * self.n_coarse[sl] + 0.15 * self.n_mid[sl], 0, 1)[..., None]
            col = p["terrain"] * (1 - t) + p["terrain2"] * t
            return col * (1.0 + 0.12 * self.n_fine[sl] + 0.1 * self.n_mid[sl])[..., None], TERRAIN
        # 'ground': dirt / cobble
        base = _jitter(rng, (0.45, 0.4, 0.33), 0.15)
        return self.tex(sl, base, 0.1, 0.12, 0.08), GROUND

    def _facade_plane(self, side: int) -> _Plane:
        """Buildings and rows of trees along one side of the street, as depth segments."""
        rng, U = self.rng, self.rng.uniform
        starts, ends, kinds, tops, cols = [], [], [], [], []
        wdx, floor, wfrac, hfrac, gfl, shop, wcol = [], [], [], [], [], [], []
        dep = 0.3
        p_build = 0.45 if self.laf else 0.64
        while dep < 800:
            length = U(5.0, 26.0) * (1.0 + dep / 60.0)
            r = rng.random()
            kind = 0 if r < p_build else (1 if r < p_build + 0.25 else 2)
            starts.append(dep)
            ends.append(dep + length)
            kinds.append(kind)
            tops.append(U(4.0, 20.0) if kind == 0 else U(3.5, 10.0))
            cols.append(_jitter(rng, _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))], 0.1))
            wdx.append(U(1.4, 3.0))
            floor.append(U(1.6, 2.3))
            wfrac.append(U(0.35, 0.65))
            hfrac.append(U(0.35, 0.6))
            gfl.append(U(1.8, 3.0))
            shop.append(float(rng.random() < 0.4))
            wcol.append(_jitter(rng, (0.12, 0.14, 0.17) if rng.random() < 0.6 else self.pal["sky_bottom"] * 0.6, 0.15))
            dep += length
        a = lambda x: np.asarray(x, np.float32)  # noqa: E731
        return _Plane(a(starts), a(ends), np.asarray(kinds), a(tops), a(cols),
                      {"wdx": a(wdx), "floor": a(floor), "wfrac": a(wfrac), "hfrac": a(hfrac),
                       "gf": a(gfl), "shop": a(shop), "wcol": a(wcol)})

    def _facades(self) -> None:
        """Paint the facade planes on both sides: buildings with windows and shop fronts, tree rows."""
        for side in (-1, 1):
            plane = self._facade_plane(side)
            xb = self.facade_x[side]
            sl = self.side_columns(side)
            if sl is None:
                continue
            dep, hgt = self.side_plane(sl, xb)
            ok = np.isfinite(dep) & (dep > 0.3) & (hgt >= 0)
            dep = np.where(ok, dep, 1.0)
            idx = np.clip(np.searchsorted(plane.start, dep, side="right") - 1, 0, len(plane.start) - 1)
            top, kind = plane.top[idx], plane.kind[idx]
            ex = {k: v[idx] for k, v in plane.extra.items()}
            # buildings with windows, shop fronts and cornices
            bm = ok & (kind == 0) & (hgt <= top)
            if bm.any():
                col = plane.colour[idx] * (1.0 + 0.04 * self.n_fine[sl] + 0.06 * self.n_coarse[sl])[..., None]
                col *= np.where((hgt > top - 0.25)[..., None], 0.8, 1.0)
                u = dep / ex["wdx"]
                v = (hgt - ex["gf"]) / ex["floor"]
                fu, fv = u % 1.0, v % 1.0
                win = bm & (hgt > ex["gf"]) & (hgt < top - 0.5) & (np.abs(fu - 0.5) < ex["wfrac"] / 2) & (fv > 0.3) & (fv < 0.3 + ex["hfrac"])
                px_per_unit = self.f * abs(xb) / np.maximum(dep, 0.3) ** 2
                alpha = np.clip(ex["wfrac"] * ex["wdx"] * px_per_unit / 1.5, 0, 1) * win
                lit = _hash01(np.floor(u), np.floor(v), float(side)) > 0.88
                wc = ex["wcol"] * (0.75 + 0.4 * fv)[..., None]
                wc = np.where(lit[..., None], np.array([0.9, 0.8, 0.5], np.float32), wc)
                col = col * (1 - alpha[..., None]) + wc * alpha[..., None]
                shop_m = bm & (ex["shop"] > 0) & (hgt > 0.25) & (hgt < ex["gf"] - 0.3) & (((dep / 3.5) % 1.0) < 0.72)
                col = np.where(shop_m[..., None], ex["wcol"] * 0.8, col)
                self.paint(sl, bm, col, BUILDING)
            # rows of trees / hedges along the facade line
            vm = ok & (kind == 1) & (hgt <= top + 0.8 * np.sin(dep * 0.9 + side) + 0.5 * np.sin(dep * 2.3) + 0.6 * self.n_mid[sl])
            if vm.any():
                self.paint(sl, vm, self._leafy(sl), VEGETATION)

    def _walls(self) -> None:
        """Walls, fences and hedges along the sidewalks (and the forced wall or fence of the scene)."""
        rng, U = self.rng, self.rng.uniform
        for side in (-1, 1):
            forced = self.forced in (WALL, FENCE) and side == self.forced_side
            if rng.random() > (0.45 if self.laf else 0.7) and not forced:
                continue
            xm = self.mid_x[side]
            sl = self.side_columns(side)
            if sl is None:
                continue
            dep, hgt = self.side_plane(sl, xm)
            ok = np.isfinite(dep) & (hgt >= 0)
            dep = np.where(ok, dep, -1.0)
            d = U(0.5, 4.0)
            while d < 250:
                length = U(5.0, 40.0)
                kind = rng.choice(3, p=[0.45, 0.42, 0.13])
                if forced:
                    kind, forced = (0 if self.forced == WALL else 1), False
                top = U(0.4, 1.6) if kind != 0 or rng.random() < 0.8 else U(1.6, 3.0)
                m = ok & (dep >= d) & (dep <= d + length) & (hgt <= top)
                if m.any():
                    if kind == 0:
                        base = _grey(rng, 0.38, 0.75, 0.06) if rng.random() < 0.6 else _jitter(rng, _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))], 0.1)
                        col = self.tex(sl, base, 0.04, 0.05, 0.1)
                        joints = ((dep / U(1.5, 4.0)) % 1.0) < 0.04
                        col *= np.where((hgt > top - 0.08)[..., None], 1.15, np.where(joints[..., None], 0.85, 1.0))
                        self.paint(sl, m, col, WALL)
                    elif kind == 1:
                        base = _jitter(rng, ((0.5, 0.5, 0.5), (0.15, 0.28, 0.18), (0.5, 0.36, 0.22), (0.85, 0.85, 0.82))[int(rng.integers(4))], 0.1)
                        behind = self.img[sl] * U(0.7, 0.95)
                        if rng.random() < 0.5:
                            cell = U(0.08, 0.2)
                            bars = (((dep + hgt) / cell) % 1.0 < 0.3) | (((dep - hgt) / cell) % 1.0 < 0.3)
                        else:
                            bars = ((dep / U(0.15, 0.35)) % 1.0) < U(0.5, 0.8)
                        posts = ((dep / 2.5) % 1.0 < 0.06) | (np.abs(hgt - top + 0.05) < 0.05) | (np.abs(hgt - 0.15) < 0.04)
                        col = np.where((bars | posts)[..., None], self.tex(sl, base, 0.05, 0.03, 0.05), behind)
                        self.paint(sl, m, col, FENCE)
                    else:
                        self.paint(sl, m, self._leafy(sl), VEGETATION)
                d += length + U(1.0, 25.0)

    def _guard_rails(self) -> None:
        """Guard rails along a road edge without a sidewalk."""
        for side in (-1, 1):
            if not self.guard_rail.get(side):
                continue
            edge = self.road_edge(side)
            lat = edge + side * 0.15
            sl = self.side_columns(side)
            if sl is None:
                continue
            dep, hgt = self.side_plane(sl, lat)
            ok = np.isfinite(dep) & (dep > 0.5)
            band = ok & (hgt >= 0.32) & (hgt <= 0.52)
            posts = ok & (hgt >= 0) & (hgt < 0.4) & (((np.nan_to_num(dep) / 2.5) % 1.0) < 0.07)
            col = self.tex(sl, _grey(self.rng, 0.55, 0.8, 0.03), 0.03, 0.02, 0.04)
            col *= (1.0 - 0.3 * (np.abs(np.nan_to_num(hgt) - 0.42) > 0.06))[..., None]
            self.paint(sl, band | posts, col, GUARD_RAIL)
