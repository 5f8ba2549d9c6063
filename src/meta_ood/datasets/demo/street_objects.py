"""Objects of a street scene: vehicles, people, two-wheelers, trees, bushes, poles, signs, lights and bins."""

from __future__ import annotations

import numpy as np

from meta_ood.datasets.demo.geometry import _convex, _ellipse, _hsv, _jitter, _regular, _segment
from meta_ood.datasets.demo.label_ids import (
    BICYCLE, BUS, CAR, DYNAMIC, MOTORCYCLE, PERSON, POLE, POLEGROUP, RIDER, STATIC, TRAFFIC_LIGHT, TRAFFIC_SIGN, TRAIN,
    TRUCK, VEGETATION,
)
from meta_ood.datasets.demo.street_canvas import _Canvas


_CAR_COLOURS = (
    (0.85, 0.85, 0.85), (0.08, 0.08, 0.09), (0.55, 0.56, 0.58), (0.3, 0.31, 0.33), (0.1, 0.13, 0.3),
    (0.6, 0.08, 0.07), (0.15, 0.3, 0.6), (0.12, 0.25, 0.15), (0.65, 0.6, 0.5), (0.4, 0.12, 0.1),
)
_BIG_VEHICLE_COLOURS = (
    (0.9, 0.88, 0.85), (0.8, 0.65, 0.1), (0.7, 0.12, 0.1), (0.15, 0.3, 0.6), (0.2, 0.45, 0.25),
    (0.55, 0.55, 0.55), (0.85, 0.85, 0.9),
)
#: Brightness of the visible faces of a plain box (see :meth:`_Canvas.box_faces`).
_BOX_SHADE = {"side": 0.75, "top": 1.1, "rear": 0.95}


class _Objects(_Canvas):
    """Draws single objects at a lateral offset and depth, with their label ids."""

    def _ground_shadow(self, l0, l1, d0, d1, strength) -> None:
        """Darken the ground under an object's footprint with a soft elliptic shadow."""
        xa, ya = self.project(l0, d0)
        xb, yb = self.project(l1, d0)
        xc, yc = self.project(l0, d1)
        xd, yd = self.project(l1, d1)
        sl = self._bbox(min(xa, xb, xc, xd), max(xa, xb, xc, xd), min(ya, yb, yc, yd), max(ya, yb, yc, yd))
        if sl is None:
            return
        dy = self.yy[sl] - self.yh
        with np.errstate(divide="ignore", invalid="ignore"):
            dep = self.f / dy
        lat = (self.xx[sl] - self.vx) / np.maximum(dy, 1e-3)
        cl, cd = (l0 + l1) / 2, (d0 + d1) / 2
        r = ((lat - cl) / ((l1 - l0) / 2)) ** 2 + ((dep - cd) / ((d1 - d0) / 2)) ** 2
        k = np.where(dy > 0, np.clip(1.2 - r, 0, 1) * strength, 0)
        self.img[sl] *= (1 - k)[..., None]

    def _vehicle(self, lc: float, d0: float, kind: str, front: bool = False) -> None:
        """A car, truck, bus or tram as a shaded box with windows, lights and wheels."""
        rng, U = self.rng, self.rng.uniform
        if kind == "car":
            width, length, body, cabin, label = U(1.1, 1.3), U(2.6, 3.2), (0.15, U(0.62, 0.75)), U(0.95, 1.08), CAR
        elif kind == "truck":
            width, length, body, cabin, label = U(1.5, 1.7), U(4.0, 6.5), (0.35, U(1.8, 2.5)), 0.0, TRUCK
        elif kind == "bus":
            width, length, body, cabin, label = U(1.6, 1.75), U(7.0, 9.0), (0.2, U(2.0, 2.3)), 0.0, BUS
        else:  # tram
            width, length, body, cabin, label = U(1.5, 1.7), U(14.0, 22.0), (0.3, U(2.2, 2.5)), 0.0, TRAIN
        colours = _CAR_COLOURS if kind == "car" else _BIG_VEHICLE_COLOURS
        colour = _jitter(rng, colours[int(rng.integers(len(colours)))], 0.08)
        hw = width / 2
        l0, l1 = lc - hw, lc + hw
        self._ground_shadow(l0 - 0.15, l1 + 0.15, d0 - 0.2, d0 + length + 0.3, U(0.35, 0.6))
        dark = np.array([0.06, 0.06, 0.07], np.float32)
        glass = _jitter(rng, self.pal["sky_bottom"] * 0.35 + 0.05, 0.1)
        # wheels under the body (rear view and side view)
        for wl in (l0 + 0.05, l1 - 0.27):
            sp = self.sprite(wl + 0.11, d0 + 0.35, 0.12, body[0] + 0.2)
            if sp is not None:
                sl, u, v, _ = sp
                self.paint(sl, (np.abs(u) <= 0.11) & (v >= 0) & (v <= body[0] + 0.2), dark, label)
        sl, faces = self.box_faces(l0, l1, d0, d0 + length, body[0], body[1])
        if sl is None:
            return
        shade = {"side": U(0.65, 0.85), "top": U(1.0, 1.15), "rear": U(0.85, 1.0)}
        for name, m, a, b in faces:
            col = self.tex(sl, colour * shade[name], 0.02, 0.02, 0.03)
            if name == "side":
                if kind in ("bus", "train"):
                    win = (b > body[1] - 1.0) & (b < body[1] - 0.3) & ((((a - d0) / 1.3) % 1.0) < 0.85)
                    col = np.where(win[..., None], glass, col)
                elif kind == "truck":
                    col = np.where((np.abs(b - body[1] + 0.25) < 0.04)[..., None], col * 0.7, col)
            elif name == "top":
                col = col * 0.9 + self.pal["sky_bottom"] * 0.1
            else:
                rel = a - lc
                if kind == "car":
                    lights = (np.abs(np.abs(rel) - hw + 0.12) < 0.09) & (np.abs(b - body[1] + 0.14) < 0.06)
                    col = np.where(lights[..., None], np.array([0.95, 0.92, 0.8] if front else [0.75, 0.05, 0.05], np.float32), col)
                    plate = (np.abs(rel) < 0.17) & (np.abs(b - 0.32) < 0.05)
                    col = np.where(plate[..., None], np.array([0.88, 0.88, 0.85], np.float32), col)
                elif kind in ("bus", "train"):
                    win = (b > body[1] - 0.95) & (b < body[1] - 0.2) & (np.abs(rel) < hw - 0.12)
                    col = np.where(win[..., None], glass, col)
                    lights = (np.abs(np.abs(rel) - hw + 0.15) < 0.08) & (np.abs(b - 0.45) < 0.06)
                    col = np.where(lights[..., None], np.array([0.8, 0.1, 0.05], np.float32), col)
                else:
                    door = np.abs(rel) < 0.02
                    col = np.where(door[..., None], col * 0.6, col)
            self.paint(sl, m, col, label)
        if kind == "car":
            inset = 0.08
            csl, cfaces = self.box_faces(l0 + inset, l1 - inset, d0 + U(0.6, 0.9), d0 + length - U(0.5, 0.8), body[1], cabin)
            if csl is not None:
                for name, m, a, b in cfaces:
                    col = self.tex(csl, colour * shade[name], 0.02, 0.02, 0.03)
                    if name == "side":
                        win = (b > body[1] + 0.04) & (b < cabin - 0.04)
                        col = np.where(win[..., None], glass * 0.9, col)
                    elif name == "rear":
                        win = (np.abs(a - lc) < hw - inset - 0.08) & (b < cabin - 0.04) & (b > body[1] + 0.03)
                        col = np.where(win[..., None], glass * (0.8 + 0.4 * np.clip(b - body[1], 0, 0.4))[..., None], col)
                    self.paint(csl, m, col, CAR)
        # side wheels in perspective
        side = l1 if l1 < 0 else (l0 if l0 > 0 else None)
        if side is not None:
            for wd in (d0 + 0.55, d0 + length - 0.6):
                xa, ya = self.project(side, wd - 0.35, 0.0)
                xb, yb = self.project(side, wd + 0.35, 0.7)
                wsl = self._bbox(min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb))
                if wsl is None:
                    continue
                dep, hgt = self.side_plane(wsl, side)
                m = np.isfinite(dep) & (((np.nan_to_num(dep) - wd) / 0.33) ** 2 + ((hgt - 0.33) / 0.33) ** 2 <= 1)
                hub = np.isfinite(dep) & (((np.nan_to_num(dep) - wd) / 0.13) ** 2 + ((hgt - 0.33) / 0.13) ** 2 <= 1)
                self.paint(wsl, m, dark, label)
                self.paint(wsl, hub, np.array([0.5, 0.5, 0.52], np.float32), label)

    def _person(self, lat: float, depth: float, label: int = PERSON, seated: bool = False) -> None:
        """A pedestrian (or, seated, the rider of a two-wheeler) labelled ``label``."""
        rng, U = self.rng, self.rng.uniform
        hgt = U(0.95, 1.3)
        lift = 0.35 if seated else 0.0
        sp = self.sprite(lat, depth, 0.32 * hgt, hgt * (0.95 if seated else 1.0) + lift)
        if sp is None:
            return
        sl, u, v, _ = sp
        u, v = u / hgt, (v - lift) / hgt
        skin = _jitter(rng, ((0.87, 0.7, 0.58), (0.65, 0.47, 0.35), (0.4, 0.27, 0.2), (0.93, 0.78, 0.68))[int(rng.integers(4))], 0.05)
        hair = _jitter(rng, ((0.1, 0.07, 0.05), (0.35, 0.22, 0.1), (0.8, 0.7, 0.45), (0.5, 0.5, 0.5))[int(rng.integers(4))], 0.1)
        dark_bias = rng.random() < 0.5
        shirt = _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.08, 0.45) if dark_bias else rng.uniform(0.3, 0.95))
        pants = _hsv(rng.uniform(0.55, 0.7) if rng.random() < 0.5 else rng.random(), rng.uniform(0, 0.6), rng.uniform(0.06, 0.5))
        if seated:
            legs = _segment(u, v, (0.0, 0.45), (0.2, 0.25), 0.09) | _segment(u, v, (0.2, 0.25), (0.12, -0.2), 0.08)
        else:
            stride = U(-0.13, 0.13)
            legs = _segment(u, v, (-0.05, 0.47), (-0.05 + stride, 0.02), 0.085) | _segment(u, v, (0.05, 0.47), (0.05 - stride, 0.02), 0.085)
        lean = U(0.05, 0.15) if seated else 0.0
        torso = _convex(u, v, [(-0.12, 0.44), (0.12, 0.44), (0.14 + lean, 0.8), (-0.14 + lean, 0.8)])
        coat = rng.random() < 0.25 and not seated
        if coat:
            torso |= _convex(u, v, [(-0.13, 0.25), (0.13, 0.25), (0.13, 0.45), (-0.13, 0.45)])
        swing = U(-0.06, 0.06)
        arms = _segment(u, v, (-0.15 + lean, 0.77), (-0.19 + swing + (0.25 if seated else 0), 0.5 + (0.1 if seated else 0)), 0.06) | \
            _segment(u, v, (0.15 + lean, 0.77), (0.19 - swing + (0.2 if seated else 0), 0.5 + (0.1 if seated else 0)), 0.06)
        head = _ellipse(u, v, lean, 0.885, 0.065, 0.08)
        hairm = head & (v > 0.885 + U(-0.01, 0.05)) | _ellipse(u, v, lean, 0.93, 0.07, 0.04) & (rng.random() < 0.7)
        self.paint(sl, legs, self.tex(sl, pants, 0.05, 0.02, 0.0), label)
        self.paint(sl, arms, self.tex(sl, shirt * 0.9, 0.05, 0.02, 0.0), label)
        self.paint(sl, torso, self.tex(sl, shirt, 0.05, 0.03, 0.0), label)
        self.paint(sl, head, self.tex(sl, skin, 0.03, 0.0, 0.0), label)
        self.paint(sl, hairm, self.tex(sl, hair, 0.05, 0.0, 0.0), label)
        if rng.random() < 0.2 and not seated:
            bag = _convex(u, v, [(0.16, 0.42), (0.3, 0.42), (0.3, 0.6), (0.16, 0.6)])
            self.paint(sl, bag, self.tex(sl, _hsv(rng.random(), 0.4, 0.3), 0.05, 0.0, 0.0), label)

    def _two_wheeler(self, lat: float, depth: float, kind: str, rider: bool) -> None:
        """A bicycle or motorcycle, with a rider when ``rider``."""
        rng, U = self.rng, self.rng.uniform
        label = BICYCLE if kind == "bicycle" else MOTORCYCLE
        sp = self.sprite(lat, depth, 0.75, 1.1)
        if sp is None:
            return
        sl, u, v, s = sp
        u = u * (1 if rng.random() < 0.5 else -1)
        dark = np.array([0.07, 0.07, 0.08], np.float32)
        r = 0.23 if kind == "bicycle" else 0.22
        hubs = ((-0.38, r), (0.38, r))
        frame_col = _hsv(rng.random(), U(0.2, 0.9), U(0.15, 0.8))
        tyre_w = max(0.035, 0.6 / s)
        wheels = np.zeros(u.shape, bool)
        disc = np.zeros(u.shape, bool)
        for cu, cv in hubs:
            rr = np.sqrt((u - cu) ** 2 + (v - cv) ** 2)
            disc |= rr <= r
            wheels |= (np.abs(rr - r + tyre_w / 2) <= tyre_w / 2) if kind == "bicycle" else (rr <= r)
        if kind == "bicycle":
            fw = max(0.03, 0.6 / s)
            frame = _segment(u, v, hubs[0], (0.0, r), fw) | _segment(u, v, (0.0, r), (-0.1, 0.58), fw) | \
                _segment(u, v, (-0.1, 0.58), hubs[0], fw) | _segment(u, v, (-0.1, 0.58), (0.3, 0.62), fw) | \
                _segment(u, v, (0.0, r), (0.3, 0.62), fw) | _segment(u, v, (0.3, 0.62), hubs[1], fw) | \
                _segment(u, v, (0.3, 0.62), (0.26, 0.74), fw) | _segment(u, v, (-0.16, 0.62), (-0.04, 0.62), fw * 1.5)
            # the annotation covers the whole bicycle including the spokes area; the image shows what is behind
            self.paint(sl, disc | frame, self.img[sl] * 0.92, label)
            self.paint(sl, frame, self.tex(sl, frame_col, 0.04, 0.0, 0.0), label)
            self.paint(sl, wheels, dark, label)
        else:
            body = _ellipse(u, v, 0.0, 0.45, 0.36, 0.17) | _convex(u, v, [(-0.3, 0.5), (0.05, 0.5), (0.0, 0.62), (-0.32, 0.6)])
            bars = _segment(u, v, (0.3, 0.45), (0.36, 0.8), 0.05)
            self.paint(sl, wheels, dark, label)
            self.paint(sl, body | bars, self.tex(sl, frame_col, 0.04, 0.02, 0.0), label)
        if rider:
            self._person(lat - 0.02, depth - 0.01, RIDER, seated=True)

    def _tree(self, lat: float, depth: float) -> None:
        """A tree: trunk and a crown of overlapping noisy blobs."""
        rng, U = self.rng, self.rng.uniform
        trunk_h, cr = U(1.0, 2.6), U(0.8, 2.2)
        sp = self.sprite(lat, depth, cr * 1.5, trunk_h + 2.4 * cr)
        if sp is None:
            return
        sl, u, v, s = sp
        tw = max(U(0.05, 0.11), 0.5 / s)
        trunk = (np.abs(u) <= tw) & (v >= 0) & (v <= trunk_h + cr * 0.6)
        field_ = np.full(u.shape, -1.0, np.float32)
        for _ in range(int(rng.integers(3, 7))):
            cu, cv, rk = U(-0.6, 0.6) * cr, trunk_h + cr * U(0.6, 1.4), cr * U(0.45, 0.8)
            field_ = np.maximum(field_, 1 - ((u - cu) / rk) ** 2 - ((v - cv) / (rk * U(0.85, 1.1))) ** 2)
        crown = field_ + 0.35 * self.n_mid[sl] > 0.05
        self.paint(sl, trunk, self.tex(sl, _jitter(rng, (0.28, 0.2, 0.14), 0.2), 0.08, 0.05, 0.0), VEGETATION)
        self.paint(sl, crown, self._leafy(sl, 0.15 * np.clip((v - trunk_h - cr) / cr, -1, 1)), VEGETATION)

    def _bush(self, lat: float, depth: float) -> None:
        """A bush on the ground."""
        U = self.rng.uniform
        r = U(0.3, 0.7)
        sp = self.sprite(lat, depth, r * 1.6, r * 1.8)
        if sp is None:
            return
        sl, u, v, _ = sp
        m = (1 - (u / (1.4 * r)) ** 2 - ((v - 0.7 * r) / r) ** 2 + 0.3 * self.n_mid[sl] > 0) & (v >= 0)
        self.paint(sl, m, self._leafy(sl), VEGETATION)

    def _pole(self, lat: float, depth: float, kind: str, group: bool = False) -> None:
        """A pole (plain, lamp, with signs or traffic lights), or a group of poles."""
        rng, U = self.rng, self.rng.uniform
        hgt = U(2.0, 4.5) if kind != "lamp" else U(4.0, 6.0)
        toward = -1.0 if lat > 0 else 1.0
        sp = self.sprite(lat, depth, 1.6, hgt + 0.5)
        if sp is None:
            return
        sl, u, v, s = sp
        pw = max(U(0.045, 0.08), 0.5 / s)
        colour = _jitter(self.rng, self.pal["pole"], 0.1)
        shade = (1.0 + 0.25 * np.clip(u / pw, -1, 1))[..., None]
        offsets = (0.0,) if not group else (0.0, U(0.18, 0.3) * toward, -U(0.18, 0.3) * toward)[: int(rng.integers(2, 4))]
        for off in offsets:
            m = (np.abs(u - off) <= pw) & (v >= 0) & (v <= hgt)
            self.paint(sl, m, colour * shade, POLEGROUP if group else POLE)
        if kind == "lamp":
            reach = toward * U(0.6, 1.2)
            arm = _segment(u, v, (0.0, hgt - 0.1), (reach, hgt + 0.1), max(0.05, 0.8 / s))
            head = _ellipse(u, v, reach, hgt + 0.08, 0.22, 0.07)
            self.paint(sl, arm | head, colour * 0.9, POLE)
        elif kind == "sign":
            n_signs = 1 if rng.random() < 0.75 else 2
            cv = hgt - U(0.25, 0.35)
            for _ in range(n_signs):
                r = U(0.22, 0.4)
                self._sign(sl, u, v, cv, r)
                cv -= 2.3 * r
        elif kind == "light":
            self._traffic_light(sl, u, v, 0.0, hgt - 0.35)
            if rng.random() < 0.4:
                arm_len = toward * U(0.8, 1.6)
                self.paint(sl, _segment(u, v, (0.0, hgt - 0.05), (arm_len, hgt - 0.05), max(0.05, 0.8 / s)), colour, POLE)
                self._traffic_light(sl, u, v, arm_len, hgt - 0.45)

    def _sign(self, sl, u, v, cv: float, r: float) -> None:
        """A traffic sign of random shape and colour scheme on the pole frame."""
        rng = self.rng
        shape = int(rng.integers(6))
        if shape == 0:
            outer = _ellipse(u, v, 0, cv, r, r)
            inner = _ellipse(u, v, 0, cv, 0.75 * r, 0.75 * r)
        elif shape == 1:
            pts = _regular(0, cv, r * 1.1, 3, np.pi / 2 if rng.random() < 0.7 else -np.pi / 2)
            outer, inner = _convex(u, v, pts), _convex(u, v, (pts - [0, cv]) * 0.62 + [0, cv])
        elif shape == 2:
            pts = _regular(0, cv, r, 8, np.pi / 8)
            outer, inner = _convex(u, v, pts), _convex(u, v, (pts - [0, cv]) * 0.82 + [0, cv])
        elif shape == 3:
            pts = _regular(0, cv, r * 1.05, 4, 0.0)
            outer, inner = _convex(u, v, pts), _convex(u, v, (pts - [0, cv]) * 0.75 + [0, cv])
        else:
            wr = r * (1.6 if shape == 4 else 1.0)
            pts = [(-wr, cv - r * 0.8), (wr, cv - r * 0.8), (wr, cv + r * 0.8), (-wr, cv + r * 0.8)]
            outer = _convex(u, v, pts)
            inner = _convex(u, v, [(x * 0.85, cv + (y - cv) * 0.8) for x, y in pts])
        schemes = (
            ((0.75, 0.08, 0.08), (0.92, 0.92, 0.9)), ((0.1, 0.25, 0.65), (0.12, 0.3, 0.72)),
            ((0.9, 0.75, 0.1), (0.95, 0.85, 0.2)), ((0.92, 0.92, 0.9), (0.1, 0.35, 0.2)),
            ((0.8, 0.1, 0.08), (0.8, 0.1, 0.08)), ((0.5, 0.5, 0.5), (0.55, 0.55, 0.55)),
        )
        rim, fill = schemes[2 if shape == 3 else (4 if shape == 2 else int(rng.integers(len(schemes))))]
        rim, fill = _jitter(rng, rim, 0.08), _jitter(rng, fill, 0.08)
        self.paint(sl, outer, self.tex(sl, rim, 0.03, 0.0, 0.0), TRAFFIC_SIGN)
        self.paint(sl, inner, self.tex(sl, fill, 0.03, 0.0, 0.0), TRAFFIC_SIGN)
        if rng.random() < 0.5:
            glyph = _convex(u, v, [(-0.12 * r, cv - 0.3 * r), (0.12 * r, cv - 0.3 * r), (0.12 * r, cv + 0.3 * r), (-0.12 * r, cv + 0.3 * r)])
            self.paint(sl, glyph & inner, np.array([0.1, 0.1, 0.1], np.float32), TRAFFIC_SIGN)

    def _traffic_light(self, sl, u, v, cu: float, top: float) -> None:
        """A traffic light housing with one lamp on."""
        rng = self.rng
        wh, hh = self.rng.uniform(0.12, 0.16), self.rng.uniform(0.34, 0.42)
        box = (np.abs(u - cu) <= wh) & (np.abs(v - (top - hh)) <= hh)
        housing = _jitter(rng, (0.1, 0.1, 0.1) if rng.random() < 0.7 else (0.55, 0.5, 0.2), 0.2)
        self.paint(sl, box, self.tex(sl, housing, 0.04, 0.0, 0.0), TRAFFIC_LIGHT)
        on = int(rng.integers(3))
        lamp_cols = ((0.95, 0.15, 0.1), (0.95, 0.7, 0.1), (0.2, 0.95, 0.45))
        for k in range(3):
            cv = top - hh * (0.35 + 0.65 * k)
            m = _ellipse(u, v, cu, cv, wh * 0.65, wh * 0.65)
            col = np.array(lamp_cols[k], np.float32) * (1.0 if k == on else 0.22)
            self.paint(sl, m, col, TRAFFIC_LIGHT)

    def _bin(self, lat: float, depth: float) -> None:
        """A rubbish bin (dynamic) or a larger container (static)."""
        rng, U = self.rng, self.rng.uniform
        big = rng.random() < 0.35
        w, d, h = (U(0.35, 0.6), U(0.2, 0.35), U(0.6, 0.9)) if big else (U(0.2, 0.35), U(0.2, 0.35), U(0.35, 0.6))
        label = STATIC if big else DYNAMIC
        colour = _jitter(rng, ((0.2, 0.3, 0.2), (0.4, 0.4, 0.42), (0.15, 0.2, 0.45), (0.6, 0.55, 0.2))[int(rng.integers(4))], 0.1)
        sl, faces = self.box_faces(lat - w / 2, lat + w / 2, depth, depth + d, 0.0, h)
        for name, m, _, _ in faces:
            self.paint(sl, m, self.tex(sl, colour * _BOX_SHADE[name], 0.03, 0.02, 0.0), label)
