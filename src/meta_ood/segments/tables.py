"""Per-segment tables: sums over nested segments and the predicted-segment metric columns."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from meta_ood.segments.keys import HEATMAPS, pred_keys

__all__ = ["empty_frame", "pred_table", "table", "tree_sums"]


def empty_frame(keys: Sequence[str]) -> pd.DataFrame:
    """A table with the columns ``keys`` and no row."""
    return pd.DataFrame(np.zeros((0, len(keys))), columns=list(keys))


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0."""
    out = np.zeros(np.broadcast(num, den).shape, np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def table(cols: dict[str, np.ndarray], keys: Sequence[str]) -> pd.DataFrame:
    """A float64 table of the columns ``cols`` in the order ``keys``."""
    n = len(cols[keys[0]])
    data = np.empty((n, len(keys)))
    for j, name in enumerate(keys):
        data[:, j] = cols[name]
    return pd.DataFrame(data, columns=list(keys))


def tree_sums(atoms: np.ndarray, bases: list[int], counts: list[int],
              parents: list[np.ndarray]) -> list[np.ndarray]:
    """Per-level, per-segment sums from per-atom sums and the nesting tree.

    ``atoms`` (channels, bins) holds the sums per atom bin ``bases[l] + label`` of the pixels
    whose deepest level is ``l``; the sum of a segment of level ``l`` is its atom sum plus the
    sums of its children at level ``l + 1`` (``parents[l + 1]`` maps child -> parent). Returns,
    per level, an array (channels, n_l) without the background label.
    """
    out: list[np.ndarray] = [None] * len(bases)  # type: ignore[list-item]
    below = None
    for lvl in range(len(bases) - 1, -1, -1):
        n = counts[lvl]
        sums = atoms[:, bases[lvl]:bases[lvl] + n + 1].copy()
        if below is not None and below.shape[1] > 1:
            par = parents[lvl + 1][1:]
            for j in range(atoms.shape[0]):
                sums[j] += np.bincount(par, below[j, 1:], n + 1)
        out[lvl] = sums[:, 1:]
        below = sums
    return out


def pred_table(num_classes: int, n: int, tot: np.ndarray, inn: np.ndarray, part: dict) -> pd.DataFrame:
    """Predicted-segment table of one level with ``n`` segments.

    ``tot`` holds the per-segment sums over all pixels (:func:`tree_sums`) of the channels
    count, E, E^2, D, D^2, V, V^2, row, column, OoD ground truth and the class probabilities;
    ``inn`` the first seven over interior pixels. ``part`` has the boundary sums
    (``n_bd``, ``<h>_s1``, ``<h>_s2``), the neighbourhood class distribution ``ndist`` and the
    IoU adjacency ``adj`` of the level.
    """
    c = num_classes
    keys_order = pred_keys(c)
    if n == 0:
        return empty_frame(keys_order)
    size = tot[0]
    n_in = inn[0]
    n_bd = part["n_bd"]
    no_bd = n_bd == 0
    bd_div = np.where(no_bd, 1.0, n_bd)
    s_rel = np.where(no_bd, size, size / bd_div)
    s_rel_in = np.where(no_bd, n_in, n_in / bd_div)
    cols: dict[str, np.ndarray] = {}
    for j, hname in enumerate(HEATMAPS):
        s1_in, s2_in = inn[1 + 2 * j], inn[2 + 2 * j]
        s1_bd, s2_bd = part[hname + "_s1"], part[hname + "_s2"]
        mean = (s1_in + s1_bd) / size
        var = (s2_in + s2_bd) / size - mean ** 2
        mean_in = safe_div(s1_in, n_in)
        var_in = np.where(n_in > 0, safe_div(s2_in, n_in) - mean_in ** 2, 0.0)
        mean_bd = safe_div(s1_bd, n_bd)
        var_bd = np.where(n_bd > 0, safe_div(s2_bd, n_bd) - mean_bd ** 2, 0.0)
        cols[hname] = mean
        cols[hname + "_in"] = mean_in
        cols[hname + "_bd"] = mean_bd
        cols[hname + "_rel"] = mean * s_rel
        cols[hname + "_rel_in"] = mean_in * s_rel_in
        cols[hname + "_var"] = var
        cols[hname + "_var_in"] = var_in
        cols[hname + "_var_bd"] = var_bd
        cols[hname + "_var_rel"] = var * s_rel
        cols[hname + "_var_rel_in"] = var_in * s_rel_in
    cols["S"] = size
    cols["S_in"] = n_in
    cols["S_bd"] = n_bd
    cols["S_rel"] = s_rel
    cols["S_rel_in"] = s_rel_in
    cols["mean_x"] = tot[7] / size
    cols["mean_y"] = tot[8] / size
    inter = tot[9]
    cols["iou"] = np.where(inter > 0, inter / (size + part["adj"]), 0.0)
    cols["iou0"] = (inter == 0).astype(np.float64)
    cols["prc"] = np.zeros(n)
    for k in range(c):
        cols[f"cprob{k}"] = tot[10 + k] / size
        cols[f"ndist{k}"] = part["ndist"][:, k]
    return table(cols, keys_order)
