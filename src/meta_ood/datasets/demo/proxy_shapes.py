"""COCO categories and the silhouettes of the COCO-format proxies (category-like and generic shapes)."""

from __future__ import annotations

import math

import numpy as np

from meta_ood.datasets.demo.geometry import _regular


#: The 80 COCO object categories with their official ids, names and supercategories.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"), (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"), (32, "tie", "accessory"), (33, "suitcase", "accessory"), (34, "frisbee", "sports"),
    (35, "skis", "sports"), (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"), (73, "laptop", "electronic"),
    (74, "mouse", "electronic"), (75, "remote", "electronic"), (76, "keyboard", "electronic"),
    (77, "cell phone", "electronic"), (78, "microwave", "appliance"), (79, "oven", "appliance"),
    (80, "toaster", "appliance"), (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)


_COCO_ID = {name: cid for cid, name, _ in COCO_CATEGORIES}
_EXCLUDED_SHAPES = ("person", "car", "bicycle", "motorcycle", "bus", "truck", "traffic light", "stop sign")
_PROXY_SHAPES = (
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "chair", "couch", "bed", "dining table",
    "bench", "potted plant", "tv", "laptop", "bottle", "vase", "cup", "clock", "teddy bear", "umbrella", "kite",
    "airplane", "boat", "fire hydrant", "suitcase", "sports ball", "toilet", "refrigerator",
)
_CROWD_SHAPES = ("bird", "sheep", "book", "banana", "kite", "umbrella", "donut")
_BLOB_SHAPES = ("broccoli", "teddy bear", "cake", "pizza", "potted plant", "bear", "sheep")


Poly = np.ndarray  # (n, 2) x, y in pixels


def _ell(cx, cy, rx, ry, rot=0.0, n=20) -> Poly:
    """An ellipse polygon of ``n`` corners, rotated by ``rot``."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(a), ry * np.sin(a)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _rect(cx, cy, w, h, rot=0.0) -> Poly:
    """A rectangle polygon of size ``w`` x ``h`` centred at ``(cx, cy)``, rotated by ``rot``."""
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * pts[:, 0] - s * pts[:, 1], cy + s * pts[:, 0] + c * pts[:, 1]], axis=1)


def _pts(cx, cy, r, pts, flip=1.0) -> Poly:
    """Unit-scale points scaled by ``r`` around ``(cx, cy)``, mirrored when ``flip`` is -1."""
    pts = np.asarray(pts, np.float64)
    return np.stack([cx + flip * r * pts[:, 0], cy + r * pts[:, 1]], axis=1)


def _shape_parts(rng: np.random.Generator, name: str, cx: float, cy: float, r: float) -> list[tuple[Poly, int]]:
    """Polygons (with a part index for colouring) of an object of category ``name``; y points down."""
    U = rng.uniform
    fl = 1.0 if rng.random() < 0.5 else -1.0
    parts: list[tuple[Poly, int]] = []
    quad = {"cat": (0.55, 0.45, 0.35, 0.3), "dog": (0.6, 0.4, 0.5, 0.32), "horse": (0.65, 0.35, 0.9, 0.28),
            "sheep": (0.6, 0.45, 0.4, 0.3), "cow": (0.7, 0.4, 0.65, 0.3), "elephant": (0.75, 0.5, 0.6, 0.36),
            "bear": (0.7, 0.5, 0.45, 0.34)}
    if name in quad:
        bl, bh, leg, head = quad[name]
        parts.append((_ell(cx, cy, r * bl, r * bh * U(0.85, 1.1), U(-0.15, 0.15)), 0))
        for lx in (-0.6, -0.3, 0.3, 0.6):
            parts.append((_rect(cx + fl * lx * r * bl, cy + r * (bh * 0.6 + leg / 2), r * 0.13, r * leg, U(-0.15, 0.15)), 1))
        hx, hy = cx + fl * r * (bl + head * 0.5), cy - r * bh * U(0.5, 1.1)
        parts.append((_ell(hx, hy, r * head, r * head * 0.85), 2))
        if name == "cat":
            parts.append((_pts(hx, hy, r * head, [(-0.7, -0.4), (-0.3, -0.6), (-0.55, -1.3)], fl), 2))
            parts.append((_pts(hx, hy, r * head, [(0.7, -0.4), (0.3, -0.6), (0.55, -1.3)], fl), 2))
        if name == "elephant":
            parts.append((_rect(hx + fl * r * head * 0.5, hy + r * head * 1.2, r * 0.12, r * head * 2.0, fl * 0.2), 2))
        parts.append((_rect(cx - fl * r * (bl + 0.1), cy - r * 0.1, r * 0.35, r * 0.07, fl * U(-0.8, 0.2)), 1))
    elif name == "bird":
        parts.append((_ell(cx, cy, r * 0.5, r * 0.28, U(-0.3, 0.3)), 0))
        parts.append((_ell(cx + fl * r * 0.48, cy - r * 0.25, r * 0.2, r * 0.18), 2))
        parts.append((_pts(cx, cy, r, [(-0.2, -0.05), (0.2, -0.1), (-0.4, -0.75)], fl), 1))
        parts.append((_pts(cx, cy, r, [(0.66, -0.3), (0.9, -0.22), (0.66, -0.18)], fl), 3))
    elif name in ("chair", "bench"):
        wdt = 0.8 if name == "chair" else 1.5
        parts.append((_rect(cx, cy, r * wdt, r * 0.12), 0))
        parts.append((_rect(cx - fl * r * wdt * 0.42, cy - r * 0.45, r * 0.12, r * 0.9, fl * 0.08), 0))
        for lx in (-0.42, 0.42):
            parts.append((_rect(cx + lx * r * wdt, cy + r * 0.38, r * 0.09, r * 0.7), 1))
    elif name in ("couch", "bed"):
        wdt = 1.6 if name == "couch" else 1.8
        parts.append((_rect(cx, cy, r * wdt, r * 0.5), 0))
        parts.append((_rect(cx, cy - r * 0.4, r * wdt * 0.95, r * 0.45), 1))
        if name == "couch":
            for lx in (-0.5, 0.5):
                parts.append((_ell(cx + lx * r * wdt, cy - r * 0.1, r * 0.15, r * 0.35), 1))
    elif name == "dining table":
        parts.append((_rect(cx, cy - r * 0.3, r * 1.7, r * 0.14), 0))
        for lx in (-0.7, 0.7):
            parts.append((_rect(cx + lx * r, cy + r * 0.15, r * 0.1, r * 0.8), 1))
    elif name == "potted plant":
        parts.append((_pts(cx, cy, r, [(-0.3, 0.2), (0.3, 0.2), (0.22, 0.75), (-0.22, 0.75)]), 1))
        for _ in range(int(rng.integers(3, 6))):
            parts.append((_ell(cx + U(-0.4, 0.4) * r, cy - U(0.0, 0.5) * r, r * U(0.18, 0.3), r * U(0.3, 0.5), U(-0.8, 0.8)), 0))
    elif name in ("tv", "laptop", "refrigerator"):
        if name == "refrigerator":
            parts.append((_rect(cx, cy, r * 0.8, r * 1.7), 0))
            parts.append((_rect(cx + r * 0.3, cy - r * 0.3, r * 0.05, r * 0.4), 3))
        else:
            sw = 1.4 if name == "tv" else 1.0
            parts.append((_rect(cx, cy - r * 0.2, r * sw, r * sw * 0.6), 0))
            parts.append((_rect(cx, cy - r * 0.2, r * sw * 0.88, r * sw * 0.5), 3))
            if name == "tv":
                parts.append((_rect(cx, cy + r * 0.25, r * 0.4, r * 0.08), 1))
            else:
                parts.append((_pts(cx, cy, r, [(-0.55, 0.12), (0.55, 0.12), (0.7, 0.3), (-0.7, 0.3)]), 1))
    elif name in ("bottle", "vase", "cup"):
        if name == "bottle":
            parts.append((_rect(cx, cy + r * 0.2, r * 0.35, r * 1.0), 0))
            parts.append((_rect(cx, cy - r * 0.5, r * 0.14, r * 0.45), 0))
            parts.append((_rect(cx, cy - r * 0.75, r * 0.16, r * 0.1), 3))
        elif name == "vase":
            t = np.linspace(0, 1, 12)
            prof = 0.18 + 0.25 * np.sin(np.pi * t * U(0.8, 1.2)) + 0.05
            left = np.stack([-prof, -0.8 + 1.6 * t], 1)
            right = np.stack([prof[::-1], (-0.8 + 1.6 * t)[::-1]], 1)
            parts.append((_pts(cx, cy, r, np.concatenate([left, right])), 0))
        else:
            parts.append((_pts(cx, cy, r, [(-0.35, -0.35), (0.35, -0.35), (0.28, 0.35), (-0.28, 0.35)]), 0))
            parts.append((_ell(cx + fl * r * 0.42, cy, r * 0.14, r * 0.18), 0))
    elif name in ("clock", "sports ball"):
        parts.append((_ell(cx, cy, r * 0.6, r * 0.6, 0.0, 28), 0))
    elif name == "teddy bear":
        parts.append((_ell(cx, cy + r * 0.2, r * 0.45, r * 0.5), 0))
        parts.append((_ell(cx, cy - r * 0.45, r * 0.32, r * 0.3), 2))
        for ex in (-0.25, 0.25):
            parts.append((_ell(cx + ex * r, cy - r * 0.72, r * 0.11, r * 0.11), 2))
            parts.append((_ell(cx + ex * r * 2, cy + r * 0.05, r * 0.14, r * 0.26, ex * 1.5), 1))
    elif name == "umbrella":
        a = np.linspace(np.pi, 2 * np.pi, 14)
        canopy = np.stack([cx + r * 0.8 * np.cos(a), cy + r * 0.45 * np.sin(a)], 1)
        parts.append((canopy, 0))
        parts.append((_rect(cx, cy + r * 0.35, r * 0.05, r * 0.7), 1))
    elif name == "kite":
        parts.append((_pts(cx, cy, r, [(0, -0.6), (0.4, -0.1), (0, 0.6), (-0.4, -0.1)]), 0))
        parts.append((_rect(cx + r * 0.1, cy + r * 0.85, r * 0.04, r * 0.55, 0.2), 1))
    elif name == "airplane":
        parts.append((_ell(cx, cy, r * 0.9, r * 0.14), 0))
        parts.append((_pts(cx, cy, r, [(-0.1, 0.0), (0.2, 0.0), (-0.25, 0.55), (-0.4, 0.55)], fl), 1))
        parts.append((_pts(cx, cy, r, [(-0.75, -0.05), (-0.6, -0.05), (-0.85, -0.45), (-0.95, -0.45)], fl), 1))
    elif name == "boat":
        parts.append((_pts(cx, cy, r, [(-0.8, 0.1), (0.8, 0.1), (0.55, 0.4), (-0.6, 0.4)], fl), 0))
        parts.append((_rect(cx, cy - r * 0.35, r * 0.04, r * 0.9), 1))
        parts.append((_pts(cx, cy, r, [(0.04, -0.75), (0.04, 0.05), (0.55, 0.05)], fl), 3))
    elif name == "fire hydrant":
        parts.append((_rect(cx, cy + r * 0.1, r * 0.4, r * 0.9), 0))
        parts.append((_ell(cx, cy - r * 0.38, r * 0.24, r * 0.16), 0))
        parts.append((_rect(cx, cy, r * 0.75, r * 0.16), 1))
    elif name == "suitcase":
        parts.append((_rect(cx, cy + r * 0.1, r * 0.9, r * 0.7), 0))
        parts.append((_rect(cx, cy - r * 0.32, r * 0.3, r * 0.12), 1))
    elif name == "toilet":
        parts.append((_ell(cx, cy, r * 0.45, r * 0.2), 0))
        parts.append((_rect(cx - fl * r * 0.35, cy - r * 0.35, r * 0.3, r * 0.55), 0))
        parts.append((_pts(cx, cy, r, [(-0.2, 0.15), (0.2, 0.15), (0.14, 0.55), (-0.14, 0.55)]), 1))
    elif name == "person":
        parts.append((_ell(cx, cy - r * 0.78, r * 0.13, r * 0.16), 2))
        parts.append((_pts(cx, cy, r, [(-0.22, -0.6), (0.22, -0.6), (0.18, 0.05), (-0.18, 0.05)]), 0))
        parts.append((_rect(cx - r * 0.1, cy + r * 0.45, r * 0.14, r * 0.8, 0.06), 1))
        parts.append((_rect(cx + r * 0.1, cy + r * 0.45, r * 0.14, r * 0.8, -0.06), 1))
    elif name in ("car", "bus", "truck"):
        ln = {"car": 1.6, "bus": 2.0, "truck": 1.8}[name]
        parts.append((_rect(cx, cy, r * ln, r * 0.45), 0))
        if name == "car":
            parts.append((_pts(cx, cy, r, [(-0.45, -0.22), (0.35, -0.22), (0.15, -0.55), (-0.3, -0.55)], fl), 3))
        else:
            parts.append((_rect(cx, cy - r * 0.45, r * ln, r * 0.5), 3 if name == "bus" else 0))
        for wx in (-0.32, 0.32):
            parts.append((_ell(cx + wx * r * ln, cy + r * 0.25, r * 0.17, r * 0.17), 1))
    elif name in ("bicycle", "motorcycle"):
        for wx in (-0.5, 0.5):
            parts.append((_ell(cx + wx * r, cy + r * 0.2, r * 0.32, r * 0.32, 0.0, 20), 1))
        parts.append((_pts(cx, cy, r, [(-0.5, 0.2), (0.0, 0.2), (0.4, -0.3), (-0.15, -0.3)]), 0))
    elif name == "traffic light":
        parts.append((_rect(cx, cy - r * 0.3, r * 0.3, r * 0.8), 0))
        parts.append((_rect(cx, cy + r * 0.45, r * 0.06, r * 0.7), 1))
    elif name == "stop sign":
        parts.append((_regular(cx, cy - r * 0.3, r * 0.45, 8, np.pi / 8), 0))
        parts.append((_rect(cx, cy + r * 0.5, r * 0.06, r * 0.9), 1))
    else:  # book and anything else: a rectangle
        parts.append((_rect(cx, cy, r * 0.6, r * 0.8, U(-0.3, 0.3)), 0))
    return parts


# Generic object forms of the COCO-format proxies, each drawn under a category it can pass for.
_GENERIC_FORMS: dict[str, tuple[str, ...]] = {
    "blob": ("teddy bear", "backpack", "handbag", "cake", "broccoli", "orange", "apple", "sandwich", "bear", "sheep"),
    "box": ("suitcase", "book", "microwave", "oven", "refrigerator", "tv", "toaster", "laptop"),
    "elongated": ("skis", "baseball bat", "surfboard", "skateboard", "snowboard", "knife", "toothbrush", "tie"),
    "disc": ("frisbee", "clock", "sports ball", "pizza", "donut", "bowl"),
    "polygon": ("kite", "cake", "sandwich", "book", "cell phone", "remote", "vase"),
}


def _generic_parts(rng: np.random.Generator, form: str, cx: float, cy: float, r: float) -> list[tuple[Poly, int]]:
    """Polygons of a generic object (a blob, a box, an elongated object, a disc or a polygon) of radius about ``r``."""
    U = rng.uniform
    rot = U(0, 2 * np.pi)
    if form == "blob":
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        rho = np.ones_like(a)
        for k in range(2, 6):
            rho += U(0.0, 0.25 / (k - 1)) * np.sin(k * a + U(0, 2 * np.pi))
        rx, ry = r * U(0.55, 1.0), r * U(0.45, 0.9)
        x, y = rx * rho * np.cos(a), ry * rho * np.sin(a)
        c, s = math.cos(rot), math.sin(rot)
        return [(np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1), 0)]
    if form == "box":
        bw, bh = r * U(0.6, 1.8), r * U(0.5, 1.4)
        tilt = U(-0.35, 0.35)
        parts = [(_rect(cx, cy, bw, bh, tilt), 0)]
        if rng.random() < 0.6:  # a second face: the top or a side, brighter or darker
            d = r * U(0.15, 0.45)
            c, s = math.cos(tilt), math.sin(tilt)
            corners = _rect(cx, cy, bw, bh, tilt)
            if rng.random() < 0.5:
                top = np.array([corners[0], corners[1], corners[1] + [d * (c * 0.6 + s), d * (s * 0.6 - c)],
                                corners[0] + [d * (c * 0.6 + s), d * (s * 0.6 - c)]])
                parts.append((top, 2))
            else:
                side = np.array([corners[1], corners[1] + [d * c, d * s - d * 0.5], corners[2] + [d * c, d * s - d * 0.5], corners[2]])
                parts.append((side, 1))
        return parts
    if form == "elongated":
        length, width = r * U(1.2, 2.2), r * U(0.08, 0.3)
        parts = [(_rect(cx, cy, length, width, rot), 0)]
        if rng.random() < 0.5:  # a rounded or thicker end
            c, s = math.cos(rot), math.sin(rot)
            parts.append((_ell(cx + c * length / 2, cy + s * length / 2, width * U(0.6, 1.4), width * U(0.6, 1.4), rot), 1))
        return parts
    if form == "disc":
        rx = r * U(0.5, 0.9)
        ry = rx * U(0.45, 1.0)
        parts = [(_ell(cx, cy, rx, ry, rot, 28), 0)]
        if rng.random() < 0.5:
            k = U(0.3, 0.7)
            parts.append((_ell(cx, cy, rx * k, ry * k, rot, 24), 3))
        return parts
    n = int(rng.integers(3, 9))
    a = np.sort(U(0, 2 * np.pi, n))
    rho = r * U(0.5, 1.0, n)
    return [(np.stack([cx + rho * np.cos(a), cy + rho * np.sin(a)], axis=1), 0)]
