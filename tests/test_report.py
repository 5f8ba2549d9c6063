"""Tests of the report: tables and figures rendered from result files written by the real stages.

A module fixture writes small softmax stores (a LostAndFound-like and a Fishyscapes-like OoD
set, a Cityscapes-val-like set; a baseline and two fine-tuning epochs whose OoD pixels get more
uncertain) and runs pixel_eval_stage, segment_features_stage, meta_classify_stage and
segment_eval_stage on them. The tests then check that every table cell is the number of the
JSON it came from, that the Markdown and LaTeX tables have the shape of the paper's, and that
every figure is written and plots the numbers recomputed here, independently, from the stores
(pixel scores, mIoU) and the segment / meta tables (detection errors, removed segments).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from meta_ood import pipeline as pl
from meta_ood import report
from meta_ood.errors import InputError
from meta_ood.labels import FISHYSCAPES, LOSTANDFOUND
from meta_ood.report import figures, tables
from meta_ood.pixel_eval import dequantize, quantize
from meta_ood.scores import normalized_entropy
from meta_ood.store import StoreReader, StoreWriter

H, W, C = 48, 96, 19
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
GAINS = {"baseline": 0.0, "epoch1": 0.6, "epoch2": 0.95}  # how uncertain OoD pixels become
MODEL = "tiny"


# -------------------------------------------------------------------------------- fixture data


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def _smooth(rng, shape, sigma):
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma)


def _road_scene(rng, k: int, gain: float, conv):
    """Sky (void) above a road (in) with 1-2 obstacles (out); a few uncertain blobs give false positives."""
    label = np.full((H, W), conv.void_id, np.uint8)
    label[H // 3:, 8:W - 8] = conv.train_id_in
    for _ in range(1 + k % 2):
        r, c = rng.integers(H // 3 + 4, H - 10), rng.integers(12, W - 22)
        label[r:r + rng.integers(4, 8), c:c + rng.integers(5, 10)] = conv.train_id_out
    cls = np.where(np.arange(H)[:, None] < H // 3, 10, 0) * np.ones((1, W), int)
    strength = np.clip(8.0 + 2.0 * gain + 1.5 * _smooth(rng, (H, W), 3) / 0.1, 3.0, 14.0)
    for _ in range(3):
        r, c = rng.integers(0, H - 4), rng.integers(0, W - 4)
        strength[r:r + rng.integers(2, 5), c:c + rng.integers(2, 6)] = rng.uniform(0.0, 2.5)
    out = label == conv.train_id_out
    strength[out] = np.clip(rng.uniform(1.0, 4.0) * (1.0 - gain) + 0.5 * rng.normal(size=out.sum()), 0.0, None)
    logits = 0.3 * rng.normal(size=(C, H, W))
    np.put_along_axis(logits, cls[None], np.take_along_axis(logits, cls[None], 0) + strength[None], 0)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[: H // 3] = (120, 160, 220)
    rgb[H // 3:] = (90, 90, 90)
    rgb[out] = (200, 60, 40)
    return label, _softmax(logits), rgb


def _city_scene(rng, gain: float):
    label = np.repeat(np.repeat(rng.integers(0, C, (4, 8)), H // 4, 0), W // 8, 1).astype(np.uint8)
    label[:2] = 255
    strength = np.clip(6.0 + 3.0 * _smooth(rng, (H, W), 2) / 0.15 - gain, 0.0, 14.0)
    wrong = _smooth(rng, (H, W), 3) > 0.12
    cls = np.where(wrong, (label.astype(int) + 1) % C, label.astype(int) % C)
    cls[label == 255] = 0
    logits = 0.6 * rng.normal(size=(C, H, W))
    np.put_along_axis(logits, cls[None], np.take_along_axis(logits, cls[None], 0) + strength[None], 0)
    lab = label.astype(int)
    rgb = (np.stack([lab * 11, lab * 5, 255 - lab * 7], -1) % 256).astype(np.uint8)
    return label, _softmax(logits), rgb


def _write_store(folder: Path, dataset: str, conv, scenes, image_dir: Path) -> None:
    writer = StoreWriter(folder, C, model=MODEL, dataset=dataset, convention=conv, total=len(scenes))
    for i, (label, probs, rgb) in enumerate(scenes):
        path = image_dir / f"{dataset}_{i:03d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path)
        writer.write(i, f"{dataset}_{i:03d}", str(path), probs, label)
    writer.finalize()


def build_results(root: Path) -> Path:
    """Stores and every result file the report reads, under ``root/results/fix``."""
    run = root / "results" / "fix"
    for variant, gain in GAINS.items():
        for dataset, conv, n in (("lostandfound", LOSTANDFOUND, 10), ("fishyscapes_static", FISHYSCAPES, 6)):
            if dataset == "fishyscapes_static" and variant == "epoch1":
                continue
            rng = np.random.default_rng(1 if dataset == "lostandfound" else 2)
            store = run / "softmax" / MODEL / variant / dataset
            _write_store(store, dataset, conv, [_road_scene(rng, k, gain, conv) for k in range(n)], root / "images")
            out = run / "pixel" / MODEL / variant
            pl.pixel_eval_stage(store, out / f"{dataset}.json", out / f"{dataset}.npz", n_boot=20, progress=False)
            if dataset == "lostandfound" and variant != "epoch1":
                seg = run / "segments" / MODEL / variant / dataset
                meta = run / "meta" / MODEL / variant / dataset
                pl.segment_features_stage(store, seg, THRESHOLDS, progress=False)
                for t in THRESHOLDS:
                    tag = pl.threshold_tag(t)
                    pl.meta_classify_stage(seg / f"{tag}.parquet", meta / f"{tag}.parquet", meta / f"{tag}.json")
                pl.segment_eval_stage(seg, meta, THRESHOLDS, run / "segment_eval" / MODEL / variant / f"{dataset}.json")
        rng = np.random.default_rng(3)
        store = run / "softmax" / MODEL / variant / "cityscapes_val"
        _write_store(store, "cityscapes_val", None, [_city_scene(rng, gain) for _ in range(4)], root / "images")
        out = run / "pixel" / MODEL / variant
        pl.pixel_eval_stage(store, out / "cityscapes_val.json", out / "cityscapes_val.npz", progress=False)
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return build_results(tmp_path_factory.mktemp("report"))


LABELS = (("Plain", "baseline"), ("OoD training", "epoch2"))
SEG_LABELS = (("Baseline", "baseline"), ("OoD training", "epoch2"))


def _pixel(run: Path, variant: str, dataset: str) -> Path:
    return run / "pixel" / MODEL / variant / f"{dataset}.json"


def _pixel_entries(run: Path) -> list[dict]:
    return [{"model": MODEL, "label": label, "dataset": ds, "path": str(_pixel(run, v, ds))}
            for label, v in LABELS for ds in ("lostandfound", "fishyscapes_static")]


def _miou_entries(run: Path) -> list[dict]:
    return [{"model": MODEL, "label": label, "path": str(_pixel(run, v, "cityscapes_val"))} for label, v in LABELS]


def _seg_entries(run: Path) -> list[dict]:
    return [{"label": label, "path": str(run / "segment_eval" / MODEL / v / "lostandfound.json")} for label, v in SEG_LABELS]


def _meta_entries(run: Path) -> list[dict]:
    return [{"label": label, "tag": pl.threshold_tag(t), "path": str(run / "meta" / MODEL / v / "lostandfound" / f"{pl.threshold_tag(t)}.json")}
            for label, v in SEG_LABELS for t in THRESHOLDS]


def _outs(folder: Path, name: str) -> dict[str, Path]:
    return {f"out_{ext}": folder / f"{name}.{ext}" for ext in ("csv", "md", "tex")}


def _load(path) -> dict:
    return json.loads(Path(path).read_text())


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
    assert rows[0][2].strip("*") == f"{laf['auroc']:.4f} [{lo:.3f}, {hi:.3f}]"
    # OoD training separates better in the fixture: its AUROC / FPR95 cells are the bold ones
    assert rows[1][2].startswith("**") and not rows[0][2].startswith("**")
    assert rows[1][3].startswith("**") and not rows[0][3].startswith("**")

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
        s = tables.slug(label)
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
    data["thresholds"] = {k: v for k, v in data["thresholds"].items() if tables.parse_tag(k) >= 0.3}
    (tmp_path / "seg.json").write_text(json.dumps(data))
    out = _outs(tmp_path, "t2")
    report.table2([{"label": "Baseline", "path": str(tmp_path / "seg.json")}], **out)
    _, _, lines = _latex_table(out["out_tex"].read_text())
    assert sum(ln == r"\midrule" for ln in lines) == 1


# ----------------------------------------------------------------------------------- table 3


def test_table3_cells_are_the_json_numbers(run, tmp_path):
    out = _outs(tmp_path, "table3")
    report.table3(_meta_entries(run), **out)
    df = _csv(out["out_csv"])
    assert df["t"].tolist() == list(THRESHOLDS)
    for e in _meta_entries(run):
        res = _load(e["path"])
        i = THRESHOLDS.index(tables.parse_tag(e["tag"]))
        s = tables.slug(e["label"])
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
    assert rows[THRESHOLDS.index(0.3)][3].strip("*") == f"{res['protocols']['loo']['auroc']:.4f}"
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


def test_component_values_of_merged_shards():
    a = {"siou": [0.5, 1.0], "ppv": 0.25, "f1_mean": 0.4, "n_gt": 2, "n_pred": 4,
         "tp": [2, 1], "fn": [0, 1], "fp": [3, 3]}
    b = {"siou": [0.0], "ppv": 1.0, "f1_mean": 0.5, "n_gt": 1, "n_pred": 1, "tp": [0, 0], "fn": [1, 1], "fp": [0, 0]}
    v = tables.component_values({"per_shard": [a, b]})
    assert v["siou"] == pytest.approx(0.5) and v["ppv"] == pytest.approx((0.25 * 4 + 1.0) / 5)
    assert v["n_gt"] == 3 and v["n_pred"] == 5
    tp, fn, fp = np.array([2, 1]), np.array([1, 2]), np.array([3, 3])
    assert v["f1_mean"] == pytest.approx(np.mean(2 * tp / (2 * tp + fn + fp)))
    no_counts = {"per_shard": [{k: x for k, x in a.items() if k not in ("tp", "fn", "fp")}, b]}
    assert tables.component_values(no_counts)["f1_mean"] is None
    assert tables.component_values({"per_shard": [a]})["f1_mean"] == 0.4
    assert tables.component_values({"siou_gt": 0.3, "siou": [1.0], "ppv": None})["siou"] == 0.3
    assert tables.component_values(None) == {"siou": None, "ppv": None, "f1_mean": None, "n_gt": None, "n_pred": None}


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


# ------------------------------------------------------------------------------------ figures


def _check_figure(png: Path, pdf: Path, min_px=(500, 300), max_px=(4000, 3000)) -> tuple[int, int]:
    assert png.stat().st_size > 5000 and pdf.stat().st_size > 2000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as im:
        im.load()
        w, h = im.size
    assert min_px[0] <= w <= max_px[0] and min_px[1] <= h <= max_px[1], (w, h)
    leftovers = [p.name for p in png.parent.iterdir() if p.name.endswith(".tmp" + p.suffix) or ".tmp." in p.name]
    assert not leftovers
    return w, h


def _store(run: Path, variant: str, dataset: str) -> Path:
    return run / "softmax" / MODEL / variant / dataset


def _pixel_scores(store: Path) -> tuple[np.ndarray, np.ndarray]:
    """Quantization bins (16 bit) of the normalized entropy of every evaluated pixel, and is-OoD."""
    reader = StoreReader(store)
    conv = reader.convention
    bins, ood = [], []
    for img in reader:
        keep = (img.label == conv.train_id_in) | (img.label == conv.train_id_out)
        bins.append(quantize(normalized_entropy(img.probs)[keep]))
        ood.append(img.label[keep] == conv.train_id_out)
    return np.concatenate(bins).astype(np.int64), np.concatenate(ood)


def _miou_by_hand(store: Path, thresholds) -> dict[float, float]:
    """mIoU with pixels of entropy >= t predicted as the extra class 19, from the store's pixels."""
    reader = StoreReader(store)
    conf = {t: np.zeros((C, C + 1), np.int64) for t in thresholds}
    for img in reader:
        valid = img.label != 255
        gt = img.label[valid].astype(np.int64)
        pred = np.argmax(img.probs, axis=0)[valid]
        ent = normalized_entropy(img.probs)[valid].astype(np.float64)
        for t in thresholds:
            p = np.where(ent >= t, C, pred)
            conf[t] += np.bincount(gt * (C + 1) + p, minlength=C * (C + 1)).reshape(C, C + 1)
    out = {}
    for t, m in conf.items():
        tp = np.diag(m[:, :C]).astype(float)
        denom = m.sum(axis=1) + m[:, :C].sum(axis=0) - tp
        out[t] = float(np.mean(tp[denom > 0] / denom[denom > 0]))
    return out


def test_figure3_violins(run, tmp_path):
    png, pdf = tmp_path / "figure3.png", tmp_path / "figure3.pdf"
    plotted = report.figure3(_pixel_entries(run), out_png=png, out_pdf=pdf)
    w, h = _check_figure(png, pdf)
    assert w > h  # two dataset panels side by side
    assert set(plotted) == {(MODEL, ds, label) for label, _ in LABELS for ds in ("lostandfound", "fishyscapes_static")}
    for label, variant in LABELS:
        for ds in ("lostandfound", "fishyscapes_static"):
            k, y = _pixel_scores(_store(run, variant, ds))
            coarse = np.minimum(k * 100 // 65535, 99)  # 100 equal bins of [0, 1], integer arithmetic
            item = plotted[(MODEL, ds, label)]
            for side, sel in (("in", ~y), ("out", y)):
                density = np.bincount(coarse[sel], minlength=100) / (sel.sum() * 0.01)
                np.testing.assert_allclose(item[f"{side}_density"], density, rtol=1e-12, atol=0)
                median = np.quantile(dequantize(k[sel]), 0.5, method="inverted_cdf")
                assert item[f"{side}_quantiles"]["0.5"] == pytest.approx(median, abs=1e-12)
                outline = item[f"{side}_outline"]
                nz = np.flatnonzero(density)
                np.testing.assert_allclose(outline["width"][1:-1], 0.4 * density[nz[0]:nz[-1] + 1] / density.max(),
                                           rtol=1e-12)
            # the red line: the bin edge j / 100 of highest pixel accuracy with "OoD iff score >= edge"
            acc = np.array([(np.sum(~y & (coarse < j)) + np.sum(y & (coarse >= j))) / y.size for j in range(101)])
            j = int(np.argmax(acc))
            assert item["threshold"] == pytest.approx(j / 100, abs=1e-12)
            assert item["accuracy"] == pytest.approx(acc[j], abs=1e-12) and item["threshold_kind"] == "accuracy"
    plotted = report.figure3(_pixel_entries(run)[:1], out_png=png, out_pdf=pdf, balanced_accuracy=True)
    _check_figure(png, pdf)
    k, y = _pixel_scores(_store(run, "baseline", "lostandfound"))
    coarse = np.minimum(k * 100 // 65535, 99)
    bal = np.array([(np.mean(coarse[~y] < j) + np.mean(coarse[y] >= j)) / 2 for j in range(101)])
    item = plotted[(MODEL, "lostandfound", "Plain")]
    assert item["threshold"] == pytest.approx(int(np.argmax(bal)) / 100, abs=1e-12)
    assert item["accuracy"] == pytest.approx(bal.max(), abs=1e-12)


def test_figure3_of_an_unbounded_scorer(tmp_path):
    """Negated max logit: the violins and the red line live on the score's own range."""
    rng = np.random.default_rng(4)
    store = tmp_path / "lostandfound"
    writer = StoreWriter(store, C, model=MODEL, dataset="lostandfound", convention=LOSTANDFOUND, store_logits=True)
    for i in range(3):
        label, probs, _ = _road_scene(rng, i, 0.6, LOSTANDFOUND)
        writer.write(i, f"x{i}", f"x{i}.png", probs, label, logits=np.log(np.maximum(probs, 1e-30)) + 5.0)
    writer.finalize()
    pl.pixel_eval_stage(store, tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, scorer="max_logit", progress=False)
    entry = {"model": MODEL, "label": "Plain", "dataset": "lostandfound", "path": str(tmp_path / "p.json")}
    plotted = report.figure3([entry], tmp_path / "f.png", tmp_path / "f.pdf")
    _check_figure(tmp_path / "f.png", tmp_path / "f.pdf")
    q, y = [], []
    for img in StoreReader(store):
        keep = (img.label == 1) | (img.label == 2)
        q.append(-img.logits.max(axis=0)[keep].astype(np.float16).astype(np.float64))
        y.append(img.label[keep] == 2)
    q, y = np.concatenate(q), np.concatenate(y)
    lo, hi = q.min(), q.max()
    assert hi < 0  # not a [0, 1] score: clipping would put every pixel into bin 0
    coarse = np.minimum(np.floor((q - lo) / (hi - lo) * 100).astype(int), 99)
    item = plotted[(MODEL, "lostandfound", "Plain")]
    np.testing.assert_allclose(item["in_density"], np.bincount(coarse[~y], minlength=100) / ((~y).sum() * (hi - lo) / 100),
                               rtol=1e-9)
    acc = np.array([(np.sum(~y & (coarse < j)) + np.sum(y & (coarse >= j))) / y.size for j in range(101)])
    assert item["threshold"] == pytest.approx(np.linspace(lo, hi, 101)[int(np.argmax(acc))], abs=1e-9)
    assert item["accuracy"] == pytest.approx(acc.max(), abs=1e-12)
    outline = item["in_outline"]["y"]
    assert lo <= outline.min() and outline.max() <= hi


def test_accuracy_threshold_from_the_violin_histogram():
    centers = (np.arange(10) + 0.5) / 10
    dens_in = np.zeros(10)
    dens_in[:3] = [5.0, 3.0, 2.0]  # in-distribution in [0, 0.3), density integrates to 1
    dens_out = np.zeros(10)
    dens_out[5:] = 2.0              # OoD in [0.5, 1.0)
    violin = {"centers": centers.tolist(), "in": {"density": dens_in.tolist()}, "out": {"density": dens_out.tolist()}}
    t, acc = figures.accuracy_threshold(violin, n_pos=100, n_neg=900)
    assert t == pytest.approx(0.3) and acc == pytest.approx(1.0)
    dens_out[:] = 0.0
    dens_out[2] = 10.0              # OoD all in the in-distribution's last bin [0.2, 0.3)
    violin["out"]["density"] = dens_out.tolist()
    t, acc = figures.accuracy_threshold(violin, n_pos=100, n_neg=900)
    # t = 0.2 flags the 20 % of in-distribution pixels there plus all OoD pixels: (720 + 100) / 1000;
    # t = 0.3 flags nothing: 900 / 1000 -- plain accuracy prefers flagging nothing
    assert t == pytest.approx(0.3) and acc == pytest.approx(0.9)
    t, acc = figures.accuracy_threshold(violin, n_pos=100, n_neg=900, balanced=True)
    assert t == pytest.approx(0.2) and acc == pytest.approx(0.8 / 2 + 1.0 / 2)
    # an unbounded score (negated max logit): the edges of the histogram are its own range
    violin["edges"] = np.linspace(-12.0, -2.0, 11).tolist()
    violin["centers"] = (np.linspace(-12.0, -2.0, 11)[:-1] + 0.5).tolist()
    t, acc = figures.accuracy_threshold(violin, n_pos=100, n_neg=900, balanced=True)
    assert t == pytest.approx(-10.0) and acc == pytest.approx(0.9)


def test_figure4_curves(run, tmp_path):
    png, pdf = tmp_path / "f4.png", tmp_path / "f4.pdf"
    plotted = report.figure4(_pixel_entries(run), png, pdf)
    w2, h2 = _check_figure(png, pdf)
    for label, variant in LABELS:
        for ds in ("lostandfound", "fishyscapes_static"):
            k, y = _pixel_scores(_store(run, variant, ds))
            q = dequantize(k)
            curve = plotted[(MODEL, ds)]["curves"][label]
            fpr, tpr, _ = roc_curve(y, q, drop_intermediate=False)
            prec, rec, _ = precision_recall_curve(y, q)
            # every plotted point is a point of scikit-learn's curves (thinned to <= 400), ends included
            roc_points = set(zip(fpr.tolist(), tpr.tolist()))
            assert set(zip(curve["fpr"].tolist(), curve["tpr"].tolist())) <= roc_points
            assert 2 < len(curve["fpr"]) <= 400 < len(fpr)
            assert (curve["fpr"][0], curve["tpr"][0], curve["fpr"][-1], curve["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
            pr_points = set(zip(prec.tolist(), rec.tolist()))
            assert set(zip(curve["precision"].tolist(), curve["recall"].tolist())) <= pr_points
            assert curve["auroc"] == pytest.approx(roc_auc_score(y, q), abs=1e-9)
            assert curve["auprc"] == pytest.approx(average_precision_score(y, q), abs=1e-9)
            if label == LABELS[0][0]:  # the random-guess level comes from the first entry of the panel
                assert plotted[(MODEL, ds)]["ood_fraction"] == pytest.approx(y.mean(), rel=1e-12)
    report.figure4([e for e in _pixel_entries(run) if e["dataset"] == "lostandfound"], png, pdf)
    w1, h1 = _check_figure(png, pdf)
    assert w1 == w2 and h2 == pytest.approx(2 * h1, rel=0.01)  # one row (ROC, PR) per dataset


def test_figure5_miou(run, tmp_path):
    png, pdf = tmp_path / "f5.png", tmp_path / "f5.pdf"
    plotted = report.figure5(_miou_entries(run), png, pdf)
    _check_figure(png, pdf)
    ts = [round(0.1 * k, 1) for k in range(1, 11)]
    for label, variant in LABELS:
        expected = _miou_by_hand(_store(run, variant, "cityscapes_val"), [*ts, np.inf])
        item = plotted[(MODEL, label)]
        np.testing.assert_allclose(item["t"], ts, rtol=0, atol=1e-12)
        np.testing.assert_allclose(item["miou"], [expected[t] for t in ts], rtol=1e-12)
        assert item["plain"] == pytest.approx(expected[np.inf], rel=1e-12)
    # the acceptable-loss line: 1 percentage point below the plain model's plain mIoU
    assert plotted[(MODEL, "Plain")]["acceptable"] == pytest.approx(plotted[(MODEL, "Plain")]["plain"] - 0.01)
    assert plotted[(MODEL, "OoD training")]["acceptable"] is None


def _errors_by_hand(run: Path, variant: str, t: float, meta_threshold: float = 0.5) -> dict[str, float]:
    """FP / FN / ε before and after removing the segments with prob_fp > meta_threshold, from the tables."""
    tag = pl.threshold_tag(t)
    seg = run / "segments" / MODEL / variant / "lostandfound"
    pred = pd.read_parquet(seg / f"{tag}.parquet")
    gt = pd.read_parquet(seg / f"{tag}.gt.parquet")
    overlaps = pd.read_parquet(seg / f"{tag}.overlaps.parquet")
    total_in = pd.read_parquet(seg / "images.parquet")["n_gt_in"].sum()
    meta = pd.read_parquet(run / "meta" / MODEL / variant / "lostandfound" / f"{tag}.parquet")
    removed = meta["prob_fp"].to_numpy() > meta_threshold
    kept = {(i, s) for i, s, r in zip(pred["image"], pred["segment"], removed) if not r}
    found = {(i, g) for i, p, g in zip(overlaps["image"], overlaps["pred_segment"], overlaps["gt_segment"]) if (i, p) in kept}
    fp = pred["iou0"].to_numpy() == 1
    return {
        "fp_before": fp.sum(), "fn_before": (gt["iou0"] == 1).sum(),
        "eps_before": pred["n_gt_in"].sum() / total_in,
        "fp_after": (fp & ~removed).sum(),
        "fn_after": sum((i, g) not in found for i, g in zip(gt["image"], gt["segment"])),
        "eps_after": pred["n_gt_in"].to_numpy()[~removed].sum() / total_in,
    }


def test_figure7_detection_errors(run, tmp_path):
    png, pdf = tmp_path / "f7.png", tmp_path / "f7.pdf"
    entries = [dict(e, model=MODEL, dataset="lostandfound") for e in _seg_entries(run)]
    for thresholds, shown in ((None, [0.7, 0.6, 0.5, 0.4, 0.3]), ([0.1, 0.5], [0.5, 0.1])):
        plotted = report.figure7(entries, png, pdf, thresholds=thresholds)
        _check_figure(png, pdf)
        for label, variant in SEG_LABELS:
            for when in ("before", "after"):
                line = plotted[label][when]
                np.testing.assert_allclose(line["t"], shown)
                by_hand = [_errors_by_hand(run, variant, t) for t in shown]
                np.testing.assert_array_equal(line["fp"], [e[f"fp_{when}"] for e in by_hand])
                np.testing.assert_array_equal(line["fn"], [e[f"fn_{when}"] for e in by_hand])
                np.testing.assert_allclose(line["eps"], [e[f"eps_{when}"] for e in by_hand], rtol=1e-12)


def test_pie_marker_vertices():
    v = figures._pie_verts(0.25)
    assert np.abs(v).max() == pytest.approx(1.0)  # the marker keeps the scale of the full disc
    angles = np.arctan2(v[1:-1, 1], v[1:-1, 0])
    assert angles.max() == pytest.approx(np.pi / 2) and angles.min() == pytest.approx(0.0, abs=1e-12)


def test_figure14_epochs(run, tmp_path):
    entries = [{"epoch": e, "miou_path": str(_pixel(run, v, "cityscapes_val")), "pixel_path": str(_pixel(run, v, "lostandfound"))}
               for e, v in ((2, "epoch2"), (0, "baseline"), (1, "epoch1"))]
    png, pdf = tmp_path / "f14.png", tmp_path / "f14.pdf"
    plotted = report.figure14(entries, png, pdf)
    _check_figure(png, pdf)
    np.testing.assert_array_equal(plotted["epoch"], [0, 1, 2])
    auprc, miou = [], []
    for v in ("baseline", "epoch1", "epoch2"):
        k, y = _pixel_scores(_store(run, v, "lostandfound"))
        auprc.append(average_precision_score(y, dequantize(k)))
        miou.append(_miou_by_hand(_store(run, v, "cityscapes_val"), [np.inf])[np.inf])
        lo, hi = _load(_pixel(run, v, "lostandfound"))["bootstrap"]["auprc"]
        e = ("baseline", "epoch1", "epoch2").index(v)
        assert (plotted["auprc_lo"][e], plotted["auprc_hi"][e]) == (lo, hi)
    np.testing.assert_allclose(plotted["auprc"], auprc, rtol=0, atol=1e-9)
    np.testing.assert_allclose(plotted["miou"], miou, rtol=1e-12)
    assert plotted["best_epoch"] == int(np.argmax(auprc))
    with pytest.raises(InputError, match="same epoch"):
        report.figure14(entries + entries[:1], png, pdf)


def _example_entries(run: Path, tag: str = "t0.7") -> dict:
    return {
        "baseline_store": str(run / "softmax" / MODEL / "baseline" / "lostandfound"),
        "ood_store": str(run / "softmax" / MODEL / "epoch2" / "lostandfound"),
        "baseline_meta": str(run / "meta" / MODEL / "baseline" / "lostandfound" / f"{tag}.parquet"),
        "ood_meta": str(run / "meta" / MODEL / "epoch2" / "lostandfound" / f"{tag}.parquet"),
    }


def _expected_panel(run: Path, variant: str, index: int, meta_threshold: float, tag: str = "t0.7") -> dict:
    """Per-segment TP flags (segment table) and removal decisions (meta table) of one image."""
    seg = pd.read_parquet(run / "segments" / MODEL / variant / "lostandfound" / f"{tag}.parquet")
    meta = pd.read_parquet(run / "meta" / MODEL / variant / "lostandfound" / f"{tag}.parquet")
    seg, meta = seg[seg["image"] == index].sort_values("segment"), meta[meta["image"] == index].sort_values("segment")
    removed = meta["prob_fp"].to_numpy() > meta_threshold
    return {"tp": seg["iou0"].to_numpy() == 0, "removed": removed,
            "removed_pixels": int(seg["S"].to_numpy()[removed].sum()), "ood_pixels": int(seg["S"].sum())}


def _check_panels(run: Path, plotted: dict, meta_threshold: float, with_base: bool = True) -> None:
    assert plotted["meta_threshold"] == meta_threshold
    for panel in plotted["panels"]:
        for key, variant in (("ood", "epoch2"), ("baseline", "baseline")):
            got = panel[key]
            if key == "baseline" and not with_base:
                assert got is None
                continue
            exp = _expected_panel(run, variant, panel["index"], meta_threshold)
            np.testing.assert_array_equal(got["tp"], exp["tp"])
            np.testing.assert_array_equal(got["removed"], exp["removed"])
            assert got["removed_pixels"] == exp["removed_pixels"]
            assert got["removed_pixels"] + got["kept_tp_pixels"] + got["kept_fp_pixels"] == exp["ood_pixels"]
            if key == "ood":
                assert panel["ood_pixels"] == exp["ood_pixels"]


def test_examples_panels(run, tmp_path):
    png, pdf = tmp_path / "ex.png", tmp_path / "ex.pdf"
    plotted = report.examples(_example_entries(run), png, pdf, threshold=0.7, n_examples=2)
    w, h = _check_figure(png, pdf)
    assert w > 2 * h  # six columns, two rows of 1:2 images
    assert len(plotted["panels"]) == 2 and plotted["threshold"] == 0.7
    _check_panels(run, plotted, 0.5)
    entries = _example_entries(run)
    del entries["baseline_meta"]
    plotted = report.examples([entries], png, pdf, threshold=0.7, n_examples=1)
    _check_figure(png, pdf)
    _check_panels(run, plotted, 0.5, with_base=False)
    plotted = report.examples(entries, png, pdf, threshold=0.7, n_examples=0)
    _check_figure(png, pdf, min_px=(300, 100))
    assert plotted["panels"] == []


def test_examples_use_the_meta_threshold(run, tmp_path):
    png, pdf = tmp_path / "ex.png", tmp_path / "ex.pdf"
    default = report.examples(_example_entries(run), png, pdf, threshold=0.7, n_examples=3)
    strict = report.examples(_example_entries(run), png, pdf, threshold=0.7, n_examples=3, meta_threshold=0.9)
    _check_panels(run, default, 0.5)
    _check_panels(run, strict, 0.9)
    n_default = sum(int(p[k]["removed"].sum()) for p in default["panels"] for k in ("ood", "baseline"))
    n_strict = sum(int(p[k]["removed"].sum()) for p in strict["panels"] for k in ("ood", "baseline"))
    assert n_strict < n_default  # segments with 0.5 < prob_fp <= 0.9 are kept at 0.9
    with pytest.raises(InputError, match="meta_threshold"):
        report.examples(_example_entries(run), png, pdf, meta_threshold=1.5)
    # the workflow passes config["meta"]["threshold"], the threshold table 2 removes segments with
    rule = Path(__file__).resolve().parents[1] / "workflow" / "rules" / "report.smk"
    examples_rule = rule.read_text().split("rule examples:")[1].split("\nrule ")[0]
    assert '"meta_threshold": config["meta"]["threshold"]' in examples_rule


def test_examples_choose_the_images_with_most_ood_pixels(run):
    from meta_ood.store import StoreReader

    reader = StoreReader(run / "softmax" / MODEL / "epoch2" / "lostandfound")
    counts = [int((reader.read(i, probs=False).label == 2).sum()) for i in range(len(reader))]
    chosen = figures._choose_images(reader, LOSTANDFOUND, 3)
    assert sorted(counts, reverse=True)[:3] == [counts[i] for i in chosen]
    assert chosen == sorted(chosen, key=lambda i: (-counts[i], i))


def test_examples_refuse_a_meta_table_of_another_threshold(run, tmp_path):
    entries = _example_entries(run)
    entries["ood_meta"] = _example_entries(run, "t0.1")["ood_meta"]  # t = 0.1 has more segments
    with pytest.raises(InputError, match="t0.1.parquet: has .* segment"):
        report.examples(entries, tmp_path / "ex.png", tmp_path / "ex.pdf", threshold=0.7, n_examples=3)
    entries = _example_entries(run)
    entries["ood_store"] = str(tmp_path / "no_store")
    with pytest.raises(InputError, match="no_store"):
        report.examples(entries, tmp_path / "ex.png", tmp_path / "ex.pdf", threshold=0.7, n_examples=1)


@pytest.mark.parametrize("name", ["figure3", "figure4", "figure5", "figure7", "figure14"])
def test_figures_name_a_missing_file(run, tmp_path, name):
    missing = str(tmp_path / "gone.json")
    entry = {"figure3": {"model": MODEL, "label": "Plain", "dataset": "lostandfound", "path": missing},
             "figure4": {"model": MODEL, "label": "Plain", "dataset": "lostandfound", "path": missing},
             "figure5": {"model": MODEL, "label": "Plain", "path": missing},
             "figure7": {"label": "Baseline", "path": missing},
             "figure14": {"epoch": 0, "miou_path": missing, "pixel_path": missing}}[name]
    png, pdf = tmp_path / "f.png", tmp_path / "f.pdf"
    with pytest.raises(InputError, match=re.escape(missing)):
        getattr(report, name)([entry], out_png=png, out_pdf=pdf)
    assert not png.exists() and not pdf.exists()


def test_figure3_needs_the_violin_histograms(run, tmp_path):
    entries = _pixel_entries(run)[:1]
    data = copy.deepcopy(_load(entries[0]["path"]))
    del data["violin"]
    (tmp_path / "noviolin.json").write_text(json.dumps(data))
    entries[0]["path"] = str(tmp_path / "noviolin.json")
    with pytest.raises(InputError, match="noviolin.json: lacks 'violin'"):
        report.figure3(entries, tmp_path / "f.png", tmp_path / "f.pdf")


def test_tables_do_not_import_matplotlib():
    code = ("import sys, meta_ood.report as r; r.table1; assert 'matplotlib' not in sys.modules; "
            "r.figure3; assert 'matplotlib' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_summary_numbers_are_the_json_numbers(run, tmp_path):
    pixel = [dict(e) for e in _pixel_entries(run)]
    errors = [dict(e) for e in _seg_entries(run)]
    text = pl.summary_stage(tmp_path / "s.md", pixel, [dict(e) for e in _miou_entries(run)], errors, run="fix")
    assert "## Pixel-level OoD detection (normalized entropy)" in text
    for e in pixel:
        r = _load(e["path"])
        assert f"| {MODEL} | {e['label']} | {e['dataset']} | {r['auroc']:.4f} | {r['fpr95']:.4f} | {r['auprc']:.4f} |" in text
    res = _load(errors[0]["path"])["thresholds"]
    lowered = sum(res[pl.threshold_tag(t)]["total_after"] < res[pl.threshold_tag(t)]["total_before"]
                  for t in THRESHOLDS if t >= 0.3)
    assert f"at {lowered} of 5 thresholds" in text
