"""The paper's tables 1-3 and the SegmentMeIfYouCan component metrics, from the result JSON files.

Every table is written as CSV, Markdown and LaTeX (:mod:`meta_ood.report.formatting`). The CSV
column names are documented at each function (``<label slug>_<metric>``, the slug of "OoD
training" being ``ood_training``); road miss rates ε are fractions in the CSV and percentages
elsewhere. Every number is read from the result files (:mod:`meta_ood.report.results`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.io import read_parquet
from meta_ood.meta.evaluation import segment_histogram
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.report.formatting import (
    Cell,
    Header,
    Layout,
    bold_best,
    fmt_ci,
    fmt_count,
    fmt_eps,
    fmt_float,
    latex_escape,
    write_table,
)
from meta_ood.report.paired import mark_against_best, mark_unresolved, mark_unresolved_counts
from meta_ood.report.results import (
    ACCEPTABLE_FROM,
    check_entries,
    component_values,
    dataset_title,
    finite_float,
    finite_int,
    load_result,
    load_segment_eval,
    parse_tag,
    per_image_errors,
    require,
    slug,
    unique,
    unique_labels,
)

__all__ = ["table1", "table2", "table3", "table_components"]

#: Plain-text names of the pixel OoD scores (``evaluation.scorer``) for table titles.
SCORER_TITLES = {
    "entropy": "normalized entropy",
    "variation_ratio": "variation ratio",
    "margin": "probability margin",
    "msp": "1 - maximum softmax probability",
    "max_logit": "negated maximum logit",
    "energy": "free energy",
}


def _column_types(df: pd.DataFrame, is_count: Callable[[str], bool], labels: Sequence[str] = ("t",)) -> None:
    """Counts as nullable integers, every other column but the ``labels`` as floats (NaN when missing)."""
    for c in df.columns:
        if c in labels:
            continue
        if is_count(c):
            df[c] = df[c].astype("Int64")
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)


def _t_label(t: float) -> Header:
    """Row label of threshold t ("t = 0.30")."""
    return Header(f"t = {t:.2f}", f"$t = {t:.2f}$")


def _rules_before(thresholds: Sequence[float], acceptable_from: float | None) -> set[int]:
    """The row of the first acceptable threshold, preceded by a rule unless it is the first row."""
    if acceptable_from is None:
        return set()
    first = next((i for i, t in enumerate(thresholds) if t >= acceptable_from - 1e-12), None)
    return {first} if first not in (None, 0) else set()


def _title_suffix(entries: Sequence[Mapping[str, Any]], default_dataset: str | None) -> str:
    """Title suffix " (<datasets>; <models>)" from the entries' optional keys ("" when both are unknown);
    the datasets in order of first appearance, the models sorted."""
    models = sorted({str(e["model"]) for e in entries if e.get("model")})
    datasets = unique(str(e["dataset"]) for e in entries if e.get("dataset")) or ([default_dataset] if default_dataset else [])
    parts = [", ".join(dataset_title(d) for d in datasets), ", ".join(models)]
    parts = [p for p in parts if p]
    return f" ({'; '.join(parts)})" if parts else ""


def _dataset_blocks(entries: Sequence[dict[str, Any]]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """The entries of a segment table grouped by their optional ``dataset`` key, in order of first appearance.

    Entries without a dataset form one group (key None). Tables 2, 3 and the component table show one block
    of threshold rows per group, under a "Dataset" index column when there are several groups.
    """
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for e in entries:
        ds = e.get("dataset")
        groups.setdefault(None if ds is None else str(ds), []).append(e)
    return list(groups.items())


def _dataset_header() -> Header:
    """Title of the index column that names each block's dataset."""
    return Header("Dataset", "Dataset")


def _dataset_label(ds: str | None) -> Header:
    """Row label of a dataset block: the dataset's display name (as in table 1)."""
    title = dataset_title(ds)
    return Header(title, latex_escape(title))


def _all_block_rules(block_thresholds: Sequence[Sequence[float]], acceptable_from: float | None) -> set[int]:
    """Rows preceded by a horizontal rule in a table of consecutive dataset blocks (the thresholds of each):
    the first row of every block but the first, and in each block its first acceptable threshold."""
    rules: set[int] = set()
    offset = 0
    for thresholds in block_thresholds:
        rules |= {offset + i for i in _rules_before(thresholds, acceptable_from)}
        if offset > 0:
            rules.add(offset)
        offset += len(thresholds)
    return rules


# ------------------------------------------------------------------------------------ table 1

_PIXEL_METRICS = (
    # key, markdown title, latex title, best
    ("auroc", "AUROC ↑", r"AUROC $\uparrow$", "max"),
    ("fpr95", "FPR95 ↓", r"FPR$_{95}$ $\downarrow$", "min"),
    ("auprc", "AUPRC ↑", r"AUPRC $\uparrow$", "max"),
)


def table1(
    pixel_entries: Sequence[Mapping[str, Any]],
    miou_entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paper table 1: pixel-wise OoD detection and Cityscapes val mIoU per model and training.

    ``pixel_entries``: ``{model, label, dataset, path}`` with ``path`` the pixel-evaluation JSON of
    an OoD dataset; ``miou_entries``: ``{model, label, path}`` with the Cityscapes val JSON.
    Rows: (model, label) in order of first appearance (label "Plain" / "OoD training"); column
    groups: one per OoD dataset (AUROC, FPR95, AUPRC, each with its image-bootstrap 95 % interval
    where the JSON has one) and "Cityscapes val" (mIoU without OoD class, key "inf"). The best value
    of each column is bold; a value the frames do not separate from it is marked "≈" (paired image
    bootstrap of the two rows' ``.npz`` histograms beside their JSONs, ``n_boot`` resamples, ``seed``;
    p-values Holm-adjusted within the column; not significant at ``alpha``).

    CSV columns: ``model``, ``label``, ``<dataset>_<metric>``, ``<dataset>_<metric>_lo`` /
    ``_hi`` (metric in auroc, fpr95, auprc), ``cityscapes_val_miou``. Returns the CSV table.
    """
    pixel_entries = check_entries(pixel_entries, ("model", "label", "dataset", "path"), "table1 pixel entry", allow_empty=True)
    miou_entries = check_entries(miou_entries, ("model", "label", "path"), "table1 mIoU entry", allow_empty=True)
    if not pixel_entries and not miou_entries:
        raise InputError("table1: no pixel-evaluation entries given: nothing to report")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    histograms: dict[tuple[str, str], dict[str, Path]] = {}  # the per-image histograms beside the JSONs
    datasets: list[str] = []
    scorers: list[str] = []
    for e in pixel_entries:
        key = (str(e["model"]), str(e["label"]))
        ds = str(e["dataset"])
        histograms.setdefault(key, {})[ds] = Path(str(e["path"])).with_suffix(".npz")
        data = load_result(e["path"], kind="ood")
        row = rows.setdefault(key, {})
        if ds in row:
            raise InputError(f"table1: two pixel entries for model {key[0]!r}, {key[1]!r} on {ds!r} ({e['path']})")
        boot = data.get("bootstrap") or {}
        row[ds] = {m: (finite_float(require(data, m, e["path"], "(pixel metric)")), boot.get(m)) for m, *_ in _PIXEL_METRICS}
        scorer = str(data.get("scorer") or "entropy")
        if scorer not in scorers:
            scorers.append(scorer)
        if ds not in datasets:
            datasets.append(ds)
    miou_key = "cityscapes_val"
    for e in miou_entries:
        key = (str(e["model"]), str(e["label"]))
        data = load_result(e["path"], kind="miou")
        miou = require(data, "miou", e["path"], "(mIoU per threshold)")
        if not isinstance(miou, Mapping) or "inf" not in miou:
            raise InputError(f"{e['path']}: 'miou' lacks the plain mIoU without OoD class (key 'inf')")
        row = rows.setdefault(key, {})
        if miou_key in row:
            raise InputError(f"table1: two mIoU entries for model {key[0]!r}, {key[1]!r} ({e['path']})")
        row[miou_key] = finite_float(miou["inf"])
    has_miou = bool(miou_entries)

    records = []
    for (model, label), row in rows.items():
        rec: dict[str, Any] = {"model": model, "label": label}
        for ds in datasets:
            for m, *_ in _PIXEL_METRICS:
                value, ci = row.get(ds, {}).get(m, (None, None))
                ok = isinstance(ci, (list, tuple)) and len(ci) == 2
                rec[f"{ds}_{m}"] = value
                rec[f"{ds}_{m}_lo"] = finite_float(ci[0]) if ok else None
                rec[f"{ds}_{m}_hi"] = finite_float(ci[1]) if ok else None
        if has_miou:
            rec[f"{miou_key}_miou"] = row.get(miou_key)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    _column_types(df, lambda c: False, labels=("model", "label"))

    columns: list[Header] = []
    groups: list[Header] = []
    for ds in datasets:
        groups.append(Header(dataset_title(ds), latex_escape(dataset_title(ds)), len(_PIXEL_METRICS)))
        columns += [Header(t, lt) for _, t, lt, _ in _PIXEL_METRICS]
    if has_miou:
        groups.append(Header("Cityscapes val", "Cityscapes val", 1))
        columns.append(Header("mIoU ↑", r"mIoU $\uparrow$"))
    layout = Layout(
        index=[Header("Model", "Model"), Header("Training", "Training")],
        levels=[groups],
        columns=columns,
        title=f"Table 1: pixel-wise OoD detection ({', '.join(SCORER_TITLES.get(x, x) for x in scorers or ['entropy'])}) "
              "and Cityscapes val mIoU; "
              "± half the width of the 95 % image-bootstrap interval (its bounds: the csv's _lo / _hi columns)",
    )
    grid: list[list[Cell]] = []
    for (model, label), row in rows.items():
        cells = []
        for ds in datasets:
            for m, *_ in _PIXEL_METRICS:
                value, ci = row.get(ds, {}).get(m, (None, None))
                cells.append(fmt_ci(value, ci))
        if has_miou:
            cells.append(fmt_float(row.get(miou_key)))
        grid.append(cells)
        layout.rows.append(([Header(model, latex_escape(model)), Header(label, latex_escape(label))], cells))
    modes = [best for _ in datasets for *_, best in _PIXEL_METRICS] + (["max"] if has_miou else [])
    for j, mode in enumerate(modes):
        bold_best([cells[j] for cells in grid], mode)
    cache: dict = {}
    marked = 0
    for d, ds in enumerate(datasets):
        paths = [histograms.get(key, {}).get(ds) for key in rows]
        for k, (metric, *_, mode) in enumerate(_PIXEL_METRICS):
            j = d * len(_PIXEL_METRICS) + k
            marked += len(mark_unresolved([cells[j] for cells in grid], paths, metric, mode, n_boot=n_boot,
                                          seed=seed, alpha=alpha, cache=cache))
    if marked:
        layout.notes.append(f"≈: not significantly different from the column's best (bold) at {100 * alpha:g} %: "
                            f"paired image bootstrap on the same frames ({n_boot} resamples, seed {seed}), p-values "
                            "Holm-adjusted over the column.")
    write_table(df, layout, out_csv, out_md, out_tex)
    return df


# ------------------------------------------------------------------------------------ table 2

_ERROR_COLUMNS = (
    ("FP ↓", r"FP $\downarrow$"),
    ("FN ↓", r"FN $\downarrow$"),
    ("Σ ↓", r"$\sum$ $\downarrow$"),
    ("ε in % ↓", r"$\varepsilon$ in \% $\downarrow$"),
)


def _segment_eval_records(
    entries: list[dict[str, Any]], what: str, values: Callable[[str, dict[str, Any]], dict[str, Any]]
) -> tuple[bool, list[str], list[dict[str, Any]], list[tuple[int, str | None, float]], list[list[float]]]:
    """The per-threshold records of segment-eval entries, one block per dataset (tables 2 and components).

    ``values(slug, result)`` gives a label's columns at one threshold. Returns whether there are
    several datasets, the labels, the records, (block, dataset, t) of each record and each block's
    thresholds.
    """
    blocks = _dataset_blocks(entries)
    labels = unique(str(e["label"]) for e in entries)
    records: list[dict[str, Any]] = []
    rows: list[tuple[int, str | None, float]] = []
    block_thresholds: list[list[float]] = []
    for b, (ds, block) in enumerate(blocks):
        unique_labels(block, what)
        per_entry, thresholds = load_segment_eval(block)
        block_thresholds.append(thresholds)
        by_label = {str(e["label"]): data for e, data in zip(block, per_entry)}
        for t in thresholds:
            rec: dict[str, Any] = {"dataset": ds} if len(blocks) > 1 else {}
            rec["t"] = t
            for label in labels:
                rec.update(values(slug(label), by_label.get(label, {}).get(t, {})))
            records.append(rec)
            rows.append((b, ds, t))
    return len(blocks) > 1, labels, records, rows, block_thresholds


def table2(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    acceptable_from: float | None = ACCEPTABLE_FROM,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paper table 2: detection errors of OoD objects per entropy threshold t.

    ``entries``: ``{label, path}`` (optionally ``model``, ``dataset``), ``path`` a segment_eval
    JSON. Rows: thresholds t; for each label two column groups, "<label>" (before) and "<label> +
    Meta Classifier" (after removing the segments the meta classifier calls FP), each with FP, FN,
    Σ = FP + FN and the road miss rate ε in % ("< 0.01" below 0.01 %). The smallest Σ of each group
    among the acceptable thresholds (t >= ``acceptable_from``; paper: 0.3) is bold; a horizontal rule
    (LaTeX ``\\midrule``) separates the thresholds below ``acceptable_from`` from the rest. Where
    the JSONs hold per-image counts, a Σ of the same group that the images do not separate from
    the bold one is marked "≈" (paired image bootstrap of the per-image errors, ``n_boot``
    resamples, ``seed``; Holm within the group, 5 %; ``n_boot=0``: no marks).

    Entries of several datasets (their ``dataset`` keys) get one block of threshold rows per
    dataset, in order of first appearance, under a first index column "Dataset" (the display name,
    as in table 1), with a rule between the blocks; the labels' column groups are shared (a label a
    dataset lacks shows "–") and the bold Σ and the acceptable-threshold rule are per block. With
    one dataset (or none named) there is no Dataset column.

    CSV columns: ``t`` and per label ``<slug>_fp``, ``_fn``, ``_total``, ``_eps`` (fraction),
    ``<slug>_meta_fp``, ``_meta_fn``, ``_meta_total``, ``_meta_eps``, ``<slug>_n_pred``,
    ``<slug>_n_removed``; preceded by ``dataset`` (the dataset key) with several datasets.
    """
    entries = check_entries(entries, ("label", "path"), "table2 entry")
    stages = (("", "before"), ("meta_", "after"))

    def values(s: str, r: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for prefix, when in stages:
            out[f"{s}_{prefix}fp"] = finite_int(r.get(f"fp_{when}"))
            out[f"{s}_{prefix}fn"] = finite_int(r.get(f"fn_{when}"))
            out[f"{s}_{prefix}total"] = finite_int(r.get(f"total_{when}"))
            out[f"{s}_{prefix}eps"] = finite_float(r.get(f"eps_{when}"))
            out[f"_{s}_{prefix}per_image"] = per_image_errors(r, when)  # for the marks, not a column
        return out | {f"{s}_n_pred": finite_int(r.get("n_pred")), f"{s}_n_removed": finite_int(r.get("n_removed"))}

    multi, labels, records, rows, block_thresholds = _segment_eval_records(entries, "table2", values)
    per_image = [{k: rec.pop(k) for k in [k for k in rec if k.startswith("_")]} for rec in records]
    df = pd.DataFrame.from_records(records)
    _column_types(df, lambda c: not c.endswith("eps"), labels=("dataset", "t"))

    groups, columns = [], []
    for label in labels:
        for name in (label, f"{label} + Meta Classifier"):
            groups.append(Header(name, latex_escape(name), len(_ERROR_COLUMNS)))
            columns += [Header(a, b) for a, b in _ERROR_COLUMNS]
    layout = Layout(
        index=([_dataset_header()] if multi else []) + [Header("Entropy threshold", r"$\bar{E} \geq t$")],
        levels=[groups],
        columns=columns,
        rules_before=_all_block_rules(block_thresholds, acceptable_from),
        title="Table 2: detection errors of OoD objects at entropy thresholds t" + _title_suffix(entries, "lostandfound"),
    )
    if acceptable_from is not None and any(_rules_before(th, acceptable_from) for th in block_thresholds):
        where = "below the horizontal rule within each dataset" if multi else "below the horizontal rule"
        layout.notes.append(f"From t = {acceptable_from:.2f} on (LaTeX: {where}) the loss in "
                            "original performance is considered acceptable (paper section 6.3); bold: the "
                            "smallest Σ of each column group among these thresholds.")
    sums: dict[tuple[int, int], list[Cell]] = {}  # (block, column group) -> its Σ cells
    errors: dict[tuple[int, int], list[list[int] | None]] = {}  # ... and their per-image errors
    for rec, hidden, (b, ds, t) in zip(records, per_image, rows):
        cells = []
        for k, label in enumerate(labels):
            s = slug(label)
            for g, (prefix, _) in enumerate(stages):
                total = fmt_count(rec[f"{s}_{prefix}total"])
                cells += [fmt_count(rec[f"{s}_{prefix}fp"]), fmt_count(rec[f"{s}_{prefix}fn"]), total,
                          fmt_eps(rec[f"{s}_{prefix}eps"])]
                if acceptable_from is None or t >= acceptable_from - 1e-9:  # bold only where the loss is acceptable
                    sums.setdefault((b, 2 * k + g), []).append(total)
                    errors.setdefault((b, 2 * k + g), []).append(hidden[f"_{s}_{prefix}per_image"])
        layout.rows.append((([_dataset_label(ds)] if multi else []) + [_t_label(t)], cells))
    marked = 0
    for key, col in sums.items():
        bold_best(col, "min")
        if n_boot > 0:
            marked += len(mark_unresolved_counts(col, errors[key], n_boot=n_boot, seed=seed))
    if marked:
        layout.notes.append(f"≈: a Σ its dataset's images do not separate from the bold one of its column group "
                            f"(paired image bootstrap of the per-image errors, {n_boot} resamples, seed {seed}; "
                            "Holm-adjusted within the group, 5 %).")
    write_table(df, layout, out_csv, out_md, out_tex)
    return df


# ------------------------------------------------------------------------------------ table 3

PROTOCOL_TITLES = {"loo": "Leave-one-out", "logo": "Leave-one-image-out"}
PROTOCOL_SHORT = {"loo": "LOO", "logo": "LOGO"}


def _detector_histogram(v: Mapping[str, Any], detector: str) -> PooledHistogram | None:
    """The per-segment scores behind one table-3 column (``detector``: "msp" or a protocol) as a
    :func:`~meta_ood.meta.evaluation.segment_histogram`; None when the meta classification's parquet or its image
    ids are missing, or the scores are NaN (protocol unavailable)."""
    path, image_ids, protocols = v.get("_scores", (None, None, []))
    if path is None or image_ids is None or not Path(path).is_file() or not protocols:
        return None
    column = "msp" if detector == "msp" else "prob_fp" if detector == protocols[0] else f"prob_fp_{detector}"
    seg = read_parquet(path)
    if column not in seg or len(seg) == 0:
        return None
    scores = seg[column].to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        return None
    return segment_histogram(scores, seg["iou0"].to_numpy(), seg["image"].to_numpy(), image_ids)


def table3(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    acceptable_from: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paper table 3: meta classification (FP vs TP segments) against the MSP baseline per threshold.

    ``entries``: ``{label, tag, path}`` (optionally ``model``, ``dataset``), ``path`` the meta
    JSON of threshold ``tag`` ("t0.3"). Rows: thresholds; the "Leave-one-out" block (the paper's
    protocol) has per label "<label> + MSP" (AUROC, AUPRC of the maximum softmax probability)
    and "<label> + Meta C." (AUROC, AUPRC of the meta classifier); a "Leave-one-image-out" block
    with "<label> + Meta C." follows when the JSONs have that protocol (the MSP baseline does not
    depend on the protocol). Missing values are "–"; the best AUROC and AUPRC of each row and block
    are bold, and where the per-segment scores lie beside the JSONs (the meta classification's
    ``.parquet`` and its ``image_ids``) every value of the row and block that the images do not
    separate from the bold one is marked "≈" (paired image bootstrap of the segments' scores,
    ``n_boot`` resamples, ``seed``; Holm within the row and block, 5 %; ``n_boot=0``: no marks).

    Entries of several datasets get one block of threshold rows per dataset, in order of first
    appearance, under a first index column "Dataset" (the display name, as in table 1), with a
    rule between the blocks; the column groups are shared. With one dataset (or none named) there
    is no Dataset column.

    CSV columns: ``t`` and per label ``<slug>_msp_auroc``, ``_msp_auprc``, and per protocol p
    ``<slug>_<p>_auroc``, ``_<p>_auprc``, ``_<p>_accuracy``; ``<slug>_n_segments``; preceded by
    ``dataset`` (the dataset key) with several datasets.
    """
    entries = check_entries(entries, ("label", "tag", "path"), "table3 entry")
    blocks = _dataset_blocks(entries)
    multi = len(blocks) > 1
    labels: list[str] = []
    values: dict[tuple[str | None, str, float], dict[str, Any]] = {}
    protocols_seen: list[str] = []
    for ds, block in blocks:
        for e in block:
            label, t = str(e["label"]), parse_tag(e["tag"], str(e["path"]))
            if (ds, label, t) in values:
                on = f" on {ds!r}" if multi else ""
                raise InputError(f"table3: two entries for {label!r} at {e['tag']}{on} ({e['path']})")
            data = load_result(e["path"])
            protocols = require(data, "protocols", e["path"], "(meta classification results per protocol)")
            if not isinstance(protocols, Mapping):
                raise InputError(f"{e['path']}: 'protocols' must be an object")
            v: dict[str, Any] = {"n_segments": finite_int(data.get("n_segments"))}
            msp_auroc = msp_auprc = None
            for p, res in protocols.items():
                if p not in protocols_seen:
                    protocols_seen.append(p)
                res = res if isinstance(res, Mapping) else {}
                v[f"{p}_auroc"], v[f"{p}_auprc"], v[f"{p}_accuracy"] = (finite_float(res.get(k)) for k in ("auroc", "auprc", "accuracy"))
                if msp_auroc is None or p == "loo":
                    msp_auroc = finite_float(res.get("msp_auroc")) if finite_float(res.get("msp_auroc")) is not None else msp_auroc
                    msp_auprc = finite_float(res.get("msp_auprc")) if finite_float(res.get("msp_auprc")) is not None else msp_auprc
            v["msp_auroc"], v["msp_auprc"] = msp_auroc, msp_auprc
            v["_scores"] = (Path(str(e["path"])).with_suffix(".parquet"), data.get("image_ids"), list(protocols))
            values[(ds, label, t)] = v
            if label not in labels:
                labels.append(label)
    order = {"loo": 0, "logo": 1}
    protocols_seen.sort(key=lambda p: (order.get(p, 2), p))
    if not protocols_seen:
        protocols_seen = ["loo"]
    block_thresholds = [sorted({t for d, _, t in values if d == ds}) for ds, _ in blocks]

    records: list[dict[str, Any]] = []
    rows: list[tuple[str | None, float]] = []
    for (ds, _), thresholds in zip(blocks, block_thresholds):
        for t in thresholds:
            rec: dict[str, Any] = ({"dataset": ds} if multi else {}) | {"t": t}
            for label in labels:
                s, v = slug(label), values.get((ds, label, t), {})
                rec[f"{s}_msp_auroc"], rec[f"{s}_msp_auprc"] = v.get("msp_auroc"), v.get("msp_auprc")
                for p in protocols_seen:
                    for k in ("auroc", "auprc", "accuracy"):
                        rec[f"{s}_{p}_{k}"] = v.get(f"{p}_{k}")
                rec[f"{s}_n_segments"] = v.get("n_segments")
            records.append(rec)
            rows.append((ds, t))
    df = pd.DataFrame.from_records(records)
    _column_types(df, lambda c: c.endswith("n_segments"), labels=("dataset", "t"))

    # column plan: (protocol block, group title, csv key of AUROC, of AUPRC)
    plan: list[tuple[str, str, str, str]] = []
    for p in protocols_seen:
        for label in labels:
            s = slug(label)
            if p == protocols_seen[0]:
                plan.append((p, f"{label} + MSP", f"{s}_msp_auroc", f"{s}_msp_auprc"))
            plan.append((p, f"{label} + Meta C.", f"{s}_{p}_auroc", f"{s}_{p}_auprc"))
    # per column: its label and detector ("msp" or the protocol), to find its per-segment scores
    label_of = [next(label for label in labels if key.startswith(slug(label) + "_")) for _, _, key, _ in plan]
    detector_of = ["msp" if title.endswith("+ MSP") else p for p, title, _, _ in plan]
    protocol_blocks = []
    for p in protocols_seen:
        n = 2 * sum(1 for q, *_ in plan if q == p)
        title = PROTOCOL_TITLES.get(p, p) + (" (paper)" if p == "loo" else "")
        protocol_blocks.append(Header(PROTOCOL_SHORT.get(p, p), latex_escape(title), n))
    groups = [Header(g, latex_escape(g), 2) for _, g, _, _ in plan]
    columns = [Header(a, b) for _ in plan for a, b in (("AUROC ↑", r"AUROC $\uparrow$"), ("AUPRC ↑", r"AUPRC $\uparrow$"))]
    layout = Layout(
        index=([_dataset_header()] if multi else []) + [Header("Entropy threshold", "Entropy threshold")],
        levels=[protocol_blocks, groups],
        columns=columns,
        rules_before=_all_block_rules(block_thresholds, acceptable_from),
        title="Table 3: meta classification of OoD segments (FP vs TP) vs maximum softmax probability (MSP)"
              + _title_suffix(entries, "lostandfound"),
    )
    layout.notes.append("; ".join(f"{PROTOCOL_SHORT.get(p, p)} = {PROTOCOL_TITLES.get(p, p).lower()}"
                                  + (" (the paper's protocol)" if p == "loo" else "") for p in protocols_seen)
                        + ". The MSP baseline does not depend on the protocol.")
    marked = 0
    for rec, (ds, t) in zip(records, rows):
        cells: list[Cell] = []
        for _, _, k_roc, k_prc in plan:
            cells += [fmt_float(rec.get(k_roc)), fmt_float(rec.get(k_prc))]
        for p in protocols_seen:
            idx = [i for i, (q, *_) in enumerate(plan) if q == p]
            hists = [_detector_histogram(values.get((ds, label_of[i], t), {}), detector_of[i]) if n_boot > 0 else None
                     for i in idx]
            for j, metric in ((0, "auroc"), (1, "auprc")):
                col = [cells[2 * i + j] for i in idx]
                bold_best(col, "max")
                marked += len(mark_against_best(col, hists, metric, "max", n_boot=n_boot, seed=seed))
        layout.rows.append((([_dataset_label(ds)] if multi else []) + [_t_label(t)], cells))
    if marked:
        layout.notes.append(f"≈: a value its dataset's images do not separate from the bold one of its row and block "
                            f"(paired image bootstrap of the segments' scores, {n_boot} resamples, seed {seed}; "
                            "Holm-adjusted within the row and block, 5 %).")
    write_table(df, layout, out_csv, out_md, out_tex)
    return df


_COMPONENT_COLUMNS = (
    ("siou", "sIoU ↑", r"sIoU $\uparrow$"),
    ("ppv", "PPV ↑", r"PPV $\uparrow$"),
    ("f1_mean", "mean F1 ↑", r"$\overline{F_1}$ $\uparrow$"),
)


def table_components(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    acceptable_from: float | None = ACCEPTABLE_FROM,
) -> pd.DataFrame:
    """SegmentMeIfYouCan component metrics of the OoD segments {entropy >= t} per threshold.

    ``entries``: ``{label, path}`` (segment_eval JSONs, as for :func:`table2`). Rows thresholds;
    one column group per label with sIoU (mean over ground-truth components), PPV (mean over
    predicted components) and the F1 averaged over the sIoU/PPV thresholds 0.25..0.75. A
    threshold without component metrics shows "–". The best value of each column is bold.
    Entries of several datasets get one block of threshold rows per dataset under a "Dataset"
    index column, as in :func:`table2` (the best values are then per block).

    CSV columns: ``t`` and per label ``<slug>_siou``, ``_ppv``, ``_f1_mean``, ``_n_gt``, ``_n_pred``;
    preceded by ``dataset`` (the dataset key) with several datasets.
    """
    entries = check_entries(entries, ("label", "path"), "table_components entry")

    def values(s: str, r: dict[str, Any]) -> dict[str, Any]:
        return {f"{s}_{k}": v for k, v in component_values(r.get("components")).items()}

    multi, labels, records, rows, block_thresholds = _segment_eval_records(entries, "table_components", values)
    df = pd.DataFrame.from_records(records)
    _column_types(df, lambda c: c.endswith(("_n_gt", "_n_pred")), labels=("dataset", "t"))
    groups = [Header(label, latex_escape(label), len(_COMPONENT_COLUMNS)) for label in labels]
    columns = [Header(a, b) for _ in labels for _, a, b in _COMPONENT_COLUMNS]
    layout = Layout(
        index=([_dataset_header()] if multi else []) + [Header("Entropy threshold", r"$\bar{E} \geq t$")],
        levels=[groups],
        columns=columns,
        rules_before=_all_block_rules(block_thresholds, acceptable_from),
        title="Component-level metrics (SegmentMeIfYouCan) of the OoD segments at entropy thresholds t"
              + _title_suffix(entries, "lostandfound"),
    )
    grid: dict[int, list[list[Cell]]] = {}  # block -> its rows of cells
    marks = {"n_pred": ("†", r"\dagger", "no predicted component passes the size filter: PPV undefined (–), "
                                          "every sIoU 0, mean F1 0"),
             "n_gt": ("‡", r"\ddagger", "no ground-truth component passes the size filter: sIoU undefined (–)")}
    used: set[str] = set()
    for rec, (b, ds, t) in zip(records, rows):
        cells = [fmt_float(rec[f"{slug(label)}_{k}"]) for label in labels for k, *_ in _COMPONENT_COLUMNS]
        grid.setdefault(b, []).append(cells)
        label = _t_label(t)
        for key, (mark, tex, _) in marks.items():  # degenerate rows: a footnote mark on the threshold
            if any(rec.get(f"{slug(lab)}_{key}") == 0 for lab in labels):
                label = Header(f"{label.text} {mark}", f"{label.latex}$^{tex}$")
                used.add(key)
        layout.rows.append((([_dataset_label(ds)] if multi else []) + [label], cells))
    layout.notes += [f"{mark} {text} (high thresholds, or images too small for the track's size filters)."
                     for key, (mark, _, text) in marks.items() if key in used]
    for block_cells in grid.values():
        for j in range(len(columns)):
            bold_best([cells[j] for cells in block_cells], "max")
    write_table(df, layout, out_csv, out_md, out_tex)
    return df
