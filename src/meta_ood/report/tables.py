"""The paper's tables 1-3 and the SegmentMeIfYouCan component metrics, from the result JSON files.

Every table is written three times:

* CSV -- one row per table row, full-precision numbers, missing values empty; the column names
  are documented at each function (``<label slug>_<metric>``, the slug of "OoD training" being
  ``ood_training``). Road miss rates ε are fractions in the CSV and percentages elsewhere.
* Markdown -- a pipe table formatted like the paper (missing values "–"); the grouped header of
  the paper is flattened into one header row ("Baseline FP ↓").
* LaTeX -- a booktabs ``tabular`` with ``\\multicolumn`` group headers and ``\\cmidrule`` under
  each group (needs ``\\usepackage{booktabs}``).

Nothing is recomputed: every number is read from the files the pipeline stages wrote
(:func:`meta_ood.pipeline.pixel_eval_stage`, :func:`~meta_ood.pipeline.meta_classify_stage`,
:func:`~meta_ood.pipeline.segment_eval_stage`). A missing or malformed file raises
:class:`~meta_ood.errors.InputError` naming it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.io import write_text_atomic

__all__ = [
    "DASH",
    "DATASET_NAMES",
    "dataset_title",
    "load_result",
    "parse_tag",
    "slug",
    "table1",
    "table2",
    "table3",
    "table_components",
]

DASH = "–"  # shown for a missing value (Markdown); LaTeX gets "--"
DATASET_NAMES = {
    "lostandfound": "LostAndFound",
    "fishyscapes_static": "Fishyscapes Static",
    "fishyscapes": "Fishyscapes",
    "fishyscapes_lostandfound": "Fishyscapes LostAndFound",
    "cityscapes_val": "Cityscapes val",
    "cityscapes": "Cityscapes",
}
#: Plain-text names of the pixel OoD scores (``evaluation.scorer``) for table titles.
SCORER_TITLES = {
    "entropy": "normalized entropy",
    "variation_ratio": "variation ratio",
    "margin": "probability margin",
    "msp": "1 - maximum softmax probability",
    "max_logit": "negated maximum logit",
    "energy": "free energy",
}
ACCEPTABLE_FROM = 0.3  # paper section 6.3: thresholds t >= 0.3 cost an acceptable loss of mIoU


# ------------------------------------------------------------------------------------ reading


def dataset_title(name: str | None) -> str:
    """Display name of a dataset key ("lostandfound" -> "LostAndFound")."""
    if name is None:
        return ""
    return DATASET_NAMES.get(str(name), str(name))


def slug(label: str) -> str:
    """CSV column prefix of a row/column label: "OoD training" -> "ood_training"."""
    s = re.sub(r"[^0-9a-z]+", "_", str(label).lower()).strip("_")
    return s or "x"


def load_result(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """Read one result JSON; InputError naming the file when it is missing, broken or of another kind.

    ``kind``: the expected ``kind`` field of a pixel-evaluation JSON ("ood" or "miou").
    """
    from meta_ood.pipeline import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if kind is not None and data.get("kind") != kind:
        what = {"ood": "the pixel evaluation of an OoD dataset (LostAndFound, Fishyscapes)",
                "miou": "the pixel evaluation of Cityscapes val (mIoU)"}.get(kind, kind)
        raise InputError(f"{path}: expected {what} with kind {kind!r}, got kind {data.get('kind')!r}")
    return data


def _require(data: Mapping[str, Any], key: str, path: str | os.PathLike, what: str = "") -> Any:
    if key not in data:
        raise InputError(f"{path}: lacks {key!r}{' ' + what if what else ''}")
    return data[key]


def parse_tag(tag: str, where: str = "") -> float:
    """Threshold of a file tag: "t0.3" -> 0.3."""
    m = re.fullmatch(r"t([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", str(tag))
    if not m:
        raise InputError(f"{where + ': ' if where else ''}threshold tag {tag!r}: expected 't<threshold>' such as 't0.3'")
    return float(m.group(1))


def check_entries(entries: Any, keys: Sequence[str], what: str, allow_empty: bool = False) -> list[dict[str, Any]]:
    """The entries of a table or figure as a list of dicts, each with ``keys``; InputError otherwise."""
    if isinstance(entries, Mapping):
        entries = [entries]
    if entries is None:
        entries = []
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise InputError(f"{what} #{i}: expected a mapping with keys {list(keys)}, got {type(e).__name__}")
        missing = [k for k in keys if k not in e]
        if missing:
            raise InputError(f"{what} #{i} ({dict(e)!r}) lacks {', '.join(map(repr, missing))}")
        out.append(dict(e))
    if not out and not allow_empty:
        raise InputError(f"no {what}s given: nothing to report")
    return out


def _num(value: Any) -> float | None:
    """A finite float, or None for null / NaN / non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(value: Any) -> int | None:
    v = _num(value)
    return None if v is None else int(round(v))


# --------------------------------------------------------------------------------- formatting


@dataclass
class Cell:
    """One displayed cell: its number (for bolding) and its Markdown and LaTeX text."""

    value: float | None
    text: str
    latex: str
    bold: bool = False


def _missing() -> Cell:
    return Cell(None, DASH, "--")


def fmt_float(value: Any, digits: int = 4) -> Cell:
    v = _num(value)
    if v is None:
        return _missing()
    s = f"{v:.{digits}f}"
    return Cell(v, s, s)


def fmt_count(value: Any) -> Cell:
    """Integer with thousands separators, as in the paper ("33,584")."""
    v = _int(value)
    if v is None:
        return _missing()
    s = f"{v:,}"
    return Cell(float(v), s, s.replace(",", "{,}"))


def fmt_eps(value: Any) -> Cell:
    """Road miss rate ε (a fraction) in percent with 2 decimals; values below 0.01 % as "< 0.01"."""
    v = _num(value)
    if v is None:
        return _missing()
    pct = 100.0 * v
    if pct == 0.0:
        return Cell(0.0, "0", "0")
    if pct < 0.01:
        return Cell(pct, "< 0.01", "$<$ 0.01")
    s = f"{pct:.2f}"
    return Cell(pct, s, s)


def fmt_ci(value: Any, ci: Any, digits: int = 4, ci_digits: int = 3) -> Cell:
    """A value with its bootstrap interval: "0.9312 [0.921, 0.940]"."""
    cell = fmt_float(value, digits)
    if cell.value is None or not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return cell
    lo, hi = _num(ci[0]), _num(ci[1])
    if lo is None or hi is None:
        return cell
    interval = f"[{lo:.{ci_digits}f}, {hi:.{ci_digits}f}]"
    return Cell(cell.value, f"{cell.text} {interval}", f"{cell.latex} {{\\scriptsize {interval}}}")


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def _bold_best(cells: Iterable[Cell], mode: str) -> None:
    """Mark the best (``"max"`` / ``"min"``) of the cells; ties are all marked; needs two values."""
    cells = [c for c in cells if c.value is not None]
    if len(cells) < 2:
        return
    values = np.array([c.value for c in cells])
    best = values.max() if mode == "max" else values.min()
    if (values == best).all():
        return
    for c in cells:
        if c.value == best:
            c.bold = True


# ------------------------------------------------------------------------------ table writers


@dataclass
class Header:
    """Header text in Markdown and LaTeX, spanning ``span`` data columns."""

    text: str
    latex: str
    span: int = 1


@dataclass
class Layout:
    """A displayed table: grouped header levels over the data columns, index columns, rows."""

    index: list[Header]                 # titles of the index (row label) columns
    levels: list[list[Header]]          # group levels above the column titles, top first
    columns: list[Header]               # titles of the data columns
    rows: list[tuple[list[Header], list[Cell]]] = field(default_factory=list)
    rules_before: set[int] = field(default_factory=set)  # rows preceded by a horizontal rule
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        n = len(self.columns)
        for level in self.levels:
            if sum(h.span for h in level) != n:
                raise ValueError(f"header level spans {sum(h.span for h in level)} columns, expected {n}")
        for labels, cells in self.rows:
            if len(labels) != len(self.index) or len(cells) != n:
                raise ValueError("row does not match the header")


def _md_header_titles(layout: Layout) -> list[str]:
    titles = []
    for j, col in enumerate(layout.columns):
        parts = []
        for level in layout.levels:
            start = 0
            for h in level:
                if start <= j < start + h.span and h.text:
                    parts.append(h.text)
                start += h.span
        parts.append(col.text)
        titles.append(" ".join(p for p in parts if p))
    return titles


def to_markdown(layout: Layout) -> str:
    """The layout as a Markdown pipe table (title line and notes around it)."""
    layout.check()
    head = [h.text for h in layout.index] + _md_header_titles(layout)
    lines = []
    if layout.title:
        lines += [layout.title, ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in head) + " |")
    lines.append("|" + "|".join([" :--- "] * len(layout.index) + [" ---: "] * len(layout.columns)) + "|")
    for labels, cells in layout.rows:
        texts = [_md_escape(h.text) for h in labels]
        for c in cells:
            t = _md_escape(c.text)
            texts.append(f"**{t}**" if c.bold and c.value is not None else t)
        lines.append("| " + " | ".join(texts) + " |")
    for note in layout.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def to_latex(layout: Layout) -> str:
    """The layout as a booktabs ``tabular`` (group headers with ``\\multicolumn`` and ``\\cmidrule``)."""
    layout.check()
    n_idx, n = len(layout.index), len(layout.columns)
    spec = "l" * n_idx + "r" * n
    lines = [f"% {layout.title}" if layout.title else "% meta-ood report table", f"\\begin{{tabular}}{{{spec}}}", r"\toprule"]
    for level in layout.levels:
        cells = [""] * n_idx
        rules = []
        start = n_idx + 1
        for h in level:
            if h.span == 1:
                cells.append(h.latex)
            else:
                cells.append(f"\\multicolumn{{{h.span}}}{{c}}{{{h.latex}}}")
            if h.latex:
                rules.append(f"\\cmidrule(lr){{{start}-{start + h.span - 1}}}")
            start += h.span
        lines.append(" & ".join(cells) + r" \\")
        if rules:
            lines.append(" ".join(rules))
    lines.append(" & ".join([h.latex for h in layout.index] + [h.latex for h in layout.columns]) + r" \\")
    lines.append(r"\midrule")
    for i, (labels, cells) in enumerate(layout.rows):
        if i in layout.rules_before and i > 0:
            lines.append(r"\midrule")
        texts = [h.latex for h in labels]
        texts += [f"\\textbf{{{c.latex}}}" if c.bold and c.value is not None else c.latex for c in cells]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _write_all(df: pd.DataFrame, layout: Layout, out_csv, out_md, out_tex) -> None:
    write_text_atomic(out_csv, df.to_csv(index=False))
    write_text_atomic(out_md, to_markdown(layout))
    write_text_atomic(out_tex, to_latex(layout))


def _int_columns(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for c in columns:
        if c in df:
            df[c] = df[c].astype("Int64")
    return df


def _t_label(t: float) -> Header:
    return Header(f"t = {t:.2f}", f"$t = {t:.2f}$")


def _rules_before(thresholds: Sequence[float], acceptable_from: float | None) -> set[int]:
    if acceptable_from is None:
        return set()
    first = next((i for i, t in enumerate(thresholds) if t >= acceptable_from - 1e-12), None)
    return {first} if first not in (None, 0) else set()


def _title_suffix(entries: Sequence[Mapping[str, Any]], default_dataset: str | None) -> str:
    models = sorted({str(e["model"]) for e in entries if e.get("model")})
    datasets = sorted({str(e["dataset"]) for e in entries if e.get("dataset")}) or ([default_dataset] if default_dataset else [])
    parts = [", ".join(dataset_title(d) for d in datasets), ", ".join(models)]
    parts = [p for p in parts if p]
    return f" ({'; '.join(parts)})" if parts else ""


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
) -> pd.DataFrame:
    """Paper table 1: pixel-wise OoD detection and Cityscapes val mIoU per model and training.

    ``pixel_entries``: ``{model, label, dataset, path}`` with ``path`` the pixel-evaluation JSON of
    an OoD dataset; ``miou_entries``: ``{model, label, path}`` with the Cityscapes val JSON.
    Rows: (model, label) in order of first appearance (label "Plain" / "OoD training"); column
    groups: one per OoD dataset (AUROC, FPR95, AUPRC, each with its image-bootstrap 95 % interval
    where the JSON has one) and "Cityscapes val" (mIoU without OoD class, key "inf"). The best value
    of each column is bold.

    CSV columns: ``model``, ``label``, ``<dataset>_<metric>``, ``<dataset>_<metric>_lo`` /
    ``_hi`` (metric in auroc, fpr95, auprc), ``cityscapes_val_miou``. Returns the CSV table.
    """
    pixel_entries = check_entries(pixel_entries, ("model", "label", "dataset", "path"), "table1 pixel entry", allow_empty=True)
    miou_entries = check_entries(miou_entries, ("model", "label", "path"), "table1 mIoU entry", allow_empty=True)
    if not pixel_entries and not miou_entries:
        raise InputError("table1: no pixel-evaluation entries given: nothing to report")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    datasets: list[str] = []
    scorers: list[str] = []
    for e in pixel_entries:
        key = (str(e["model"]), str(e["label"]))
        ds = str(e["dataset"])
        data = load_result(e["path"], kind="ood")
        row = rows.setdefault(key, {})
        if ds in row:
            raise InputError(f"table1: two pixel entries for model {key[0]!r}, {key[1]!r} on {ds!r} ({e['path']})")
        boot = data.get("bootstrap") or {}
        row[ds] = {m: (_num(_require(data, m, e["path"], "(pixel metric)")), boot.get(m)) for m, *_ in _PIXEL_METRICS}
        scorer = str(data.get("scorer") or "entropy")
        if scorer not in scorers:
            scorers.append(scorer)
        if ds not in datasets:
            datasets.append(ds)
    miou_key = "cityscapes_val"
    for e in miou_entries:
        key = (str(e["model"]), str(e["label"]))
        data = load_result(e["path"], kind="miou")
        miou = _require(data, "miou", e["path"], "(mIoU per threshold)")
        if not isinstance(miou, Mapping) or "inf" not in miou:
            raise InputError(f"{e['path']}: 'miou' lacks the plain mIoU without OoD class (key 'inf')")
        row = rows.setdefault(key, {})
        if miou_key in row:
            raise InputError(f"table1: two mIoU entries for model {key[0]!r}, {key[1]!r} ({e['path']})")
        row[miou_key] = _num(miou["inf"])
    has_miou = bool(miou_entries)

    records = []
    for (model, label), row in rows.items():
        rec: dict[str, Any] = {"model": model, "label": label}
        for ds in datasets:
            for m, *_ in _PIXEL_METRICS:
                value, ci = row.get(ds, {}).get(m, (None, None))
                ok = isinstance(ci, (list, tuple)) and len(ci) == 2
                rec[f"{ds}_{m}"] = value
                rec[f"{ds}_{m}_lo"] = _num(ci[0]) if ok else None
                rec[f"{ds}_{m}_hi"] = _num(ci[1]) if ok else None
        if has_miou:
            rec[f"{miou_key}_miou"] = row.get(miou_key)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    for c in df.columns[2:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)

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
              "95 % image-bootstrap intervals in brackets",
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
        _bold_best([cells[j] for cells in grid], mode)
    _write_all(df, layout, out_csv, out_md, out_tex)
    return df


# ------------------------------------------------------------------------------------ table 2

_ERROR_COLUMNS = (
    ("FP ↓", r"FP $\downarrow$"),
    ("FN ↓", r"FN $\downarrow$"),
    ("Σ ↓", r"$\sum$ $\downarrow$"),
    ("ε in % ↓", r"$\varepsilon$ in \% $\downarrow$"),
)


def _thresholds_of(data: Mapping[str, Any], path: Any) -> dict[float, dict[str, Any]]:
    per_t = _require(data, "thresholds", path, "(per-threshold results of segment_eval)")
    if not isinstance(per_t, Mapping):
        raise InputError(f"{path}: 'thresholds' must map tags such as 't0.3' to results")
    out = {}
    for tag, value in per_t.items():
        if not isinstance(value, Mapping):
            raise InputError(f"{path}: thresholds[{tag!r}] must be an object")
        out[parse_tag(tag, str(path))] = dict(value)
    return out


def _load_segment_eval(entries: Sequence[Mapping[str, Any]]) -> tuple[list[dict[float, dict[str, Any]]], list[float]]:
    per_entry = [_thresholds_of(load_result(e["path"]), e["path"]) for e in entries]
    thresholds = sorted({t for d in per_entry for t in d})
    if not thresholds:
        raise InputError(f"{entries[0]['path']}: no thresholds evaluated")
    return per_entry, thresholds


def _unique_labels(entries: Sequence[Mapping[str, Any]], what: str) -> None:
    seen = set()
    for e in entries:
        if str(e["label"]) in seen:
            raise InputError(f"{what}: label {e['label']!r} appears twice ({e['path']})")
        seen.add(str(e["label"]))


def table2(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    acceptable_from: float | None = ACCEPTABLE_FROM,
) -> pd.DataFrame:
    """Paper table 2: detection errors of OoD objects per entropy threshold t.

    ``entries``: ``{label, path}`` (optionally ``model``, ``dataset`` for the title), ``path`` a
    segment_eval JSON. Rows: thresholds t; for each entry two column groups, "<label>" (before)
    and "<label> + Meta Classifier" (after removing the segments the meta classifier calls FP),
    each with FP, FN, Σ = FP + FN and the road miss rate ε in % ("< 0.01" below 0.01 %). The
    smallest Σ of each group is bold; a horizontal rule (LaTeX ``\\midrule``) separates the
    thresholds below ``acceptable_from`` (paper: t >= 0.3 is acceptable) from the rest.

    CSV columns: ``t`` and per entry ``<slug>_fp``, ``_fn``, ``_total``, ``_eps`` (fraction),
    ``<slug>_meta_fp``, ``_meta_fn``, ``_meta_total``, ``_meta_eps``, ``<slug>_n_pred``,
    ``<slug>_n_removed``.
    """
    entries = check_entries(entries, ("label", "path"), "table2 entry")
    _unique_labels(entries, "table2")
    per_entry, thresholds = _load_segment_eval(entries)
    stages = (("", "before"), ("meta_", "after"))
    records = []
    for t in thresholds:
        rec: dict[str, Any] = {"t": t}
        for e, data in zip(entries, per_entry):
            s, r = slug(e["label"]), data.get(t, {})
            for prefix, when in stages:
                rec[f"{s}_{prefix}fp"] = _int(r.get(f"fp_{when}"))
                rec[f"{s}_{prefix}fn"] = _int(r.get(f"fn_{when}"))
                rec[f"{s}_{prefix}total"] = _int(r.get(f"total_{when}"))
                rec[f"{s}_{prefix}eps"] = _num(r.get(f"eps_{when}"))
            rec[f"{s}_n_pred"] = _int(r.get("n_pred"))
            rec[f"{s}_n_removed"] = _int(r.get("n_removed"))
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    _int_columns(df, [c for c in df.columns if not c.endswith("eps") and c != "t"])
    for c in [c for c in df.columns if c.endswith("eps")]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)

    groups, columns = [], []
    for e in entries:
        label = str(e["label"])
        for name in (label, f"{label} + Meta Classifier"):
            groups.append(Header(name, latex_escape(name), len(_ERROR_COLUMNS)))
            columns += [Header(a, b) for a, b in _ERROR_COLUMNS]
    layout = Layout(
        index=[Header("Entropy threshold", r"$\bar{E} \geq t$")],
        levels=[groups],
        columns=columns,
        rules_before=_rules_before(thresholds, acceptable_from),
        title="Table 2: detection errors of OoD objects at entropy thresholds t" + _title_suffix(entries, "lostandfound"),
    )
    if layout.rules_before and acceptable_from is not None:
        layout.notes.append(f"From t = {acceptable_from:.2f} on (LaTeX: below the horizontal rule) the loss in "
                            "original performance is considered acceptable (paper section 6.3).")
    sums: list[list[Cell]] = [[] for _ in range(2 * len(entries))]
    for rec in records:
        cells = []
        for k, e in enumerate(entries):
            s = slug(e["label"])
            for g, (prefix, _) in enumerate(stages):
                total = fmt_count(rec[f"{s}_{prefix}total"])
                cells += [fmt_count(rec[f"{s}_{prefix}fp"]), fmt_count(rec[f"{s}_{prefix}fn"]), total,
                          fmt_eps(rec[f"{s}_{prefix}eps"])]
                sums[2 * k + g].append(total)
        layout.rows.append(([_t_label(rec["t"])], cells))
    for col in sums:
        _bold_best(col, "min")
    _write_all(df, layout, out_csv, out_md, out_tex)
    return df


# ------------------------------------------------------------------------------------ table 3

PROTOCOL_TITLES = {"loo": "Leave-one-out", "logo": "Leave-one-image-out"}
PROTOCOL_SHORT = {"loo": "LOO", "logo": "LOGO"}


def table3(
    entries: Sequence[Mapping[str, Any]],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike,
    out_tex: str | os.PathLike,
    acceptable_from: float | None = None,
) -> pd.DataFrame:
    """Paper table 3: meta classification (FP vs TP segments) against the MSP baseline per threshold.

    ``entries``: ``{label, tag, path}`` (optionally ``model``, ``dataset``), ``path`` the meta
    JSON of threshold ``tag`` ("t0.3"). Rows: thresholds; the "Leave-one-out" block (the paper's
    protocol) has per label "<label> + MSP" (AUROC, AUPRC of the maximum softmax probability)
    and "<label> + Meta C." (AUROC, AUPRC of the meta classifier); a "Leave-one-image-out" block
    with "<label> + Meta C." follows when the JSONs have that protocol (the MSP baseline does not
    depend on the protocol). Missing values are "–"; the best AUROC and AUPRC of each row and block
    are bold.

    CSV columns: ``t`` and per label ``<slug>_msp_auroc``, ``_msp_auprc``, and per protocol p
    ``<slug>_<p>_auroc``, ``_<p>_auprc``, ``_<p>_accuracy``; ``<slug>_n_segments``.
    """
    entries = check_entries(entries, ("label", "tag", "path"), "table3 entry")
    labels: list[str] = []
    values: dict[tuple[str, float], dict[str, Any]] = {}
    protocols_seen: list[str] = []
    for e in entries:
        label, t = str(e["label"]), parse_tag(e["tag"], str(e["path"]))
        if (label, t) in values:
            raise InputError(f"table3: two entries for {label!r} at {e['tag']} ({e['path']})")
        data = load_result(e["path"])
        protocols = _require(data, "protocols", e["path"], "(meta classification results per protocol)")
        if not isinstance(protocols, Mapping):
            raise InputError(f"{e['path']}: 'protocols' must be an object")
        v: dict[str, Any] = {"n_segments": _int(data.get("n_segments"))}
        msp_auroc = msp_auprc = None
        for p, res in protocols.items():
            if p not in protocols_seen:
                protocols_seen.append(p)
            res = res if isinstance(res, Mapping) else {}
            v[f"{p}_auroc"], v[f"{p}_auprc"], v[f"{p}_accuracy"] = (_num(res.get(k)) for k in ("auroc", "auprc", "accuracy"))
            if msp_auroc is None or p == "loo":
                msp_auroc = _num(res.get("msp_auroc")) if _num(res.get("msp_auroc")) is not None else msp_auroc
                msp_auprc = _num(res.get("msp_auprc")) if _num(res.get("msp_auprc")) is not None else msp_auprc
        v["msp_auroc"], v["msp_auprc"] = msp_auroc, msp_auprc
        values[(label, t)] = v
        if label not in labels:
            labels.append(label)
    order = {"loo": 0, "logo": 1}
    protocols_seen.sort(key=lambda p: (order.get(p, 2), p))
    if not protocols_seen:
        protocols_seen = ["loo"]
    thresholds = sorted({t for _, t in values})

    records = []
    for t in thresholds:
        rec: dict[str, Any] = {"t": t}
        for label in labels:
            s, v = slug(label), values.get((label, t), {})
            rec[f"{s}_msp_auroc"], rec[f"{s}_msp_auprc"] = v.get("msp_auroc"), v.get("msp_auprc")
            for p in protocols_seen:
                for k in ("auroc", "auprc", "accuracy"):
                    rec[f"{s}_{p}_{k}"] = v.get(f"{p}_{k}")
            rec[f"{s}_n_segments"] = v.get("n_segments")
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    for c in df.columns:
        if c.endswith("n_segments"):
            df[c] = df[c].astype("Int64")
        elif c != "t":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)

    # column plan: (protocol block, group title, csv key of AUROC, of AUPRC)
    plan: list[tuple[str, str, str, str]] = []
    for p in protocols_seen:
        for label in labels:
            s = slug(label)
            if p == protocols_seen[0]:
                plan.append((p, f"{label} + MSP", f"{s}_msp_auroc", f"{s}_msp_auprc"))
            plan.append((p, f"{label} + Meta C.", f"{s}_{p}_auroc", f"{s}_{p}_auprc"))
    blocks = []
    for p in protocols_seen:
        n = 2 * sum(1 for q, *_ in plan if q == p)
        title = PROTOCOL_TITLES.get(p, p) + (" (paper)" if p == "loo" else "")
        blocks.append(Header(PROTOCOL_SHORT.get(p, p), latex_escape(title), n))
    groups = [Header(g, latex_escape(g), 2) for _, g, _, _ in plan]
    columns = [Header(a, b) for _ in plan for a, b in (("AUROC ↑", r"AUROC $\uparrow$"), ("AUPRC ↑", r"AUPRC $\uparrow$"))]
    layout = Layout(
        index=[Header("Entropy threshold", "Entropy threshold")],
        levels=[blocks, groups],
        columns=columns,
        rules_before=_rules_before(thresholds, acceptable_from),
        title="Table 3: meta classification of OoD segments (FP vs TP) vs maximum softmax probability (MSP)"
              + _title_suffix(entries, "lostandfound"),
    )
    layout.notes.append("; ".join(f"{PROTOCOL_SHORT.get(p, p)} = {PROTOCOL_TITLES.get(p, p).lower()}"
                                  + (" (the paper's protocol)" if p == "loo" else "") for p in protocols_seen)
                        + ". The MSP baseline does not depend on the protocol.")
    for rec in records:
        cells: list[Cell] = []
        for _, _, k_roc, k_prc in plan:
            cells += [fmt_float(rec.get(k_roc)), fmt_float(rec.get(k_prc))]
        for p in protocols_seen:
            idx = [i for i, (q, *_) in enumerate(plan) if q == p]
            _bold_best([cells[2 * i] for i in idx], "max")
            _bold_best([cells[2 * i + 1] for i in idx], "max")
        layout.rows.append(([_t_label(rec["t"])], cells))
    _write_all(df, layout, out_csv, out_md, out_tex)
    return df


# ------------------------------------------------------------------------- component metrics


def component_values(comp: Any) -> dict[str, Any]:
    """sIoU (mean over ground-truth components), PPV (mean over predicted components), mean F1,
    n_gt, n_pred of one ``components`` entry of a segment_eval JSON (None where unknown).

    Accepts the single-pass summary (``siou`` as the per-component values or their mean, or
    ``siou_gt``) and the merged per-shard form ``{"per_shard": [...]}``: sIoU and PPV are pooled
    exactly (component counts as weights), mean F1 only when the shards carry their TP/FN/FP
    counts or there is a single shard.
    """
    empty = {"siou": None, "ppv": None, "f1_mean": None, "n_gt": None, "n_pred": None}
    if not isinstance(comp, Mapping):
        return empty
    if "per_shard" in comp:
        shards = [s for s in comp["per_shard"] if isinstance(s, Mapping)]
        if not shards:
            return empty
        if len(shards) == 1:
            return component_values(shards[0])
        vals = [component_values(s) for s in shards]
        n_gt = sum(v["n_gt"] or 0 for v in vals)
        n_pred = sum(v["n_pred"] or 0 for v in vals)
        siou = _weighted([(v["siou"], v["n_gt"]) for v in vals])
        ppv = _weighted([(v["ppv"], v["n_pred"]) for v in vals])
        f1_mean = None
        if all(all(k in s for k in ("tp", "fn", "fp")) for s in shards):
            tp = np.sum([np.asarray(s["tp"], float) for s in shards], axis=0)
            fn = np.sum([np.asarray(s["fn"], float) for s in shards], axis=0)
            fp = np.sum([np.asarray(s["fp"], float) for s in shards], axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                f1_mean = _num(np.mean(2 * tp / (2 * tp + fn + fp)))
        return {"siou": siou, "ppv": ppv, "f1_mean": f1_mean, "n_gt": n_gt, "n_pred": n_pred}
    if "siou_gt" in comp:
        siou = _num(comp["siou_gt"])
    elif isinstance(comp.get("siou"), (list, tuple)):
        arr = np.asarray([np.nan if x is None else x for x in comp["siou"]], dtype=float)
        siou = _num(np.nanmean(arr)) if np.isfinite(arr).any() else None
    else:
        siou = _num(comp.get("siou"))
    return {"siou": siou, "ppv": _num(comp.get("ppv")), "f1_mean": _num(comp.get("f1_mean")),
            "n_gt": _int(comp.get("n_gt")), "n_pred": _int(comp.get("n_pred"))}


def _weighted(pairs: Sequence[tuple[float | None, int | None]]) -> float | None:
    num = den = 0.0
    for v, w in pairs:
        if v is not None and w:
            num += v * w
            den += w
    return num / den if den > 0 else None


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

    CSV columns: ``t`` and per label ``<slug>_siou``, ``_ppv``, ``_f1_mean``, ``_n_gt``, ``_n_pred``.
    """
    entries = check_entries(entries, ("label", "path"), "table_components entry")
    _unique_labels(entries, "table_components")
    per_entry, thresholds = _load_segment_eval(entries)
    records = []
    for t in thresholds:
        rec: dict[str, Any] = {"t": t}
        for e, data in zip(entries, per_entry):
            s = slug(e["label"])
            for k, v in component_values(data.get(t, {}).get("components")).items():
                rec[f"{s}_{k}"] = v
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    for c in df.columns:
        if c.endswith(("_n_gt", "_n_pred")):
            df[c] = df[c].astype("Int64")
        elif c != "t":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    groups = [Header(str(e["label"]), latex_escape(str(e["label"])), len(_COMPONENT_COLUMNS)) for e in entries]
    columns = [Header(a, b) for _ in entries for _, a, b in _COMPONENT_COLUMNS]
    layout = Layout(
        index=[Header("Entropy threshold", r"$\bar{E} \geq t$")],
        levels=[groups],
        columns=columns,
        rules_before=_rules_before(thresholds, acceptable_from),
        title="Component-level metrics (SegmentMeIfYouCan) of the OoD segments at entropy thresholds t"
              + _title_suffix(entries, "lostandfound"),
    )
    grid = []
    for rec in records:
        cells = [fmt_float(rec[f"{slug(e['label'])}_{k}"]) for e in entries for k, *_ in _COMPONENT_COLUMNS]
        grid.append(cells)
        layout.rows.append(([_t_label(rec["t"])], cells))
    for j in range(len(columns)):
        _bold_best([cells[j] for cells in grid], "max")
    _write_all(df, layout, out_csv, out_md, out_tex)
    return df
