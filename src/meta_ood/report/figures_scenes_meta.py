"""The paper's scene figures with the meta classifier's segments: figures 6, 15 and 16.

Predicted OoD segments are the 8-connected components of {normalized entropy >= t} minus void,
recomputed from the store's probabilities (only these figures need them; stores keep them for
the segment datasets) exactly as the segment stage does, so that they match the meta classifier's
table of the same threshold row by row (``image`` = store position, ``segment`` = 1..n). A
segment is a true positive (TP) when it touches the OoD ground truth, else a false positive (FP);
the meta classifier removes it when its ``prob_fp`` exceeds ``meta_threshold``.

Scene choice: ``images`` (a list of image names) pins the scenes, in that order; without it the
rule is "most segments removed by the meta classifier": the images sorted by their number of
rows with ``prob_fp > meta_threshold`` in the meta table(s) of the figure (figure 15: both models'
tables together), descending, ties by the number of ground-truth OoD pixels (descending), then by
name (:func:`choose_most_removed`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.patches import Patch

from meta_ood.errors import InputError
from meta_ood.io import read_rgb
from meta_ood.report.figures_scenes import (
    _count_arg,
    _finish,
    _grid,
    _gt_handle,
    _names_arg,
    _one_entry,
    _outline,
    _pinned,
    _store,
    _tag,
    _titles,
    _unit_arg,
    ood_pixel_counts,
)
from meta_ood.report.figures_segments import _fit_image, _overlay, _paint, _read_meta, _segment_classes
from meta_ood.report.figures_style import FP_COLOR, RED, REMOVED_COLOR, TP_COLOR, style_rc

if TYPE_CHECKING:
    import pandas as pd

    from meta_ood.store import StoreReader

__all__ = ["choose_most_removed", "figure6", "figure15", "figure16", "removed_counts"]



def removed_counts(reader: StoreReader, metas: Sequence[tuple[pd.DataFrame, Any]], meta_threshold: float) -> np.ndarray:
    """Per image of ``reader``: rows with ``prob_fp > meta_threshold`` in the ``(table, path)`` ``metas``."""
    n = len(reader)
    total = np.zeros(n, np.int64)
    for df, path in metas:
        if not len(df):
            continue
        img = df["image"].to_numpy().astype(np.int64)
        if img.min() < 0 or img.max() >= n:
            bad = int(img.min()) if img.min() < 0 else int(img.max())
            raise InputError(f"{path}: image index {bad} outside the {n} images of {reader.folder}; "
                             "expected the meta table of this store")
        total += np.bincount(img[df["prob_fp"].to_numpy(dtype=float) > meta_threshold], minlength=n)
    return total


def choose_most_removed(reader: StoreReader, metas: Sequence[tuple[pd.DataFrame, Any]], meta_threshold: float,
                        n: int) -> list[int]:
    """Rule "most segments removed by the meta classifier": the first ``n`` images by removed
    segments (descending), then OoD pixels (descending), then name."""
    removed, ood, names = removed_counts(reader, metas, meta_threshold), ood_pixel_counts(reader), reader.names
    return sorted(range(len(reader)), key=lambda i: (-removed[i], -ood[i], names[i]))[:n]


def _scene_indices(reader: StoreReader, images: Any, metas: Sequence[tuple[pd.DataFrame, Any]],
                   meta_threshold: float, n: int, where: str) -> list[int]:
    names = _names_arg(images, where)
    if names is None:
        return choose_most_removed(reader, metas, meta_threshold, n)
    if n == 1 and len(names) != 1:
        raise InputError(f"{where}: images={names!r}: the figure shows one scene; expected one image name")
    return _pinned(reader, names, where)


def _meta_store(path: Any, where: str) -> StoreReader:
    """An OoD store that keeps the probabilities the segments are recomputed from."""
    reader = _store(path, where)
    if not reader.has_probs:
        raise InputError(f"{where}: {path}: the store keeps no probabilities, which the meta classifier's segments "
                         "are computed from; keep them for this dataset (evaluation.segment_datasets, or "
                         "inference.probabilities: all)")
    return reader


def _segments(reader: StoreReader, index: int, threshold: float, meta: pd.DataFrame, meta_path: Any,
              meta_threshold: float) -> dict[str, Any]:
    """Segments of one image: component map, TP and removal flags (index 0 unused), label, image."""
    conv = reader.convention
    img = reader.read(index, probs=True, logits=False)
    seg, tp, removed = _segment_classes(img.probs, img.label, conv, threshold, meta, meta_path, index, meta_threshold)
    return {"name": img.name, "index": index, "seg": seg, "tp": tp, "removed": removed,
            "out": img.label == conv.train_id_out, "void": img.label == conv.void_id,
            "rgb": _fit_image(read_rgb(img.path), img.label.shape)}


def _counts(s: dict[str, Any]) -> dict[str, int]:
    """Segment counts of one image: all, TP, FP, removed, kept, kept TP, kept FP."""
    tp, rm = s["tp"][1:], s["removed"][1:]
    return {"segments": int(tp.size), "tp": int(tp.sum()), "fp": int((~tp).sum()), "removed": int(rm.sum()),
            "kept": int((~rm).sum()), "kept_tp": int((tp & ~rm).sum()), "kept_fp": int((~tp & ~rm).sum())}


def _red_panel(s: dict[str, Any], meta: bool) -> np.ndarray:
    """Faded image with the predicted segments (``meta``: only the kept ones) red."""
    img = _overlay(s["rgb"], s["void"])
    seg = s["seg"]
    shown = (seg > 0) & ~s["removed"][seg] if meta else seg > 0
    _paint(img, shown, RED)
    return img


def _check_common(threshold: Any, meta_threshold: Any, where: str) -> tuple[float, float]:
    return (_unit_arg(threshold, "threshold", where, open_low=True),
            _unit_arg(meta_threshold, "meta_threshold", where, open_low=False))


def figure6(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
            out_pdf: str | os.PathLike, threshold: float = 0.7, meta_threshold: float = 0.5, n_images: int = 3,
            images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 6: OoD detection at t after OoD training and meta classification.

    Parameters
    ----------
    entries : mapping
        ``{ood_store, ood_meta}``: the OoD-trained model's store (with probabilities) and its
        meta classifier table (parquet) of the threshold ``threshold``.
    out_png, out_pdf : path
        The figure files.
    threshold : float
        Entropy threshold t in (0, 1] of the segments.
    meta_threshold : float
        A segment is removed when its ``prob_fp`` exceeds it (config ``meta.threshold``).
    n_images : int
        Scenes to draw with the rule "most segments removed by the meta classifier".
    images : list of str, optional
        Image names pinning the scenes, in order.

    One panel per scene (rows): kept segments green (TP) or red (FP), removed segments dark
    grey, the OoD ground truth outlined in yellow, void (background) shaded and ignored.

    Returns
    -------
    dict
        ``threshold``, ``meta_threshold`` and ``scenes``: per scene ``name``, ``index`` and the
        segment counts ``segments`` (total), ``tp``, ``fp``, ``removed``, ``kept``, ``kept_tp``,
        ``kept_fp``.
    """
    where = "figure6"
    threshold, meta_threshold = _check_common(threshold, meta_threshold, where)
    n_images = _count_arg(n_images, "n_images", where)
    e = _one_entry(entries, ("ood_store", "ood_meta"), where)
    ood, meta = _meta_store(e["ood_store"], where), _read_meta(e["ood_meta"])
    drawn = [_segments(ood, i, threshold, meta, e["ood_meta"], meta_threshold)
             for i in _scene_indices(ood, images, [(meta, e["ood_meta"])], meta_threshold, n_images, where)]
    scenes = [{"name": s["name"], "index": s["index"], **_counts(s)} for s in drawn]
    with mpl.rc_context(style_rc()):
        fig, axes = _grid(len(drawn), 1, drawn[0]["seg"].shape, 6.0, 1.3)
        for ax, s in zip(axes[:, 0], drawn):
            img = _overlay(s["rgb"], s["void"])
            seg, tp, rm = s["seg"], s["tp"], s["removed"]
            on = seg > 0
            _paint(img, on & rm[seg], REMOVED_COLOR, 0.9)
            _paint(img, on & ~rm[seg] & tp[seg], TP_COLOR)
            _paint(img, on & ~rm[seg] & ~tp[seg], FP_COLOR)
            ax.imshow(img)
            _outline(ax, s["out"], 0.9)
            _tag(ax, s["name"])
        ds, models = _titles([ood])
        handles = [_gt_handle(), Patch(facecolor=TP_COLOR, label="kept, true positive"),
                   Patch(facecolor=FP_COLOR, label="kept, false positive"),
                   Patch(facecolor=REMOVED_COLOR, label=f"removed by the meta classifier (P(FP) > {meta_threshold:g})"),
                   Patch(facecolor="0.45", label="void / background (ignored)")]
        _finish(fig, handles, out_png, out_pdf, (f"t = {threshold:g}", ds, models))
    return {"threshold": threshold, "meta_threshold": meta_threshold, "scenes": scenes}


def figure15(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
             out_pdf: str | os.PathLike, threshold: float = 0.5, meta_threshold: float = 0.5,
             images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 15: one scene, entropy thresholding and meta classification before / after OoD training.

    Parameters
    ----------
    entries : mapping
        ``{baseline_store, ood_store, baseline_meta, ood_meta}``: both models' stores (with
        probabilities) and meta classifier tables of the threshold ``threshold``.
    out_png, out_pdf : path
        The figure files.
    threshold : float
        Entropy threshold t in (0, 1] of the segments (the paper: 0.5).
    meta_threshold : float
        A segment is removed when its ``prob_fp`` exceeds it.
    images : list of str, optional
        One image name pinning the scene; default: rule "most segments removed by the meta
        classifier", counting the removed segments of both tables.

    Four panels (2 x 2): plain model thresholding, plain + meta classifier, OoD-trained
    thresholding, OoD-trained + meta classifier; predicted (kept) segments red, the OoD ground
    truth outlined in yellow.

    Returns
    -------
    dict
        ``threshold``, ``meta_threshold``, ``name``, ``index`` and ``panels``: ``plain``,
        ``plain_meta``, ``ood``, ``ood_meta``, each with ``segments`` (the predicted, i.e. drawn,
        segments: all of them, or those the meta classifier keeps), ``tp`` and ``fp`` among them.
    """
    where = "figure15"
    threshold, meta_threshold = _check_common(threshold, meta_threshold, where)
    e = _one_entry(entries, ("baseline_store", "ood_store", "baseline_meta", "ood_meta"), where)
    base, ood = _meta_store(e["baseline_store"], where), _meta_store(e["ood_store"], where)
    if base.names != ood.names:
        raise InputError(f"{where}: {e['baseline_store']} and {e['ood_store']}: the stores hold different images")
    base_meta, ood_meta = _read_meta(e["baseline_meta"]), _read_meta(e["ood_meta"])
    (i,) = _scene_indices(ood, images, [(base_meta, e["baseline_meta"]), (ood_meta, e["ood_meta"])],
                          meta_threshold, 1, where)
    sb = _segments(base, i, threshold, base_meta, e["baseline_meta"], meta_threshold)
    so = _segments(ood, i, threshold, ood_meta, e["ood_meta"], meta_threshold)
    panels: dict[str, dict[str, int]] = {}
    layout = []
    for key, s, meta, title in (("plain", sb, False, "plain model: entropy thresholding"),
                                ("plain_meta", sb, True, "plain model + meta classifier"),
                                ("ood", so, False, "OoD training: entropy thresholding"),
                                ("ood_meta", so, True, "OoD training + meta classifier")):
        c = _counts(s)
        panels[key] = ({"segments": c["kept"], "tp": c["kept_tp"], "fp": c["kept_fp"]} if meta
                       else {"segments": c["segments"], "tp": c["tp"], "fp": c["fp"]})
        layout.append((s, meta, title, panels[key]))
    with mpl.rc_context(style_rc()):
        fig, axes = _grid(2, 2, so["seg"].shape, 3.6, 1.2)
        for ax, (s, meta, title, n) in zip(axes.ravel(), layout):
            ax.imshow(_red_panel(s, meta))
            _outline(ax, s["out"], 0.9)
            ax.set_title(f"{title}\n{n['segments']} segment{'' if n['segments'] == 1 else 's'} ({n['tp']} TP, "
                         f"{n['fp']} FP)", fontsize=9)
        _tag(axes[0, 0], so["name"])
        ds, models = _titles([ood])
        handles = [_gt_handle(), Patch(facecolor=RED, label="predicted OoD segment"),
                   Patch(facecolor="0.45", label="void (ignored)")]
        _finish(fig, handles, out_png, out_pdf, (f"t = {threshold:g}", ds, models))
    return {"threshold": threshold, "meta_threshold": meta_threshold, "name": so["name"], "index": i,
            "panels": panels}


def figure16(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
             out_pdf: str | os.PathLike, threshold: float = 0.5, meta_threshold: float = 0.5, n_images: int = 3,
             images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 16: the OoD-trained network without (left) and with (right) the meta classifier.

    Parameters
    ----------
    entries : mapping
        ``{ood_store, ood_meta}`` as in :func:`figure6`.
    out_png, out_pdf : path
        The figure files.
    threshold : float
        Entropy threshold t in (0, 1] of the segments (the paper: 0.5).
    meta_threshold : float
        A segment is removed when its ``prob_fp`` exceeds it.
    n_images : int
        Scenes (rows) to draw with the rule "most segments removed by the meta classifier".
    images : list of str, optional
        Image names pinning the scenes, in order.

    Predicted segments red (right: those the meta classifier keeps), the OoD ground truth
    outlined in yellow.

    Returns
    -------
    dict
        ``threshold``, ``meta_threshold`` and ``scenes``: per scene ``name``, ``index``,
        ``removed``, and ``without`` / ``with`` (the two panels): ``segments`` (drawn), ``tp``
        and ``fp`` among them.
    """
    where = "figure16"
    threshold, meta_threshold = _check_common(threshold, meta_threshold, where)
    n_images = _count_arg(n_images, "n_images", where)
    e = _one_entry(entries, ("ood_store", "ood_meta"), where)
    ood, meta = _meta_store(e["ood_store"], where), _read_meta(e["ood_meta"])
    drawn = [_segments(ood, i, threshold, meta, e["ood_meta"], meta_threshold)
             for i in _scene_indices(ood, images, [(meta, e["ood_meta"])], meta_threshold, n_images, where)]
    scenes = []
    for s in drawn:
        c = _counts(s)
        scenes.append({"name": s["name"], "index": s["index"], "removed": c["removed"],
                       "without": {"segments": c["segments"], "tp": c["tp"], "fp": c["fp"]},
                       "with": {"segments": c["kept"], "tp": c["kept_tp"], "fp": c["kept_fp"]}})
    with mpl.rc_context(style_rc()):
        fig, axes = _grid(len(drawn), 2, drawn[0]["seg"].shape, 3.4, 1.3)
        for r, s in enumerate(drawn):
            for c, meta_on in enumerate((False, True)):
                axes[r, c].imshow(_red_panel(s, meta_on))
                _outline(axes[r, c], s["out"], 0.9)
            _tag(axes[r, 0], s["name"])
        axes[0, 0].set_title("without meta classifier", fontsize=9)
        axes[0, 1].set_title(f"with meta classifier (removes P(FP) > {meta_threshold:g})", fontsize=9)
        ds, models = _titles([ood])
        handles = [_gt_handle(), Patch(facecolor=RED, label=f"predicted OoD segment (t = {threshold:g})"),
                   Patch(facecolor="0.45", label="void (ignored)")]
        _finish(fig, handles, out_png, out_pdf, (f"t = {threshold:g}", ds, models))
    return {"threshold": threshold, "meta_threshold": meta_threshold, "scenes": scenes}

