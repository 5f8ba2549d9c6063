"""SegmentMeIfYouCan leaderboard, ROC / PR curves and ObstacleTrack per-scene table from ``smiyc_eval`` JSONs.

Each entry is ``{method, dataset, path}``; every number is read from the JSON written by
:func:`meta_ood.stages.smiyc.smiyc_eval_stage` (official protocol at the top level, the exact
pooled protocol under ``exact``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from meta_ood.errors import InputError
from meta_ood.report.formatting import Cell, Header, Layout, bold_best, fmt_float, latex_escape, write_table
from meta_ood.report.paired import mark_by, mark_unresolved
from meta_ood.report.results import check_entries, dataset_title, load_result, require
from meta_ood.smiyc.component_counts import ComponentCounts, load_counts, paired_components

__all__ = ["figure_smiyc_curves", "table_smiyc", "table_smiyc_scenes"]

#: (JSON key, CSV suffix, Markdown title, LaTeX title, better) of the leaderboard metrics.
METRICS = (
    ("AP", "ap", "AP ↑", r"AP $\uparrow$", "max"),
    ("FPR95", "fpr95", "FPR95 ↓", r"FPR$_{95}$ $\downarrow$", "min"),
    ("sIoU_gt", "siou", "sIoU ↑", r"sIoU $\uparrow$", "max"),
    ("PPV", "ppv", "PPV ↑", r"PPV $\uparrow$", "max"),
    ("F1_mean", "f1_mean", "mean F1 ↑", r"$\overline{F_1}$ $\uparrow$", "max"),
)
#: (name, CSV infix, where its metrics are in the JSON: top level or ``exact``).
PROTOCOLS = (("official", "official", None), ("exact", "exact", "exact"))


def _load(entries: Any, what: str) -> tuple[list[dict[str, Any]], dict[tuple[str, str], tuple[Any, dict[str, Any]]]]:
    """The checked entries and (path, JSON) per (method, dataset)."""
    entries = check_entries(entries, ("method", "dataset", "path"), what)
    data = {}
    for e in entries:
        key = (str(e["method"]), str(e["dataset"]))
        if key in data:
            raise InputError(f"{what}: method {key[0]!r} appears twice for dataset {key[1]!r} ({e['path']})")
        data[key] = (e["path"], load_result(e["path"]))
    return entries, data


def _metrics(result: Mapping[str, Any], protocol: str | None, path: Any) -> dict[str, Any]:
    source = result if protocol is None else require(result, protocol, path, "(the exact protocol)")
    return {key: source.get(key) for key, *_ in METRICS}


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _bold_groups(grid: Sequence[Sequence[Cell]], groups: Sequence[str], modes: Sequence[str]) -> None:
    """Bold the best value of each column within each group of rows (a dataset, a scene)."""
    for g in _unique(list(groups)):
        rows = [cells for cells, key in zip(grid, groups) if key == g]
        for j, mode in enumerate(modes):
            bold_best([cells[j] for cells in rows], mode)


def _protocol_cells(rec: dict[str, Any], result: Mapping[str, Any] | None, path: Any) -> list[Cell]:
    """Cells of both protocols' metrics of one JSON result (dashes when None), recorded as ``<protocol>_<metric>``."""
    cells = []
    for _, infix, where in PROTOCOLS:
        values = _metrics(result, where, path) if result is not None else {}
        for key, suffix, *_ in METRICS:
            rec[f"{infix}_{suffix}"] = values.get(key)
            cells.append(fmt_float(values.get(key)))
    return cells


def _metric_layout(index: list[Header], title: str, notes: list[str]) -> tuple[Layout, list[str]]:
    """The layout of a long table: ``index`` columns, then the leaderboard's metrics under "official" and under
    "exact"; and the bolding mode of each metric column."""
    layout = Layout(
        index=index,
        levels=[[Header(p, p, len(METRICS)) for p, *_ in PROTOCOLS]],
        columns=[Header(md, tex) for _ in PROTOCOLS for _, _, md, tex, _ in METRICS],
        title=title,
        notes=notes,
    )
    return layout, [mode for _ in PROTOCOLS for *_, mode in METRICS]


_PROTOCOL_NOTE = ("official: the benchmark's evaluation (per-frame percentile bins; components at its best-F1 "
                  "threshold); exact: pooled over all pixels (components at the exact best-F1 threshold). "
                  "Bold: the best value of each column within a dataset.")


def _component_counts(path: Path, protocol: str) -> ComponentCounts | None:
    """One protocol's per-frame component counts that ``smiyc_eval`` saves beside its JSON (None when absent)."""
    return load_counts(path).get(protocol) if path.is_file() else None


def table_smiyc(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """SegmentMeIfYouCan leaderboard: one block of rows per dataset (track), one row per method, with the
    leaderboard's AP, FPR95, sIoU, PPV and mean F1 of the official protocol and then of the exact pooled one
    (best per column and dataset bold).

    Exact AP and FPR95 values the frames do not separate from the dataset's best are marked "≈"
    (:func:`~meta_ood.report.paired.mark_unresolved` on the exact histograms ``smiyc_eval`` writes
    beside its JSONs; ``n_boot`` resamples, ``seed``), and so are the sIoU, PPV and mean F1 of both
    protocols (:func:`~meta_ood.smiyc.component_counts.paired_components` on the per-frame
    component counts beside them).

    CSV columns: ``dataset``, ``method``, ``<official|exact>_<ap|fpr95|siou|ppv|f1_mean>``.
    """
    entries, data = _load(entries, "table_smiyc entry")
    methods = _unique([str(e["method"]) for e in entries])
    datasets = _unique([str(e["dataset"]) for e in entries])
    layout, modes = _metric_layout([Header("Dataset", "Dataset"), Header("Method", "Method")],
                                   "SegmentMeIfYouCan: official protocol and exact pooled metrics", [_PROTOCOL_NOTE])
    records, grid, groups, histograms = [], [], [], []
    for d in datasets:
        for m in methods:
            if (m, d) not in data:
                continue
            path, result = data[(m, d)]
            rec: dict[str, Any] = {"dataset": d, "method": m}
            cells = _protocol_cells(rec, result, path)
            records.append(rec)
            grid.append(cells)
            groups.append(d)
            histograms.append(Path(str(path)).with_suffix(".npz"))  # the exact histogram smiyc_eval saves
            title = dataset_title(d)
            layout.rows.append(([Header(title, latex_escape(title)), Header(m, latex_escape(m))], cells))
    _bold_groups(grid, groups, modes)
    marked = 0
    exact = len(METRICS)  # the exact protocol's columns start here
    cache: dict[tuple[int, int], dict[str, Any]] = {}

    def component_p(metric: str) -> Callable[[ComponentCounts, ComponentCounts], float]:
        def p(a: ComponentCounts, b: ComponentCounts) -> float:
            if (id(a), id(b)) not in cache:
                try:
                    cache[(id(a), id(b))] = paired_components(a, b, n_boot=n_boot, seed=seed)
                except InputError:  # no resample has such components: nothing separates the two
                    cache[(id(a), id(b))] = {key: {"p": 1.0} for key, *_ in METRICS}
            return cache[(id(a), id(b))][metric]["p"]
        return p

    for d in _unique(groups):
        rows = [k for k, g in enumerate(groups) if g == d]
        for j, metric in ((exact, "auprc"), (exact + 1, "fpr95")):
            mode = modes[j]
            marked += len(mark_unresolved([grid[k][j] for k in rows], [histograms[k] for k in rows], metric, mode,
                                          n_boot=n_boot, seed=seed))
        if n_boot <= 0:
            continue
        for start, (protocol, *_) in zip((0, exact), PROTOCOLS):
            counts = [_component_counts(histograms[k].with_suffix(".components.npz"), protocol) for k in rows]
            for offset, (key, *_rest, mode) in enumerate(METRICS[2:], start=2):
                marked += len(mark_by([grid[k][start + offset] for k in rows], counts, mode, component_p(key)))
    if marked:
        layout.notes.append(f"≈: not significantly different from the dataset's best (bold) at 5 %: paired image "
                            f"bootstrap ({n_boot} resamples, seed {seed}) of the exact histograms (exact AP and FPR95) "
                            "and of the per-frame component counts (sIoU, PPV, mean F1 of both protocols), "
                            "Holm-adjusted per column.")
    return _write(records, 2, layout, out_csv, out_md, out_tex)


def _write(records: list[dict[str, Any]], n_index: int, layout: Layout, out_csv: str | os.PathLike,
           out_md: str | os.PathLike, out_tex: str | os.PathLike) -> pd.DataFrame:
    """The table's frame (columns after the ``n_index`` index columns as floats), written as csv, md and tex."""
    df = pd.DataFrame.from_records(records)
    for c in df.columns[n_index:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    write_table(df, layout, out_csv, out_md, out_tex)
    return df


def table_smiyc_scenes(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
) -> pd.DataFrame:
    """ObstacleTrack per scene: one block of rows per scene, one row per method, both protocols' metrics on
    the scene's frames (best per column and scene bold).

    ``entries``: ``smiyc_eval`` JSONs with ``scenes`` (the ObstacleTrack ones). Component metrics
    use each scene's own best-F1 threshold. With a single scene the table says so (its numbers are
    the dataset's, as in ``table_smiyc``). CSV columns: ``scene``, ``n_frames``, ``method`` and
    ``<official|exact>_<metric>``.
    """
    entries, data = _load(entries, "table_smiyc_scenes entry")
    methods = _unique([str(e["method"]) for e in entries])
    per_method = {m: require(result, "scenes", path, "(per-scene results: ObstacleTrack only)")
                  for (m, _), (path, result) in data.items()}
    scenes = sorted({s for v in per_method.values() for s in v})
    notes = ["Component metrics at each scene's own best-F1 threshold. Bold: the best value of each column "
             "within a scene."]
    if len(scenes) == 1:
        notes.append(f"One scene ({scenes[0]}): its numbers are those of the whole dataset in table_smiyc.")
    layout, modes = _metric_layout([Header("Scene", "Scene"), Header("Frames", "Frames"), Header("Method", "Method")],
                                   "SegmentMeIfYouCan ObstacleTrack per scene", notes)
    records, grid, groups = [], [], []
    for scene in scenes:
        for m in methods:
            res = per_method[m].get(scene)
            if res is None:
                continue
            rec: dict[str, Any] = {"scene": scene, "n_frames": res["n_frames"], "method": m}
            cells = _protocol_cells(rec, res, m)
            records.append(rec)
            grid.append(cells)
            groups.append(scene)
            n = str(res["n_frames"])
            layout.rows.append(([Header(scene, latex_escape(scene)), Header(n, n), Header(m, latex_escape(m))], cells))
    _bold_groups(grid, groups, modes)
    df = _write(records, 3, layout, out_csv, out_md, out_tex)
    return df


def figure_smiyc_curves(
    entries: Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """ROC and precision-recall curves (official protocol) of every method, one row of two panels per dataset.

    Returns ``{dataset: {method: curve}}``, the curves as read from the JSONs (``curve``: fpr,
    tpr, recall, precision).
    """
    import matplotlib as mpl

    from meta_ood.report.figures_style import label_colors, new_figure, save_figure, style_rc

    entries, data = _load(entries, "figure_smiyc_curves entry")
    datasets = _unique([str(e["dataset"]) for e in entries])
    methods = _unique([str(e["method"]) for e in entries])
    colors = label_colors(methods)
    styles = ["-", "--", "-.", ":"]
    plotted: dict[str, dict[str, dict[str, list[float]]]] = {}
    with mpl.rc_context(style_rc()):
        fig = new_figure(7.6, 0.6 + 3.0 * len(datasets))
        axes = fig.subplots(len(datasets), 2, squeeze=False)
        for row, d in zip(axes, datasets):
            plotted[d] = {}
            for k, m in enumerate(methods):
                if (m, d) not in data:
                    continue
                path, result = data[(m, d)]
                curve = require(result, "curve", path, "(the official curve)")
                plotted[d][m] = curve
                style = {"color": colors[m], "linestyle": styles[k % len(styles)], "linewidth": 1.6, "label": m}
                row[0].plot(curve["fpr"], curve["tpr"], **style)
                row[1].plot(curve["recall"], curve["precision"], **style)
            for ax, (x, y) in zip(row, (("false positive rate", "true positive rate"), ("recall", "precision"))):
                ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x, ylabel=y)
            row[0].set_title(f"{dataset_title(d)}\nROC")
            row[1].set_title(f"{dataset_title(d)}\nprecision-recall")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        for row in axes[1:]:  # methods missing on the first dataset
            for h, lab in zip(*row[0].get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, max(1, len(labels))), frameon=False)
        save_figure(fig, out_png, out_pdf)
    return plotted

