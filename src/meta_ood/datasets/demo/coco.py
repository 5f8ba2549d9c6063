"""COCO-format images with polygon, uncompressed-RLE (crowd) and compressed-RLE annotations."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from meta_ood.datasets.demo.config import DemoConfig
from meta_ood.datasets.demo.geometry import _hsv, _logu, _smooth, _to_uint8
from meta_ood.datasets.demo.naming import _coco_flags, _rng, coco_image_id
from meta_ood.datasets.demo.proxy_shapes import (
    _BLOB_SHAPES, _COCO_ID, _CROWD_SHAPES, _EXCLUDED_SHAPES, _GENERIC_FORMS, _PROXY_SHAPES, COCO_CATEGORIES, _generic_parts,
    _shape_parts,
)
from meta_ood.datasets.demo.proxy_textures import _coco_background, _coco_colour, _coco_texture


def _rle_uncompressed(mask: np.ndarray) -> dict:
    """Uncompressed (list) COCO RLE of a binary mask: column-major run lengths starting with zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).astype(int).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _rle_compressed(mask: np.ndarray) -> dict:
    """Compressed (string) COCO RLE of a binary mask, as pycocotools writes it."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(v) for v in rle["size"]]}


def _segm_rle(segm, h: int, w: int):
    """The RLE of a segmentation in any of the three COCO encodings (polygons, list RLE, string RLE)."""
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, h, w)
    return {"counts": segm["counts"].encode("ascii"), "size": segm["size"]}


def _coco_placement(rng: np.random.Generator, h: int, w: int, horizon: float | None, scale: tuple[float, float]) -> tuple[float, float, float]:
    """(cx, cy, r) of an object: on the ground in perspective for a street, anywhere otherwise."""
    U = rng.uniform
    side = min(h, w)
    if horizon is not None and rng.random() < 0.75:
        base = U(horizon + 0.12 * (h - horizon), h)
        r = float(np.clip((base - horizon) * _logu(rng, 0.06, 0.45), 3.0, 0.45 * side))
        return U(0.05, 0.95) * w, min(base - 0.6 * r, h - r), r
    return U(0.12, 0.88) * w, U(0.15, 0.85) * h, side * _logu(rng, *scale)


def render_coco(cfg: DemoConfig, index: int) -> tuple[np.ndarray, dict, list[dict]]:
    """COCO-format image ``index``: (RGB uint8, COCO image entry, annotation entries)."""
    rng = _rng(cfg.seed, "coco", index)
    U = rng.uniform
    small, excluded = _coco_flags(cfg, index)
    lo, hi = cfg.coco_size_range
    big_lo = min(max(lo, cfg.coco_min_size), hi)
    h, w = int(rng.integers(big_lo, hi + 1)), int(rng.integers(big_lo, hi + 1))
    if small:
        small_side = int(rng.integers(max(16, min(lo, cfg.coco_min_size // 2)), cfg.coco_min_size))
        if rng.random() < 0.5:
            h = small_side
        else:
            w = small_side
    img, horizon = _coco_background(rng, h, w)
    image_id = coco_image_id(index)
    plan: list[tuple[str, str, str | None]] = []  # (category name, encoding, generic form or None)
    for _ in range(int(rng.integers(1, 5) if horizon is None else rng.integers(2, 7))):
        if rng.random() < 0.5:
            form = str(rng.choice(sorted(_GENERIC_FORMS)))
            plan.append((str(rng.choice(_GENERIC_FORMS[form])), "polygon", form))
        else:
            plan.append((str(rng.choice(_PROXY_SHAPES)), "polygon", None))
    if excluded:
        plan.insert(int(rng.integers(len(plan) + 1)), (str(rng.choice(_EXCLUDED_SHAPES)), "polygon", None))
    if index % 4 == 0 or rng.random() < 0.15:
        plan.append((str(rng.choice(_CROWD_SHAPES)), "crowd", None))
    if index % 4 == 3 or rng.random() < 0.15:
        plan.append((str(rng.choice(_BLOB_SHAPES)), "rle", None))
    anns: list[dict] = []
    side = min(h, w)
    for k, (name, enc, form) in enumerate(plan):
        base = _coco_colour(rng, name)
        part_masks: list[tuple[np.ndarray, int]] = []
        if enc == "polygon":
            # the first object is at least medium-sized, the others small to medium (large ones come
            # from the compressed-RLE blobs and from objects near the camera on a street)
            cx, cy, r = _coco_placement(rng, h, w, horizon, (0.1, 0.3) if k == 0 else (0.04, 0.3))
            polys = []
            parts = _generic_parts(rng, form, cx, cy, r) if form else _shape_parts(rng, name, cx, cy, r)
            for poly, part in parts:
                poly = np.column_stack([np.clip(poly[:, 0], 0, w), np.clip(poly[:, 1], 0, h)])
                flat = [round(float(v), 2) for v in poly.ravel()]
                pm = mask_utils.decode(mask_utils.frPyObjects([flat], h, w))[..., 0].astype(bool)
                if pm.sum() >= 2:
                    polys.append(flat)
                    part_masks.append((pm, part))
            if not polys:
                continue
            segm: Any = polys
            crowd = 0
        elif enc == "crowd":
            union = np.zeros((h, w), bool)
            n = int(rng.integers(5, 14))
            cx0, cy0 = U(0.25, 0.75) * w, U(0.25, 0.75) * h
            for _ in range(n):
                r = side * U(0.04, 0.09)
                for poly, part in _shape_parts(rng, name, cx0 + rng.normal(0, 0.18) * w, cy0 + rng.normal(0, 0.12) * h, r):
                    poly = np.column_stack([np.clip(poly[:, 0], 0, w), np.clip(poly[:, 1], 0, h)])
                    pm = mask_utils.decode(mask_utils.frPyObjects([[float(v) for v in poly.ravel()]], h, w))[..., 0].astype(bool)
                    if pm.any():
                        union |= pm
                        part_masks.append((pm, part))
            if union.sum() < 4:
                continue
            segm = _rle_uncompressed(union)
            crowd = 1
        else:
            r = side * U(0.12, 0.3)
            cx, cy = U(0.25, 0.75) * w, U(0.25, 0.75) * h
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            dist = np.sqrt(((xx - cx) / r) ** 2 + ((yy - cy) / (r * U(0.7, 1.1))) ** 2)
            blob = (1 - dist + 0.35 * _smooth(rng, h, w, max(3.0, r / 3))) > 0
            lab, nlab = ndimage.label(blob)
            if nlab == 0:
                continue
            sizes = ndimage.sum(blob, lab, index=np.arange(1, nlab + 1))
            blob = lab == (1 + int(np.argmax(sizes)))
            if blob.sum() < 4:
                continue
            part_masks.append((blob, 0))
            segm = _rle_compressed(blob)
            crowd = 0
        # objects stand out from what is behind them (camouflage is rare in COCO) and are not mere
        # shades of it: redraw a colour too close to the background or of its chromaticity but darker
        covered = np.logical_or.reduce([pm for pm, _ in part_masks])
        behind = img[covered].mean(axis=0)
        for _ in range(8):
            chroma = float(np.linalg.norm(base / (base.sum() + 1e-3) - behind / (behind.sum() + 1e-3)))
            if float(np.linalg.norm(base - behind)) >= 0.25 and (chroma >= 0.06 or base.mean() > behind.mean()):
                break
            base = _hsv(U(0, 1), U(0.0, 1.0), U(0.1, 1.0))
        tex = _coco_texture(rng, h, w, base, r)
        part_tints = {0: 1.0, 1: U(0.55, 0.9), 2: U(0.9, 1.2), 3: None}
        accent = _coco_texture(rng, h, w, _hsv(U(0, 1), U(0.3, 1.0), U(0.2, 1.0)), r)
        yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
        for pm, part in part_masks:
            if not pm.any():
                continue
            tint = part_tints.get(part, 1.0)
            col = accent if tint is None else tex * tint
            shade = 1.0 + 0.15 * (0.5 - (yy - yy[pm].min()) / max(1.0, float(np.ptp(yy[pm])) + 1.0))
            img[pm] = (col * shade[..., None])[pm]
        rle = _segm_rle(segm, h, w)
        area = float(mask_utils.area(rle))
        if area < 1:
            continue
        bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
        anns.append({
            "id": image_id * 100 + len(anns) + 1,
            "image_id": image_id,
            "category_id": _COCO_ID[name],
            "segmentation": segm,
            "area": area,
            "bbox": bbox,
            "iscrowd": crowd,
        })
    # lighting and sensor noise
    img = img * U(0.75, 1.2) * (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * U(0.005, 0.025)
    entry = {
        "id": image_id,
        "file_name": f"{image_id:012d}.jpg",
        "height": h,
        "width": w,
        "license": 1,
        "coco_url": "",
        "flickr_url": "",
        "date_captured": "2017-01-01 00:00:00",
    }
    return _to_uint8(img), entry, anns


def _coco_header() -> dict:
    """The info, licenses and categories of the COCO-format annotation file."""
    return {
        "info": {
            "description": "meta-ood embedded demo: synthetic COCO-format OoD proxy images",
            "url": "",
            "version": "1.0",
            "year": 2017,
            "contributor": "meta-ood",
            "date_created": "2017/09/01",
        },
        "licenses": [{"id": 1, "name": "synthetic demo data", "url": ""}],
        "categories": [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in COCO_CATEGORIES],
    }
