"""The segment-level figures: the paper's figure 7 (detection errors) and the example panels.

Figure 7 is drawn from the segment_eval JSONs of the pipeline; :func:`examples` reads a few
images of the softmax stores and recomputes their entropy maps and OoD segments (component
maps are not stored), with the meta classifier's decisions from its tables. Both return the
numbers they plotted (documented per function), so that they can be checked against the inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from meta_ood.errors import InputError
from meta_ood.io import read_parquet, read_rgb
from meta_ood.report.figures_style import (
    FP_COLOR,
    RED,
    REMOVED_COLOR,
    TP_COLOR,
    join_title,
    label_colors,
    new_figure,
    place_labels,
    save_figure,
    style_rc,
    unique,
)
from meta_ood.report.results import ACCEPTABLE_FROM, check_entries, dataset_title, finite_float, load_result, parse_tag

if TYPE_CHECKING:
    import pandas as pd

    from meta_ood.labels import EvalConvention
    from meta_ood.store import StoreReader

__all__ = ["EPS_FULL", "examples", "figure7"]

EPS_FULL = 0.001  # road miss rate at which a pie marker is entirely red (paper fig. 7)


# ---------------------------------------------------------------------------------- figure 7


def _pie_verts(fraction: float) -> np.ndarray:
    """Marker vertices of a pie slice of ``fraction`` of a unit circle, clockwise from 12 o'clock."""
    theta = np.linspace(np.pi / 2, np.pi / 2 - 2 * np.pi * fraction, max(4, int(np.ceil(72 * fraction)) + 1))
    xs = np.concatenate([[0.0], np.cos(theta), [0.0]])
    ys = np.concatenate([[0.0], np.sin(theta), [0.0]])
    return np.column_stack([xs, ys])


def _pie(ax: Axes, x: float, y: float, eps: float | None, full: float = EPS_FULL, size: float = 150.0,
         zorder: float = 4.0) -> None:
    """A pie-chart marker: white disc, the fraction ε / ``full`` in red (all red from ε >= ``full``)."""
    ax.scatter([x], [y], s=size, marker="o", facecolor="white", edgecolor="0.15", linewidths=0.9, zorder=zorder)
    if eps is None:
        ax.scatter([x], [y], s=size * 0.25, marker="x", color="0.3", linewidths=0.9, zorder=zorder + 0.1)
        return
    frac = min(max(eps / full, 0.0), 1.0)
    if frac >= 1.0:
        ax.scatter([x], [y], s=size, marker="o", facecolor=RED, edgecolor="0.15", linewidths=0.9, zorder=zorder + 0.1)
    elif frac > 0.0:
        verts = _pie_verts(frac)
        scale = float(np.abs(verts).max())  # matplotlib normalizes custom markers by their extent
        ax.scatter([x], [y], s=size * scale ** 2, marker=verts, facecolor=RED, edgecolor="none", zorder=zorder + 0.1)
        ax.scatter([x], [y], s=size, marker="o", facecolor="none", edgecolor="0.15", linewidths=0.9, zorder=zorder + 0.2)


def _shown_thresholds(ts: Mapping[float, Any], thresholds: Sequence[float] | None) -> list[float]:
    """The thresholds figure 7 shows, decreasing (0.7 ... 0.3 as in the paper): ``thresholds``, or those of
    0.3 ... 0.7 that are present (all when none is)."""
    if thresholds is not None:
        chosen = [t for t in sorted(ts) if any(abs(t - float(x)) < 1e-9 for x in thresholds)]
    else:
        chosen = [t for t in sorted(ts) if ACCEPTABLE_FROM - 1e-9 <= t <= 0.7 + 1e-9] or sorted(ts)
    return chosen[::-1]


def _pie_scale(entries: Sequence[Mapping[str, Any]], thresholds: Sequence[float] | None) -> float:
    """The road miss rate of an all-red pie: :data:`EPS_FULL` (the paper's), or the largest ε shown, rounded
    up to 1, 2 or 5 times a power of ten, when that is larger (so that the pies still differ)."""
    largest = 0.0
    for e in entries:
        per_t = load_result(e["path"]).get("thresholds")
        if not isinstance(per_t, Mapping):
            continue
        ts = {parse_tag(tag, str(e["path"])): v for tag, v in per_t.items()}
        for t in _shown_thresholds(ts, thresholds):
            for when in ("before", "after"):
                largest = max(largest, finite_float(ts[t].get(f"eps_{when}")) or 0.0)
    if largest <= EPS_FULL:
        return EPS_FULL
    power = 10.0 ** np.floor(np.log10(largest))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= largest * (1 - 1e-12)))


def _figure7_panel(ax: Axes, entries: Sequence[Mapping[str, Any]], colors: Mapping[str, str],
                   thresholds: Sequence[float] | None, full: float, labels: list[tuple[float, float, str, str]]
                   ) -> tuple[dict[str, dict[str, dict[str, np.ndarray]]], list[Line2D]]:
    """The lines of figure 7 of one dataset's entries on ``ax``: per label the plotted points and the lines drawn;
    the point labels (thresholds) are appended to ``labels`` for :func:`place_labels`. ``full``: the road miss
    rate of an all-red pie."""
    plotted: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    handles = []
    for e in entries:
        res = load_result(e["path"])
        per_t = res.get("thresholds")
        if not isinstance(per_t, Mapping) or not per_t:
            raise InputError(f"{e['path']}: lacks 'thresholds' (per-threshold detection errors)")
        ts = {parse_tag(tag, str(e["path"])): v for tag, v in per_t.items()}
        chosen = _shown_thresholds(ts, thresholds)
        color = colors[str(e["label"])]
        lines = plotted.setdefault(str(e["label"]), {})
        for when, style, suffix in (("before", "-", ""), ("after", "--", " + Meta")):
            pts = [(t, finite_float(ts[t].get(f"fp_{when}")), finite_float(ts[t].get(f"fn_{when}")), finite_float(ts[t].get(f"eps_{when}")))
                   for t in chosen]
            pts = [p for p in pts if p[1] is not None and p[2] is not None]
            lines[when] = {"t": np.array([p[0] for p in pts], dtype=float),
                           "fp": np.array([p[1] for p in pts], dtype=float),
                           "fn": np.array([p[2] for p in pts], dtype=float),
                           "eps": np.array([np.nan if p[3] is None else p[3] for p in pts], dtype=float)}
            if not pts:
                continue
            xs, ys = [p[1] for p in pts], [p[2] for p in pts]
            (line,) = ax.plot(xs, ys, color=color, linestyle=style, linewidth=1.8, zorder=3,
                              label=f"{e['label']}{suffix}")
            handles.append(line)
            at: dict[tuple[float, float], list[float]] = {}
            for t, x, y, eps in pts:
                _pie(ax, x, y, eps, full)
                at.setdefault((x, y), []).append(t)
            for (x, y), ts_here in at.items():  # one label per position: "0.4/0.3", placed at the end
                labels.append((x, y, "/".join(f"{t:g}" for t in ts_here), color))
    ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.margins(0.08)
    ax.set_xlabel("false positive OoD segments (FP)")
    ax.set_ylabel("missed OoD objects (FN)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return plotted, handles


def figure7(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
            thresholds: Sequence[float] | None = None) -> dict[tuple[str | None, str], dict[str, dict[str, np.ndarray]]]:
    """Paper figure 7: detection errors, FN against FP, for the entropy thresholds t.

    ``entries``: ``{label, path}`` (segment_eval JSONs; optional ``model`` / ``dataset``). One panel
    per dataset (the entries' ``dataset`` keys in order of first appearance; one panel when they
    name none or one, titled as the paper's figure). Per entry two lines: "<label>" (solid) and
    "<label> + Meta" (dashed, after removing the segments the meta classifier calls FP), in the same
    colour on every panel. ``thresholds``: the t to show (default: those of 0.3 ... 0.7 that are
    present, as in the paper; all when none is in that range). Markers are pie charts of the road
    miss rate ε: the red fraction is ε / 0.1 %, entirely red for ε >= 0.1 %.

    Returns, per (dataset, label) (dataset None for entries without one): ``before`` and ``after``
    (the two lines, each only where FP and FN are known), each with arrays ``t`` (decreasing, the
    drawing order), ``fp`` (x), ``fn`` (y) and ``eps`` (the pie fraction's ε, NaN where unknown).
    """
    entries = check_entries(entries, ("label", "path"), "figure7 entry")
    colors = label_colors(unique(str(e["label"]) for e in entries))
    datasets = unique(None if e.get("dataset") is None else str(e["dataset"]) for e in entries)
    model = ", ".join(unique(str(e["model"]) for e in entries if e.get("model")))
    plotted: dict[tuple[str | None, str], dict[str, dict[str, np.ndarray]]] = {}
    with mpl.rc_context(style_rc()):
        if len(datasets) == 1:
            fig = new_figure(8.4, 5.0)
            axes = [fig.subplots()]
        else:
            ncols = 2
            nrows = -(-len(datasets) // ncols)
            fig = new_figure(4.6 * ncols + 2.4, 3.8 * nrows + 0.5)
            grid = np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel()
            for ax in grid[len(datasets):]:
                ax.set_axis_off()
            axes = list(grid[:len(datasets)])
        handles: dict[str, Line2D] = {}  # one legend entry per line label, from the panel that first draws it
        full = _pie_scale(entries, thresholds)
        point_labels: dict[Axes, list[tuple[float, float, str, str]]] = {}
        for ax, ds in zip(axes, datasets):
            block = [e for e in entries if (None if e.get("dataset") is None else str(e["dataset"])) == ds]
            lines, drawn = _figure7_panel(ax, block, colors, thresholds, full, point_labels.setdefault(ax, []))
            plotted.update({(ds, label): v for label, v in lines.items()})
            for line in drawn:
                handles.setdefault(line.get_label(), line)
            if len(datasets) == 1:
                ax.set_title(join_title(f"Detection errors of {dataset_title(ds) or 'LostAndFound'} OoD objects", model))
            else:
                ax.set_title(dataset_title(ds))
        if len(datasets) > 1:
            fig.suptitle(join_title("Detection errors of OoD objects", model), fontsize=11, fontweight="bold")
        disc = {"linestyle": "", "marker": "o", "markersize": 10, "markeredgecolor": "0.15", "markeredgewidth": 0.9}
        pie_handles = [
            Line2D([], [], markerfacecolor="white", **disc),
            (Line2D([], [], markerfacecolor="white", **disc),
             Line2D([], [], linestyle="", marker=_pie_verts(0.5), markersize=10, markerfacecolor=RED,
                    markeredgecolor="none"),
             Line2D([], [], markerfacecolor="none", **disc)),
            Line2D([], [], markerfacecolor=RED, **disc),
        ]
        pie_labels = ["ε = 0", f"ε = {100 * full / 2:g} %", f"ε ≥ {100 * full:g} %"]
        fig.legend(handles=list(handles.values()), loc="outside right upper", title="method\n(point labels: threshold t)")
        fig.legend(pie_handles, pie_labels, loc="outside right lower", title="road miss rate ε",
                   handler_map={tuple: HandlerTuple(ndivide=1)})
        for ax, items in point_labels.items():
            place_labels(ax, items)
        save_figure(fig, out_png, out_pdf)
    return plotted


# ---------------------------------------------------------------------------- example panels


def _read_meta(path: str | os.PathLike) -> pd.DataFrame:
    """The meta classifier's table of one threshold (image, segment, prob_fp per segment)."""
    df = read_parquet(path)
    missing = [c for c in ("image", "segment", "prob_fp") if c not in df.columns]
    if missing and len(df):
        raise InputError(f"{path}: lacks column(s) {missing}: expected the meta classifier's table (image, segment, prob_fp)")
    return df


def _segment_classes(probs: np.ndarray, label: np.ndarray, conv: EvalConvention, threshold: float,
                     meta: pd.DataFrame | None, meta_path: Any, index: int,
                     meta_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component map of the OoD segments of one image and, per segment, TP flag and meta removal."""
    from meta_ood.segments import segment_metrics

    _, comp = segment_metrics(probs, label, threshold, ood_id=conv.train_id_out, void_id=conv.void_id)
    seg = np.abs(comp)
    n = int(seg.max()) if seg.size else 0
    gt_out = label == conv.train_id_out
    tp = np.zeros(n + 1, bool)
    if n:
        tp[1:] = np.bincount(seg[gt_out].ravel(), minlength=n + 1)[1:] > 0
    removed = np.zeros(n + 1, bool)
    if meta is not None:
        rows = meta[meta["image"] == index] if len(meta) else meta
        if len(rows) != n:
            raise InputError(
                f"{meta_path}: has {len(rows)} segment(s) for image {index}, but the store gives {n} at t = {threshold:g}; "
                "expected the meta table of the same threshold and model variant"
            )
        if n:
            seg_ids = rows["segment"].to_numpy().astype(int)
            if seg_ids.min() < 1 or seg_ids.max() > n:
                raise InputError(f"{meta_path}: segment ids of image {index} outside 1..{n}")
            removed[seg_ids] = rows["prob_fp"].to_numpy(dtype=float) > meta_threshold
    return seg, tp, removed


def _overlay(rgb: np.ndarray, void: np.ndarray) -> np.ndarray:
    """Faded input image (background of the prediction panels); void pixels darker."""
    base = 0.45 * rgb.astype(float) / 255.0 + 0.55
    grey = base.mean(axis=2, keepdims=True) * np.ones(3)
    grey[void] *= 0.6
    return grey


def _paint(img: np.ndarray, mask: np.ndarray, color: str, alpha: float = 1.0) -> None:
    """Blend ``color`` into the pixels of ``mask`` (in place)."""
    rgb = np.asarray(mpl.colors.to_rgb(color))
    img[mask] = (1 - alpha) * img[mask] + alpha * rgb


def _fit_image(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The input image resized (bilinear) to the label's ``shape`` when it differs."""
    if rgb.shape[:2] == shape:
        return rgb
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def _choose_images(reader: StoreReader, conv: EvalConvention, n: int) -> list[int]:
    """The ``n`` images with the most OoD ground-truth pixels (ties: lower index first)."""
    counts = []
    for i in range(len(reader)):
        label = reader.read(i, probs=False).label
        counts.append((-int((label == conv.train_id_out).sum()), i))
    counts.sort()
    return [i for _, i in counts[:n]]


def _segment_summary(info: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> dict[str, Any] | None:
    """Per-segment flags (segments 1..n) and painted pixel counts of one prediction panel."""
    if info is None:
        return None
    seg, tp, removed = info
    on = seg > 0
    return {
        "n_segments": int(tp.size - 1),
        "tp": tp[1:].copy(),
        "removed": removed[1:].copy(),
        "removed_pixels": int((on & removed[seg]).sum()),
        "kept_tp_pixels": int((on & ~removed[seg] & tp[seg]).sum()),
        "kept_fp_pixels": int((on & ~removed[seg] & ~tp[seg]).sum()),
    }


def examples(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
             out_pdf: str | os.PathLike, threshold: float = 0.7, n_examples: int = 3,
             meta_threshold: float = 0.5) -> dict[str, Any]:
    """Example heatmaps like the paper's figures 1, 2 and 6.

    ``entries``: ``{baseline_store, ood_store, ood_meta[, baseline_meta]}`` (or a list of such):
    the softmax stores of the plain model and of the model after OoD training on the same OoD
    dataset, and the meta classifier tables (parquet) of the threshold ``threshold``. The
    ``n_examples`` images with the most OoD pixels are shown, one per row; columns: input image,
    entropy heatmap before and after OoD training (ground-truth OoD outlined in yellow), the OoD
    prediction after OoD training (entropy >= t, red), the prediction after meta classification
    (kept segments: true positives green, false positives red; removed segments grey) and, with
    ``baseline_meta``, the same for the plain model. A segment is removed when its ``prob_fp``
    exceeds ``meta_threshold`` (config ``meta.threshold``). Predictions on void pixels are ignored
    (the segments exclude them; void is shaded darker), as in figure 6.

    Returns ``threshold``, ``meta_threshold`` and ``panels``: one dict per row with ``name``,
    ``index`` (in the store), ``ood_pixels`` (predicted OoD pixels of the model after OoD training),
    and ``ood`` / ``baseline`` (None without ``baseline_meta``): ``n_segments``, per segment 1..n
    ``tp`` (touches OoD ground truth) and ``removed`` (``prob_fp > meta_threshold``), and the
    painted pixel counts ``removed_pixels``, ``kept_tp_pixels``, ``kept_fp_pixels``.
    """
    from meta_ood.scores import normalized_entropy
    from meta_ood.store import StoreReader

    entries = check_entries(entries, ("baseline_store", "ood_store", "ood_meta"), "examples entry")
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"examples: threshold {threshold}: expected a value in (0, 1]")
    n_examples = int(n_examples)
    if n_examples < 0:
        raise InputError(f"examples: n_examples={n_examples}: expected >= 0")
    meta_threshold = float(meta_threshold)
    if not 0.0 <= meta_threshold <= 1.0:
        raise InputError(f"examples: meta_threshold {meta_threshold}: expected a probability in [0, 1]")
    panels = []  # (name, dataset, rgb, ent_b, ent_o, gt_out, void, ood seg info, base seg info)
    for e in entries:
        base, ood = StoreReader(e["baseline_store"]), StoreReader(e["ood_store"])
        conv = ood.convention
        if conv is None:
            raise InputError(f"{e['ood_store']}: example panels need an OoD dataset (a store with an in/out convention)")
        if base.names != ood.names:
            raise InputError(f"{e['baseline_store']} and {e['ood_store']}: the stores hold different images")
        ood_meta = _read_meta(e["ood_meta"])
        base_meta = _read_meta(e["baseline_meta"]) if e.get("baseline_meta") else None
        for i in _choose_images(ood, conv, n_examples):
            b_img, o_img = base[i], ood[i]
            label = o_img.label
            rgb = _fit_image(read_rgb(o_img.path), label.shape)
            seg_o = _segment_classes(o_img.probs, label, conv, threshold, ood_meta, e["ood_meta"], i, meta_threshold)
            seg_b = (_segment_classes(b_img.probs, label, conv, threshold, base_meta, e["baseline_meta"], i,
                                      meta_threshold) if base_meta is not None else None)
            panels.append((o_img.name, ood.dataset_kind, base.model or ood.model, rgb, normalized_entropy(b_img.probs),
                           normalized_entropy(o_img.probs), label == conv.train_id_out, label == conv.void_id,
                           seg_o, seg_b, i))
    plotted: dict[str, Any] = {
        "threshold": threshold,
        "meta_threshold": meta_threshold,
        "panels": [{"name": p[0], "index": p[10], "ood_pixels": int((p[8][0] > 0).sum()),
                    "ood": _segment_summary(p[8]), "baseline": _segment_summary(p[9])} for p in panels],
    }
    with_base = any(p[9] is not None for p in panels)
    titles = ["input image", "entropy\nbefore OoD training", "entropy\nafter OoD training",
              f"OoD prediction ($\\bar{{E}} \\geq {threshold:g}$)\nafter OoD training",
              "+ meta classifier\nafter OoD training"]
    if with_base:
        titles.append("+ meta classifier\nbefore OoD training")
    with mpl.rc_context(style_rc()):
        if not panels:
            fig = new_figure(6.0, 1.6)
            ax = fig.subplots()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no example images (n_examples = 0 or an empty store)", ha="center", va="center")
            save_figure(fig, out_png, out_pdf)
            return plotted
        h, w = panels[0][3].shape[:2]
        col_w = 2.7
        row_h = col_w * h / w
        ncols = len(titles)
        fig = new_figure(col_w * ncols, row_h * len(panels) + 1.5)
        axes = np.asarray(fig.subplots(len(panels), ncols, squeeze=False))
        heat = None
        for r, (name, ds, model, rgb, ent_b, ent_o, gt_out, void, seg_o, seg_b, _) in enumerate(panels):
            row = axes[r]
            row[0].imshow(rgb)
            for ax, ent in ((row[1], ent_b), (row[2], ent_o)):
                heat = ax.imshow(ent, cmap="coolwarm", vmin=0.0, vmax=1.0)
            for ax in row[:3]:
                if gt_out.any():
                    ax.contour(gt_out.astype(float), levels=[0.5], colors="yellow", linewidths=1.1)
            seg, tp, removed = seg_o
            pred = _overlay(rgb, void)
            _paint(pred, seg > 0, RED)
            row[3].imshow(pred)
            for ax, info in ((row[4], seg_o), (row[5] if with_base else None, seg_b)):
                if ax is None:
                    continue
                img = _overlay(rgb, void)
                if info is not None:
                    seg, tp, removed = info
                    _paint(img, (seg > 0) & removed[seg], REMOVED_COLOR, 0.9)
                    _paint(img, (seg > 0) & ~removed[seg] & tp[seg], TP_COLOR)
                    _paint(img, (seg > 0) & ~removed[seg] & ~tp[seg], FP_COLOR)
                ax.imshow(img)
            for ax in row[3:]:
                if gt_out.any():
                    ax.contour(gt_out.astype(float), levels=[0.5], colors="yellow", linewidths=0.9)
            for c, ax in enumerate(row):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if r == 0:
                    ax.set_title(titles[c], fontsize=9)
            short = name if len(name) <= 42 else name[:19] + "…" + name[-22:]
            row[0].text(0.02, 0.03, short, transform=row[0].transAxes, fontsize=6.5, ha="left", va="bottom",
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.75, "edgecolor": "none"})
        models = ", ".join(unique(p[2] for p in panels if p[2]))
        datasets = ", ".join(dataset_title(d) for d in unique(p[1] for p in panels if p[1]))
        fig.suptitle(join_title(f"OoD detection examples, {datasets}" if datasets else "OoD detection examples", models),
                     fontsize=11, fontweight="bold")
        cbar = fig.colorbar(heat, ax=list(axes[:, 1:3].ravel()), location="bottom", shrink=0.8, aspect=30, pad=0.02)
        cbar.set_label("normalized entropy $\\bar{E}$ (high = red)")
        handles = [Line2D([], [], color="yellow", linewidth=2, label="ground-truth OoD object"),
                   Patch(facecolor=RED, label=f"predicted OoD ($\\bar{{E}} \\geq {threshold:g}$)"),
                   Patch(facecolor=TP_COLOR, label="kept, true positive"),
                   Patch(facecolor=FP_COLOR, label="kept, false positive"),
                   Patch(facecolor=REMOVED_COLOR, label=f"removed by the meta classifier (P(FP) > {meta_threshold:g})"),
                   Patch(facecolor="0.5", label="void (ignored)")]
        fig.legend(handles=handles, loc="outside lower right", ncols=3, fontsize=8, frameon=False)
        save_figure(fig, out_png, out_pdf)
    return plotted
