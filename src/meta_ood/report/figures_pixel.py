"""The pixel-level figures of the paper: 3 (score violins), 4 (ROC / PR), 5 (mIoU) and 14 (epochs).

Every figure is drawn from the pixel-evaluation JSONs of the pipeline (no recomputation) and
returns the numbers it plotted (documented per function), so that they can be checked against
the inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LinearLocator

from meta_ood.errors import InputError
from meta_ood.report.figures_style import (
    BLUE,
    GREEN,
    IN_COLOR,
    ORANGE,
    OUT_COLOR,
    RED,
    join_title,
    label_colors,
    new_figure,
    result_array,
    save_figure,
    style_rc,
    unique,
)
from meta_ood.report.results import check_entries, dataset_title, finite_float, load_result

__all__ = ["accuracy_threshold", "figure3", "figure4", "figure5", "figure14"]


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


#: Score-axis ticks of the violins on their square-root axis.
SQRT_TICKS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def _sqrt(v: np.ndarray) -> np.ndarray:
    """Square root for the violins' score axis (0 below 0: matplotlib also maps the margins)."""
    return np.sqrt(np.maximum(v, 0.0))


def _half_violin(ax: Axes, x: float, centers: np.ndarray, density: np.ndarray, quantiles: Mapping[str, Any],
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
        v = finite_float(quantiles.get(q)) if isinstance(quantiles, Mapping) else None
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
    """Axis label of the OoD score named in a pixel JSON (normalized entropy when unnamed)."""
    return _SCORE_LABELS.get(str(scorer), str(scorer)) if scorer else _SCORE_LABELS["entropy"]


def figure3(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
            balanced_accuracy: bool = False) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Paper figure 3: split violins of the OoD score (normalized entropy) of in-distribution and OoD pixels.

    ``entries``: ``{model, label, dataset, path}`` (pixel JSONs of OoD datasets). One panel per
    (model, dataset); in each panel one split violin per label (Plain, OoD training), left half
    in-distribution, right half OoD pixels, each scaled to its own maximum density; scores in [0, 1]
    on a square-root axis, so that the in-distribution pixels, nearly all close to 0, show as a
    shape rather than a sliver. Solid lines: medians, dashed: quartiles; the red line (its value
    under the violin's name) is the threshold of highest pixel accuracy
    (:func:`accuracy_threshold`; of highest balanced accuracy with ``balanced_accuracy``), or the
    threshold of the best F1 score when the JSON lacks the pixel counts. The score axis spans the
    histogram's range ([0, 1] for the bounded scorers) and is named after the JSON's ``scorer``.

    Returns, per (model, dataset, label): ``centers``, ``in_density`` / ``out_density`` (the
    histograms drawn), ``in_outline`` / ``out_outline`` (the drawn ``y`` and ``width``),
    ``in_quantiles`` / ``out_quantiles``, ``threshold``, ``accuracy`` (None for a best-F1
    threshold) and ``threshold_kind`` ("accuracy", "balanced accuracy", "best F1" or None).
    """
    entries = check_entries(entries, ("model", "label", "dataset", "path"), "figure3 entry")
    models = unique(str(e["model"]) for e in entries)
    datasets = unique(str(e["dataset"]) for e in entries)
    data = {(str(e["model"]), str(e["dataset"]), str(e["label"])): (load_result(e["path"], kind="ood"), e["path"])
            for e in entries}
    plotted: dict[tuple[str, str, str], dict[str, Any]] = {}
    with mpl.rc_context(style_rc()):
        nrows, ncols = len(models), len(datasets)
        # at least 6.4 in wide: the three-column legend below must fit
        fig = new_figure(max(6.4, 0.6 + 3.3 * ncols * max(1, _max_labels(entries) / 2)), 0.6 + 3.8 * nrows)
        axes = np.atleast_2d(np.asarray(fig.subplots(nrows, ncols, squeeze=False)))
        for r, model in enumerate(models):
            for c, ds in enumerate(datasets):
                ax = axes[r, c]
                labels = [lab for (m, d, lab) in data if m == model and d == ds]
                if not labels:
                    ax.set_axis_off()
                    continue
                lo_all, hi_all, scorer, ticks = [], [], None, []
                for i, label in enumerate(labels):
                    res, path = data[(model, ds, label)]
                    violin = res.get("violin")
                    if not isinstance(violin, Mapping):
                        raise InputError(f"{path}: lacks 'violin' (the score histograms of figure 3)")
                    scorer = scorer or res.get("scorer")
                    centers = result_array(res, ("violin", "centers"), path)
                    if violin.get("edges") is not None:
                        edges = result_array(res, ("violin", "edges"), path)
                        bounds = (float(edges[0]), float(edges[-1]))
                    else:
                        bounds = (0.0, 1.0)
                    lo_all.append(bounds[0])
                    hi_all.append(bounds[1])
                    item: dict[str, Any] = {"centers": centers}
                    for side, key, color in ((-1, "in", IN_COLOR), (1, "out", OUT_COLOR)):
                        dens = result_array(res, ("violin", key, "density"), path)
                        quantiles = violin[key].get("quantiles", {}) if isinstance(violin[key], Mapping) else {}
                        item[f"{key}_outline"] = _half_violin(ax, i, centers, dens, quantiles, side, color,
                                                              bounds=bounds)
                        item[f"{key}_density"] = dens
                        item[f"{key}_quantiles"] = {str(q): finite_float(v) for q, v in quantiles.items()}
                    n_pos, n_neg = finite_float(res.get("n_pos")), finite_float(res.get("n_neg"))
                    acc = None
                    if n_pos is not None and n_neg is not None:
                        t, acc = accuracy_threshold(violin, n_pos, n_neg, balanced=balanced_accuracy)
                        kind = "balanced accuracy" if balanced_accuracy else "accuracy"
                        text = f"t = {t:.2f} ({'bal. ' if balanced_accuracy else ''}acc. {100 * acc:.1f} %)"
                    else:
                        t = finite_float(res.get("best_f1_threshold"))
                        kind = "best F1" if t is not None else None
                        text = f"t = {t:.2f} (best F1)" if t is not None else ""
                    item.update({"threshold": t, "accuracy": acc, "threshold_kind": kind})
                    plotted[(model, ds, label)] = item
                    if t is not None:
                        ax.plot([i - 0.45, i + 0.45], [t, t], color=RED, linewidth=1.8, zorder=4)
                    ticks.append(f"{label}\n{text}" if text else label)  # the threshold below its violin
                ax.set_xticks(range(len(labels)), ticks)
                for tick in ax.get_xticklabels():
                    tick.set_fontsize(7.5)
                ax.set_xlim(-0.55, len(labels) - 0.45)
                ax.set_ylim(min(lo_all), max(hi_all))
                unit = min(lo_all) >= 0.0 and max(hi_all) <= 1.0
                if unit:  # scores in [0, 1]: the in-distribution mass near 0 gets room on a square-root axis
                    ax.set_yscale("function", functions=(_sqrt, np.square))
                    ax.set_yticks([v for v in SQRT_TICKS if min(lo_all) <= v <= max(hi_all)])
                    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.grid(axis="x", visible=False)
                ax.set_ylabel((_score_label(scorer) + (" (square-root axis)" if unit else "")) if c == 0 else "")
                ax.set_title(f"{dataset_title(ds)}\n{model}")  # two lines: a panel is narrow
        handles = [Patch(facecolor=IN_COLOR, edgecolor="0.25", label="in-distribution pixels"),
                   Patch(facecolor=OUT_COLOR, edgecolor="0.25", label="OoD pixels"),
                   Line2D([], [], color="0.1", linewidth=1.4, label="median"),
                   Line2D([], [], color="0.1", linewidth=0.9, linestyle=(0, (3, 2)), label="quartiles"),
                   Line2D([], [], color=RED, linewidth=1.8,
                          label=f"threshold of highest {'balanced ' if balanced_accuracy else ''}accuracy")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
        save_figure(fig, out_png, out_pdf)
    return plotted


def _max_labels(entries: Sequence[Mapping[str, Any]]) -> int:
    """The most labels (violins) of one (model, dataset) panel."""
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
    pairs = unique((str(e["model"]), str(e["dataset"])) for e in entries)
    colors = label_colors(unique(str(e["label"]) for e in entries))
    plotted: dict[tuple[str, str], dict[str, Any]] = {}
    with mpl.rc_context(style_rc()):
        fig = new_figure(8.0, 3.7 * len(pairs))
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
                fpr, tpr = result_array(res, ("roc", "fpr"), e["path"]), result_array(res, ("roc", "tpr"), e["path"])
                prec, rec = result_array(res, ("pr", "precision"), e["path"]), result_array(res, ("pr", "recall"), e["path"])
                auroc, auprc = finite_float(res.get("auroc")), finite_float(res.get("auprc"))
                curves[label] = {"fpr": fpr, "tpr": tpr, "precision": prec, "recall": rec, "auroc": auroc,
                                 "auprc": auprc}
                ax_roc.plot(fpr, tpr, color=color, linewidth=1.8,
                            label=f"{label} (AUROC {auroc:.3f})" if auroc is not None else label)
                ax_pr.plot(rec, prec, color=color, linewidth=1.8,
                           label=f"{label} (AUPRC {auprc:.3f})" if auprc is not None else label)
                n_pos, n_neg = finite_float(res.get("n_pos")), finite_float(res.get("n_neg"))
                if fraction is None:
                    fraction = finite_float(res.get("ood_pixel_fraction"))
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
                ax.set_title(f"{dataset_title(ds)}\n{join_title(model, kind)}")
                ax.legend(loc=loc)
        save_figure(fig, out_png, out_pdf)
    return plotted


# ---------------------------------------------------------------------------------- figure 5


def _miou_curve(res: Mapping[str, Any], path: Any) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Thresholds, mIoU with an OoD class at each, and the plain mIoU (key "inf") of a Cityscapes val JSON."""
    miou = res.get("miou")
    if not isinstance(miou, Mapping):
        raise InputError(f"{path}: lacks 'miou' (mIoU per entropy threshold)")
    pts = sorted((float(k), finite_float(v)) for k, v in miou.items() if k != "inf")
    t = np.array([p[0] for p in pts], dtype=float)
    m = np.array([np.nan if p[1] is None else p[1] for p in pts], dtype=float)
    return t, m, finite_float(miou.get("inf"))


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
    models = unique(str(e["model"]) for e in entries)
    colors = label_colors(unique(str(e["label"]) for e in entries))
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D"]
    plotted: dict[tuple[str, str], dict[str, Any]] = {}
    with mpl.rc_context(style_rc()):
        fig = new_figure(6.4, 4.2)
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
                is_plain = label.lower().startswith(("plain", "baseline"))  # "Plain (shared with ...)" too
                first_of_model = next(x for x in entries if str(x["model"]) == model) is e
                has_plain = any(str(x["model"]) == model and str(x["label"]).lower().startswith(("plain", "baseline"))
                                for x in entries)
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
        ax.set_title(join_title("Cityscapes val", ", ".join(models)))
        ax.legend(loc="lower right")
        save_figure(fig, out_png, out_pdf)
    return plotted


# --------------------------------------------------------------------------------- figure 14


def figure14(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
             out_pdf: str | os.PathLike, reported_epoch: int | None = None) -> dict[str, Any]:
    """Paper figure 14: Cityscapes val mIoU and OoD AUPRC over the epochs of OoD training.

    ``entries``: ``{epoch, miou_path, pixel_path}``, epoch 0 being the baseline; ``miou_path`` a
    Cityscapes val pixel JSON (plain mIoU, key "inf"), ``pixel_path`` the pixel JSON of an OoD
    dataset (AUPRC with its bootstrap interval when present). mIoU on the left axis, AUPRC on
    the right, both on 6 ticks at the lines of the grid; the epoch of the best AUPRC is starred, and
    ``reported_epoch`` (the epoch the tables report, ``evaluation.ood_epoch``) drawn as a dotted line.

    Returns ``epoch``, ``miou``, ``auprc``, ``auprc_lo``, ``auprc_hi`` (arrays in epoch order,
    NaN where missing), ``best_epoch`` (the starred epoch, or None) and ``reported_epoch``.
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
        rows.append((epoch, finite_float(miou["inf"]), finite_float(pres.get("auprc")), ci, pres.get("dataset"), pres.get("model")))
    rows.sort(key=lambda r: r[0])
    if len({r[0] for r in rows}) != len(rows):
        raise InputError("figure14: two entries for the same epoch")
    epochs = np.array([r[0] for r in rows])
    miou = np.array([np.nan if r[1] is None else r[1] for r in rows])
    auprc = np.array([np.nan if r[2] is None else r[2] for r in rows])
    dataset = next((r[4] for r in rows if r[4]), None) or "OoD dataset"
    model = next((r[5] for r in rows if r[5]), None)
    with mpl.rc_context(style_rc()):
        fig = new_figure(6.6, 4.2)
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
        if reported_epoch is not None:
            ax.axvline(reported_epoch, color="0.35", linestyle=":", linewidth=1.4,
                       label=f"reported in the tables (epoch {reported_epoch})")
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
        for a in (ax, ax2):  # the same number of ticks on both sides: the right axis's ticks sit on the grid
            a.yaxis.set_major_locator(LinearLocator(6))
            a.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3f}"))
        ax.set_title(join_title("Course of OoD training", model))
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="lower right")
        save_figure(fig, out_png, out_pdf)
    return {"epoch": epochs, "miou": miou, "auprc": auprc, "auprc_lo": lo, "auprc_hi": hi, "best_epoch": best_epoch,
            "reported_epoch": reported_epoch}


def _ci_ok(ci: Any) -> bool:
    """Whether ``ci`` is a bootstrap interval of two finite numbers."""
    return isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite_float(v) is not None for v in ci)
