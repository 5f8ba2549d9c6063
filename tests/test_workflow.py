"""The whole workflow through Snakemake on the smoke config: targets, partial rebuilds, determinism, resume."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, make_real_tree, placeholder_checkpoint, planned_jobs

pytestmark = pytest.mark.slow

SMOKE = REPO / "config" / "smoke.yaml"
RUN = yaml.safe_load(SMOKE.read_text())["run"]
# every run here as users start it, with the local profile (its threads per job also decide the numbers: a
# run and its resumption must use the same)
PROFILE = ("--profile", str(REPO / "profiles" / "local"))


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(SMOKE), *PROFILE, "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=timeout)


def table_files(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / RUN / "tables").glob("*"))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    start = time.perf_counter()
    proc = snakemake(workdir)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (workdir / "console.txt").write_text(proc.stdout + proc.stderr)
    return workdir, elapsed


def test_smoke_run_console_and_logs(smoke_run):
    """What the user sees: no 'Shell command: None', the summary named at the end; logs without redraws."""
    workdir, _ = smoke_run
    console = (workdir / "console.txt").read_text()
    assert "Shell command: None" not in console
    assert f"meta-ood: done. Summary: results/{RUN}/summary.md" in console
    assert f"snakemake --report results/{RUN}/report.html --configfile {SMOKE}" in console
    logs = list((workdir / "logs" / RUN).rglob("*.log"))
    assert len(logs) > 20
    for log in logs:
        assert "\r" not in log.read_text(), log
    assert "fontTools" not in "".join(p.read_text() for p in (workdir / "logs" / RUN).rglob("*.log"))


def test_smoke_run_builds_every_table_and_figure(smoke_run):
    workdir, elapsed = smoke_run
    res = workdir / "results" / RUN
    for name in ("table1", "table2", "table3", "table_components", "table_paired", "table_definitions"):
        for ext in ("csv", "md", "tex", "html"):
            assert (res / "tables" / f"{name}.{ext}").stat().st_size > 0
    for name in ("figure3", "figure4", "figure5", "figure7", "figure14", "examples"):
        for ext in ("png", "pdf"):
            assert (res / "figures" / f"{name}.{ext}").stat().st_size > 1000
    # the third OoD test set of the smoke config (Fishyscapes LostAndFound) has its columns, with numbers
    table1 = pd.read_csv(res / "tables" / "table1.csv")
    auroc = table1["fishyscapes_lostandfound_auroc"]
    assert len(auroc) == 2 and ((auroc > 0) & (auroc <= 1)).all()
    assert "Fishyscapes LostAndFound" in (res / "tables" / "table1.md").read_text()
    summary = (res / "summary.md").read_text()
    assert "AUPRC" in summary and "meta classification lowers" in summary
    # per-rule logs and benchmarks
    assert (workdir / "logs" / RUN / "ood_finetune" / "tiny" / "epoch2.log").is_file()
    assert any((workdir / "benchmarks" / RUN / "dump_softmax").rglob("*.tsv"))
    print(f"smoke run: {elapsed:.0f} s")


def test_pixel_metrics_from_score_planes_stay_within_the_documented_bound(smoke_run):
    """The dump's entropy planes (float32 softmax) against the entropy of the stored fixed16
    probabilities, on the stores that keep both: per pixel within the README's bound, and the
    pooled AUROC, AUPRC and FPR95 within 1e-3 of the earlier design's."""
    from test_score_bounds import entropy_bound

    from meta_ood.pixel_eval import PooledHistogram
    from meta_ood.scores import normalized_entropy
    from meta_ood.store import StoreReader

    workdir, _ = smoke_run
    stores = [p.parent for p in (workdir / "results" / RUN / "softmax").glob("*/*/*/index.json")]
    with_probs = [s for s in stores if StoreReader(s).has_probs]
    assert with_probs and len(with_probs) < len(stores)
    for store in with_probs:
        reader = StoreReader(store)
        conv = reader.convention
        new, old = PooledHistogram(), PooledHistogram()
        for img in reader.iter(scores=("entropy",)):
            ent = normalized_entropy(img.probs)
            gap = np.abs(img.scores["entropy"] / 65535 - ent.astype(np.float64))
            assert gap.max() <= entropy_bound(reader.num_classes), store
            new.update_codes(img.scores["entropy"], img.label, conv.train_id_in, conv.train_id_out)
            old.update(ent, img.label, conv.train_id_in, conv.train_id_out)
        m_new, m_old = new.metrics(), old.metrics()
        for key in ("auroc", "auprc", "fpr95"):
            assert abs(m_new[key] - m_old[key]) <= 1e-3, (store, key, m_new[key], m_old[key])


def test_deleting_one_table_reruns_only_that_table(smoke_run):
    workdir, _ = smoke_run
    (workdir / "results" / RUN / "tables" / "table3.md").unlink()
    proc = snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_jobs(proc) == {"table3": 1, "all": 1}
    proc = snakemake(workdir, f"results/{RUN}/tables/table3.md")
    assert proc.returncode == 0 and (workdir / "results" / RUN / "tables" / "table3.md").is_file()
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_html_report_collects_tables_and_figures(smoke_run):
    workdir, _ = smoke_run
    proc = snakemake(workdir, "--report", str(workdir / "report.html"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert "table2.html" in html and "table_paired.html" in html and "figure7.png" in html


def _run_until(workdir: Path, marker: str, timeout: float = 240) -> None:
    """Start the workflow and kill it (SIGKILL to the whole process group) once ``marker`` (a glob) exists."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(SMOKE), *PROFILE, "--cores", "2", "--rerun-incomplete"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(workdir.glob(marker)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before {marker} appeared"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_killed_runs_resume_to_identical_tables(smoke_run, tmp_path):
    reference, _ = smoke_run
    workdir = tmp_path
    # killed while training (epoch 2 of OoD fine-tuning is running) ...
    _run_until(workdir, f"results/{RUN}/models/tiny/ood/epoch1.pt")
    assert not (workdir / "results" / RUN / "models" / "tiny" / "ood" / "epoch2.pt").exists()
    # ... and while dumping (some image files written, the store index not yet)
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                    str(workdir), "--configfile", str(SMOKE), "--unlock"], cwd=workdir, capture_output=True, check=True)
    _run_until(workdir, f"results/{RUN}/softmax/tiny/epoch2/*/images/*.h5")
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                    str(workdir), "--configfile", str(SMOKE), "--unlock"], cwd=workdir, capture_output=True, check=True)
    proc = snakemake(workdir, "--rerun-incomplete")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ours, theirs = table_files(workdir), table_files(reference)
    assert [p.name for p in ours] == [p.name for p in theirs] and len(ours) == 24
    for a, b in zip(ours, theirs):
        assert filecmp.cmp(a, b, shallow=False), f"{a.name} differs from the uninterrupted run"
    assert (workdir / "results" / RUN / "summary.md").read_text() == (reference / "results" / RUN / "summary.md").read_text()


def test_paper_config_plans_full_dag_on_real_layouts(tmp_path):
    """A dry run of config/paper.yaml (roots and checkpoints filled in) plans exactly the paper's models and jobs."""
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    # COCO images that the paper's min_size of 480 keeps (start-up counts them)
    roots = make_real_tree(tmp_path / "data", coco_min_size=480, coco_size_range=(96, 640))
    cfg["datasets"] = {
        "cityscapes": {"root": str(roots["cityscapes"])},
        "coco": {"root": str(roots["coco"]), "split": "train2017"},
        "lostandfound": {"root": str(roots["lostandfound"]), "split": "test"},
        "fishyscapes_static": {"root": str(roots["fishyscapes"]), "split": "Static"},
    }
    for name, model in cfg["models"].items():
        if not model.get("baseline_from"):
            model["checkpoint"] = str(placeholder_checkpoint(model["arch"], tmp_path / f"{name}.pth"))
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(path), "--cores", "8"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    jobs = planned_jobs(proc)
    out = proc.stdout + proc.stderr
    # 3 models: WRN38 4 epochs + DualGCN 11 epochs of fine-tuning + WRN38 8 epochs of void OoD training (appendix
    # C, from the WRN38 baseline), no demo data and no baseline training
    assert jobs["ood_finetune"] == 4 + 11 + 8
    assert "demo_data" not in jobs and "train_baseline" not in jobs
    # dumps: per model the last epoch, per baseline (the void model shares WRN38's) the baseline, on LostAndFound,
    # Fishyscapes, Cityscapes val with void as OoD and Cityscapes val (table 1), plus the main model's intermediate
    # epochs on LostAndFound and Cityscapes val (figure 14)
    assert jobs["dump_softmax"] == (3 + 2) * 4 + 3 * 2
    assert "results/paper/softmax/deeplabv3plus_wrn38_void/baseline" not in out
    assert jobs["segment_features"] == 2 and jobs["meta_classify"] == 2 * 7 and jobs["segment_eval"] == 2
    assert "tiny" not in out and "results/paper/models/deeplabv3plus_wrn38/ood/epoch4.pt" in out
    assert "results/paper/models/dualgcn_resnet50/ood/epoch11.pt" in out
    assert "results/paper/models/deeplabv3plus_wrn38_void/ood/epoch8.pt" in out
    assert "results/paper/pixel/deeplabv3plus_wrn38_void/epoch8/cityscapes_void.json" in out
    for rule in ("coco_filter", "table1", "table2", "table3", "figure3", "figure4", "figure5", "figure7", "figure14",
                 "examples", "summary", "figure8", "figure9", "figure11", "figure12", "figure1", "figure2", "figure6",
                 "figure10", "figure13", "figure15", "figure16"):
        assert jobs.get(rule) == 1, rule


def test_paper_config_plans_without_data_with_plan_only(tmp_path):
    """`-n --config plan_only=true` on config/paper.yaml as shipped (no data, no checkpoints): the missing inputs
    are listed and the same plan as with the data follows; without plan_only the dry run stops; without -n
    plan_only is refused."""
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
             "--configfile", str(REPO / "config" / "paper.yaml"), "--cores", "8", *args],
            capture_output=True, text=True, cwd=tmp_path, timeout=300)

    proc = run("-n", "--config", "plan_only=true")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "plan_only: the plan follows" in proc.stderr and "checkpoint file not found" in proc.stderr
    jobs = planned_jobs(proc)
    assert jobs["ood_finetune"] == 4 + 11 + 8 and jobs["dump_softmax"] == (3 + 2) * 4 + 3 * 2
    assert jobs["coco_filter"] == 1 and jobs["summary"] == 1
    stopped = run("-n")
    assert stopped.returncode != 0 and "Cityscapes root not found" in stopped.stderr
    refused = run("--config", "plan_only=true")
    assert refused.returncode != 0 and "plan_only: true only plans a run: add -n" in refused.stderr
    assert not (tmp_path / "results").exists()


def test_a_shared_baseline_is_dumped_evaluated_and_submitted_once(tmp_path):
    """The demo's tiny_b and tiny_void take tiny's baseline (baseline_from): its dumps, evaluations and SMIYC method
    exist once, under tiny; table 1 and figure 5 get one Plain entry, labelled with the models sharing it."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "--cores", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out = proc.stdout + proc.stderr
    jobs = planned_jobs(proc)
    for shared in ("tiny_b", "tiny_void"):
        assert f"softmax/{shared}/baseline" not in out and f"pixel/{shared}/baseline" not in out
        assert f"anomaly_p/{shared}-plain" not in out and f"eval/{shared}-plain" not in out
    assert "results/demo/softmax/tiny/baseline/lostandfound/index.json" in out
    assert "results/demo/smiyc/eval/tiny-plain/smiyc_obstacle.json" in out
    # per model: the last epoch on 9 datasets; one baseline on 9; tiny's epochs 1, 2 on LostAndFound and Cityscapes val
    assert jobs["dump_softmax"] == 3 * 9 + 9 + 2 * 2
    # SMIYC methods per dataset: tiny-plain, three -ood, and -ood-meta on the segment datasets
    assert jobs["smiyc_eval"] == sum(1 + 3 + (3 if ds in ("smiyc_anomaly", "smiyc_obstacle") else 0)
                                     for ds in ("smiyc_anomaly", "smiyc_obstacle", "lostandfound_noknown", "road_anomaly"))
