"""File-level entry points of the pipeline stages: read inputs, call the pure functions, write outputs.

Each Snakemake rule and each ``meta-ood`` sub-command calls exactly one function of this module
(training and inference live in :mod:`meta_ood.training` / :mod:`meta_ood.inference`). Every
output is written under a temporary name and renamed, so an interrupted job leaves nothing
half-written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meta_ood.errors import InputError
from meta_ood.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

CURVE_POINTS = 400


# ------------------------------------------------------------------------------------ helpers


def _jsonable(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays and non-finite floats into plain JSON values."""
    if isinstance(obj, dict):
        return {("inf" if isinstance(k, float) and math.isinf(k) else str(k)): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (NaN/inf become null)."""
    write_text_atomic(path, json.dumps(_jsonable(data), indent=1, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON result file; one clear error if it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: result file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a DataFrame as parquet atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet table; one clear error if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: table not found")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise InputError(f"{path}: cannot read parquet table ({type(exc).__name__}: {exc})") from None


def threshold_tag(t: float) -> str:
    """File-name tag of a threshold: 0.3 -> 't0.3' (shortest round-trip form)."""
    return f"t{float(t):g}"


# ------------------------------------------------------------------------------ training stages


def train_baseline_stage(
    cityscapes_root: str, split: str, out_checkpoint: str | os.PathLike, train_options: dict[str, Any], progress: bool = True,
    device_key: str = "device", retrain_finished: bool = False,
) -> Path:
    """Train the demo's in-distribution network from scratch (λ = 0, no COCO) and save it as ``out_checkpoint``.

    The per-epoch checkpoints go to ``<out_checkpoint stem>_epochs/`` so an interrupted run resumes
    (and one with other weight options stops, see :func:`meta_ood.training.check_resume`).
    ``device_key`` names the config key of the device in error messages. ``retrain_finished``
    (the workflow's choice): a finished training in that folder is not reused but moved to
    ``<stem>_epochs.previous/`` and the network trained anew, since the workflow reruns this step
    only when something it depends on changed (data, code, options); an interrupted one resumes.
    """
    from meta_ood.datasets import Cityscapes
    from meta_ood.training import baseline_config, baseline_work_dir, completed_epochs, train

    cfg = baseline_config(train_options)
    out_checkpoint = Path(out_checkpoint)
    work = baseline_work_dir(out_checkpoint)
    done = completed_epochs(work)
    if retrain_finished and done and max(done) >= cfg.epochs:
        previous = work.with_name(work.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        work.rename(previous)
        log.info("%s: a finished training is not reused for a rerun; moved to %s, training anew", work, previous)
    paths = train(cfg, Cityscapes(cityscapes_root, split), None, work, progress=progress, device_key=device_key)
    with atomic_path(out_checkpoint) as tmp:
        shutil.copyfile(paths[-1], tmp)
    return out_checkpoint


def finetune_stage(
    cityscapes_root: str,
    cityscapes_split: str,
    coco_root: str,
    coco_split: str,
    coco_masks: str | os.PathLike,
    init_checkpoint: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    train_options: dict[str, Any],
    progress: bool = True,
    stop_after: int | None = None,
    ood_id: int | None = None,
    device_key: str = "device",
) -> list[Path]:
    """OoD fine-tuning with entropy maximization: Cityscapes train mixed with the selected COCO proxies.

    ``stop_after`` ends after that epoch; a later call with a larger value resumes from its checkpoint.
    ``ood_id`` is the value of the OoD pixels in the masks (config ``coco_filter.ood_id``; None:
    ``train_options['ood_id']``, else 254); the masks are read and the loss computed with it.
    ``device_key`` names the config key of the device in error messages.
    """
    from meta_ood.datasets import Cityscapes, CocoImages
    from meta_ood.training import TrainConfig, train

    options = dict(train_options) if ood_id is None else {**train_options, "ood_id": ood_id}
    cfg = TrainConfig.from_dict(options)
    cs = Cityscapes(cityscapes_root, cityscapes_split)
    coco = CocoImages(coco_root, coco_split, masks_dir=coco_masks, ood_id=cfg.ood_id)
    return train(cfg, cs, coco, out_dir, init_checkpoint=init_checkpoint, progress=progress, stop_after=stop_after,
                 device_key=device_key)


# ----------------------------------------------------------------------------- pixel evaluation


def pixel_eval_stage(
    store_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    out_npz: str | os.PathLike,
    miou_thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    n_boot: int = 1000,
    seed: int = 0,
    scorer: str = "entropy",
    progress: bool = True,
) -> dict[str, Any]:
    """Pixel-level evaluation of one softmax store.

    OoD datasets (the store has an in/out convention): AUROC, FPR95, AUPRC and best F1 of the
    ``scorer`` (default: normalized entropy) over all evaluated pixels pooled over the dataset,
    with image-bootstrap intervals, thinned ROC/PR curves and violin histograms; the pooled
    histogram goes to ``out_npz``. Scores in [0, 1] use the histogram's "unit" encoding, the
    unbounded logit scorers its exact "float16" encoding (``encoding`` in the JSON; bootstrap at
    14 bits, i.e. 8 of the 10 float16 mantissa bits). Cityscapes (no convention): mIoU with an
    extra OoD class for normalized entropy >= t (paper fig. 5, whatever the scorer); ``out_npz``
    then holds the confusion matrices.
    """
    from tqdm.auto import tqdm

    from meta_ood import pixel_eval as pe
    from meta_ood.scores import LOGIT_SCORERS, SCORERS, normalized_entropy
    from meta_ood.store import StoreReader

    reader = StoreReader(store_dir)
    encoding = pe.score_encoding(scorer)
    conv = reader.convention
    result: dict[str, Any] = {
        "store": str(store_dir), "model": reader.model, "dataset": reader.dataset_kind, "n_images": len(reader),
        "scorer": scorer,
    }
    bar = tqdm(reader, total=len(reader), desc="pixel eval", disable=not progress, mininterval=1.0)
    if conv is None:
        acc = pe.MiouAccumulator(num_classes=reader.num_classes, thresholds=tuple(miou_thresholds))
        for img in bar:
            ent = normalized_entropy(img.probs)
            acc.update(np.argmax(img.probs, axis=0), ent, img.label)
        res = acc.result()
        result["kind"] = "miou"
        result["miou"] = {("inf" if math.isinf(t) else f"{t:g}"): r["miou"] for t, r in res.items()}
        result["ood_fraction"] = {("inf" if math.isinf(t) else f"{t:g}"): r["ood_fraction"] for t, r in res.items()}
        result["iou"] = {("inf" if math.isinf(t) else f"{t:g}"): r["iou"] for t, r in res.items()}
        with atomic_path(out_npz) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, thresholds=np.array(sorted(res)), **{
                    f"confusion_{'inf' if math.isinf(t) else f'{t:g}'}": acc.confusion(t) for t in res
                })
    else:
        hist = pe.PooledHistogram(encoding=encoding, image_bits=12 if encoding == "unit" else 14)
        score_fn = SCORERS[scorer]
        for img in bar:
            src = img.logits if scorer in LOGIT_SCORERS else img.probs
            if src is None:
                raise InputError(f"{store_dir}: scorer {scorer!r} needs logits, but the store has none (store_logits: true)")
            hist.update(score_fn(src), img.label, conv.train_id_in, conv.train_id_out, image_id=img.name)
        metrics = hist.metrics(curve_points=CURVE_POINTS)
        result["kind"] = "ood"
        result["encoding"] = encoding
        for key in ("auroc", "auprc", "fpr95", "best_f1", "best_f1_threshold", "n_pos", "n_neg"):
            result[key] = metrics[key]
        result["roc"] = {k: metrics["roc"][k] for k in ("fpr", "tpr")}
        result["pr"] = {k: metrics["pr"][k] for k in ("precision", "recall")}
        result["ood_pixel_fraction"] = metrics["n_pos"] / (metrics["n_pos"] + metrics["n_neg"])
        if n_boot > 0:
            ci = pe.bootstrap(hist, n_boot=n_boot, seed=seed)
            result["bootstrap"] = {"n_boot": n_boot, "seed": seed, "alpha": 0.05,
                                   **{k: list(v) for k, v in ci.items()}}
        violin = pe.score_histogram_for_violin(hist, n_bins=100)
        result["violin"] = {
            "edges": violin["edges"],
            "centers": violin["centers"],
            **{side: {"density": violin[side]["density"], "quantiles": violin[side]["quantiles"]} for side in ("in", "out")},
        }
        hist.save(out_npz)
    write_json(out_json, result)
    return result


# ----------------------------------------------------------------------------- segment features


def segment_features_stage(
    store_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    thresholds: Sequence[float],
    shard: tuple[int, int] | None = None,
    component_metrics: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Per-segment metrics of every image of a store for all thresholds in one pass over the store.

    Writes per threshold t (``tag`` = ``t<t>``): ``<tag>.parquet`` (one row per predicted OoD
    segment: the reference metrics plus ``image``, ``name``, ``segment`` and ``n_gt_in``, the number
    of its pixels annotated in-distribution, for the road miss rate), ``<tag>.gt.parquet`` (one row
    per ground-truth OoD component) and ``<tag>.overlaps.parquet`` (pixel overlaps of predicted and
    ground-truth segments, for FN counting after meta classification); plus ``images.parquet``
    (per image: in/OoD pixel counts) and ``components.json`` (SegmentMeIfYouCan component metrics
    per threshold). With ``shard=(i, n)`` only that image range is processed and the files go to
    ``out_dir/shard-<i>-of-<n>/``; :func:`merge_segment_shards` combines them.
    """
    from tqdm.auto import tqdm

    from meta_ood.segment_eval import ComponentMetrics, overlap_table
    from meta_ood.segments import segment_metrics_multi
    from meta_ood.store import StoreReader, shard_range

    reader = StoreReader(store_dir)
    conv = reader.convention
    if conv is None:
        raise InputError(f"{store_dir}: segment features need an OoD dataset (LostAndFound, Fishyscapes); this store has no in/out convention")
    thresholds = sorted({float(t) for t in thresholds})
    indices = range(len(reader)) if shard is None else shard_range(len(reader), *shard)
    out = Path(out_dir) if shard is None else Path(out_dir) / f"shard-{shard[0]}-of-{shard[1]}"
    pred_parts: dict[float, list[pd.DataFrame]] = {t: [] for t in thresholds}
    gt_parts: dict[float, list[pd.DataFrame]] = {t: [] for t in thresholds}
    ov_parts: dict[float, list[pd.DataFrame]] = {t: [] for t in thresholds}
    comps = {t: ([], []) for t in thresholds} if component_metrics else {}
    cm_probe = ComponentMetrics()
    images = []
    for i in tqdm(indices, desc="segments", disable=not progress, mininterval=1.0):
        img = reader[i]
        label = img.label
        in_mask = label == conv.train_id_in
        images.append({"image": i, "name": img.name, "height": label.shape[0], "width": label.shape[1],
                       "n_gt_in": int(in_mask.sum()), "n_gt_out": int((label == conv.train_id_out).sum())})
        per_t = segment_metrics_multi(img.probs, label, thresholds, ood_id=conv.train_id_out, void_id=conv.void_id)
        for t, (pred_df, pred_comp, gt_df, gt_comp) in per_t.items():
            n_pred = len(pred_df)
            seg = np.abs(pred_comp)
            n_gt_in = np.bincount(seg[in_mask].ravel(), minlength=n_pred + 1)[1:] if n_pred else np.zeros(0, int)
            pred_df = pred_df.assign(image=i, name=img.name, segment=np.arange(1, n_pred + 1), n_gt_in=n_gt_in)
            gt_df = gt_df.assign(image=i, name=img.name, segment=np.arange(1, len(gt_df) + 1))
            pred_parts[t].append(pred_df)
            gt_parts[t].append(gt_df)
            ov_parts[t].append(overlap_table(pred_comp, gt_comp, image=i))
            if component_metrics:
                siou, ppv = cm_probe.update(seg > 0, label, conv.train_id_in, conv.train_id_out)
                comps[t][0].extend(np.asarray(siou, dtype=float).tolist())
                comps[t][1].extend(np.asarray(ppv, dtype=float).tolist())
    written = []
    for t in thresholds:
        tag = threshold_tag(t)
        for suffix, parts in ((".parquet", pred_parts[t]), (".gt.parquet", gt_parts[t]), (".overlaps.parquet", ov_parts[t])):
            df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            write_parquet(out / f"{tag}{suffix}", df)
            written.append(out / f"{tag}{suffix}")
    write_parquet(out / "images.parquet", pd.DataFrame(images))
    write_json(out / "components.json", {threshold_tag(t): _component_summary(*comps[t]) for t in comps})
    return written


def _component_summary(siou: Sequence[float], ppv: Sequence[float]) -> dict[str, Any]:
    """SegmentMeIfYouCan component metrics from per-component values (kept so that shards pool exactly)."""
    from meta_ood.segment_eval import ComponentMetrics

    out: dict[str, Any] = {"siou_values": list(map(float, siou)), "ppv_values": list(map(float, ppv))}
    if len(siou) == 0:
        out.update({"n_gt": 0, "n_pred": len(ppv), "siou": None, "ppv": None, "f1_mean": None})
        return out
    r = ComponentMetrics.from_values(siou, ppv).result()
    out.update({"thresholds": r["thresholds"], "tp": r["tp"], "fn": r["fn"], "fp": r["fp"], "f1": r["f1"],
                "f1_mean": r["f1_mean"], "siou": r["siou_gt"], "ppv": r["ppv"], "n_gt": r["n_gt"], "n_pred": r["n_pred"]})
    return out


def merge_segment_shards(out_dir: str | os.PathLike, n_shards: int, thresholds: Sequence[float]) -> None:
    """Concatenate the per-shard segment tables of :func:`segment_features_stage` in image order."""
    out = Path(out_dir)
    shards = [out / f"shard-{i}-of-{n_shards}" for i in range(n_shards)]
    missing = [str(s) for s in shards if not (s / "images.parquet").is_file()]
    if missing:
        raise InputError(f"segment shards missing: {', '.join(missing)}")
    names = [f"{threshold_tag(t)}{suffix}" for t in sorted({float(x) for x in thresholds})
             for suffix in (".parquet", ".gt.parquet", ".overlaps.parquet")] + ["images.parquet"]
    for name in names:
        parts = [read_parquet(s / name) for s in shards]
        parts = [p for p in parts if len(p)]
        write_parquet(out / name, pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
    values: dict[str, tuple[list[float], list[float]]] = {}
    for s in shards:
        for tag, summary in read_json(s / "components.json").items():
            acc = values.setdefault(tag, ([], []))
            acc[0].extend(summary["siou_values"])
            acc[1].extend(summary["ppv_values"])
    write_json(out / "components.json", {tag: _component_summary(*v) for tag, v in values.items()})


# ------------------------------------------------------------------------- meta classification


def meta_classify_stage(
    segments_parquet: str | os.PathLike,
    out_parquet: str | os.PathLike,
    out_json: str | os.PathLike,
    features: str = "paper",
    protocols: Sequence[str] = ("loo", "logo"),
    C: float = 1.0,
    penalize_intercept: bool = True,
    standardize: str = "global",
) -> dict[str, Any]:
    """Meta classification (TP vs FP) of the predicted segments of one threshold.

    The held-out probability of being a false positive comes from the first protocol
    (``prob_fp``; ``loo`` = leave-one-out, the paper's protocol); further protocols add
    ``prob_fp_<protocol>`` columns (``logo`` = leave-one-image-out, the honest protocol since
    segments of one image are correlated). The JSON holds AUROC / AUPRC / accuracy per protocol
    and the MSP baseline of paper table 3. A protocol that cannot be evaluated never stops the
    workflow: it reports ``fallback`` and ``fallback_reason`` (see :func:`meta_ood.meta.meta_classify`;
    e.g. ``logo`` with all segments in one image is unavailable: NaN probabilities, None metrics).
    """
    from meta_ood.meta import meta_classify
    from meta_ood.segments import feature_names

    if not protocols:
        raise InputError("meta classification needs at least one protocol ('loo' or 'logo')")
    seg = read_parquet(segments_parquet)
    names = feature_names(features)
    out = pd.DataFrame({"image": seg.get("image", pd.Series(dtype=int)), "segment": seg.get("segment", pd.Series(dtype=int)),
                        "iou0": seg.get("iou0", pd.Series(dtype=float))})
    summary: dict[str, Any] = {"segments": str(segments_parquet), "features": features, "n_features": len(names),
                               "n_segments": int(len(seg)), "protocols": {}}
    for k, protocol in enumerate(protocols):
        if len(seg) == 0:
            summary["protocols"][protocol] = {"fallback": "no_segments", "fallback_reason": "no segments at this threshold",
                                              "n": 0}
            out["prob_fp" if k == 0 else f"prob_fp_{protocol}"] = pd.Series(dtype=float)
            continue
        per_seg, metrics = meta_classify(
            seg, y="iou0", groups="image", protocol=protocol, feature_names=names, C=C,
            penalize_intercept=penalize_intercept, standardize=standardize,
        )
        out["prob_fp" if k == 0 else f"prob_fp_{protocol}"] = per_seg["prob_fp"].to_numpy()
        if "msp" in per_seg and "msp" not in out:
            out["msp"] = per_seg["msp"].to_numpy()
        summary["protocols"][protocol] = {k2: v for k2, v in metrics.items() if k2 not in ("coefficients",)}
        if k == 0:
            coef = metrics.get("coefficients")
            summary["coefficients"] = coef if isinstance(coef, dict) else dict(zip(names, np.asarray(coef if coef is not None else [], dtype=float).tolist()))
            summary["intercept"] = metrics.get("intercept")
    write_parquet(out_parquet, out)
    write_json(out_json, summary)
    return summary


# ------------------------------------------------------------------------ segment-level errors


def segment_eval_stage(
    segments_dir: str | os.PathLike,
    meta_dir: str | os.PathLike,
    thresholds: Sequence[float],
    out_json: str | os.PathLike,
    meta_threshold: float = 0.5,
    reference_fp_after: bool = False,
) -> dict[str, Any]:
    """FP, FN, their sum and the road miss rate ε before and after meta classification, per threshold (paper table 2).

    A segment is removed when its ``prob_fp`` (the first meta protocol) exceeds ``meta_threshold``.
    When that protocol gave no estimate (``prob_fp`` NaN for every segment: leave-one-image-out
    with all segments in one image), the "after" numbers are None and ``meta_unavailable`` says why.
    """
    from meta_ood.segment_eval import detection_errors

    segments_dir, meta_dir = Path(segments_dir), Path(meta_dir)
    images = read_parquet(segments_dir / "images.parquet")
    n_gt_in_total = int(images["n_gt_in"].sum()) if len(images) else 0
    components = read_json(segments_dir / "components.json") if (segments_dir / "components.json").is_file() else {}
    result: dict[str, Any] = {"n_images": int(len(images)), "n_gt_in_total": n_gt_in_total,
                              "meta_threshold": meta_threshold, "reference_fp_after": reference_fp_after,
                              "thresholds": {}}
    for t in sorted({float(x) for x in thresholds}):
        tag = threshold_tag(t)
        pred = read_parquet(segments_dir / f"{tag}.parquet")
        gt = read_parquet(segments_dir / f"{tag}.gt.parquet")
        overlaps = read_parquet(segments_dir / f"{tag}.overlaps.parquet")
        meta = read_parquet(meta_dir / f"{tag}.parquet")
        unavailable = None
        if len(pred):
            if len(meta) != len(pred) or not (meta["image"].to_numpy() == pred["image"].to_numpy()).all():
                raise InputError(f"{meta_dir / f'{tag}.parquet'}: rows do not match the segments of {segments_dir / f'{tag}.parquet'}")
            prob = meta["prob_fp"].to_numpy(dtype=float)
            if np.isnan(prob).all():
                unavailable = (f"{meta_dir / f'{tag}.parquet'}: prob_fp is NaN for every segment (the meta protocol gave "
                               "no estimate, see its JSON), so the 'after' numbers are None")
            elif np.isnan(prob).any():
                raise InputError(f"{meta_dir / f'{tag}.parquet'}: prob_fp is NaN for {int(np.isnan(prob).sum())} of "
                                 f"{len(prob)} segments: expected probabilities for all or (protocol unavailable) none")
            else:
                pred = pred.assign(prob_fp=prob)
        else:
            pred = pd.DataFrame({"image": [], "segment": [], "iou0": [], "n_gt_in": [], "prob_fp": []})
        if len(gt) == 0:
            gt = pd.DataFrame({"image": [], "segment": [], "iou0": []})
        if len(overlaps) == 0:
            overlaps = pd.DataFrame({"image": [], "pred_segment": [], "gt_segment": [], "n_pixels": []})
        errors = detection_errors(pred, gt, meta_threshold=meta_threshold, overlaps=overlaps,
                                  n_gt_in_total=n_gt_in_total, reference_fp_after=reference_fp_after)
        if unavailable is not None:
            errors.update({"meta_threshold": float(meta_threshold), "n_removed": None, "fp_after": None,
                           "fn_after": None, "total_after": None, "eps_after": None, "meta_unavailable": unavailable})
        errors["components"] = components.get(tag)
        result["thresholds"][tag] = errors
    write_json(out_json, result)
    return result


# ------------------------------------------------------------------------------------ summary


def _fmt(x: Any, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def summary_stage(
    out_md: str | os.PathLike,
    pixel_entries: Sequence[dict[str, Any]],
    miou_entries: Sequence[dict[str, Any]],
    error_entries: Sequence[dict[str, Any]],
    run: str = "",
) -> str:
    """The run's headline numbers: pixel AUROC / FPR95 / AUPRC per dataset and variant, mIoU, and the
    detection errors before / after meta classification, with the two checks of the paper's direction:
    AUPRC rises with OoD training, and meta classification lowers the total number of errors (t >= 0.3).
    """
    pixel_results = [read_json(e["path"]) for e in pixel_entries]
    scorers = sorted({str(r.get("scorer", "entropy")) for r in pixel_results}) or ["entropy"]
    score_name = "normalized entropy" if scorers == ["entropy"] else "scorer " + ", ".join(scorers)
    lines = [f"# meta-ood run `{run}`", "", f"## Pixel-level OoD detection ({score_name})", "",
             "| model | variant | dataset | AUROC | FPR95 | AUPRC |", "| --- | --- | --- | --- | --- | --- |"]
    auprc: dict[tuple[str, str], dict[str, float]] = {}
    for e, r in zip(pixel_entries, pixel_results):
        lines.append(f"| {e['model']} | {e['label']} | {e['dataset']} | {_fmt(r.get('auroc'))} | {_fmt(r.get('fpr95'))} | {_fmt(r.get('auprc'))} |")
        auprc.setdefault((e["model"], e["dataset"]), {})[e["label"]] = r.get("auprc")
    if miou_entries:
        lines += ["", "## Cityscapes val mIoU (no OoD class)", "", "| model | variant | mIoU |", "| --- | --- | --- |"]
        for e in miou_entries:
            r = read_json(e["path"])
            lines.append(f"| {e['model']} | {e['label']} | {_fmt(r['miou'].get('inf'))} |")
    checks = ["", "## Checks", ""]
    for (model, dataset), v in auprc.items():
        before, after = v.get("Plain"), v.get("OoD training")
        if before is not None and after is not None:
            verdict = "yes" if after > before else "no"
            checks.append(f"- AUPRC on {dataset} ({model}) rises after OoD training: **{verdict}** ({before:.4f} -> {after:.4f})")
    if error_entries:
        lines += ["", "## Detection errors on LostAndFound (FP + FN), before -> after meta classification", "",
                  "| variant | t | FP | FN | total | FP (meta) | FN (meta) | total (meta) | ε % | ε % (meta) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for e in error_entries:
            r = read_json(e["path"])
            lowered, considered = 0, 0
            for tag, d in r["thresholds"].items():
                eps_b = None if d.get("eps_before") is None else 100 * d["eps_before"]
                eps_a = None if d.get("eps_after") is None else 100 * d["eps_after"]
                lines.append(
                    f"| {e['label']} | {tag[1:]} | {d['fp_before']} | {d['fn_before']} | {d['total_before']} | "
                    f"{d.get('fp_after', '–')} | {d.get('fn_after', '–')} | {d.get('total_after', '–')} | "
                    f"{_fmt(eps_b, 3)} | {_fmt(eps_a, 3)} |"
                )
                if float(tag[1:]) >= 0.3 - 1e-9 and d.get("total_after") is not None:
                    considered += 1
                    lowered += int(d["total_after"] < d["total_before"])
            if considered:
                checks.append(
                    f"- meta classification lowers the total errors at t >= 0.3 ({e['label']}): "
                    f"**{'yes' if lowered == considered else 'no'}** at {lowered} of {considered} thresholds"
                )
    text = "\n".join(lines + checks) + "\n"
    write_text_atomic(out_md, text)
    return text
