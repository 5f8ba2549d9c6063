"""Tests of the report package as a whole: lazy figure imports and the run's summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from report_data import MODEL, THRESHOLDS, _load, _miou_entries, _pixel_entries, _seg_entries, shared_results

from meta_ood import stages as pl

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
