"""The paper's figures 3, 4, 5, 7 and 14 and the example heatmaps of figures 1, 2 and 6.

Every figure is drawn from the result files of the pipeline (no recomputation), except
:func:`examples`, which reads a few images of the softmax stores and recomputes their entropy
maps and OoD segments (component maps are not stored). Figures are drawn on
:class:`matplotlib.figure.Figure` objects, independent of the pyplot backend, and saved as PNG
(150 dpi) and PDF, each under a temporary name that is renamed when complete.

Every figure function returns the numbers it plotted (curve points, violin densities, markers,
per-segment decisions; documented per function), so that they can be checked against the inputs.

Colours (colour-blind safe, seaborn "colorblind"): the plain model blue, the model after OoD
training green; in the violins in-distribution pixels light blue and OoD pixels orange; red is
kept for thresholds, random guessing and the road miss rate, as in the paper.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from meta_ood.errors import InputError
from meta_ood.io import atomic_path
from meta_ood.report.tables import (
    ACCEPTABLE_FROM,
    _num,
    check_entries,
    dataset_title,
    load_result,
    parse_tag,
)

__all__ = [
    "DPI",
    "accuracy_threshold",
    "examples",
    "figure3",
    "figure4",
    "figure5",
    "figure7",
    "figure14",
]

DPI = 150
_CB = sns.color_palette("colorblind").as_hex()
BLUE, ORANGE, GREEN, VERMILLION, PINK, GREY, SKY = _CB[0], _CB[1], _CB[2], _CB[3], _CB[4], _CB[7], _CB[9]
RED = "#d62728"
IN_COLOR, OUT_COLOR = SKY, ORANGE
TP_COLOR, FP_COLOR, REMOVED_COLOR = "#009e73", "#d55e00", "#56b4e9"  # Okabe-Ito: distinguishable for all
_LABEL_COLORS = {"plain": BLUE, "baseline": BLUE, "ood training": GREEN, "ood t.": GREEN}
EPS_FULL = 0.001  # road miss rate at which a pie marker is entirely red (paper fig. 7)


# ----------------------------------------------------------------------------------- helpers


def _rc() -> dict[str, Any]:
    rc = dict(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("notebook", font_scale=0.8))
    rc.update({
        "axes.titlesize": 10.5,
        "axes.titleweight": "bold",
        "axes.labelsize": 9.5,
        "legend.fontsize": 8.5,
        "legend.framealpha": 0.9,
        "xtick.labelsize": 8.5,
        "ytick.labelsize": 8.5,
        "axes.edgecolor": "0.3",
        "grid.color": "0.88",
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "savefig.dpi": DPI,
        "figure.dpi": 100,
        "image.interpolation": "nearest",
    })
    return rc


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, out_png: str | os.PathLike, out_pdf: str | os.PathLike) -> None:
    """Write the figure as PNG and PDF, each atomically; release its memory."""
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    with atomic_path(out_pdf) as tmp:
        fig.savefig(tmp, format="pdf")
    fig.clear()


def _label_color(label: str, index: int) -> str:
    c = _LABEL_COLORS.get(str(label).strip().lower())
    if c is not None:
        return c
    extra = [PINK, VERMILLION, _CB[5], _CB[6], GREY, _CB[8]]
    return extra[index % len(extra)]


def _colors(labels: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    k = 0
    for label in labels:
        c = _label_color(label, k)
        while c in used and str(label).strip().lower() not in _LABEL_COLORS:
            k += 1
            c = _label_color(label, k)
        if str(label).strip().lower() not in _LABEL_COLORS:
            k += 1
        out[label] = c
        used.add(c)
    return out


def _unique(seq) -> list:
    out = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out


def _array(data: Mapping[str, Any], keys: Sequence[str], path: Any) -> np.ndarray:
    """``data[k0][k1]...`` as a float array; InputError naming the file when absent."""
    cur: Any = data
    for k in keys:
        if not isinstance(cur, Mapping) or k not in cur:
            raise InputError(f"{path}: lacks {'.'.join(keys)!s}")
        cur = cur[k]
    try:
        return np.asarray([np.nan if v is None else v for v in cur], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {'.'.join(keys)} is not a list of numbers") from None


def _title(*parts: str | None) -> str:
    return " — ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------- figure 3


def accuracy_threshold(violin: Mapping[str, Any], n_pos: float, n_neg: float,
                       balanced: bool = False) -> tuple[float, float]:
    """Entropy threshold of highest pixel accuracy from the violin histograms of a pixel JSON.

    Pixels with score >= t are called OoD; t runs over the bin edges of the histogram
    (resolution: one bin). ``balanced``: maximize the mean of the true positive and true negative
    rates instead of the pixel accuracy (which, with ~1-2 % OoD pixels, mostly rewards flagging
    nothing). Returns ``(t, accuracy)``; the first maximum wins. The edges are the histogram's
    ``edges`` when given, else the bins around ``centers`` clipped to [0, 1].
    """
    if balanced:
        n_pos = n_neg = 1.0
    centers = np.asarray(violin["centers"], dtype=float)
    if centers.size == 0:
        raise InputError("violin histogram without bins")
    width = float(centers[1] - centers[0]) if centers.size > 1 else 1.0
    f_in = np.nan_to_num(np.asarray(violin["in"]["density"], dtype=float)) * width
    f_out = np.nan_to_num(np.asarray(violin["out"]["density"], dtype=float)) * width
    f_in = f_in / f_in.sum() if f_in.sum() > 0 else f_in
    f_out = f_out / f_out.sum() if f_out.sum() > 0 else f_out
    if violin.get("edges") is not None:
        edges = np.asarray(violin["edges"], dtype=float)
        if edges.shape != (centers.size + 1,):
            raise InputError(f"violin histogram with {centers.size} centers but {edges.size} edges")
    else:
        edges = np.clip(np.concatenate([centers - width / 2.0, [centers[-1] + width / 2.0]]), 0.0, 1.0)
    neg_correct = np.concatenate([[0.0], np.cumsum(f_in)])           # in-distribution below t
    pos_correct = 1.0 - np.concatenate([[0.0], np.cumsum(f_out)])    # OoD at or above t
    acc = (n_neg * neg_correct + n_pos * pos_correct) / max(n_neg + n_pos, 1.0)
    k = int(np.argmax(acc))
    return float(edges[k]), float(acc[k])


def _half_violin(ax, x: float, centers: np.ndarray, density: np.ndarray, quantiles: Mapping[str, Any],
                 side: int, color: str, half_width: float = 0.4,
                 bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, np.ndarray]:
    """One half of a split violin at ``x`` (side -1 left, +1 right), scaled to its own maximum.

    Returns the drawn outline: ``y`` (scores) and ``width`` (horizontal extent, 0 .. half_width).
    """
    density = np.nan_to_num(np.asarray(density, dtype=float))
    if density.size == 0 or density.max() <= 0:
        return {"y": np.zeros(0), "width": np.zeros(0)}
    width = float(centers[1] - centers[0]) if centers.size > 1 else 1.0
    nz = np.flatnonzero(density > 0)
    lo, hi = int(nz[0]), int(nz[-1]) + 1  # draw only over the observed range of scores
    c, dens = centers[lo:hi], density[lo:hi]
    y = np.concatenate([[max(c[0] - width / 2, bounds[0])], c, [min(c[-1] + width / 2, bounds[1])]])
    d = np.concatenate([[dens[0]], dens, [dens[-1]]])
    w = half_width * d / d.max()
    ax.fill_betweenx(y, x, x + side * w, facecolor=color, edgecolor="0.25", linewidth=0.6, alpha=0.9, zorder=2)
    for q, style, lw in (("0.25", (0, (3, 2)), 0.9), ("0.5", "-", 1.4), ("0.75", (0, (3, 2)), 0.9)):
        v = _num(quantiles.get(q)) if isinstance(quantiles, Mapping) else None
        if v is None:
            continue
        half = float(np.interp(v, y, w))
        ax.plot([x, x + side * max(half, 0.04)], [v, v], color="0.1", linestyle=style, linewidth=lw, zorder=3,
                solid_capstyle="butt")
    return {"y": y, "width": w}


_SCORE_LABELS = {
    "entropy": "normalized entropy $\\bar{E}$",
    "variation_ratio": "variation ratio $1 - \\max_c p_c$",
    "margin": "probability margin $1 - p_{(1)} + p_{(2)}$",
    "msp": "$1 -$ maximum softmax probability",
    "max_logit": "negated maximum logit",
    "energy": "free energy $-\\log\\sum_c e^{l_c}$",
}


def _score_label(scorer: Any) -> str:
    return _SCORE_LABELS.get(str(scorer), str(scorer)) if scorer else _SCORE_LABELS["entropy"]


def figure3(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
            balanced_accuracy: bool = False) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Paper figure 3: split violins of the OoD score (normalized entropy) of in-distribution and OoD pixels.

    ``entries``: ``{model, label, dataset, path}`` (pixel JSONs of OoD datasets). One panel per
    (model, dataset); in each panel one split violin per label (Plain, OoD training), left half
    in-distribution, right half OoD pixels, each scaled to its own maximum density. Solid lines:
    medians, dashed: quartiles; the red line is the threshold of highest pixel accuracy
    (:func:`accuracy_threshold`; of highest balanced accuracy with ``balanced_accuracy``), or the
    threshold of the best F1 score when the JSON lacks the pixel counts. The score axis spans the
    histogram's range ([0, 1] for the bounded scorers) and is named after the JSON's ``scorer``.

    Returns, per (model, dataset, label): ``centers``, ``in_density`` / ``out_density`` (the
    histograms drawn), ``in_outline`` / ``out_outline`` (the drawn ``y`` and ``width``),
    ``in_quantiles`` / ``out_quantiles``, ``threshold``, ``accuracy`` (None for a best-F1
    threshold) and ``threshold_kind`` ("accuracy", "balanced accuracy", "best F1" or None).
    """
    entries = check_entries(entries, ("model", "label", "dataset", "path"), "figure3 entry")
    models = _unique(str(e["model"]) for e in entries)
    datasets = _unique(str(e["dataset"]) for e in entries)
    data = {(str(e["model"]), str(e["dataset"]), str(e["label"])): (load_result(e["path"], kind="ood"), e["path"])
            for e in entries}
    plotted: dict[tuple[str, str, str], dict[str, Any]] = {}
    with mpl.rc_context(_rc()):
        nrows, ncols = len(models), len(datasets)
        # at least 6.4 in wide: the three-column legend below must fit
        fig = _figure(max(6.4, 0.6 + 3.3 * ncols * max(1, _max_labels(entries) / 2)), 0.6 + 3.8 * nrows)
        axes = np.atleast_2d(np.asarray(fig.subplots(nrows, ncols, squeeze=False)))
        for r, model in enumerate(models):
            for c, ds in enumerate(datasets):
                ax = axes[r, c]
                labels = [lab for (m, d, lab) in data if m == model and d == ds]
                if not labels:
                    ax.set_axis_off()
                    continue
                lo_all, hi_all, scorer = [], [], None
                for i, label in enumerate(labels):
                    res, path = data[(model, ds, label)]
                    violin = res.get("violin")
                    if not isinstance(violin, Mapping):
                        raise InputError(f"{path}: lacks 'violin' (the score histograms of figure 3)")
                    scorer = scorer or res.get("scorer")
                    centers = _array(res, ("violin", "centers"), path)
                    if violin.get("edges") is not None:
                        edges = _array(res, ("violin", "edges"), path)
                        bounds = (float(edges[0]), float(edges[-1]))
                    else:
                        bounds = (0.0, 1.0)
                    lo_all.append(bounds[0])
                    hi_all.append(bounds[1])
                    item: dict[str, Any] = {"centers": centers}
                    for side, key, color in ((-1, "in", IN_COLOR), (1, "out", OUT_COLOR)):
                        dens = _array(res, ("violin", key, "density"), path)
                        quantiles = violin[key].get("quantiles", {}) if isinstance(violin[key], Mapping) else {}
                        item[f"{key}_outline"] = _half_violin(ax, i, centers, dens, quantiles, side, color,
                                                              bounds=bounds)
                        item[f"{key}_density"] = dens
                        item[f"{key}_quantiles"] = {str(q): _num(v) for q, v in quantiles.items()}
                    n_pos, n_neg = _num(res.get("n_pos")), _num(res.get("n_neg"))
                    acc = None
                    if n_pos is not None and n_neg is not None:
                        t, acc = accuracy_threshold(violin, n_pos, n_neg, balanced=balanced_accuracy)
                        kind = "balanced accuracy" if balanced_accuracy else "accuracy"
                        text = f"t = {t:.2f} ({'bal. ' if balanced_accuracy else ''}acc. {100 * acc:.1f} %)"
                    else:
                        t = _num(res.get("best_f1_threshold"))
                        kind = "best F1" if t is not None else None
                        text = f"t = {t:.2f} (best F1)" if t is not None else ""
                    item.update({"threshold": t, "accuracy": acc, "threshold_kind": kind})
                    plotted[(model, ds, label)] = item
                    if t is not None:
                        ax.plot([i - 0.45, i + 0.45], [t, t], color=RED, linewidth=1.8, zorder=4)
                        below = (t - bounds[0]) > 0.93 * (bounds[1] - bounds[0])
                        ax.annotate(text, (i, t), xytext=(0, -3 if below else 3), textcoords="offset points",
                                    va="top" if below else "bottom", ha="center", fontsize=7.5, color=RED, zorder=5,
                                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8,
                                          "edgecolor": "none"})
                ax.set_xticks(range(len(labels)), labels)
                ax.set_xlim(-0.55, len(labels) - 0.45)
                ax.set_ylim(min(lo_all), max(hi_all))
                ax.grid(axis="x", visible=False)
                ax.set_ylabel(_score_label(scorer) if c == 0 else "")
                ax.set_title(_title(dataset_title(ds), model))
        handles = [Patch(facecolor=IN_COLOR, edgecolor="0.25", label="in-distribution pixels"),
                   Patch(facecolor=OUT_COLOR, edgecolor="0.25", label="OoD pixels"),
                   Line2D([], [], color="0.1", linewidth=1.4, label="median"),
                   Line2D([], [], color="0.1", linewidth=0.9, linestyle=(0, (3, 2)), label="quartiles"),
                   Line2D([], [], color=RED, linewidth=1.8,
                          label=f"threshold of highest {'balanced ' if balanced_accuracy else ''}accuracy")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
        _save(fig, out_png, out_pdf)
    return plotted


def _max_labels(entries: Sequence[Mapping[str, Any]]) -> int:
    counts: dict[tuple[str, str], int] = {}
    for e in entries:
        key = (str(e["model"]), str(e["dataset"]))
        counts[key] = counts.get(key, 0) + 1
    return max(counts.values()) if counts else 1


# ---------------------------------------------------------------------------------- figure 4


def figure4(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
            out_pdf: str | os.PathLike) -> dict[tuple[str, str], dict[str, Any]]:
    """Paper figure 4: ROC (left) and precision-recall curves (right) per (model, dataset).

    ``entries``: ``{model, label, dataset, path}`` (pixel JSONs of OoD datasets); one curve per
    label with its AUROC / AUPRC in the legend. Red dashed: random guessing (the diagonal, and
    the fraction of OoD pixels for precision-recall).

    Returns, per (model, dataset): ``ood_fraction`` (the random-guess precision, or None) and
    ``curves``: label -> ``fpr``, ``tpr``, ``precision``, ``recall`` (the plotted points),
    ``auroc``, ``auprc``.
    """
    entries = check_entries(entries, ("model", "label", "dataset", "path"), "figure4 entry")
    pairs = _unique((str(e["model"]), str(e["dataset"])) for e in entries)
    colors = _colors(_unique(str(e["label"]) for e in entries))
    plotted: dict[tuple[str, str], dict[str, Any]] = {}
    with mpl.rc_context(_rc()):
        fig = _figure(8.0, 3.7 * len(pairs))
        axes = np.asarray(fig.subplots(len(pairs), 2, squeeze=False))
        for r, (model, ds) in enumerate(pairs):
            ax_roc, ax_pr = axes[r]
            fraction = None
            curves: dict[str, dict[str, Any]] = {}
            for e in entries:
                if (str(e["model"]), str(e["dataset"])) != (model, ds):
                    continue
                res = load_result(e["path"], kind="ood")
                label, color = str(e["label"]), colors[str(e["label"])]
                fpr, tpr = _array(res, ("roc", "fpr"), e["path"]), _array(res, ("roc", "tpr"), e["path"])
                prec, rec = _array(res, ("pr", "precision"), e["path"]), _array(res, ("pr", "recall"), e["path"])
                auroc, auprc = _num(res.get("auroc")), _num(res.get("auprc"))
                curves[label] = {"fpr": fpr, "tpr": tpr, "precision": prec, "recall": rec, "auroc": auroc,
                                 "auprc": auprc}
                ax_roc.plot(fpr, tpr, color=color, linewidth=1.8,
                            label=f"{label} (AUROC {auroc:.3f})" if auroc is not None else label)
                ax_pr.plot(rec, prec, color=color, linewidth=1.8,
                           label=f"{label} (AUPRC {auprc:.3f})" if auprc is not None else label)
                n_pos, n_neg = _num(res.get("n_pos")), _num(res.get("n_neg"))
                if fraction is None:
                    fraction = _num(res.get("ood_pixel_fraction"))
                    if fraction is None and n_pos is not None and n_neg is not None and n_pos + n_neg > 0:
                        fraction = n_pos / (n_pos + n_neg)
            plotted[(model, ds)] = {"ood_fraction": fraction, "curves": curves}
            ax_roc.plot([0, 1], [0, 1], color=RED, linestyle="--", linewidth=1.2, label="random guess")
            if fraction is not None:
                ax_pr.axhline(fraction, color=RED, linestyle="--", linewidth=1.2,
                              label=f"random guess ({100 * fraction:.1f} % OoD)")
            for ax, xl, yl, kind, loc in ((ax_roc, "false positive rate", "true positive rate", "ROC", "lower right"),
                                          (ax_pr, "recall", "precision", "precision-recall", "best")):
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1.02)
                ax.set_xlabel(xl)
                ax.set_ylabel(yl)
                ax.set_aspect("equal", adjustable="box")
                ax.set_title(_title(dataset_title(ds), model, kind))
                ax.legend(loc=loc)
        _save(fig, out_png, out_pdf)
    return plotted


# ---------------------------------------------------------------------------------- figure 5


def _miou_curve(res: Mapping[str, Any], path: Any) -> tuple[np.ndarray, np.ndarray, float | None]:
    miou = res.get("miou")
    if not isinstance(miou, Mapping):
        raise InputError(f"{path}: lacks 'miou' (mIoU per entropy threshold)")
    pts = sorted((float(k), _num(v)) for k, v in miou.items() if k != "inf")
    t = np.array([p[0] for p in pts], dtype=float)
    m = np.array([np.nan if p[1] is None else p[1] for p in pts], dtype=float)
    return t, m, _num(miou.get("inf"))


def figure5(miou_entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
            acceptable_loss: float = 0.01) -> dict[tuple[str, str], dict[str, Any]]:
    """Paper figure 5: Cityscapes val mIoU with an extra OoD class for entropy >= t, against t.

    ``miou_entries``: ``{model, label, path}`` (Cityscapes val pixel JSONs). One line per entry;
    dotted in the same colour: the plain mIoU without OoD class. Red dashed: ``acceptable_loss``
    (1 percentage point) below the plain mIoU of the "Plain" entry of each model.

    Returns, per (model, label): ``t`` and ``miou`` (the line's points, increasing t), ``plain``
    (the dotted level, or None) and ``acceptable`` (the red level drawn from this entry, or None).
    """
    entries = check_entries(miou_entries, ("model", "label", "path"), "figure5 entry")
    models = _unique(str(e["model"]) for e in entries)
    colors = _colors(_unique(str(e["label"]) for e in entries))
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D"]
    plotted: dict[tuple[str, str], dict[str, Any]] = {}
    with mpl.rc_context(_rc()):
        fig = _figure(6.4, 4.2)
        ax = fig.subplots()
        t_all: list[float] = []
        acceptable_drawn = False
        for e in entries:
            res = load_result(e["path"], kind="miou")
            t, m, plain = _miou_curve(res, e["path"])
            t_all += t.tolist()
            label, model = str(e["label"]), str(e["model"])
            k = models.index(model)
            name = f"{label}" if len(models) == 1 else f"{model}: {label}"
            color = colors[label]
            ax.plot(t, m, color=color, linestyle=styles[k % 4], marker=markers[k % 4], markersize=4.5, linewidth=1.8,
                    label=name)
            item = plotted[(model, label)] = {"t": t, "miou": m, "plain": plain, "acceptable": None}
            if plain is not None:
                ax.axhline(plain, color=color, linestyle=":", linewidth=1.2,
                           label=f"{name}, no OoD class ({plain:.3f})")
                is_plain = label.lower() in ("plain", "baseline")
                first_of_model = next(x for x in entries if str(x["model"]) == model) is e
                has_plain = any(str(x["model"]) == model and str(x["label"]).lower() in ("plain", "baseline") for x in entries)
                if is_plain or (first_of_model and not has_plain):
                    ax.axhline(plain - acceptable_loss, color=RED, linestyle="--", linewidth=1.3,
                               label=None if acceptable_drawn else f"acceptable loss ({100 * acceptable_loss:g} pp below plain)")
                    acceptable_drawn = True
                    item["acceptable"] = plain - acceptable_loss
        if t_all:
            ax.set_xticks(sorted(set(t_all)))
            ax.set_xlim(min(t_all) - 0.03, max(t_all) + 0.03)
        ax.set_xlabel("entropy threshold t (pixels with $\\bar{E} \\geq t$ predicted OoD)")
        ax.set_ylabel("mIoU (19 Cityscapes classes)")
        ax.set_title(_title("Cityscapes val", ", ".join(models)))
        ax.legend(loc="lower right")
        _save(fig, out_png, out_pdf)
    return plotted


# ---------------------------------------------------------------------------------- figure 7


def _pie_verts(fraction: float) -> np.ndarray:
    """Marker vertices of a pie slice of ``fraction`` of a unit circle, clockwise from 12 o'clock."""
    theta = np.linspace(np.pi / 2, np.pi / 2 - 2 * np.pi * fraction, max(4, int(np.ceil(72 * fraction)) + 1))
    xs = np.concatenate([[0.0], np.cos(theta), [0.0]])
    ys = np.concatenate([[0.0], np.sin(theta), [0.0]])
    return np.column_stack([xs, ys])


def _pie(ax, x: float, y: float, eps: float | None, size: float = 150.0, zorder: float = 4.0) -> None:
    """A pie-chart marker: white disc, the fraction ε / 0.001 in red (all red from ε >= 0.001)."""
    ax.scatter([x], [y], s=size, marker="o", facecolor="white", edgecolor="0.15", linewidths=0.9, zorder=zorder)
    if eps is None:
        ax.scatter([x], [y], s=size * 0.25, marker="x", color="0.3", linewidths=0.9, zorder=zorder + 0.1)
        return
    frac = min(max(eps / EPS_FULL, 0.0), 1.0)
    if frac >= 1.0:
        ax.scatter([x], [y], s=size, marker="o", facecolor=RED, edgecolor="0.15", linewidths=0.9, zorder=zorder + 0.1)
    elif frac > 0.0:
        verts = _pie_verts(frac)
        scale = float(np.abs(verts).max())  # matplotlib normalizes custom markers by their extent
        ax.scatter([x], [y], s=size * scale ** 2, marker=verts, facecolor=RED, edgecolor="none", zorder=zorder + 0.1)
        ax.scatter([x], [y], s=size, marker="o", facecolor="none", edgecolor="0.15", linewidths=0.9, zorder=zorder + 0.2)


def figure7(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
            thresholds: Sequence[float] | None = None) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Paper figure 7: detection errors, FN against FP, for the entropy thresholds t.

    ``entries``: ``{label, path}`` (segment_eval JSONs; optional ``model`` / ``dataset`` for the
    title). Per entry two lines: "<label>" (solid) and "<label> + Meta" (dashed, after removing the
    segments the meta classifier calls FP). ``thresholds``: the t to show (default: those of
    0.3 ... 0.7 that are present, as in the paper; all when none is in that range). Markers are
    pie charts of the road miss rate ε: the red fraction is ε / 0.1 %, entirely red for ε >= 0.1 %.

    Returns, per label: ``before`` and ``after`` (the two lines, each only where FP and FN are
    known), each with arrays ``t`` (decreasing, the drawing order), ``fp`` (x), ``fn`` (y) and
    ``eps`` (the pie fraction's ε, NaN where unknown).
    """
    entries = check_entries(entries, ("label", "path"), "figure7 entry")
    colors = _colors(_unique(str(e["label"]) for e in entries))
    plotted: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    with mpl.rc_context(_rc()):
        fig = _figure(8.4, 5.0)
        ax = fig.subplots()
        handles = []
        for e in entries:
            res = load_result(e["path"])
            per_t = res.get("thresholds")
            if not isinstance(per_t, Mapping) or not per_t:
                raise InputError(f"{e['path']}: lacks 'thresholds' (per-threshold detection errors)")
            ts = {parse_tag(tag, str(e["path"])): v for tag, v in per_t.items()}
            if thresholds is not None:
                chosen = [t for t in sorted(ts) if any(abs(t - float(x)) < 1e-9 for x in thresholds)]
            else:
                chosen = [t for t in sorted(ts) if ACCEPTABLE_FROM - 1e-9 <= t <= 0.7 + 1e-9] or sorted(ts)
            chosen = chosen[::-1]  # 0.7 ... 0.3 as in the paper
            color = colors[str(e["label"])]
            lines = plotted.setdefault(str(e["label"]), {})
            for when, style, suffix in (("before", "-", ""), ("after", "--", " + Meta")):
                pts = [(t, _num(ts[t].get(f"fp_{when}")), _num(ts[t].get(f"fn_{when}")), _num(ts[t].get(f"eps_{when}")))
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
                    _pie(ax, x, y, eps)
                    at.setdefault((x, y), []).append(t)
                for (x, y), ts_here in at.items():  # one label per position: "0.4/0.3"
                    ax.annotate("/".join(f"{t:g}" for t in ts_here), (x, y), xytext=(7, 6), textcoords="offset points",
                                fontsize=7.5, color=color, zorder=6)
        ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
        ax.margins(0.08)
        ax.set_xlabel("false positive OoD segments (FP)")
        ax.set_ylabel("missed OoD objects (FN)")
        model = ", ".join(_unique(str(e["model"]) for e in entries if e.get("model")))
        ds = ", ".join(dataset_title(d) for d in _unique(str(e["dataset"]) for e in entries if e.get("dataset"))) or "LostAndFound"
        ax.set_title(_title(f"Detection errors of {ds} OoD objects", model))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        disc = {"linestyle": "", "marker": "o", "markersize": 10, "markeredgecolor": "0.15", "markeredgewidth": 0.9}
        pie_handles = [
            Line2D([], [], markerfacecolor="white", **disc),
            (Line2D([], [], markerfacecolor="white", **disc),
             Line2D([], [], linestyle="", marker=_pie_verts(0.5), markersize=10, markerfacecolor=RED,
                    markeredgecolor="none"),
             Line2D([], [], markerfacecolor="none", **disc)),
            Line2D([], [], markerfacecolor=RED, **disc),
        ]
        pie_labels = ["ε = 0", f"ε = {100 * EPS_FULL / 2:g} %", f"ε ≥ {100 * EPS_FULL:g} %"]
        fig.legend(handles=handles, loc="outside right upper", title="method\n(point labels: threshold t)")
        fig.legend(pie_handles, pie_labels, loc="outside right lower", title="road miss rate ε",
                   handler_map={tuple: HandlerTuple(ndivide=1)})
        _save(fig, out_png, out_pdf)
    return plotted


# --------------------------------------------------------------------------------- figure 14


def figure14(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
             out_pdf: str | os.PathLike) -> dict[str, Any]:
    """Paper figure 14: Cityscapes val mIoU and OoD AUPRC over the epochs of OoD training.

    ``entries``: ``{epoch, miou_path, pixel_path}``, epoch 0 being the baseline; ``miou_path`` a
    Cityscapes val pixel JSON (plain mIoU, key "inf"), ``pixel_path`` the pixel JSON of an OoD
    dataset (AUPRC with its bootstrap interval when present). mIoU on the left axis, AUPRC on
    the right; the epoch of the best AUPRC is marked.

    Returns ``epoch``, ``miou``, ``auprc``, ``auprc_lo``, ``auprc_hi`` (arrays in epoch order,
    NaN where missing) and ``best_epoch`` (the starred epoch, or None).
    """
    entries = check_entries(entries, ("epoch", "miou_path", "pixel_path"), "figure14 entry")
    rows = []
    for e in entries:
        try:
            epoch = int(e["epoch"])
        except (TypeError, ValueError):
            raise InputError(f"figure14 entry {dict(e)!r}: epoch must be an integer") from None
        mres = load_result(e["miou_path"], kind="miou")
        pres = load_result(e["pixel_path"], kind="ood")
        miou = mres.get("miou")
        if not isinstance(miou, Mapping) or "inf" not in miou:
            raise InputError(f"{e['miou_path']}: 'miou' lacks the plain mIoU without OoD class (key 'inf')")
        ci = (pres.get("bootstrap") or {}).get("auprc")
        rows.append((epoch, _num(miou["inf"]), _num(pres.get("auprc")), ci, pres.get("dataset"), pres.get("model")))
    rows.sort(key=lambda r: r[0])
    if len({r[0] for r in rows}) != len(rows):
        raise InputError("figure14: two entries for the same epoch")
    epochs = np.array([r[0] for r in rows])
    miou = np.array([np.nan if r[1] is None else r[1] for r in rows])
    auprc = np.array([np.nan if r[2] is None else r[2] for r in rows])
    dataset = next((r[4] for r in rows if r[4]), None) or "OoD dataset"
    model = next((r[5] for r in rows if r[5]), None)
    with mpl.rc_context(_rc()):
        fig = _figure(6.6, 4.2)
        ax = fig.subplots()
        ax2 = ax.twinx()
        ax.plot(epochs, miou, color=BLUE, marker="o", linewidth=1.8, label="mIoU, Cityscapes val (left)")
        lo = np.array([np.nan if not _ci_ok(r[3]) else r[3][0] for r in rows], dtype=float)
        hi = np.array([np.nan if not _ci_ok(r[3]) else r[3][1] for r in rows], dtype=float)
        ax2.plot(epochs, auprc, color=GREEN, marker="s", linewidth=1.8, label=f"AUPRC, {dataset_title(dataset)} (right)")
        if np.isfinite(lo).any():
            ax2.fill_between(epochs, lo, hi, color=GREEN, alpha=0.15, linewidth=0, label="AUPRC 95 % interval")
        best_epoch = None
        if np.isfinite(auprc).any():
            b = int(np.nanargmax(auprc))
            best_epoch = int(epochs[b])
            ax2.scatter([epochs[b]], [auprc[b]], marker="*", s=220, color=ORANGE, edgecolor="0.2", zorder=5,
                        label=f"best AUPRC {auprc[b]:.3f} (epoch {epochs[b]})")
        ax.set_xticks(epochs, [("0\n(baseline)" if x == 0 else str(x)) for x in epochs])
        ax.set_xlabel("epoch of OoD training")
        ax.set_ylabel("mIoU", color=BLUE)
        ax2.set_ylabel("AUPRC", color=GREEN)
        ax.tick_params(axis="y", colors=BLUE)
        ax2.tick_params(axis="y", colors=GREEN)
        ax2.grid(False)
        for a, v in ((ax, miou), (ax2, np.concatenate([auprc, lo, hi]))):
            v = v[np.isfinite(v)]
            if v.size:
                pad = max(0.02, 0.15 * float(v.max() - v.min()))
                a.set_ylim(max(0.0, float(v.min()) - pad), min(1.0, float(v.max()) + pad))
        ax.set_title(_title("Course of OoD training", model))
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="lower right")
        _save(fig, out_png, out_pdf)
    return {"epoch": epochs, "miou": miou, "auprc": auprc, "auprc_lo": lo, "auprc_hi": hi, "best_epoch": best_epoch}


def _ci_ok(ci: Any) -> bool:
    return isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(v) is not None for v in ci)


# ---------------------------------------------------------------------------- example panels


def _read_meta(path: str | os.PathLike) -> Any:
    from meta_ood.pipeline import read_parquet

    df = read_parquet(path)
    missing = [c for c in ("image", "segment", "prob_fp") if c not in df.columns]
    if missing and len(df):
        raise InputError(f"{path}: lacks column(s) {missing}: expected the meta classifier's table (image, segment, prob_fp)")
    return df


def _segment_classes(probs: np.ndarray, label: np.ndarray, conv, threshold: float, meta, meta_path: Any,
                     index: int, meta_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    rgb = np.asarray(mpl.colors.to_rgb(color))
    img[mask] = (1 - alpha) * img[mask] + alpha * rgb


def _fit_image(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == shape:
        return rgb
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def _choose_images(reader, conv, n: int) -> list[int]:
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
    from meta_ood.io import read_rgb
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
    with mpl.rc_context(_rc()):
        if not panels:
            fig = _figure(6.0, 1.6)
            ax = fig.subplots()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no example images (n_examples = 0 or an empty store)", ha="center", va="center")
            _save(fig, out_png, out_pdf)
            return plotted
        h, w = panels[0][3].shape[:2]
        col_w = 2.7
        row_h = col_w * h / w
        ncols = len(titles)
        fig = _figure(col_w * ncols, row_h * len(panels) + 1.5)
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
        models = ", ".join(_unique(p[2] for p in panels if p[2]))
        datasets = ", ".join(dataset_title(d) for d in _unique(p[1] for p in panels if p[1]))
        fig.suptitle(_title(f"OoD detection examples, {datasets}" if datasets else "OoD detection examples", models),
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
        _save(fig, out_png, out_pdf)
    return plotted
