"""Tests of the report tables: every cell is the number of the JSON it came from, and the Markdown
and LaTeX tables have the shape of the paper's; results are read and checked as documented.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_data import (
    LABELS,
    MODEL,
    SEG_LABELS,
    SEGMENT_DATASETS,
    THRESHOLDS,
    _load,
    _meta_entries,
    _meta_entries_of,
    _miou_entries,
    _outs,
    _pixel,
    _pixel_entries,
    _seg_entries,
    _seg_entries_of,
    shared_results,
)

from meta_ood import report
from meta_ood import stages as pl
from meta_ood.errors import InputError
from meta_ood.report import results

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_results(tmp_path_factory)


# ------------------------------------------------------------------------------ table parsing


def _md_table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and body rows of the (only) pipe table of a Markdown file."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    assert all(set(c) <= set(":- ") for c in split[1]), "second line must be the alignment row"
    return split[0], split[2:]


def _latex_table(text: str) -> tuple[int, list[list[str]], list[str]]:
    """(number of columns of the spec, cells of every row ending in \\\\, all lines)."""
    assert text.count(r"\begin{tabular}") == 1 and text.count(r"\end{tabular}") == 1
    assert text.index(r"\begin{tabular}") < text.index(r"\toprule") < text.index(r"\bottomrule") < text.index(r"\end{tabular}")
    spec = re.search(r"\\begin\{tabular\}\{([lcr|]+)\}", text).group(1)
    n = sum(ch in "lcr" for ch in spec)
    lines = text.splitlines()
    rows = []
    for ln in lines:
        if ln.rstrip().endswith("\\\\"):
            cells = [c.strip() for c in re.split(r"(?<!\\)&", ln.rstrip()[:-2])]
            width = sum(int(m.group(1)) if (m := re.match(r"\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)
            assert width == n, f"row with {width} columns in a {n}-column tabular: {ln}"
            rows.append(cells)
    assert text.count("{") == text.count("}"), "unbalanced braces"
    return n, rows, lines


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


# ----------------------------------------------------------------------------------- table 1


def test_table1_cells_are_the_json_numbers(run, tmp_path):
    out = _outs(tmp_path, "table1")
    report.table1(_pixel_entries(run), _miou_entries(run), **out)
    df = _csv(out["out_csv"])
    assert list(df["label"]) == ["Plain", "OoD training"] and list(df["model"]) == [MODEL, MODEL]
    for i, (label, variant) in enumerate(LABELS):
        for ds in ("lostandfound", "fishyscapes_static"):
            res = _load(_pixel(run, variant, ds))
            for m in ("auroc", "fpr95", "auprc"):
                assert df.loc[i, f"{ds}_{m}"] == pytest.approx(res[m], rel=1e-12)
                assert df.loc[i, f"{ds}_{m}_lo"] == pytest.approx(res["bootstrap"][m][0], rel=1e-12)
                assert df.loc[i, f"{ds}_{m}_hi"] == pytest.approx(res["bootstrap"][m][1], rel=1e-12)
        miou = _load(_pixel(run, variant, "cityscapes_val"))["miou"]["inf"]
        assert df.loc[i, "cityscapes_val_miou"] == pytest.approx(miou, rel=1e-12)

    header, rows = _md_table(out["out_md"].read_text())
    assert header[:2] == ["Model", "Training"] and len(header) == 2 + 3 * 2 + 1
    assert header[2] == "LostAndFound AUROC ↑" and header[-1] == "Cityscapes val mIoU ↑"
    assert len(rows) == 2
    laf = _load(_pixel(run, "baseline", "lostandfound"))
    lo, hi = laf["bootstrap"]["auroc"]
    assert rows[0][2].strip("*") == f"{laf['auroc']:.4f} ±{(hi - lo) / 2:.3f}"
    # OoD training separates better in the fixture: its AUROC / FPR95 cells are the bold ones
    assert rows[1][2].startswith("**") and not rows[0][2].startswith("**")
    assert rows[1][3].startswith("**") and not rows[0][3].startswith("**")
    # the HTML of the report: the Markdown's cells, bold where it is bold
    page = (tmp_path / "table1.html").read_text()
    cells = re.findall(r"<td(?: class=\"label\")?>(.*?)</td>", page)
    assert cells == [c.replace("**", "") if not c.startswith("**") else f"<b>{c.strip('*')}</b>"
                     for row in rows for c in row]

    n, tex_rows, _ = _latex_table(out["out_tex"].read_text())
    assert n == 9
    assert r"\multicolumn{3}{c}{LostAndFound}" in out["out_tex"].read_text()
    assert tex_rows[-1][:2] == [MODEL, "OoD training"] and tex_rows[-1][2].startswith(r"\textbf{")


def test_table1_without_bootstrap_and_without_miou(run, tmp_path):
    entries = _pixel_entries(run)[:1]
    data = _load(entries[0]["path"])
    del data["bootstrap"]
    (tmp_path / "noboot.json").write_text(json.dumps(data))
    entries[0]["path"] = str(tmp_path / "noboot.json")
    out = _outs(tmp_path, "t1")
    report.table1(entries, [], **out)
    df = _csv(out["out_csv"])
    assert np.isnan(df.loc[0, "lostandfound_auroc_lo"]) and "cityscapes_val_miou" not in df
    header, rows = _md_table(out["out_md"].read_text())
    assert len(header) == 2 + 3 and rows[0][2] == f"{data['auroc']:.4f}"
    n, _, _ = _latex_table(out["out_tex"].read_text())
    assert n == 5
    assert "(normalized entropy)" in out["out_md"].read_text()


def test_table1_title_names_the_scorer(run, tmp_path):
    entries = _pixel_entries(run)[:1]
    data = _load(entries[0]["path"])
    data["scorer"] = "max_logit"
    (tmp_path / "logit.json").write_text(json.dumps(data))
    entries[0]["path"] = str(tmp_path / "logit.json")
    out = _outs(tmp_path, "t1")
    report.table1(entries, [], **out)
    text = out["out_md"].read_text()
    assert "(negated maximum logit)" in text and "normalized entropy" not in text


def test_table1_missing_metric_is_a_dash(run, tmp_path):
    entries = _pixel_entries(run)
    data = _load(entries[1]["path"])  # Plain on Fishyscapes
    data["fpr95"] = None
    (tmp_path / "nofpr.json").write_text(json.dumps(data))
    entries[1]["path"] = str(tmp_path / "nofpr.json")
    out = _outs(tmp_path, "t1")
    report.table1(entries, _miou_entries(run), **out)
    _, rows = _md_table(out["out_md"].read_text())
    assert rows[0][6] == "–"  # Fishyscapes FPR95 of the plain model
    assert "& -- &" in out["out_tex"].read_text()
    assert np.isnan(_csv(out["out_csv"]).loc[0, "fishyscapes_static_fpr95"])


# ----------------------------------------------------------------------------------- table 2


def test_table2_cells_rule_and_formatting(run, tmp_path):
    out = _outs(tmp_path, "table2")
    report.table2(_seg_entries(run), **out)
    df = _csv(out["out_csv"])
    assert df["t"].tolist() == list(THRESHOLDS)
    for label, variant in SEG_LABELS:
        res = _load(run / "segment_eval" / MODEL / variant / "lostandfound.json")["thresholds"]
        s = results.slug(label)
        for i, t in enumerate(THRESHOLDS):
            r = res[pl.threshold_tag(t)]
            assert df.loc[i, f"{s}_fp"] == r["fp_before"] and df.loc[i, f"{s}_fn"] == r["fn_before"]
            assert df.loc[i, f"{s}_total"] == r["fp_before"] + r["fn_before"]
            assert df.loc[i, f"{s}_meta_fp"] == r["fp_after"] and df.loc[i, f"{s}_meta_fn"] == r["fn_after"]
            assert df.loc[i, f"{s}_eps"] == pytest.approx(r["eps_before"], rel=1e-12)
            assert df.loc[i, f"{s}_meta_eps"] == pytest.approx(r["eps_after"], rel=1e-12)
            assert df.loc[i, f"{s}_n_removed"] == r["n_removed"]

    header, rows = _md_table(out["out_md"].read_text())
    assert len(header) == 1 + 4 * 4 and len(rows) == len(THRESHOLDS)
    assert header[1] == "Baseline FP ↓" and header[5] == "Baseline + Meta Classifier FP ↓"
    assert header[9] == "OoD training FP ↓" and header[16] == "OoD training + Meta Classifier ε in % ↓"
    r03 = _load(_seg_entries(run)[0]["path"])["thresholds"]["t0.3"]
    row = rows[THRESHOLDS.index(0.3)]
    assert row[0] == "t = 0.30"
    assert row[1] == f"{r03['fp_before']:,}" and row[4] == f"{100 * r03['eps_before']:.2f}"

    n, tex_rows, lines = _latex_table(out["out_tex"].read_text())
    assert n == 17
    i02 = next(i for i, ln in enumerate(lines) if ln.startswith("$t = 0.20$"))
    i03 = next(i for i, ln in enumerate(lines) if ln.startswith("$t = 0.30$"))
    assert i03 == i02 + 2 and lines[i02 + 1] == r"\midrule"
    assert sum(ln == r"\midrule" for ln in lines) == 2  # under the header and between 0.2 and 0.3


def test_table2_small_eps_and_missing_meta(run, tmp_path):
    data = _load(_seg_entries(run)[0]["path"])
    r = data["thresholds"]["t0.5"]
    r["eps_before"], r["eps_after"] = 4e-5, 0.0
    for key in ("fp_after", "fn_after", "total_after"):
        r[key] = None
    big = data["thresholds"]["t0.1"]
    big["fp_before"], big["total_before"] = 33584, 33584 + big["fn_before"]
    (tmp_path / "seg.json").write_text(json.dumps(data))
    out = _outs(tmp_path, "t2")
    report.table2([{"label": "Baseline", "path": str(tmp_path / "seg.json")}], **out)
    _, rows = _md_table(out["out_md"].read_text())
    row = rows[THRESHOLDS.index(0.5)]
    assert row[4] == "< 0.01" and row[8] == "0"
    assert row[5] == row[6] == "–" and row[7].strip("*") == "–"
    assert rows[0][1] == "33,584"
    tex = out["out_tex"].read_text()
    assert "$<$ 0.01" in tex and "33{,}584" in tex
    df = _csv(out["out_csv"])
    assert pd.isna(df.loc[THRESHOLDS.index(0.5), "baseline_meta_fp"])
    assert df.loc[THRESHOLDS.index(0.5), "baseline_eps"] == pytest.approx(4e-5)


def test_table2_no_rule_when_all_thresholds_are_acceptable(run, tmp_path):
    data = _load(_seg_entries(run)[0]["path"])
    data["thresholds"] = {k: v for k, v in data["thresholds"].items() if results.parse_tag(k) >= 0.3}
    (tmp_path / "seg.json").write_text(json.dumps(data))
    out = _outs(tmp_path, "t2")
    report.table2([{"label": "Baseline", "path": str(tmp_path / "seg.json")}], **out)
    _, _, lines = _latex_table(out["out_tex"].read_text())
    assert sum(ln == r"\midrule" for ln in lines) == 1


def test_table2_bolds_the_smallest_sum_among_acceptable_thresholds_only(run, tmp_path):
    """A smaller Σ below acceptable_from (where the paper deems the loss unacceptable) is not the bold one."""
    data = _load(_seg_entries(run)[0]["path"])
    tags = sorted(data["thresholds"], key=results.parse_tag)
    low, ok = tags[0], [k for k in tags if results.parse_tag(k) >= 0.3]
    data["thresholds"][low].update(fp_before=0, fn_before=0, total_before=0)  # the overall minimum, at t < 0.3
    for k, v in zip(ok, range(len(ok))):
        data["thresholds"][k].update(fp_before=5 + v, fn_before=0, total_before=5 + v)
    (tmp_path / "seg.json").write_text(json.dumps(data))
    out = _outs(tmp_path, "t2")
    report.table2([{"label": "Baseline", "path": str(tmp_path / "seg.json")}], **out, acceptable_from=0.3)
    _, rows = _md_table(out["out_md"].read_text())
    totals = [r[3] for r in rows]
    assert totals[0] == "0" and totals[[results.parse_tag(k) for k in tags].index(results.parse_tag(ok[0]))] == "**5**"
    assert sum(t.startswith("**") for t in totals) == 1
    report.table2([{"label": "Baseline", "path": str(tmp_path / "seg.json")}], **out, acceptable_from=None)
    _, rows = _md_table(out["out_md"].read_text())
    assert rows[0][3] == "**0**"


# ----------------------------------------------------------------------------------- table 3


def test_table3_cells_are_the_json_numbers(run, tmp_path):
    out = _outs(tmp_path, "table3")
    report.table3(_meta_entries(run), **out)
    df = _csv(out["out_csv"])
    assert df["t"].tolist() == list(THRESHOLDS)
    for e in _meta_entries(run):
        res = _load(e["path"])
        i = THRESHOLDS.index(results.parse_tag(e["tag"]))
        s = results.slug(e["label"])
        loo, logo = res["protocols"]["loo"], res["protocols"]["logo"]
        assert df.loc[i, f"{s}_loo_auroc"] == pytest.approx(loo["auroc"], rel=1e-12)
        assert df.loc[i, f"{s}_loo_auprc"] == pytest.approx(loo["auprc"], rel=1e-12)
        assert df.loc[i, f"{s}_logo_auroc"] == pytest.approx(logo["auroc"], rel=1e-12)
        assert df.loc[i, f"{s}_msp_auroc"] == pytest.approx(loo["msp_auroc"], rel=1e-12)
        assert df.loc[i, f"{s}_msp_auprc"] == pytest.approx(loo["msp_auprc"], rel=1e-12)
        assert df.loc[i, f"{s}_n_segments"] == res["n_segments"]

    header, rows = _md_table(out["out_md"].read_text())
    # loo: 2 labels x (MSP, Meta C.) x (AUROC, AUPRC); logo: 2 labels x Meta C. x 2
    assert len(header) == 1 + 8 + 4 and len(rows) == len(THRESHOLDS)
    assert header[1] == "LOO Baseline + MSP AUROC ↑" and header[3] == "LOO Baseline + Meta C. AUROC ↑"
    assert header[-1] == "LOGO OoD training + Meta C. AUPRC ↑"
    res = _load(_meta_entries(run)[THRESHOLDS.index(0.3)]["path"])
    assert rows[THRESHOLDS.index(0.3)][3].removesuffix(" ≈").strip("*") == f"{res['protocols']['loo']['auroc']:.4f}"
    text = out["out_md"].read_text()
    assert "LOGO = leave-one-image-out" in text

    n, tex_rows, _ = _latex_table(out["out_tex"].read_text())
    tex = out["out_tex"].read_text()
    assert n == 13
    assert r"\multicolumn{8}{c}{Leave-one-out (paper)}" in tex and r"\multicolumn{4}{c}{Leave-one-image-out}" in tex


def test_table3_missing_values_are_dashes(run, tmp_path):
    entries = [e for e in _meta_entries(run) if e["label"] == "Baseline"]
    entries += [e for e in _meta_entries(run) if e["label"] == "OoD training" and e["tag"] == "t0.3"]
    empty = {"segments": "x", "features": "paper", "n_features": 46, "n_segments": 0,
             "protocols": {"loo": {"fallback": "no_segments", "n": 0}}}
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    entries[THRESHOLDS.index(0.7)]["path"] = str(tmp_path / "empty.json")
    out = _outs(tmp_path, "t3")
    report.table3(entries, **out)
    _, rows = _md_table(out["out_md"].read_text())
    assert rows[THRESHOLDS.index(0.7)][1:5] == ["–"] * 4       # Baseline at t = 0.7: no segments
    assert rows[THRESHOLDS.index(0.1)][5:9] == ["–"] * 4       # OoD training only evaluated at t = 0.3
    assert rows[THRESHOLDS.index(0.3)][7] != "–"
    df = _csv(out["out_csv"])
    assert df.loc[THRESHOLDS.index(0.7), "baseline_n_segments"] == 0
    assert np.isnan(df.loc[THRESHOLDS.index(0.7), "baseline_loo_auroc"])
    _latex_table(out["out_tex"].read_text())


# ------------------------------------------------------------------------- component metrics


def test_table_components_pools_the_component_values(run, tmp_path):
    out = _outs(tmp_path, "table_components")
    report.table_components(_seg_entries(run), **out)
    df = _csv(out["out_csv"])
    comp = _load(_seg_entries(run)[0]["path"])["thresholds"]["t0.3"]["components"]
    i = THRESHOLDS.index(0.3)
    siou = comp["siou"]
    expected = float(np.mean(siou)) if isinstance(siou, list) else comp.get("siou_gt", siou)
    assert df.loc[i, "baseline_siou"] == pytest.approx(expected, rel=1e-12)
    assert df.loc[i, "baseline_ppv"] == pytest.approx(comp["ppv"], rel=1e-12)
    assert df.loc[i, "baseline_f1_mean"] == pytest.approx(comp["f1_mean"], rel=1e-12)
    assert df.loc[i, "baseline_n_pred"] == comp["n_pred"]
    header, rows = _md_table(out["out_md"].read_text())
    assert header == ["Entropy threshold", "Baseline sIoU ↑", "Baseline PPV ↑", "Baseline mean F1 ↑",
                      "OoD training sIoU ↑", "OoD training PPV ↑", "OoD training mean F1 ↑"]
    assert len(rows) == len(THRESHOLDS)
    n, _, _ = _latex_table(out["out_tex"].read_text())
    assert n == 7


def test_table_components_marks_degenerate_rows(run, tmp_path):
    """A threshold where no predicted (or no ground-truth) component survives the size filter gets a footnote."""
    data = _load(_seg_entries(run)[0]["path"])
    comp = data["thresholds"]["t0.7"]["components"]
    comp.update(n_pred=0, ppv=None, siou=[0.0] * max(1, int(comp.get("n_gt") or 1)), f1_mean=0.0)
    (tmp_path / "seg.json").write_text(json.dumps(data))
    out = _outs(tmp_path, "tc")
    report.table_components([{"label": "Baseline", "path": str(tmp_path / "seg.json")}], **out)
    md = out["out_md"].read_text()
    _, rows = _md_table(md)
    marked = [r[0] for r in rows if r[0].endswith("†")]
    assert marked == ["t = 0.70 †"] and "† no predicted component passes the size filter" in md
    assert "‡" not in md and r"$t = 0.70$$^\dagger$" in out["out_tex"].read_text()


def test_component_values_of_merged_shards():
    a = {"siou": [0.5, 1.0], "ppv": 0.25, "f1_mean": 0.4, "n_gt": 2, "n_pred": 4,
         "tp": [2, 1], "fn": [0, 1], "fp": [3, 3]}
    b = {"siou": [0.0], "ppv": 1.0, "f1_mean": 0.5, "n_gt": 1, "n_pred": 1, "tp": [0, 0], "fn": [1, 1], "fp": [0, 0]}
    v = results.component_values({"per_shard": [a, b]})
    assert v["siou"] == pytest.approx(0.5) and v["ppv"] == pytest.approx((0.25 * 4 + 1.0) / 5)
    assert v["n_gt"] == 3 and v["n_pred"] == 5
    tp, fn, fp = np.array([2, 1]), np.array([1, 2]), np.array([3, 3])
    assert v["f1_mean"] == pytest.approx(np.mean(2 * tp / (2 * tp + fn + fp)))
    no_counts = {"per_shard": [{k: x for k, x in a.items() if k not in ("tp", "fn", "fp")}, b]}
    assert results.component_values(no_counts)["f1_mean"] is None
    assert results.component_values({"per_shard": [a]})["f1_mean"] == 0.4
    assert results.component_values({"siou_gt": 0.3, "siou": [1.0], "ppv": None})["siou"] == 0.3
    assert results.component_values(None) == {"siou": None, "ppv": None, "f1_mean": None, "n_gt": None, "n_pred": None}


# ------------------------------------------------------------- several segment datasets


def _seg_json(run: Path, variant: str, ds: str) -> dict:
    return _load(run / "segment_eval" / MODEL / variant / f"{ds}.json")["thresholds"]


def _block(df: pd.DataFrame, ds: str) -> pd.DataFrame:
    """The CSV rows of one dataset block, indexed from 0 in threshold order."""
    return df[df["dataset"] == ds].reset_index(drop=True)


def test_segment_datasets_differ_in_the_fixture(run):
    """The two datasets' numbers differ, so the tests below would see rows of one under the other's name."""
    for _, variant in SEG_LABELS:
        a, b = (_seg_json(run, variant, ds) for ds in SEGMENT_DATASETS)
        assert [a[k]["fp_before"] for k in sorted(a)] != [b[k]["fp_before"] for k in sorted(b)]


def test_table2_has_one_block_of_rows_per_dataset(run, tmp_path):
    out = _outs(tmp_path, "table2")
    report.table2(_seg_entries_of(run), **out)
    df = _csv(out["out_csv"])
    assert list(df.columns[:2]) == ["dataset", "t"]
    assert df["dataset"].tolist() == [ds for ds in SEGMENT_DATASETS for _ in THRESHOLDS]  # the entries' order
    for ds in SEGMENT_DATASETS:
        block = _block(df, ds)
        assert block["t"].tolist() == list(THRESHOLDS)
        for label, variant in SEG_LABELS:
            res, s = _seg_json(run, variant, ds), results.slug(label)
            for i, t in enumerate(THRESHOLDS):
                r = res[pl.threshold_tag(t)]
                assert block.loc[i, f"{s}_fp"] == r["fp_before"] and block.loc[i, f"{s}_fn"] == r["fn_before"]
                assert block.loc[i, f"{s}_total"] == r["total_before"]
                assert block.loc[i, f"{s}_meta_fp"] == r["fp_after"] and block.loc[i, f"{s}_meta_fn"] == r["fn_after"]
                assert block.loc[i, f"{s}_meta_total"] == r["total_after"]
                assert block.loc[i, f"{s}_eps"] == pytest.approx(r["eps_before"], rel=1e-12)
                assert block.loc[i, f"{s}_meta_eps"] == pytest.approx(r["eps_after"], rel=1e-12)
                assert block.loc[i, f"{s}_n_pred"] == r["n_pred"] and block.loc[i, f"{s}_n_removed"] == r["n_removed"]

    text = out["out_md"].read_text()
    assert text.startswith("Table 2: detection errors of OoD objects at entropy thresholds t "
                           f"(LostAndFound, Fishyscapes Static; {MODEL})")
    header, rows = _md_table(text)
    assert header[:3] == ["Dataset", "Entropy threshold", "Baseline FP ↓"] and len(header) == 2 + 4 * 4
    assert [r[0] for r in rows] == [results.dataset_title(ds) for ds in SEGMENT_DATASETS for _ in THRESHOLDS]
    for k, ds in enumerate(SEGMENT_DATASETS):
        for label, variant in SEG_LABELS:
            col = header.index(f"{label} FP ↓")
            for i, t in enumerate(THRESHOLDS):
                row = rows[k * len(THRESHOLDS) + i]
                assert row[1] == f"t = {t:.2f}"
                assert row[col] == f"{_seg_json(run, variant, ds)[pl.threshold_tag(t)]['fp_before']:,}"
        # the smallest Σ of each column group is bold within each dataset's rows
        col = header.index("Baseline Σ ↓")
        block = rows[k * len(THRESHOLDS):(k + 1) * len(THRESHOLDS)]
        totals = [_seg_json(run, "baseline", ds)[pl.threshold_tag(t)]["total_before"] for t in THRESHOLDS]
        assert [r[col].startswith("**") for r in block] == [v == min(totals) for v in totals]
    assert "below the horizontal rule within each dataset" in text

    n, _, lines = _latex_table(out["out_tex"].read_text())
    assert n == 2 + 16
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Fishyscapes Static & $t = 0.10$")]
    assert len(starts) == 1 and lines[starts[0] - 1] == r"\midrule"
    # under the header, between the datasets, and before t = 0.3 in each dataset's rows
    assert sum(ln == r"\midrule" for ln in lines) == 4

    # one dataset alone keeps the paper's layout: no Dataset column
    report.table2(_seg_entries_of(run, ("fishyscapes_static",)), **out)
    df = _csv(out["out_csv"])
    assert "dataset" not in df and df.loc[0, "baseline_fp"] == _seg_json(run, "baseline", "fishyscapes_static")["t0.1"]["fp_before"]
    header, _ = _md_table(out["out_md"].read_text())
    assert header[0] == "Entropy threshold" and "(Fishyscapes Static; " in out["out_md"].read_text()


def test_table3_has_one_block_of_rows_per_dataset(run, tmp_path):
    out = _outs(tmp_path, "table3")
    report.table3(_meta_entries_of(run), **out)
    df = _csv(out["out_csv"])
    assert list(df.columns[:2]) == ["dataset", "t"]
    for e in _meta_entries_of(run):
        res = _load(e["path"])
        row = _block(df, e["dataset"]).loc[THRESHOLDS.index(results.parse_tag(e["tag"]))]
        s = results.slug(e["label"])
        loo, logo = res["protocols"]["loo"], res["protocols"]["logo"]
        assert row[f"{s}_loo_auroc"] == pytest.approx(loo["auroc"], rel=1e-12)
        assert row[f"{s}_loo_auprc"] == pytest.approx(loo["auprc"], rel=1e-12)
        assert row[f"{s}_logo_auroc"] == pytest.approx(logo["auroc"], rel=1e-12)
        assert row[f"{s}_msp_auroc"] == pytest.approx(loo["msp_auroc"], rel=1e-12)
        assert row[f"{s}_n_segments"] == res["n_segments"]
    aurocs = {ds: _block(df, ds)["baseline_loo_auroc"].tolist() for ds in SEGMENT_DATASETS}
    assert aurocs["lostandfound"] != aurocs["fishyscapes_static"]

    header, rows = _md_table(out["out_md"].read_text())
    assert header[:2] == ["Dataset", "Entropy threshold"] and len(header) == 2 + 8 + 4
    col = header.index("LOO OoD training + Meta C. AUROC ↑")
    for k, ds in enumerate(SEGMENT_DATASETS):
        for i, t in enumerate(THRESHOLDS):
            row = rows[k * len(THRESHOLDS) + i]
            res = _load(next(e["path"] for e in _meta_entries_of(run)
                             if e["dataset"] == ds and e["label"] == "OoD training" and e["tag"] == pl.threshold_tag(t)))
            assert row[0] == results.dataset_title(ds) and row[1] == f"t = {t:.2f}"
            assert row[col].strip("*") == f"{res['protocols']['loo']['auroc']:.4f}"
    n, _, lines = _latex_table(out["out_tex"].read_text())
    assert n == 2 + 12 and sum(ln == r"\midrule" for ln in lines) == 2  # under the header, between the datasets


def test_table_components_has_one_block_of_rows_per_dataset(run, tmp_path):
    out = _outs(tmp_path, "table_components")
    report.table_components(_seg_entries_of(run), **out)
    df = _csv(out["out_csv"])
    assert list(df.columns[:2]) == ["dataset", "t"]
    for ds in SEGMENT_DATASETS:
        block = _block(df, ds)
        for label, variant in SEG_LABELS:
            s, res = results.slug(label), _seg_json(run, variant, ds)
            for i, t in enumerate(THRESHOLDS):
                comp = results.component_values(res[pl.threshold_tag(t)]["components"])
                for k in ("siou", "ppv", "f1_mean"):
                    assert block.loc[i, f"{s}_{k}"] == pytest.approx(comp[k], rel=1e-12)
                assert block.loc[i, f"{s}_n_gt"] == comp["n_gt"] and block.loc[i, f"{s}_n_pred"] == comp["n_pred"]
    header, rows = _md_table(out["out_md"].read_text())
    assert header[:3] == ["Dataset", "Entropy threshold", "Baseline sIoU ↑"] and len(rows) == 2 * len(THRESHOLDS)
    ppv = header.index("Baseline PPV ↑")
    for k, ds in enumerate(SEGMENT_DATASETS):
        res = _seg_json(run, "baseline", ds)
        assert [r[ppv].strip("*") for r in rows[k * len(THRESHOLDS):(k + 1) * len(THRESHOLDS)]] == [
            f"{res[pl.threshold_tag(t)]['components']['ppv']:.4f}" for t in THRESHOLDS]
    n, _, _ = _latex_table(out["out_tex"].read_text())
    assert n == 2 + 6


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["table1", "table2", "table3", "table_components"])
def test_tables_name_a_missing_file(run, tmp_path, name):
    missing = str(tmp_path / "nowhere" / "gone.json")
    out = _outs(tmp_path, name)
    args = {
        "table1": ([{"model": MODEL, "label": "Plain", "dataset": "lostandfound", "path": missing}], []),
        "table2": ([{"label": "Baseline", "path": missing}],),
        "table3": ([{"label": "Baseline", "tag": "t0.3", "path": missing}],),
        "table_components": ([{"label": "Baseline", "path": missing}],),
    }[name]
    with pytest.raises(InputError, match=re.escape(missing)):
        getattr(report, name)(*args, **out)
    assert not any(p.exists() for p in out.values())


def test_bad_entries_and_wrong_kind(run, tmp_path):
    out = _outs(tmp_path, "x")
    with pytest.raises(InputError, match="lacks 'path'"):
        report.table2([{"label": "Baseline"}], **out)
    with pytest.raises(InputError, match="no table2 entry"):
        report.table2([], **out)
    miou_json = str(_pixel(run, "baseline", "cityscapes_val"))
    with pytest.raises(InputError, match=re.escape(miou_json) + ".*kind 'ood'"):
        report.table1([{"model": MODEL, "label": "Plain", "dataset": "lostandfound", "path": miou_json}], [], **out)
    with pytest.raises(InputError, match="'t0,3'"):
        report.table3([{"label": "B", "tag": "t0,3", "path": _meta_entries(run)[0]["path"]}], **out)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputError, match="broken.json: not valid JSON"):
        report.table2([{"label": "Baseline", "path": str(tmp_path / "broken.json")}], **out)
    with pytest.raises(InputError, match="appears twice"):
        report.table2(_seg_entries(run) + _seg_entries(run)[:1], **out)



# ------------------------------------------------------------------------------------ paired


def test_table_paired_rows_are_the_paired_bootstrap(run, tmp_path):
    from meta_ood.pixel_eval import PooledHistogram
    from meta_ood.pixel_eval.paired import paired_bootstrap

    npz = lambda v, ds: str(run / "pixel" / MODEL / v / f"{ds}.npz")  # noqa: E731
    entries = [{"dataset": ds, "model": MODEL, "label": "OoD training − Plain", "a": npz("epoch2", ds),
                "b": npz("baseline", ds)} for ds in ("lostandfound", "fishyscapes_static")]
    out = _outs(tmp_path, "table_paired")
    df = report.table_paired(entries, **out, n_boot=50, seed=3)
    assert list(df["dataset"]) == ["lostandfound", "fishyscapes_static"]
    for i, e in enumerate(entries):
        expected = paired_bootstrap(PooledHistogram.load(e["a"]), PooledHistogram.load(e["b"]), n_boot=50, seed=3)
        for key in ("auroc", "auprc", "fpr95"):
            for field in ("diff", "lo", "hi", "p", "resolvable"):
                assert df.loc[i, f"{key}_{field}"] == pytest.approx(expected[key][field], abs=1e-12)
    header, rows = _md_table(out["out_md"].read_text())
    assert header[:4] == ["Dataset", "Model", "Comparison", "Frames"] and len(header) == 4 + 9
    r = expected["auprc"]
    assert rows[1][7] == f"{r['diff']:+.4f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"


def test_holm_adjustment_closed_form():
    from meta_ood.report.paired import holm

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5]), [0.5])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])


def test_table1_marks_values_the_frames_do_not_separate_from_the_best(run, tmp_path):
    """A copy of the Plain row's files under another label equals it: that row is "≈" in every column whose best it
    is not; the other rows get "≈" exactly where the paired p-value against the best, Holm-adjusted, is >= 5 %."""
    import shutil

    from meta_ood.pixel_eval import PooledHistogram
    from meta_ood.pixel_eval.paired import paired_bootstrap
    from meta_ood.report.paired import holm

    entries = _pixel_entries(run)
    copies = []
    for e in entries:
        if e["label"] == "Plain":
            src = Path(e["path"])
            dst = tmp_path / "copy" / src.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
            shutil.copy(src.with_suffix(".npz"), dst.with_suffix(".npz"))
            copies.append({**e, "label": "Plain again", "path": str(dst)})
    out = _outs(tmp_path, "t1")
    report.table1(entries + copies, [], **out, n_boot=200, seed=1)
    header, rows = _md_table(out["out_md"].read_text())
    labels = [r[1] for r in rows]
    for ds_i, ds in enumerate(("lostandfound", "fishyscapes_static")):
        npz = {lab: Path(next(e["path"] for e in entries + copies if e["label"] == lab and e["dataset"] == ds))
               .with_suffix(".npz") for lab in labels}
        for k, (metric, mode) in enumerate((("auroc", "max"), ("fpr95", "min"), ("auprc", "max"))):
            col = 2 + 3 * ds_i + k
            values = {lab: float(rows[i][col].strip("*").split()[0]) for i, lab in enumerate(labels)}
            best = (max if mode == "max" else min)(labels, key=lambda lab: values[lab])
            others = [lab for lab in labels if lab != best]
            p = [paired_bootstrap(PooledHistogram.load(npz[lab]), PooledHistogram.load(npz[best]), n_boot=200,
                                  seed=1)[metric]["p"] for lab in others]
            expected = {lab for lab, q in zip(others, holm(p)) if q >= 0.05}
            marked = {lab for i, lab in enumerate(labels) if rows[i][col].rstrip("*").endswith("≈")}
            assert marked == expected, (ds, metric)
    # the copy alone against its original: equal values, p = 1, "≈" in every column of the copy's row
    plain = [e for e in entries if e["label"] == "Plain"]
    report.table1(plain + copies, [], **out, n_boot=200, seed=1)
    _, rows = _md_table(out["out_md"].read_text())
    assert [r[1] for r in rows] == ["Plain", "Plain again"]
    assert all(c.endswith("≈") for c in rows[1][2:]) and not any(c.endswith("≈") for c in rows[0][2:])
    assert "Holm-adjusted" in out["out_md"].read_text()


def test_table2_marks_sums_the_images_do_not_separate_from_the_best(run, tmp_path):
    """With per-image errors in the JSON, a Σ that differs from the bold one on a single image of ten is marked
    "≈" (a resample leaves that image out with probability 0.9^10 = 0.35, so p is about 0.7), one that is larger
    on every image is not; without per-image counts nothing is marked."""
    data = _load(_seg_entries(run)[0]["path"])
    data["thresholds"] = {k: v for k, v in data["thresholds"].items() if results.parse_tag(k) >= 0.3}
    per_image = {"t0.3": [1] * 10, "t0.4": [1] * 9 + [2], "t0.5": [5] * 10, "t0.6": [4] * 10, "t0.7": [3] * 10}
    for tag, r in data["thresholds"].items():
        errs = per_image[tag]
        r.update(fp_before=sum(errs), fn_before=0, total_before=sum(errs),
                 per_image={"fp_before": errs, "fn_before": [0] * 10})
        r.pop("fp_after", None)
    (tmp_path / "seg.json").write_text(json.dumps(data))
    entries = [{"label": "Baseline", "path": str(tmp_path / "seg.json")}]
    out = _outs(tmp_path, "t2")
    report.table2(entries, **out, n_boot=400, seed=1)
    _, rows = _md_table(out["out_md"].read_text())
    sums = {t: rows[k][3] for k, t in enumerate([0.3, 0.4, 0.5, 0.6, 0.7])}
    assert sums[0.3] == "**10**" and sums[0.4] == "11 ≈"
    assert all("≈" not in sums[t] for t in (0.5, 0.6, 0.7))
    assert "paired image bootstrap of the per-image errors, 400 resamples, seed 1" in out["out_md"].read_text()
    report.table2(entries, **out, n_boot=0)
    assert "≈" not in out["out_md"].read_text()


def test_segment_eval_per_image_errors_are_the_errors_of_each_image(run):
    """The per-image counts of a segment_eval JSON sum to its totals, and each equals detection_errors on that
    image's segments alone."""
    from meta_ood.io import read_parquet
    from meta_ood.segment_eval import detection_errors

    path = _seg_entries(run)[0]["path"]
    data = _load(path)
    seg_dir = run / "segments" / MODEL / SEG_LABELS[0][1] / "lostandfound"
    images = read_parquet(seg_dir / "images.parquet")
    assert data["frames"] == images["name"].astype(str).tolist()
    for tag, r in data["thresholds"].items():
        pi = r["per_image"]
        assert len(pi["fp_before"]) == len(data["frames"]) and sum(pi["fp_before"]) == r["fp_before"]
        assert sum(pi["fn_before"]) == r["fn_before"]
        if r.get("fp_after") is not None:
            assert (sum(pi["fp_after"]), sum(pi["fn_after"])) == (r["fp_after"], r["fn_after"])
        pred, gt = read_parquet(seg_dir / f"{tag}.parquet"), read_parquet(seg_dir / f"{tag}.gt.parquet")
        for k, image in enumerate(images["image"]):
            one = detection_errors(pred[pred["image"] == image], gt[gt["image"] == image])
            assert (pi["fp_before"][k], pi["fn_before"][k]) == (one["fp_before"], one["fn_before"])


def test_table_paired_error_rows_are_the_paired_bootstrap_of_per_image_errors(run, tmp_path):
    """Detection-error rows (OoD training + meta against OoD training alone, against baseline + meta): one per
    threshold t >= 0.3, each equal to paired_counts on the JSONs' per-image FP + FN; pixel rows keep their
    columns, error rows show "–" there."""
    from meta_ood.pixel_eval.paired import paired_counts

    seg = lambda v: str(run / "segment_eval" / MODEL / v / "lostandfound.json")  # noqa: E731
    npz = lambda v: str(run / "pixel" / MODEL / v / "lostandfound.npz")  # noqa: E731
    entries = [{"dataset": "lostandfound", "model": MODEL, "label": "OoD training − Plain", "a": npz("epoch2"),
                "b": npz("baseline")}]
    errors = [{"dataset": "lostandfound", "model": MODEL, "label": "meta − none", "a": seg("epoch2"), "a_stage": "after",
               "b": seg("epoch2"), "b_stage": "before"},
              {"dataset": "lostandfound", "model": MODEL, "label": "ood − base", "a": seg("epoch2"), "a_stage": "after",
               "b": seg("baseline"), "b_stage": "after"}]
    out = _outs(tmp_path, "table_paired")
    df = report.table_paired(entries, **out, n_boot=60, seed=2, error_entries=errors)
    ts = [t for t in THRESHOLDS if t >= 0.3]
    assert len(df) == 1 + 2 * len(ts) and pd.isna(df.loc[0, "t"]) and pd.isna(df.loc[1, "auprc_diff"])
    data = {v: _load(seg(v)) for v in ("epoch2", "baseline")}
    for k, (e, (va, sa, vb, sb)) in enumerate([(e, x) for e, x in zip(errors, [("epoch2", "after", "epoch2", "before"),
                                                                               ("epoch2", "after", "baseline", "after")])]):
        for j, t in enumerate(ts):
            row = df.iloc[1 + k * len(ts) + j]
            ra, rb = (data[v]["thresholds"][pl.threshold_tag(t)]["per_image"] for v in (va, vb))
            pa = [x + y for x, y in zip(ra[f"fp_{sa}"], ra[f"fn_{sa}"])]
            pb = [x + y for x, y in zip(rb[f"fp_{sb}"], rb[f"fn_{sb}"])]
            want = paired_counts(data[va]["frames"], pa, data[vb]["frames"], pb, n_boot=60, seed=2)
            assert row["comparison"] == f"{e['label']} at t = {t:.2f}" and row["t"] == t
            for field in ("a", "b", "diff", "lo", "hi", "p"):
                assert row[f"errors_{field}"] == pytest.approx(want[field], abs=1e-12)
    header, rows = _md_table(out["out_md"].read_text())
    assert len(header) == 4 + 12 and rows[1][4] == "–" and rows[0][13] == "–"
    r = df.iloc[1]
    assert rows[1][13] == f"{r['errors_diff']:+,.0f} [{r['errors_lo']:+,.0f}, {r['errors_hi']:+,.0f}]"


def test_table3_marks_detectors_the_images_do_not_separate_from_the_best(tmp_path):
    """Per row and block, a meta classifier that differs from the best only on one image of ten is marked "≈"
    (left out of a resample with probability 0.9^10 = 0.35), an MSP baseline near chance is not; the marks
    come from the per-segment scores in the parquet beside each JSON (no image_ids: no marks)."""
    from meta_ood.io import write_parquet
    from meta_ood.meta.evaluation import evaluate

    rng = np.random.default_rng(7)
    images = np.repeat(np.arange(10), 20)
    fp = (rng.random(images.size) < 0.4).astype(float)
    good = fp * 0.6 + rng.random(images.size) * 0.3
    worse = good.copy()
    worse[images == 0] = 0.9 - worse[images == 0]  # wrong on image 0 only
    msp = rng.random(images.size)
    entries = []
    for label, prob in (("A", good), ("B", worse)):
        seg = pd.DataFrame({"image": images, "segment": np.arange(images.size), "iou0": fp, "prob_fp": prob, "msp": msp})
        write_parquet(tmp_path / f"{label}.parquet", seg)
        scores, base = evaluate(fp, prob), evaluate(fp, msp)
        data = {"n_segments": int(images.size), "image_ids": list(range(10)), "protocols": {"loo": {
            "auroc": scores["auroc"], "auprc": scores["auprc"], "accuracy": scores["accuracy"],
            "msp_auroc": base["auroc"], "msp_auprc": base["auprc"]}}}
        (tmp_path / f"{label}.json").write_text(json.dumps(data))
        entries.append({"label": label, "tag": "t0.3", "path": str(tmp_path / f"{label}.json")})
    out = _outs(tmp_path, "t3")
    report.table3(entries, **out, n_boot=300, seed=0)
    header, rows = _md_table(out["out_md"].read_text())
    cells = dict(zip(header[1:], rows[0][1:]))
    assert cells["LOO A + Meta C. AUROC ↑"].startswith("**") and cells["LOO B + Meta C. AUROC ↑"].endswith(" ≈")
    assert cells["LOO B + Meta C. AUPRC ↑"].endswith(" ≈")
    assert not any(cells[f"LOO {x} + MSP {m} ↑"].endswith("≈") for x in "AB" for m in ("AUROC", "AUPRC"))
    for label in "AB":
        data = json.loads((tmp_path / f"{label}.json").read_text())
        del data["image_ids"]
        (tmp_path / f"{label}.json").write_text(json.dumps(data))
    report.table3(entries, **out, n_boot=300, seed=0)
    assert "≈" not in out["out_md"].read_text()
