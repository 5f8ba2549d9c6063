"""SegmentMeIfYouCan stage: score files and label masks of a softmax store, and their evaluation.

The pipeline's own methods leave the store in the benchmark's file format
(``anomaly_p/<method>/<dataset>/<fid>.hdf5`` and ``<fid>_labels_semantic.png``), so that they
and third-party score maps are evaluated by the same code, :func:`~meta_ood.smiyc.evaluate_frames`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from meta_ood.errors import InputError
from meta_ood.io import read_parquet, write_json
from meta_ood.labels import EvalConvention
from meta_ood.scores import SCORERS
from meta_ood.smiyc.evaluate import FrameInput, evaluate_frames, file_frames
from meta_ood.smiyc.summary import VOID
from meta_ood.smiyc.scorefiles import LABEL_SUFFIX, SCORE_SUFFIX, unlabelled_ids, write_label, write_scores
from meta_ood.store import StoreReader, StoredImage, decode_scores

__all__ = [
    "CURVE_POINTS",
    "TRACKS",
    "label_mask",
    "meta_lowered",
    "smiyc_eval_stage",
    "smiyc_labels_stage",
    "smiyc_scores_stage",
]

#: Benchmark track (size filters) of each dataset the SMIYC path evaluates.
TRACKS = {"smiyc_anomaly": "anomaly", "smiyc_obstacle": "obstacle", "lostandfound_noknown": "lostandfound",
          "road_anomaly": "anomaly"}
#: Points of the thinned official ROC and PR curves in the result JSON.
CURVE_POINTS = 400
#: Datasets whose frames group into scenes (fid up to the first ``_``), evaluated per scene too.
SCENE_DATASETS = ("smiyc_obstacle",)


def _convention(reader: StoreReader, store_dir: Any) -> EvalConvention:
    conv = reader.convention
    if conv is None:
        raise InputError(f"{store_dir}: the store has no in/out convention: expected the dump of an OoD dataset")
    return conv


def label_mask(label: np.ndarray, conv: EvalConvention) -> np.ndarray:
    """The benchmark's mask of a store label: 0 in-distribution, 1 OoD, 255 everything else."""
    mask = np.full(label.shape, VOID, np.uint8)
    mask[label == conv.train_id_in] = 0
    mask[label == conv.train_id_out] = 1
    return mask


def meta_lowered(scores: np.ndarray, probs: np.ndarray, label: np.ndarray, conv: EvalConvention,
                 threshold: float, rejected: Sequence[int]) -> np.ndarray:
    """Scores with the pixels of the rejected segments (ids at entropy threshold t) set to min(score, t - eps).

    ``t - eps`` is the largest float16 below t, so the stored pixels fall out of {score >= t}.
    """
    from meta_ood.segments import segment_metrics

    if len(rejected) == 0:
        return np.array(scores, np.result_type(scores, np.float32))
    _, comp = segment_metrics(probs, label, threshold, ood_id=conv.train_id_out, void_id=conv.void_id)
    return _lowered(scores, comp, threshold, rejected)


def _lowered(scores: np.ndarray, comp: np.ndarray, threshold: float, rejected: Sequence[int]) -> np.ndarray:
    """``scores`` with the pixels of the segments ``rejected`` of component map ``comp`` below ``threshold``."""
    out = np.array(scores, np.result_type(scores, np.float32))
    below = np.float32(np.nextafter(np.float16(threshold), np.float16(-np.inf)))
    hit = np.isin(np.abs(comp), np.asarray(rejected, np.int64))
    out[hit] = np.minimum(out[hit], below)
    return out


def _rejected_segments(meta: Any, index: int, meta_threshold: float) -> np.ndarray:
    rows = meta[meta["image"] == index]
    return rows.loc[rows["prob_fp"].to_numpy(dtype=float) > meta_threshold, "segment"].to_numpy(np.int64)


class _UnlabelledMeta:
    """The meta classifier of the frames without ground truth: fit on every labelled segment of the dataset.

    The labelled frames' segments get held-out probabilities (the meta table); a frame without a
    label has no void region, so its segments are the components of {normalized entropy >= t} over
    the whole image, each scored by the classifier fit on all labelled segments (the same options
    as the meta stage; with one class only, every probability is that class's frequency).
    """

    def __init__(self, segments_table: str | os.PathLike, threshold: float, features: str = "paper", C: float = 1.0,
                 penalize_intercept: bool = True) -> None:
        from meta_ood.segments import feature_names

        self.threshold = float(threshold)
        self.names = feature_names(features)
        self._table, self._C, self._penalize = segments_table, C, penalize_intercept
        self._clf: Any = None
        self._constant: float | None = None

    def _fit(self) -> None:
        from meta_ood.meta import MetaClassifier

        seg = read_parquet(self._table)
        if len(seg) == 0:
            raise InputError(f"{self._table}: no labelled segment to fit the meta classifier of the unlabelled frames on")
        y = seg["iou0"].to_numpy(dtype=np.int64)
        if np.unique(y).size < 2:
            self._constant = float(y.mean())
            return
        self._clf = MetaClassifier(C=self._C, penalize_intercept=self._penalize, standardize="global")
        self._clf.fit(seg[self.names].to_numpy(dtype=np.float64), y)

    def lowered(self, scores: np.ndarray, probs: np.ndarray, conv: EvalConvention, meta_threshold: float) -> np.ndarray:
        """The scores of one unlabelled frame with its rejected segments lowered (as :func:`meta_lowered`)."""
        from meta_ood.segments import segment_metrics

        if self._clf is None and self._constant is None:
            self._fit()
        no_void = np.full(scores.shape, conv.train_id_in, np.uint8)
        df, comp = segment_metrics(probs, no_void, self.threshold, ood_id=conv.train_id_out, void_id=conv.void_id)
        if len(df) == 0:
            return np.array(scores, np.result_type(scores, np.float32))
        if self._clf is not None:
            prob = self._clf.predict_proba(df[self.names].to_numpy(dtype=np.float64))[:, 1]
        else:
            prob = np.full(len(df), self._constant)
        return _lowered(scores, comp, self.threshold, np.flatnonzero(prob > meta_threshold) + 1)


def _frames(store_dir: str | os.PathLike, probs: bool = False, scores: Sequence[str] = (),
            labelled_only: bool = False) -> Iterator[tuple[StoredImage, EvalConvention]]:
    """The store's images (labels, the ``scores`` planes, probabilities only when asked) with its convention."""
    reader = StoreReader(store_dir)
    conv = _convention(reader, store_dir)
    indices = reader.labelled_or_raise() if labelled_only else None
    yield from ((img, conv) for img in reader.iter(indices, probs=probs, logits=False, scores=scores))


def smiyc_scores_stage(
    store_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    scorer: str = "entropy",
    meta_table: str | os.PathLike | None = None,
    threshold: float | None = None,
    meta_threshold: float = 0.5,
    segments_table: str | os.PathLike | None = None,
    meta_options: dict[str, Any] | None = None,
) -> list[Path]:
    """Write the ``scorer`` map of every store image, labelled or not, as ``<out_dir>/<fid>.hdf5`` (float16 ``value``).

    With ``meta_table`` (the meta classifier's parquet at entropy threshold ``threshold``): the
    pixels of segments with ``prob_fp > meta_threshold`` are lowered by :func:`meta_lowered`
    (scorer "entropy" only: the segments are {normalized entropy >= t}). Frames without ground
    truth (a benchmark's test frames) are lowered by a classifier fit on every labelled segment of
    ``segments_table`` (the segment table at ``threshold``; ``meta_options``: features, C,
    penalize_intercept of the meta stage), see :class:`_UnlabelledMeta`.
    """
    if scorer not in SCORERS:
        raise InputError(f"scorer {scorer!r}: expected one of {sorted(SCORERS)}")
    meta = unlabelled = None
    if meta_table is not None:
        if scorer != "entropy" or threshold is None:
            raise InputError("meta lowering needs scorer 'entropy' and the entropy threshold of the meta table")
        meta = read_parquet(meta_table)
        if segments_table is not None:
            options = {k: v for k, v in (meta_options or {}).items() if k in ("features", "C", "penalize_intercept")}
            unlabelled = _UnlabelledMeta(segments_table, float(threshold), **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, conv in _frames(store_dir, probs=meta is not None, scores=(scorer,)):
        scores = decode_scores(img.scores[scorer], scorer)  # float64: rounded to float16 once, on writing
        if meta is not None and img.labelled:
            rejected = _rejected_segments(meta, img.index, meta_threshold)
            scores = meta_lowered(scores, img.probs, img.label, conv, float(threshold), rejected)
        elif meta is not None:
            if unlabelled is None:
                raise InputError(f"{store_dir}: image {img.name!r} has no label; lowering its segments needs the "
                                 "segment table (segments_table) to fit the meta classifier on")
            scores = unlabelled.lowered(scores, img.probs, conv, meta_threshold)
        paths.append(write_scores(out / f"{img.name}{SCORE_SUFFIX}", scores))
    return paths


def smiyc_labels_stage(store_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write the label of every labelled store image as ``<out_dir>/<fid>_labels_semantic.png`` (0 / 1 / 255).

    Unlabelled frames (a benchmark's test frames) get no label file, so the evaluation skips them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [write_label(out / f"{img.name}{LABEL_SUFFIX}", label_mask(img.label, conv))
            for img, conv in _frames(store_dir, labelled_only=True)]


_SCENE_KEYS = ("AP", "FPR95", "sIoU_gt", "PPV", "F1_mean")


def _scenes(frames: Sequence[FrameInput], track: str, jobs: int | None) -> dict[str, dict[str, Any]]:
    """Official metrics of each scene's frames (its own best-F1 threshold), no bootstrap."""
    from meta_ood.datasets.smiyc import scene_of

    groups: dict[str, list[FrameInput]] = {}
    for f in frames:
        groups.setdefault(scene_of(f.fid), []).append(f)
    out = {}
    for scene, subset in sorted(groups.items()):
        res = evaluate_frames(subset, track, n_boot=0, jobs=jobs)
        out[scene] = {"n_frames": len(subset), **{k: res[k] for k in _SCENE_KEYS},
                      "exact": {k: res["exact"][k] for k in _SCENE_KEYS}}
    return out


def smiyc_eval_stage(
    scores_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    dataset: str,
    out_json: str | os.PathLike,
    method: str = "",
    n_boot: int = 1000,
    seed: int = 0,
    segsize: int | None = None,
    instsize: int | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Both SMIYC protocols of one method on one dataset, written as JSON (``jobs`` threads).

    Score files without a label (a benchmark folder's unlabelled test frames) are skipped:
    ``frames`` lists the frames evaluated, ``skipped_unlabelled`` the others.

    The :func:`~meta_ood.smiyc.smiyc_eval` result at the dataset's track (:data:`TRACKS`; its size
    filters unless ``segsize`` / ``instsize`` are given) plus
    ``method``, ``dataset`` and, for ObstacleTrack,
    ``scenes`` (official and exact metrics of each scene's frames). The exact pooled histogram (one
    image per frame) goes next to the JSON (``.npz``), and the per-frame component counts of both
    protocols (``.components.npz``), for paired comparisons of the methods.
    """
    if dataset not in TRACKS:
        raise InputError(f"dataset {dataset!r}: expected one of {sorted(TRACKS)}")
    frames = file_frames(scores_dir, labels_dir)
    result: dict[str, Any] = {"method": method, "dataset": dataset,
                              **evaluate_frames(frames, TRACKS[dataset], segsize=segsize, instsize=instsize,
                                                n_boot=n_boot, seed=seed, curve_points=CURVE_POINTS,
                                                jobs=jobs, histogram_out=Path(out_json).with_suffix(".npz"),
                                                components_out=Path(out_json).with_suffix(".components.npz"))}
    result["frames"] = sorted(f.fid for f in frames)
    result["skipped_unlabelled"] = unlabelled_ids(scores_dir, labels_dir)
    if dataset in SCENE_DATASETS:
        result["scenes"] = _scenes(frames, TRACKS[dataset], jobs)
    write_json(out_json, result)
    return result
