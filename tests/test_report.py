"""Tests of the report package as a whole: lazy figure imports and the run's summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from report_data import (
    MODEL,
    SEGMENT_DATASETS,
    THRESHOLDS,
    _load,
    _miou_entries,
    _pixel_entries,
    _seg_entries,
    _seg_entries_of,
    shared_results,
)

from meta_ood import stages as pl
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.pixel_eval.paired import paired_bootstrap, paired_counts

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_results(tmp_path_factory)


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


def test_summary_marks_the_papers_claims_pass_or_fail(run, tmp_path):
    """Each claim of the paper gets pass / fail from the JSON numbers: AUPRC up after OoD training per
    dataset, the largest mIoU drop at t >= 0.3 below one point, the summed errors lowered by the meta
    classifier; for a void-trained model, its LostAndFound AUPRC below the baseline's instead."""
    from meta_ood.report.summary import MIOU_LOSS

    pixel = [dict(e) for e in _pixel_entries(run)]
    miou = [dict(e) for e in _miou_entries(run)]
    errors = [dict(e) for e in _seg_entries(run)]
    text = pl.summary_stage(tmp_path / "s.md", pixel, miou, errors, run="fix")
    assert "## The paper's claims on this run" in text
    res = {(e["dataset"], e["label"]): _load(e["path"])["auprc"] for e in pixel}
    npz = {(e["dataset"], e["label"]): Path(e["path"]).with_suffix(".npz") for e in pixel}
    for ds in ("lostandfound", "fishyscapes_static"):
        before, after = res[(ds, "Plain")], res[(ds, "OoD training")]
        # judged by the paired bootstrap interval of the change (the pixel JSONs' .npz histograms beside them)
        r = paired_bootstrap(PooledHistogram.load(npz[(ds, "OoD training")]), PooledHistogram.load(npz[(ds, "Plain")]),
                             n_boot=1000, seed=0)["auprc"]
        mark = "pass" if r["lo"] > 0 else "fail" if r["hi"] < 0 else "not resolved"
        assert (f"- OoD training raises AUPRC on {ds} ({MODEL}): **{mark}** ({before:.4f} -> {after:.4f}: "
                f"{r['diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}], p = {r['p']:.3f}") in text
    # without the histograms (or n_boot = 0): the direction of the point values
    plain_text = pl.summary_stage(tmp_path / "s0.md", pixel, miou, errors, run="fix", n_boot=0)
    before, after = res[("lostandfound", "Plain")], res[("lostandfound", "OoD training")]
    assert (f"- OoD training raises AUPRC on lostandfound ({MODEL}): **{'pass' if after > before else 'fail'}** "
            f"({before:.4f} -> {after:.4f})") in plain_text
    assert "rises after OoD training" not in text  # one verdict per claim: no second AUPRC check
    plain, ood = (_load(e["path"])["miou"] for e in miou)
    drop = max(plain["inf"] - ood[k] for k in ood if k != "inf" and float(k) >= 0.3)
    mark = "pass" if drop < MIOU_LOSS else "fail"
    assert f"at t >= 0.3 after OoD training (paper, real data) ({MODEL}): **{mark}** (largest drop {100 * drop:.2f} points" in text
    # as the paper counts (section 7): the best plain baseline against the best OoD training + meta classifier,
    # each at its own best threshold t >= 0.3; and OoD training + meta against baseline + meta
    def best(label, stage):
        res = next(_load(e["path"]) for e in errors if e["label"] == label and e.get("dataset", "lostandfound") == "lostandfound")
        total, t = min((res["thresholds"][pl.threshold_tag(t)][f"total_{stage}"], t) for t in THRESHOLDS if t >= 0.3)
        pi = res["thresholds"][pl.threshold_tag(t)]["per_image"]
        return total, t, [a + b for a, b in zip(pi[f"fp_{stage}"], pi[f"fn_{stage}"])], res["frames"]

    def paired(a, b):
        """The verdict and numbers of "a makes fewer errors than b": the paired bootstrap over images."""
        r = paired_counts(a[3], a[2], b[3], b[2], n_boot=1000, seed=0)
        verdict = "pass" if r["hi"] < 0 else "fail" if r["lo"] > 0 else "not resolved"
        return verdict, (f"; difference {r['diff']:+,.0f} [{r['lo']:+,.0f}, {r['hi']:+,.0f}], p = {r['p']:.3f}, "
                         "paired bootstrap over images")

    base, ood, base_meta = best("Baseline", "before"), best("OoD training", "after"), best("Baseline", "after")
    (b, tb), (o, to), (bm, tbm) = base[:2], ood[:2], base_meta[:2]
    assert sum(base[2]) == b and sum(ood[2]) == o
    who = f" ({MODEL})" if errors[0].get("model") else ""
    mark, numbers = paired(ood, base)
    assert (f"(paper: by 52 %, 1,242 -> 598){who}: **{mark}** ({b:,} at t = {tb:g} -> {o:,} at t = {to:g}, "
            f"{100 * (b - o) / b:.0f} %{numbers})") in text
    mark, numbers = paired(ood, base_meta)
    assert (f"beats baseline + meta classifier (paper: 598 vs 714 errors){who}: **{mark}** "
            f"({o:,} at t = {to:g} vs {bm:,} at t = {tbm:g}{numbers})") in text
    mark = "pass" if o < bm else "fail"  # without resamples: the totals
    assert (f"beats baseline + meta classifier (paper: 598 vs 714 errors){who}: **{mark}** "
            f"({o:,} at t = {to:g} vs {bm:,} at t = {tbm:g})") in plain_text
    void = pl.summary_stage(tmp_path / "v.md", pixel, miou, errors, run="fix", void_models=[MODEL])
    before, after = res[("lostandfound", "Plain")], res[("lostandfound", "OoD training")]
    mark = "pass" if after < before else "fail"
    assert f"void OoD training lowers the LostAndFound AUPRC against the baseline (appendix C: 0.46 -> 0.17) ({MODEL}): **{mark}**" in void
    assert "raises AUPRC" not in void and "mIoU drops" not in void


def _error_rows(path: str, label: str) -> list[str]:
    """The summary's detection-error table rows of one segment_eval JSON."""
    return [f"| {label} | {tag[1:]} | {d['fp_before']} | {d['fn_before']} | {d['total_before']} | "
            f"{d['fp_after']} | {d['fn_after']} | {d['total_after']} |" for tag, d in _load(path)["thresholds"].items()]


def test_summary_has_the_detection_errors_of_every_segment_dataset(run, tmp_path):
    """One section per dataset with that dataset's numbers; checks named by dataset; the paper's 52 % claim on
    LostAndFound only; and no LostAndFound among the segment datasets is no problem."""
    from meta_ood.report.results import dataset_title

    pixel, miou = [dict(e) for e in _pixel_entries(run)], [dict(e) for e in _miou_entries(run)]
    errors = _seg_entries_of(run)
    text = pl.summary_stage(tmp_path / "s.md", pixel, miou, errors, run="fix")
    sections = text.split("## Detection errors on ")[1:]
    assert [sec.split(" (FP + FN)")[0] for sec in sections] == [dataset_title(ds) for ds in SEGMENT_DATASETS]
    for ds, sec in zip(SEGMENT_DATASETS, sections):
        body = sec.split("\n## ")[0]
        for e in (e for e in errors if e["dataset"] == ds):
            assert all(row in body for row in _error_rows(e["path"], e["label"]))
            res = _load(e["path"])["thresholds"]
            lowered = sum(res[pl.threshold_tag(t)]["total_after"] < res[pl.threshold_tag(t)]["total_before"]
                          for t in THRESHOLDS if t >= 0.3)
            assert (f"- meta classification lowers the total errors at t >= 0.3 ({e['label']}, {dataset_title(ds)}): "
                    f"**{'yes' if lowered == 5 else 'no'}** at {lowered} of 5 thresholds") in text
    assert _error_rows(errors[0]["path"], "Baseline")[0] not in sections[1]  # no LostAndFound row under Fishyscapes
    assert text.count("(paper: by 52 %") == 1 and "cut the detection errors of the best baseline on LostAndFound" in text

    others = [e for e in errors if e["dataset"] != "lostandfound"]
    text = pl.summary_stage(tmp_path / "o.md", pixel, miou, others, run="fix")
    assert "## Detection errors on Fishyscapes Static" in text and "Detection errors on LostAndFound" not in text
    assert "(paper: by 52 %" not in text
    assert all(row in text for e in others for row in _error_rows(e["path"], e["label"]))


def test_label_colors_terminate_and_stay_distinct_for_many_labels():
    """More labels than spare colours (a run with many SMIYC methods) still gets a colour each, distinct
    while the palette lasts; this looped forever once the six spare colours were used."""
    from meta_ood.report.figures_style import _SPARE, label_colors

    labels = [f"method{k}" for k in range(len(_SPARE) + 5)]
    colors = label_colors(["Plain", "OoD training", *labels])
    assert len(colors) == len(labels) + 2
    assert len({colors[lab] for lab in labels[:len(_SPARE)]}) == len(_SPARE)
