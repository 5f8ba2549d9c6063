"""``table_definitions``: the same scores under the metric definitions different toolkits use.

AP, AUROC and FPR95 are not one number each: toolkits pool all pixels or average per image, take the
step-wise AP or the trapezoidal area under the precision-recall curve, and read FPR95 at the first
threshold that reaches TPR 0.95, at the nearest one, or interpolated. From each pixel evaluation's
histogram (the ``.npz`` beside its JSON) this table computes every variant in one pass, and notes
every pair of rows whose order one definition reverses. Which toolkit does what (read in their code):

* step-wise AP ``sum (R_k - R_k-1) P_k``, pooled: scikit-learn ``average_precision_score``, the
  SegmentMeIfYouCan code (on its per-frame binned curve), this pipeline's table 1;
* trapezoidal area under the PR curve, pooled: pytorch-ood ``OODMetrics`` (``classification``
  mode, torchmetrics ``auc`` over ``binary_precision_recall_curve``);
* per-image mean: pytorch-ood ``OODMetrics(mode="segmentation")``, every metric computed per image
  and averaged (an image without OoD or without in-distribution pixels is an error there; here it is
  left out and counted);
* FPR95 at the first threshold with TPR >= 0.95: scikit-learn-based code, pytorch-ood
  ``fpr_at_tpr``, the SegmentMeIfYouCan code; nearest and interpolated variants for comparison;
* SMIYC binned: the SegmentMeIfYouCan leaderboard's curve, merged from per-frame percentile bins
  (:mod:`meta_ood.smiyc.protocol`) of the same scores, computed by the pixel evaluation from the
  stored score codes (``smiyc_binned`` in its JSON).

Per-image values use the histogram's per-image resolution (``image_bits``, 12 by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.pixel_eval.ranking import metrics_from_counts
from meta_ood.report.formatting import Header, Layout, bold_best, fmt_float, latex_escape, write_table
from meta_ood.report.results import check_entries, dataset_title, load_result

__all__ = ["DEFINITIONS", "definition_values", "table_definitions"]

#: (key, metric family, better, Markdown title) of the definitions, in table order.
DEFINITIONS = (
    ("ap_step", "AP", "max", "AP step-wise"),
    ("ap_trapz", "AP", "max", "AP trapezoid"),
    ("ap_smiyc", "AP", "max", "AP SMIYC binned"),
    ("ap_image_mean", "AP", "max", "AP image mean"),
    ("auroc", "AUROC", "max", "AUROC"),
    ("auroc_smiyc", "AUROC", "max", "AUROC SMIYC binned"),
    ("auroc_image_mean", "AUROC", "max", "AUROC image mean"),
    ("fpr95_first", "FPR95", "min", "FPR95 first"),
    ("fpr95_nearest", "FPR95", "min", "FPR95 nearest"),
    ("fpr95_interp", "FPR95", "min", "FPR95 interpolated"),
    ("fpr95_smiyc", "FPR95", "min", "FPR95 SMIYC binned"),
)
#: Definitions read from the pixel evaluation's JSON (``smiyc_binned``) rather than its histogram.
_FROM_JSON = {"ap_smiyc": "auprc", "auroc_smiyc": "auroc", "fpr95_smiyc": "fpr95"}


def _fpr_variants(fpr: np.ndarray, tpr: np.ndarray, level: float) -> tuple[float, float, float]:
    """FPR at the first ROC point with TPR >= ``level``, at the point of TPR nearest to it (the first of equals),
    and linearly interpolated between the last point below and the first at or above it."""
    k = int(np.searchsorted(tpr, level, side="left"))
    k = min(k, tpr.size - 1)
    first = float(fpr[k])
    nearest = float(fpr[int(np.argmin(np.abs(tpr - level)))])
    if k == 0 or tpr[k] == tpr[k - 1]:
        interp = first
    else:
        w = (level - tpr[k - 1]) / (tpr[k] - tpr[k - 1])
        interp = float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))
    return first, nearest, interp


def _trapz_ap(pr: Mapping[str, np.ndarray]) -> float:
    """Trapezoidal area under the precision-recall curve (recall decreasing in the curve's layout)."""
    return float(abs(np.trapezoid(pr["precision"], pr["recall"])))


def definition_values(hist: PooledHistogram, tpr_level: float = 0.95) -> dict[str, Any]:
    """Every definition of :data:`DEFINITIONS` that follows from one histogram (all but the SMIYC binned ones),
    plus ``n_images`` and ``n_images_used`` (those with both OoD and in-distribution pixels, which the per-image
    means average)."""
    m = hist.metrics(tpr_level=tpr_level)
    first, nearest, interp = _fpr_variants(m["roc"]["fpr"], m["roc"]["tpr"], tpr_level)
    out: dict[str, Any] = {"ap_step": m["auprc"], "ap_trapz": _trapz_ap(m["pr"]), "auroc": m["auroc"],
                           "fpr95_first": first, "fpr95_nearest": nearest, "fpr95_interp": interp}
    mat = hist.image_matrix().tocsr()
    half = 1 << hist.image_bits
    values = (np.arange(half, dtype=np.float64) + 0.5) / half  # order is all the ranking metrics use
    ap, auroc = [], []
    for i in range(mat.shape[0]):
        row = np.asarray(mat[i].todense()).ravel()
        neg, pos = row[:half], row[half:]
        if pos.sum() == 0 or neg.sum() == 0:
            continue
        mi = metrics_from_counts(pos, neg, values, tpr_level)
        ap.append(_trapz_ap(mi["pr"]))
        auroc.append(mi["auroc"])
    out["ap_image_mean"] = float(np.mean(ap)) if ap else None
    out["auroc_image_mean"] = float(np.mean(auroc)) if auroc else None
    out["n_images"], out["n_images_used"] = hist.n_images, len(ap)
    return out


def _selected(definitions: Sequence[str] | None) -> list[tuple[str, str, str, str]]:
    """The rows of :data:`DEFINITIONS` named by ``definitions`` (None: all), in table order."""
    if definitions is None:
        return list(DEFINITIONS)
    known = [d[0] for d in DEFINITIONS]
    unknown = [d for d in definitions if d not in known]
    if unknown or not definitions:
        raise InputError(f"definitions {list(definitions)}: expected a non-empty list of {known}")
    return [d for d in DEFINITIONS if d[0] in definitions]


def table_definitions(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    definitions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (dataset, model, label) of ``entries`` ``{model, label, dataset, path}`` (pixel-evaluation
    JSONs, as for table 1; their ``.npz`` histograms are read), one column per definition of
    :data:`DEFINITIONS` named in ``definitions`` (config ``evaluation.definitions``; None: all); bold: the best
    row per column and dataset. Notes list every pair of rows of a dataset whose order (which is better)
    differs between the shown definitions of one metric.

    CSV columns: ``dataset``, ``model``, ``label``, the shown definitions' keys, ``n_images``, ``n_images_used``.
    """
    entries = check_entries(entries, ("model", "label", "dataset", "path"), "table_definitions entry")
    shown = _selected(definitions)
    layout = Layout(
        index=[Header("Dataset", "Dataset"), Header("Model", "Model"), Header("Training", "Training")],
        levels=[],
        columns=[Header(title, latex_escape(title)) for *_, title in shown],
        title="The same scores under each metric definition (pooled step-wise AP: scikit-learn, table 1; trapezoid: "
              "pytorch-ood; SMIYC binned: the SegmentMeIfYouCan leaderboard; image mean: pytorch-ood segmentation mode)",
    )
    records, groups = [], []
    for e in entries:
        npz = Path(str(e["path"])).with_suffix(".npz")
        if not npz.is_file():
            raise InputError(f"{npz}: the pixel evaluation's histogram (written next to {e['path']}) is missing")
        vals = definition_values(PooledHistogram.load(npz))
        binned = load_result(e["path"]).get("smiyc_binned") or {}
        vals.update({key: binned.get(field) for key, field in _FROM_JSON.items()})
        vals = {key: vals[key] for key, *_ in shown} | {k: vals[k] for k in ("n_images", "n_images_used")}
        records.append({"dataset": str(e["dataset"]), "model": str(e["model"]), "label": str(e["label"]), **vals})
        groups.append(str(e["dataset"]))
        title = dataset_title(str(e["dataset"]))
        layout.rows.append(([Header(title, latex_escape(title)), Header(str(e["model"]), latex_escape(str(e["model"]))),
                             Header(str(e["label"]), latex_escape(str(e["label"])))],
                            [fmt_float(vals[key]) for key, *_ in shown]))
    for ds in dict.fromkeys(groups):
        rows = [k for k, g in enumerate(groups) if g == ds]
        for j, (_, _, mode, _) in enumerate(shown):
            bold_best([layout.rows[k][1][j] for k in rows], mode)
        for a, b in combinations(rows, 2):
            for family in ("AP", "AUROC", "FPR95"):
                keys = [(key, mode) for key, fam, mode, _ in shown if fam == family]
                signs = {}
                for key, mode in keys:
                    va, vb = records[a][key], records[b][key]
                    if va is None or vb is None or va == vb:
                        continue
                    signs[key] = (va > vb) == (mode == "max")  # a better than b
                if len(set(signs.values())) > 1:
                    better = {key: ("first" if s else "second") for key, s in signs.items()}
                    layout.notes.append(
                        f"{dataset_title(ds)}: {records[a]['model']} {records[a]['label']} vs {records[b]['model']} "
                        f"{records[b]['label']}: the {family} definitions disagree on which is better ("
                        + ", ".join(f"{k}: {v}" for k, v in better.items()) + ").")
    if not any("disagree" in n for n in layout.notes):
        layout.notes.append("No pair of rows changes order between the definitions of a metric.")
    df = pd.DataFrame.from_records(records)
    write_table(df, layout, out_csv, out_md, out_tex)
    return df
