"""``table_paired``: each model variant against its baseline on the same frames, as paired differences.

Every row compares two pixel evaluations of one dataset (their ``.npz`` histograms, which keep the
per-image counts) with the paired image bootstrap of
:func:`meta_ood.pixel_eval.paired.paired_bootstrap`: one seeded set of frame draws per dataset, used
for both methods, so that every table's numbers are reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.pixel_eval import PooledHistogram
from meta_ood.pixel_eval.paired import paired_against, paired_bootstrap, paired_counts
from meta_ood.report.formatting import Cell, Header, Layout, fmt_float, latex_escape, write_table
from meta_ood.report.results import (
    ACCEPTABLE_FROM,
    check_entries,
    dataset_title,
    load_result,
    parse_tag,
    per_image_errors,
)

__all__ = ["holm", "mark_against_best", "mark_by", "mark_unresolved", "mark_unresolved_counts", "table_paired"]

#: (metric key, title, LaTeX title) of the paired table.
_METRICS = (("auroc", "AUROC", "AUROC"), ("auprc", "AP", "AP"), ("fpr95", "FPR95", r"FPR$_{95}$"))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over the given comparisons)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    k = p.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(k)) * p[order]))
    out = np.empty(k)
    out[order] = adjusted
    return out


#: The mark of a value the frames do not separate from the column's best.
UNRESOLVED_MARK = " ≈"


def mark_unresolved(cells: Sequence[Cell], histograms: Sequence[str | os.PathLike | None], metric: str, mode: str,
                    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                    cache: dict[tuple[str, str], dict[str, Any]] | None = None) -> list[int]:
    """Mark (" ≈") every cell of a column whose value is not significantly different from the column's best: a
    paired bootstrap of its histogram against the best one's, p-values Holm-adjusted over the column's other
    cells, not significant at ``alpha``. ``histograms``: each row's pixel-evaluation ``.npz`` (None: not
    compared). Returns the indices marked; nothing when fewer than two rows have a histogram."""
    rows = [i for i, (c, h) in enumerate(zip(cells, histograms)) if c.value is not None and h is not None
            and Path(h).is_file()]
    if len(rows) < 2:
        return []
    values = np.array([cells[i].value for i in rows])
    best = rows[int(np.argmax(values) if mode == "max" else np.argmin(values))]
    others = [i for i in rows if i != best]
    cache = {} if cache is None else cache
    missing = [i for i in others if (str(histograms[i]), str(histograms[best])) not in cache]
    if missing:  # the best row's resamples once for all
        results = paired_against([PooledHistogram.load(histograms[i]) for i in missing],
                                 PooledHistogram.load(histograms[best]), n_boot=n_boot, seed=seed, alpha=alpha)
        cache.update({(str(histograms[i]), str(histograms[best])): r for i, r in zip(missing, results)})
    pvalues = [cache[(str(histograms[i]), str(histograms[best]))][metric]["p"] for i in others]
    return _mark(cells, others, pvalues, alpha)


def _mark(cells: Sequence[Cell], others: Sequence[int], pvalues: Sequence[float], alpha: float) -> list[int]:
    """Mark the cells ``others`` whose Holm-adjusted p-value is not below ``alpha``; their indices."""
    marked = [i for i, q in zip(others, holm(pvalues)) if q >= alpha]
    for i in marked:
        c = cells[i]
        c.text, c.latex = c.text + UNRESOLVED_MARK, c.latex + r"$^{\approx}$"
    return marked


def _best_and_others(cells: Sequence[Cell], items: Sequence[Any], mode: str) -> tuple[int, list[int]]:
    """The row of the column's best value by ``mode`` ("max" / "min") among the cells with a value and an item, and
    the other such rows whose value differs from it (none when fewer than two rows qualify)."""
    rows = [i for i, (c, it) in enumerate(zip(cells, items)) if c.value is not None and it is not None]
    if len(rows) < 2:
        return -1, []
    values = [cells[i].value for i in rows]
    best = rows[int(np.argmax(values) if mode == "max" else np.argmin(values))]
    return best, [i for i in rows if cells[i].value != cells[best].value]


def mark_against_best(cells: Sequence[Cell], hists: Sequence[PooledHistogram | None], metric: str, mode: str,
                      n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> list[int]:
    """:func:`mark_unresolved` for histograms in memory (e.g. table 3's per-segment scores,
    :func:`~meta_ood.meta.evaluation.segment_histogram`): each cell with a histogram against the best one by
    :func:`~meta_ood.pixel_eval.paired.paired_against`; cells equal to the best are not compared."""
    best, others = _best_and_others(cells, hists, mode)
    if not others:
        return []
    results = paired_against([hists[i] for i in others], hists[best], n_boot=n_boot, seed=seed, alpha=alpha)
    return _mark(cells, others, [r[metric]["p"] for r in results], alpha)


def mark_by(cells: Sequence[Cell], items: Sequence[Any], mode: str, pvalue: Callable[[Any, Any], float],
            alpha: float = 0.05) -> list[int]:
    """Mark every cell of a column with an item (not None) whose ``pvalue(item, best item)`` is, Holm-adjusted over
    the column, not below ``alpha``; the best by ``mode`` ("max" / "min"), cells equal to it are not compared."""
    best, others = _best_and_others(cells, items, mode)
    return _mark(cells, others, [pvalue(items[i], items[best]) for i in others], alpha)


def mark_unresolved_counts(cells: Sequence[Cell], per_image: Sequence[Sequence[int] | None], n_boot: int = 1000,
                           seed: int = 0, alpha: float = 0.05) -> list[int]:
    """:func:`mark_unresolved` for totals of per-image counts over the same images, smaller is better (table 2's
    Σ at several thresholds): each cell against the smallest by :func:`~meta_ood.pixel_eval.paired.paired_counts`;
    cells equal to the smallest are not compared. ``per_image``: each row's counts (None: not compared)."""
    best, others = _best_and_others(cells, per_image, "min")
    if not others:
        return []
    ids = [str(k) for k in range(len(per_image[best]))]
    pvalues = [paired_counts(ids, per_image[i], ids, per_image[best], n_boot=n_boot, seed=seed, alpha=alpha)["p"]
               for i in others]
    return _mark(cells, others, pvalues, alpha)


def _diff_cell(r: Mapping[str, Any], counts: bool = False) -> Cell:
    """"+0.1021 [+0.070, +0.131]" (or "-12 [-20, -4]" for ``counts``): the difference with its interval."""
    if counts:
        d, lo, hi = (f"{r[k]:+,.0f}" for k in ("diff", "lo", "hi"))
        tex = [x.replace(",", "{,}") for x in (d, lo, hi)]
        return Cell(r["diff"], f"{d} [{lo}, {hi}]", f"{tex[0]} {{\\scriptsize [{tex[1]}, {tex[2]}]}}")
    text = f"{r['diff']:+.4f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
    return Cell(r["diff"], text, f"{r['diff']:+.4f} {{\\scriptsize [{r['lo']:+.3f}, {r['hi']:+.3f}]}}")


def _error_rows(e: Mapping[str, Any], acceptable_from: float | None
                ) -> list[tuple[float, tuple[list[int], list[str], list[int], list[str]]]]:
    """(t, (errors per image of a, its images, the same of b)) per threshold of an error entry ``{a, b, a_stage,
    b_stage}`` (segment_eval JSONs) that both results hold with per-image counts, from ``acceptable_from`` on."""
    data = {side: load_result(e[side]) for side in ("a", "b")}
    out = []
    for tag, ra in data["a"].get("thresholds", {}).items():
        rb = data["b"].get("thresholds", {}).get(tag)
        t = parse_tag(tag, str(e["a"]))
        if rb is None or (acceptable_from is not None and t < acceptable_from - 1e-9):
            continue
        pa, pb = per_image_errors(ra, e["a_stage"]), per_image_errors(rb, e["b_stage"])
        if pa is None or pb is None:
            continue
        out.append((t, (pa, [str(f) for f in data["a"].get("frames", [])], pb,
                        [str(f) for f in data["b"].get("frames", [])])))
    return sorted(out, key=lambda x: x[0])


def table_paired(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    error_entries: Sequence[Mapping[str, Any]] = (),
    acceptable_from: float | None = ACCEPTABLE_FROM,
) -> pd.DataFrame:
    """One row per comparison: ``entries`` ``{dataset, model, label, a, b}`` with ``a`` / ``b`` the pixel-evaluation
    ``.npz`` histograms of the two variants on ``dataset`` (``label`` names the comparison, e.g. "OoD training −
    Plain"). Per metric (AUROC, AP, FPR95): a − b with its paired 95 % interval, the two-sided p-value and the
    smallest difference the dataset's frames resolve.

    ``error_entries`` ``{dataset, model, label, a, b, a_stage, b_stage}``: detection errors (FP + FN) of two
    segment_eval JSONs, each "before" or "after" meta classification (e.g. OoD training + meta classifier against
    OoD training alone), one row per threshold t >= ``acceptable_from`` with per-image counts in both, compared by
    the paired bootstrap of the per-image errors (:func:`~meta_ood.pixel_eval.paired.paired_counts`).

    CSV columns: ``dataset``, ``model``, ``comparison``, ``t`` (error rows), ``n_frames`` and per metric ``<m>_a``,
    ``<m>_b``, ``<m>_diff``, ``<m>_lo``, ``<m>_hi``, ``<m>_p``, ``<m>_resolvable`` (metrics ``auroc``, ``auprc``,
    ``fpr95`` and ``errors``).
    """
    entries = check_entries(entries, ("dataset", "model", "label", "a", "b"), "table_paired entry")
    error_entries = check_entries(error_entries, ("dataset", "model", "label", "a", "b", "a_stage", "b_stage"),
                                  "table_paired error entry") if error_entries else []
    level = round(100 * (1 - alpha))
    metrics = _METRICS + ((("errors", "Σ errors (FP + FN)", r"$\Sigma$ errors (FP + FN)"),) if error_entries else ())
    layout = Layout(
        index=[Header("Dataset", "Dataset"), Header("Model", "Model"), Header("Comparison", "Comparison"),
               Header("Frames", "Frames")],
        levels=[[Header(t, lt, 3) for _, t, lt in metrics]],
        columns=[h for _ in metrics for h in (Header(f"difference [{level} %]", f"difference [{level}\\,\\%]"),
                                             Header("p", "$p$"), Header("resolvable", "resolvable"))],
        title=f"Paired comparisons on the same frames: difference, {level} % paired image-bootstrap interval "
              f"({n_boot} resamples, seed {seed}), p-value",
        notes=[f"Each dataset's frames are drawn once per resample for both variants. p: two-sided bootstrap "
               f"p-value of the difference; resolvable: the smallest difference these frames separate at "
               f"{level} % (normal quantile x the standard error of the paired difference). FPR95: lower is better."],
    )
    if error_entries:
        layout.notes.append("Σ errors: detection errors of OoD objects (table 2) summed over the images, resampled "
                            "with the per-image counts; lower is better.")
    records = []

    def add(e: Mapping[str, Any], comparison: str, n_frames: int, res: Mapping[str, Mapping[str, Any]],
            extra: Mapping[str, Any]) -> None:
        rec: dict[str, Any] = {"dataset": str(e["dataset"]), "model": str(e["model"]), "comparison": comparison,
                               **extra, "n_frames": n_frames}
        cells = []
        for key, *_ in metrics:
            if key not in res:
                cells += [fmt_float(None), fmt_float(None), fmt_float(None)]
                continue
            r = res[key]
            rec.update({f"{key}_{f}": r[f] for f in ("a", "b", "diff", "lo", "hi", "p", "resolvable")})
            counts = key == "errors"
            cells += [_diff_cell(r, counts), fmt_float(r["p"], 3), fmt_float(r["resolvable"], 1 if counts else 4)]
        records.append(rec)
        title = dataset_title(str(e["dataset"]))
        layout.rows.append(([Header(title, latex_escape(title)), Header(str(e["model"]), latex_escape(str(e["model"]))),
                             Header(comparison, latex_escape(comparison)), Header(str(n_frames), str(n_frames))],
                            cells))

    for e in entries:
        hist_a = PooledHistogram.load(e["a"])
        res = paired_bootstrap(hist_a, PooledHistogram.load(e["b"]), n_boot=n_boot, seed=seed, alpha=alpha)
        add(e, str(e["label"]), hist_a.n_images, res, {})
    for e in error_entries:
        for t, (pa, fa, pb, fb) in _error_rows(e, acceptable_from):
            r = paired_counts(fa, pa, fb, pb, n_boot=n_boot, seed=seed, alpha=alpha)
            add(e, f"{e['label']} at t = {t:.2f}", len(pa), {"errors": r}, {"t": t})
    df = pd.DataFrame.from_records(records)
    write_table(df, layout, out_csv, out_md, out_tex)
    return df
