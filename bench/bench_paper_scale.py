"""Benchmark: CPU-hours of the paper setting (config/paper.yaml), previous store design vs the new one.

The job list comes from a Snakemake dry run of ``config/paper.yaml`` whose dataset roots and
checkpoints are replaced, as ``tests/test_workflow.py`` does, by a tiny tree in the real on-disk
layouts (the demo generator) and placeholder checkpoints with the architectures' exact keys, so
the start-up checks pass; each job's rule and wildcards are parsed from the dry run's output
(``--no-dry-run`` or a failed dry run: the jobs are counted from the config the way the workflow
derives them). Images per job are the real datasets' sizes (:data:`IMAGES`, ``--images``).

Per-image costs are measured in this run, single-threaded, on full-size synthetic images
(``bench_dump``'s stand-in logits, 1024 x 2048, 19 classes) for both designs:

* dump_softmax: host part and device part (``bench_dump``; the device part is GPU work in a real
  run and is counted separately), new design with probabilities only where segments are computed;
* pixel_eval, OoD sets: read + histogram. Previous: float32 probabilities of a zlib store ->
  normalized entropy -> ``PooledHistogram.update``; new: the ``scores/entropy`` codes of the default codec's (LZ4)
  store -> ``update_codes``. The bootstrap (per job, the same in both) is counted per image;
* pixel_eval, Cityscapes val: read + ``MiouAccumulator.update`` (previous: entropy and argmax
  from the probabilities; new: the entropy and argmax planes);
* segment_features: read of the probabilities + ``segment_metrics_multi`` at the configured
  thresholds (the same code in both designs; only the read differs, zlib vs LZ4);
* meta_classify: the configured protocols on a synthetic table of ``--segments`` segments, per job.

Fine-tuning (network training), segment_eval and the report jobs read no images and are the same
in both designs; they are listed, not counted.

    python bench/bench_paper_scale.py
    python bench/bench_paper_scale.py --images lostandfound=100 --repeats 1 --segments 5000
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from meta_ood.config import load_config  # noqa: E402
from meta_ood.device_planes import device_planes  # noqa: E402
from meta_ood.meta import meta_classify  # noqa: E402
from meta_ood.pixel_eval import MiouAccumulator, PooledHistogram, bootstrap, score_encoding  # noqa: E402
from meta_ood.scores import SCORERS  # noqa: E402
from meta_ood.segments import feature_names, segment_metrics_multi  # noqa: E402
from meta_ood.store import DEFAULT_CODEC, StoreReader, StoreWriter, decode_scores  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dump import IN_ID, OUT_ID, VOID, lostandfound_label, measure_new, measure_previous, stand_in_logits  # noqa: E402
from bench_loo import synthetic_segments  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIOU_DATASET = "cityscapes_val"
#: Evaluation images per dataset (``--images name=N`` overrides). Sources: Cityscapes val split
#: (Cordts et al., CVPR 2016): 500; LostAndFound test split as the paper's released code reads it
#: (Pinggera et al., IROS 2016): 1,203 frames; Fishyscapes Static, split "Static" of
#: config/paper.yaml = the public validation set (Blum et al., IJCV 2021): 30 images (the
#: benchmark's 1,000 test images are hidden); Fishyscapes LostAndFound validation: 100 images.
IMAGES = {"cityscapes_val": 500, "lostandfound": 1203, "fishyscapes_static": 30, "fishyscapes_lostandfound": 100}


def dry_run_jobs(config: Path, tmp: Path) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job of a Snakemake dry run of ``config`` on a tiny stand-in tree."""
    from meta_ood.datasets.demo import DemoConfig, generate
    from meta_ood.models import build

    cfg = yaml.safe_load(config.read_text())
    # COCO images that the paper's coco_filter.min_size keeps (the start-up check counts them)
    min_size = int(cfg.get("coco_filter", {}).get("min_size", 480))
    info = generate(tmp / "data", DemoConfig(height=64, width=128, n_train=4, n_val=2, n_coco=12, n_lostandfound=4,
                                             n_fishyscapes=2, coco_min_size=min_size,
                                             coco_size_range=(96, max(640, min_size))), progress=False)
    for marker in (tmp / "data").glob("DEMO_DATA*.json"):
        marker.unlink()  # as tests/conftest.make_real_tree: nothing says the tree is synthetic
    roots = {"cityscapes": "cityscapes", "coco": "coco", "lostandfound": "lostandfound",
             "fishyscapes_static": "fishyscapes", "fishyscapes_lostandfound": "fishyscapes"}
    cfg["datasets"] = {k: {**v, "root": str(info[roots[k]])} for k, v in cfg["datasets"].items() if k in roots}
    for name, model in cfg["models"].items():
        if model.get("baseline_from"):
            continue  # takes another model's baseline checkpoint
        with torch.device("meta"):
            state = build(model["arch"], 19).state_dict()
        torch.save({k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}, tmp / f"{name}.pth")
        model["checkpoint"] = str(tmp / f"{name}.pth")
    (tmp / "paper.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp), "--configfile", str(tmp / "paper.yaml"), "--cores", "8"],
                          capture_output=True, text=True, cwd=tmp, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr)[-1500:])
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in proc.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append((m.group(1), {}))
        elif (m := re.match(r"^\s+wildcards: (.*)$", line)) and jobs:
            jobs[-1][1].update(kv.split("=", 1) for kv in m.group(1).split(", "))
    return jobs


def config_jobs(cfg: dict) -> list[tuple[str, dict[str, str]]]:
    """The image jobs counted from the config, mirroring workflow/rules/common.smk."""
    ev, models = cfg["evaluation"], cfg["models"]
    main = cfg["report"]["main_model"] or next(iter(models))
    datasets = list(dict.fromkeys(([MIOU_DATASET] if ev["miou"] else []) + ev["ood_datasets"] + ev["segment_datasets"]))
    last = {m: min(ev["ood_epoch"] or spec["finetune"]["epochs"], spec["finetune"]["epochs"]) for m, spec in models.items()}
    runs = [(m, v, d) for m in models for v in ("baseline", f"epoch{last[m]}") for d in datasets]
    if ev["miou"] and ev["every_epoch"] and ev["ood_datasets"]:  # figure 14
        fig14 = "lostandfound" if "lostandfound" in ev["ood_datasets"] else ev["ood_datasets"][0]
        runs += [(main, f"epoch{e}", d) for e in range(1, models[main]["finetune"]["epochs"] + 1) if e != last[main]
                 for d in (MIOU_DATASET, fig14)]
    jobs = [(r, {"model": m, "variant": v, "dataset": d}) for m, v, d in runs for r in ("dump_softmax", "pixel_eval")]
    for v in ("baseline", f"epoch{last[main]}"):
        for d in ev["segment_datasets"]:
            jobs.append(("segment_features", {"model": main, "variant": v, "dataset": d}))
            jobs += [("meta_classify", {"model": main, "variant": v, "dataset": d, "tag": f"t{t}"}) for t in ev["thresholds"]]
    return jobs


def per_image(fn: Callable[[int], object], n: int, repeats: int) -> float:
    """Mean over images ``k < n`` of the best of ``repeats`` timings of ``fn(k)``."""
    out = []
    for k in range(n):
        best = float("inf")
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            fn(k)
            best = min(best, time.perf_counter() - t0)
        out.append(best)
    return float(np.mean(out))


def make_store(folder: Path, logits: list[torch.Tensor], labels: list[np.ndarray], codec: str, keep_probs: bool,
               scorers: tuple[str, ...]) -> StoreReader:
    """A store of the stand-in images (planes from ``device_planes``), opened with a single-threaded reader."""
    w = StoreWriter(folder, logits[0].shape[1], "fixed16", model="stand-in", total=len(logits), codec=codec,
                    store_probs=keep_probs, scorers=scorers)
    for k, (lg, lab) in enumerate(zip(logits, labels)):
        w.write(k, f"image{k}", f"image{k}.png", label=lab, planes=device_planes(lg, scorers, "fixed16", keep_probs, shuffle=True)[0])
    w.finalize()
    return StoreReader(folder, threads=1)


def main() -> None:
    """Plan the paper's jobs, measure the per-image costs of both designs and print the CPU-hours."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    ap.add_argument("--images", action="append", default=[], metavar="NAME=N", help="images of a dataset")
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--measure-images", type=int, default=2, help="synthetic images per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="timings per image (the best counts)")
    ap.add_argument("--segments", type=int, default=20000, help="segments of one meta classification table")
    ap.add_argument("--no-dry-run", action="store_true", help="count the jobs from the config")
    ap.add_argument("--workdir", default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    images = dict(IMAGES)
    for item in args.images:
        name, _, n = item.partition("=")
        images[name] = int(n)
    cfg = load_config(args.config)
    ev = cfg["evaluation"]
    thresholds, seg_sets, scorer = [float(t) for t in ev["thresholds"]], set(ev["segment_datasets"]), ev["scorer"]
    scorers = tuple(sorted({"entropy", scorer}))
    work = Path(tempfile.mkdtemp(prefix="bench_paper_scale.", dir=args.workdir))
    try:
        source = "config count (--no-dry-run)"
        if not args.no_dry_run:
            try:
                (work / "dry").mkdir()
                jobs, source = dry_run_jobs(Path(args.config), work / "dry"), "Snakemake dry run"
            except (RuntimeError, subprocess.SubprocessError, OSError, KeyError) as exc:
                source = f"config count (the dry run failed: {str(exc).strip().splitlines()[-1][:200]})"
        if source.startswith("config"):
            jobs = config_jobs(cfg)
        counts: dict[str, int] = {}
        for rule, _ in jobs:
            counts[rule] = counts.get(rule, 0) + 1
        print(f"jobs of {args.config} ({source}): " + ", ".join(f"{r} {n}" for r, n in counts.items()))
        print("images per dataset: " + ", ".join(f"{k} {v}" for k, v in images.items()))

        n, h, w = args.measure_images, args.height, args.width
        print(f"measuring on {n} synthetic images of 19 x {h} x {w}, 1 thread, best of {args.repeats} ...", flush=True)
        logits = [stand_in_logits(h, w, 19, seed=k) for k in range(n)]
        labels = [lostandfound_label(h, w, seed=k) for k in range(n)]
        city = [np.where(lostandfound_label(h, w, k) == VOID, VOID, lg[0].argmax(0).numpy()).astype(np.uint8)
                for k, lg in enumerate(logits)]
        cpu = torch.device("cpu")
        prev = measure_previous(logits, labels, work / "dump_prev", args.repeats, cpu)
        new_p = measure_new(logits, labels, work / "dump_probs", args.repeats, cpu, keep_probs=True)
        new_s = measure_new(logits, labels, work / "dump_scores", args.repeats, cpu, keep_probs=False)

        prev_ood = make_store(work / "prev_ood", logits, labels, "zlib", True, scorers)
        new_ood = make_store(work / "new_ood", logits, labels, DEFAULT_CODEC, False, scorers)
        new_seg = make_store(work / "new_seg", logits, labels, DEFAULT_CODEC, True, scorers)
        prev_city = make_store(work / "prev_city", logits, city, "zlib", True, scorers)
        new_city = make_store(work / "new_city", logits, city, DEFAULT_CODEC, False, scorers)
        enc = score_encoding(scorer)
        hist = PooledHistogram(encoding=enc, image_bits=12 if enc == "unit" else 14)

        def ood_prev(k: int) -> None:
            img = prev_ood.read(k, probs=True, logits=False)
            hist.update(SCORERS[scorer](img.probs), img.label, IN_ID, OUT_ID)

        def ood_new(k: int) -> None:
            img = new_ood.read(k, probs=False, logits=False, scores=(scorer,))
            hist.update_codes(img.scores[scorer], img.label, IN_ID, OUT_ID)

        acc = MiouAccumulator(num_classes=19, thresholds=tuple(ev["miou_thresholds"]))

        def miou_prev(k: int) -> None:
            img = prev_city.read(k, probs=True, logits=False)
            acc.update(np.argmax(img.probs, 0), SCORERS["entropy"](img.probs), img.label)

        def miou_new(k: int) -> None:
            img = new_city.read(k, probs=False, logits=False, scores=("entropy",), argmax=True)
            acc.update(img.argmax, decode_scores(img.scores["entropy"], "entropy"), img.label)

        def segments(reader: StoreReader) -> Callable[[int], object]:
            def run(k: int) -> object:
                img = reader.read(k, probs=True, logits=False)
                return segment_metrics_multi(img.probs, img.label, thresholds, ood_id=OUT_ID, void_id=VOID)
            return run

        t_read = (per_image(lambda k: prev_ood.read(k, probs=True, logits=False), n, args.repeats),
                  per_image(lambda k: new_ood.read(k, probs=False, logits=False, scores=(scorer,)), n, args.repeats))
        t_ood = (per_image(ood_prev, n, args.repeats), per_image(ood_new, n, args.repeats))
        t_miou = (per_image(miou_prev, n, args.repeats), per_image(miou_new, n, args.repeats))
        t_seg = (per_image(segments(prev_ood), n, args.repeats), per_image(segments(new_seg), n, args.repeats))
        n_segs = len(segments(new_seg)(0)[thresholds[0]][0])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # bootstrap of one OoD job (the same in both designs), per image: small images, realistic score spread
    n_boot_imgs = max((images.get(d, 0) for d in ev["ood_datasets"]), default=0) or 1
    rng = np.random.default_rng(0)
    bh = PooledHistogram(encoding="unit", image_bits=12)
    for k in range(n_boot_imgs):
        lab = lostandfound_label(64, 128, k)
        bh.update(rng.beta(0.7, 6.0, lab.shape), lab, IN_ID, OUT_ID, image_id=str(k))
    t0 = time.perf_counter()
    bh.metrics(curve_points=400)
    bootstrap(bh, n_boot=ev["n_boot"], seed=0)
    t_boot = (time.perf_counter() - t0) / n_boot_imgs

    meta = cfg["meta"]
    names = feature_names(meta["features"])
    X, y = synthetic_segments(args.segments, len(names), seed=0)
    table = pd.DataFrame(X, columns=names).assign(iou0=y, image=rng.integers(0, images.get("lostandfound", 1203), len(y)))
    t0 = time.perf_counter()
    for protocol in meta["protocols"]:
        meta_classify(table, y="iou0", groups="image", protocol=protocol, feature_names=names, C=meta["C"],
                      penalize_intercept=meta["penalize_intercept"], standardize=meta["standardize"])
    t_meta = time.perf_counter() - t0

    rows: dict[str, list[float]] = {}  # stage -> [jobs, images, s previous, s new]
    skipped: dict[str, int] = {}

    def add(stage: str, count: int, s_prev: float, s_new: float) -> None:
        r = rows.setdefault(stage, [0, 0, 0.0, 0.0])
        r[0], r[1], r[2], r[3] = r[0] + 1, r[1] + count, r[2] + count * s_prev, r[3] + count * s_new

    def keeps_probs(wc: dict[str, str]) -> bool:
        """Whether the dump keeps the probabilities, as workflow/rules/common.smk decides (dump_options)."""
        spec = cfg["models"][wc["model"]]["finetune"]
        reported = ("baseline", f"epoch{min(ev['ood_epoch'] or spec['epochs'], spec['epochs'])}")
        return cfg["inference"]["probabilities"] == "all" or (wc["dataset"] in seg_sets and wc["variant"] in reported)

    for rule, wc in jobs:
        d = wc.get("dataset", "")
        k = images.get(d, 0)
        if rule == "dump_softmax":
            new = new_p if keeps_probs(wc) else new_s
            add("dump_softmax, host part", k, prev.host_s, new.host_s)
            add("dump_softmax, device part (GPU)", k, prev.device_s, new.device_s)
        elif rule == "pixel_eval" and d == MIOU_DATASET:
            add("pixel_eval mIoU (read + accumulate)", k, *t_miou)
        elif rule == "pixel_eval":
            add("pixel_eval OoD (read + histogram)", k, *t_ood)
            add("pixel_eval OoD bootstrap (same)", k, t_boot, t_boot)
        elif rule == "segment_features":
            add("segment_features (read + metrics)", k, *t_seg)
        elif rule == "meta_classify":
            add("meta_classify (per job, same)", 1, t_meta, t_meta)
        else:
            skipped[rule] = skipped.get(rule, 0) + 1

    print(f"\nper-image costs, 1 thread: dump host {prev.host_s:.3f} s previous, {new_p.host_s:.3f} s new with "
          f"probabilities, {new_s.host_s:.3f} s without; segment_metrics_multi found {n_segs} segments at t="
          f"{thresholds[0]:g} in image 0; bootstrap ({ev['n_boot']} resamples) {t_boot * 1e3:.1f} ms per image; "
          f"meta classification ({'+'.join(meta['protocols'])}, {args.segments} segments x {len(names)} metrics) "
          f"{t_meta:.1f} s per job")
    print(f"\n{'stage':38s}{'jobs':>5s}{'images':>8s}{'s/img prev':>12s}{'s/img new':>11s}{'CPU-h prev':>12s}"
          f"{'CPU-h new':>11s}")
    tot = {"host": [0.0, 0.0], "all": [0.0, 0.0]}
    for stage, (nj, ni, sp, sn) in rows.items():
        per_job = stage.startswith("meta")
        div = nj if per_job else max(ni, 1)
        print(f"{stage:38s}{nj:5d}{'-' if per_job else str(ni):>8s}{sp / div:12.3f}{sn / div:11.3f}"
              f"{sp / 3600:12.3f}{sn / 3600:11.3f}" + ("   (s per job)" if per_job else ""))
        for key in ("all",) if "device" in stage else ("host", "all"):
            tot[key][0] += sp / 3600
            tot[key][1] += sn / 3600
    (hp, hn), (ap_, an) = tot["host"], tot["all"]
    print(f"{'total host (GPU part separate)':51s}{'':23s}{hp:12.3f}{hn:11.3f}")
    print(f"{'total incl. device part on this CPU':51s}{'':23s}{ap_:12.3f}{an:11.3f}")
    print("not counted (network training, or per-job work on tables, the same in both designs): "
          + ", ".join(f"{r} {c}" for r, c in skipped.items()))
    print(f"\nreading what the pixel evaluation needs, per image: {t_read[0]:.3f} s (all probabilities, zlib) -> "
          f"{t_read[1]:.4f} s (score plane + label) = {t_read[0] / t_read[1]:.1f}x; pixel evaluation of one image "
          f"(read + histogram): {t_ood[0]:.3f} s -> {t_ood[1]:.4f} s = {t_ood[0] / t_ood[1]:.1f}x")
    print(f"\nCPU-only run (device part on this CPU too): previous / new = {ap_ / an:.2f}x ({ap_:.2f} h -> {an:.2f} h)")
    print(f"bench_paper_scale: {hp / hn:.1f}x fewer CPU-hours ({hp:.2f} h -> {hn:.2f} h, paper setting, "
          "everything but the network forward)")


if __name__ == "__main__":
    main()
