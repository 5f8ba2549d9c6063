"""Tests of the report figures: every figure is written and plots the numbers recomputed here,
independently, from the stores (pixel scores, mIoU) and the segment / meta tables (detection
errors, removed segments).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_data import (
    LABELS,
    MODEL,
    SEG_LABELS,
    SEGMENT_DATASETS,
    C,
    _load,
    _miou_entries,
    _pixel,
    _pixel_entries,
    _road_scene,
    _seg_entries,
    _seg_entries_of,
    shared_results,
)
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from meta_ood import report
from meta_ood import stages as pl
from meta_ood.errors import InputError
from meta_ood.labels import LOSTANDFOUND
from meta_ood.pixel_eval import dequantize
from meta_ood.report import figures_pixel, figures_segments
from meta_ood.store import StoreReader, StoreWriter

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_results(tmp_path_factory)

# every figure a test draws: no text artist leaves the canvas or overlaps another one
pytestmark = pytest.mark.usefixtures("no_text_layout_problems")



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
    """Quantization bins (16 bit) of the normalized entropy of every evaluated pixel (the store's entropy
    planes, which hold them), and is-OoD."""
    reader = StoreReader(store)
    conv = reader.convention
    bins, ood = [], []
    for img in reader.iter(scores=("entropy",)):
        keep = (img.label == conv.train_id_in) | (img.label == conv.train_id_out)
        bins.append(img.scores["entropy"][keep])
        ood.append(img.label[keep] == conv.train_id_out)
    return np.concatenate(bins).astype(np.int64), np.concatenate(ood)


def _miou_by_hand(store: Path, thresholds) -> dict[float, float]:
    """mIoU with pixels of entropy >= t predicted as the extra class 19, from the store's pixels."""
    reader = StoreReader(store)
    conf = {t: np.zeros((C, C + 1), np.int64) for t in thresholds}
    for img in reader.iter(scores=("entropy",), argmax=True):
        valid = img.label != 255
        gt = img.label[valid].astype(np.int64)
        pred = img.argmax[valid].astype(np.int64)
        ent = img.scores["entropy"][valid] / 65535.0
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
    t, acc = figures_pixel.accuracy_threshold(violin, n_pos=100, n_neg=900)
    assert t == pytest.approx(0.3) and acc == pytest.approx(1.0)
    dens_out[:] = 0.0
    dens_out[2] = 10.0              # OoD all in the in-distribution's last bin [0.2, 0.3)
    violin["out"]["density"] = dens_out.tolist()
    t, acc = figures_pixel.accuracy_threshold(violin, n_pos=100, n_neg=900)
    # t = 0.2 flags the 20 % of in-distribution pixels there plus all OoD pixels: (720 + 100) / 1000;
    # t = 0.3 flags nothing: 900 / 1000 -- plain accuracy prefers flagging nothing
    assert t == pytest.approx(0.3) and acc == pytest.approx(0.9)
    t, acc = figures_pixel.accuracy_threshold(violin, n_pos=100, n_neg=900, balanced=True)
    assert t == pytest.approx(0.2) and acc == pytest.approx(0.8 / 2 + 1.0 / 2)
    # an unbounded score (negated max logit): the edges of the histogram are its own range
    violin["edges"] = np.linspace(-12.0, -2.0, 11).tolist()
    violin["centers"] = (np.linspace(-12.0, -2.0, 11)[:-1] + 0.5).tolist()
    t, acc = figures_pixel.accuracy_threshold(violin, n_pos=100, n_neg=900, balanced=True)
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
    # a shared baseline's entry ("Plain (shared with ...)", as the workflow labels it) is the plain one: same colour,
    # and the acceptable line comes from it
    shared = [{**e, "label": "Plain (shared with other)"} if e["label"] == "Plain" else e for e in _miou_entries(run)]
    again = report.figure5(shared, tmp_path / "f5s.png", tmp_path / "f5s.pdf")
    assert again[(MODEL, "Plain (shared with other)")]["acceptable"] == plotted[(MODEL, "Plain")]["acceptable"]
    from meta_ood.report.figures_style import label_colors

    assert label_colors(["Plain (shared with other)"])["Plain (shared with other)"] == label_colors(["Plain"])["Plain"]


def _errors_by_hand(run: Path, variant: str, t: float, meta_threshold: float = 0.5,
                    dataset: str = "lostandfound") -> dict[str, float]:
    """FP / FN / ε before and after removing the segments with prob_fp > meta_threshold, from the tables."""
    tag = pl.threshold_tag(t)
    seg = run / "segments" / MODEL / variant / dataset
    pred = pd.read_parquet(seg / f"{tag}.parquet")
    gt = pd.read_parquet(seg / f"{tag}.gt.parquet")
    overlaps = pd.read_parquet(seg / f"{tag}.overlaps.parquet")
    total_in = pd.read_parquet(seg / "images.parquet")["n_gt_in"].sum()
    meta = pd.read_parquet(run / "meta" / MODEL / variant / dataset / f"{tag}.parquet")
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
        assert list(plotted) == [("lostandfound", label) for label, _ in SEG_LABELS]
        for label, variant in SEG_LABELS:
            for when in ("before", "after"):
                line = plotted[("lostandfound", label)][when]
                np.testing.assert_allclose(line["t"], shown)
                by_hand = [_errors_by_hand(run, variant, t) for t in shown]
                np.testing.assert_array_equal(line["fp"], [e[f"fp_{when}"] for e in by_hand])
                np.testing.assert_array_equal(line["fn"], [e[f"fn_{when}"] for e in by_hand])
                np.testing.assert_allclose(line["eps"], [e[f"eps_{when}"] for e in by_hand], rtol=1e-12)


def test_figure7_has_one_panel_per_dataset(run, tmp_path):
    """Several segment datasets: a panel each, every line the errors of its own dataset's tables."""
    png, pdf = tmp_path / "f7.png", tmp_path / "f7.pdf"
    report.figure7(_seg_entries(run), tmp_path / "one.png", tmp_path / "one.pdf")
    single_w, _ = _check_figure(tmp_path / "one.png", tmp_path / "one.pdf")
    plotted = report.figure7(_seg_entries_of(run), png, pdf)
    w, _ = _check_figure(png, pdf)
    assert w > single_w  # two panels side by side
    assert list(plotted) == [(ds, label) for ds in SEGMENT_DATASETS for label, _ in SEG_LABELS]
    shown = [0.7, 0.6, 0.5, 0.4, 0.3]
    fps = {}
    for ds in SEGMENT_DATASETS:
        for label, variant in SEG_LABELS:
            by_hand = [_errors_by_hand(run, variant, t, dataset=ds) for t in shown]
            for when in ("before", "after"):
                line = plotted[(ds, label)][when]
                np.testing.assert_allclose(line["t"], shown)
                np.testing.assert_array_equal(line["fp"], [e[f"fp_{when}"] for e in by_hand])
                np.testing.assert_array_equal(line["fn"], [e[f"fn_{when}"] for e in by_hand])
                np.testing.assert_allclose(line["eps"], [e[f"eps_{when}"] for e in by_hand], rtol=1e-12)
            fps[(ds, label)] = plotted[(ds, label)]["before"]["fp"].tolist()
    assert fps[("lostandfound", "Baseline")] != fps[("fishyscapes_static", "Baseline")]


def test_pie_marker_vertices():
    v = figures_segments._pie_verts(0.25)
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
    examples_rule = rule.read_text().split('\n        "examples",\n')[1].split("\n    ),")[0]  # its REPORT_TARGETS row
    assert '"meta_threshold": config["meta"]["threshold"]' in examples_rule


def test_examples_choose_the_images_with_most_ood_pixels(run):
    from meta_ood.store import StoreReader

    reader = StoreReader(run / "softmax" / MODEL / "epoch2" / "lostandfound")
    counts = [int((reader.read(i, probs=False).label == 2).sum()) for i in range(len(reader))]
    chosen = figures_segments._choose_images(reader, LOSTANDFOUND, 3)
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


def test_text_problems_finds_overlaps_and_text_off_the_canvas():
    from meta_ood.report.figures_style import new_figure, text_problems

    fig = new_figure(4, 3)
    ax = fig.subplots()
    ax.set_xticks([0, 1])
    ax.text(0.1, 0.8, "first label", transform=ax.transAxes)
    ax.text(0.1, 0.2, "second label", transform=ax.transAxes)
    assert text_problems(fig) == []
    ax.text(0.13, 0.8, "third label", transform=ax.transAxes)  # on top of the first
    fig.text(1.02, 0.5, "beyond the edge")
    problems = text_problems(fig)
    assert "'first label' overlaps 'third label'" in problems and "'beyond the edge' leaves the canvas" in problems
    assert not any("second label" in p for p in problems)


def test_figure_smiyc_curves(tmp_path):
    """One row per dataset (ROC, precision-recall), every method's official curve as its JSON has it, one legend
    below the panels (no text over the curves)."""
    entries = []
    for k, method in enumerate(["tiny-plain", "tiny-ood", "tiny-ood-meta", "other-method"]):
        for ds in ("smiyc_anomaly", "smiyc_obstacle"):
            x = np.linspace(0, 1, 30)
            curve = {"fpr": x.tolist(), "tpr": (x ** (1 / (k + 2))).tolist(), "recall": x.tolist(),
                     "precision": (1 - 0.5 * x ** (k + 1)).tolist()}
            path = tmp_path / f"{method}_{ds}.json"
            path.write_text(json.dumps({"curve": curve}))
            entries.append({"method": method, "dataset": ds, "path": str(path)})
    png, pdf = tmp_path / "c.png", tmp_path / "c.pdf"
    plotted = report.figure_smiyc_curves(entries, png, pdf)
    _check_figure(png, pdf)
    assert set(plotted) == {"smiyc_anomaly", "smiyc_obstacle"} and len(plotted["smiyc_obstacle"]) == 4
    assert plotted["smiyc_anomaly"]["tiny-ood"]["tpr"] == json.loads((tmp_path / "tiny-ood_smiyc_anomaly.json")
                                                                    .read_text())["curve"]["tpr"]
