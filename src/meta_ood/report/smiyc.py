"""SegmentMeIfYouCan leaderboard, ROC / PR curves and ObstacleTrack per-scene table from ``smiyc_eval`` JSONs.

Each entry is ``{method, dataset, path}``; every number is read from the JSON written by
:func:`meta_ood.stages.smiyc.smiyc_eval_stage` (official protocol at the top level, the exact
pooled protocol under ``exact``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from meta_ood.errors import InputError
from meta_ood.report.formatting import Cell, Header, Layout, bold_best, fmt_float, latex_escape, write_table
from meta_ood.report.results import check_entries, dataset_title, load_result, require, slug

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


def _bold_columns(grid: Sequence[Sequence[Cell]], modes: Sequence[str]) -> None:
    for j, mode in enumerate(modes):
        bold_best([cells[j] for cells in grid], mode)


def _protocol_cells(rec: dict[str, Any], prefix: str, result: Mapping[str, Any] | None, path: Any) -> list[Cell]:
    """Cells of both protocols' metrics of one JSON result (dashes when None), recorded as ``<prefix>_<protocol>_<metric>``."""
    cells = []
    for _, infix, where in PROTOCOLS:
        values = _metrics(result, where, path) if result is not None else {}
        for key, suffix, *_ in METRICS:
            rec[f"{prefix}_{infix}_{suffix}"] = values.get(key)
            cells.append(fmt_float(values.get(key)))
    return cells


def _metric_headers(n: int) -> tuple[list[Header], list[Header], list[str]]:
    """Protocol group headers, metric titles and bolding modes of ``n`` column groups."""
    protocols = [Header(p, p, len(METRICS)) for _ in range(n) for p, *_ in PROTOCOLS]
    columns = [Header(md, tex) for _ in range(n * len(PROTOCOLS)) for _, _, md, tex, _ in METRICS]
    modes = [mode for _ in range(n * len(PROTOCOLS)) for *_, mode in METRICS]
    return protocols, columns, modes


def table_smiyc(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
) -> pd.DataFrame:
    """SegmentMeIfYouCan leaderboard: one row per method, per dataset AP, FPR95, sIoU, PPV and mean F1
    of the official protocol and of the exact pooled one side by side (best per column bold).

    CSV columns: ``method`` and ``<dataset>_<official|exact>_<ap|fpr95|siou|ppv|f1_mean>``.
    """
    entries, data = _load(entries, "table_smiyc entry")
    methods = _unique([str(e["method"]) for e in entries])
    datasets = _unique([str(e["dataset"]) for e in entries])
    records, grid = [], []
    protocols, columns, modes = _metric_headers(len(datasets))
    layout = Layout(
        index=[Header("Method", "Method")],
        levels=[[Header(dataset_title(d), latex_escape(dataset_title(d)), len(PROTOCOLS) * len(METRICS))
                 for d in datasets], protocols],
        columns=columns,
        title="SegmentMeIfYouCan: official protocol and exact pooled metrics per dataset",
        notes=["official: the benchmark's evaluation (per-frame percentile bins; components at its best-F1 "
               "threshold); exact: pooled over all pixels (components at the exact best-F1 threshold)."],
    )
    for m in methods:
        rec: dict[str, Any] = {"method": m}
        cells = []
        for d in datasets:
            path, result = data.get((m, d), (None, None))
            cells += _protocol_cells(rec, slug(d), result, path)
        records.append(rec)
        grid.append(cells)
        layout.rows.append(([Header(m, latex_escape(m))], cells))
    _bold_columns(grid, modes)
    return _write(records, 1, layout, out_csv, out_md, out_tex)


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
    """ObstacleTrack per scene: one row per scene, per method both protocols' metrics on its frames.

    ``entries``: ``smiyc_eval`` JSONs with ``scenes`` (the ObstacleTrack ones). Component metrics
    use each scene's own best-F1 threshold. CSV columns: ``scene``, ``n_frames`` and
    ``<method>_<official|exact>_<metric>``.
    """
    entries, data = _load(entries, "table_smiyc_scenes entry")
    methods = _unique([str(e["method"]) for e in entries])
    per_method = {m: require(result, "scenes", path, "(per-scene results: ObstacleTrack only)")
                  for (m, _), (path, result) in data.items()}
    scenes = sorted({s for v in per_method.values() for s in v})
    protocols, columns, modes = _metric_headers(len(methods))
    layout = Layout(
        index=[Header("Scene", "Scene"), Header("Frames", "Frames")],
        levels=[[Header(m, latex_escape(m), len(PROTOCOLS) * len(METRICS)) for m in methods], protocols],
        columns=columns,
        title="SegmentMeIfYouCan ObstacleTrack per scene (component metrics at each scene's best-F1 threshold)",
    )
    records = []
    for scene in scenes:
        rec: dict[str, Any] = {"scene": scene, "n_frames": None}
        cells = []
        for m in methods:
            res = per_method[m].get(scene)
            if res is not None:
                rec["n_frames"] = res["n_frames"]
            cells += _protocol_cells(rec, slug(m), res, m)
        records.append(rec)
        layout.rows.append(([Header(scene, latex_escape(scene)), Header(str(rec["n_frames"]), str(rec["n_frames"]))],
                            cells))
    _bold_columns([cells for _, cells in layout.rows], modes)
    return _write(records, 2, layout, out_csv, out_md, out_tex)


def figure_smiyc_curves(
    entries: Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """ROC and precision-recall curves (official protocol) of every method, one row of two panels per dataset.

    Returns ``{dataset: {method: curve}}``, the curves as read from the JSONs (``curve``: fpr,
    tpr, recall, precision).
    """
    from meta_ood.report.figures_style import label_colors, new_figure, save_figure

    entries, data = _load(entries, "figure_smiyc_curves entry")
    datasets = _unique([str(e["dataset"]) for e in entries])
    methods = _unique([str(e["method"]) for e in entries])
    colors = label_colors(methods)
    fig = new_figure(7.0, 3.0 * len(datasets))
    axes = fig.subplots(len(datasets), 2, squeeze=False)
    plotted: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row, d in zip(axes, datasets):
        plotted[d] = {}
        for m in methods:
            if (m, d) not in data:
                continue
            path, result = data[(m, d)]
            curve = require(result, "curve", path, "(the official curve)")
            plotted[d][m] = curve
            row[0].plot(curve["fpr"], curve["tpr"], color=colors[m], label=m)
            row[1].plot(curve["recall"], curve["precision"], color=colors[m], label=m)
        for ax, (x, y) in zip(row, (("FPR", "TPR"), ("Recall", "Precision"))):
            ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x, ylabel=y, title=f"{dataset_title(d)}: {y} vs {x}")
        row[1].legend(fontsize="small")
    save_figure(fig, out_png, out_pdf)
    return plotted

