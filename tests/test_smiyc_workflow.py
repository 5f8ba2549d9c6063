"""SMIYC workflow stages: score files and labels from a store, their evaluation, and table_smiyc."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from meta_ood.labels import LOSTANDFOUND
from meta_ood.report import table_smiyc
from meta_ood.smiyc import array_frames, evaluate_frames, read_label, read_scores
from meta_ood.stages.smiyc import smiyc_eval_stage, smiyc_labels_stage, smiyc_scores_stage
from meta_ood.store import StoreReader, StoreWriter, decode_scores

C, H, W = 4, 24, 32


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A 3-image store with LostAndFound train ids (1 in, 2 OoD, 255 void) and obstacle-style fids."""
    folder = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(0)
    w = StoreWriter(folder, C, dataset="smiyc_obstacle", convention=LOSTANDFOUND, total=3)
    for k in range(3):
        logits = rng.normal(size=(C, H, W)).astype(np.float32)
        label = np.ones((H, W), np.uint8)
        label[5:12, 8 + k:20] = 2
        label[:2] = 255
        logits[:, 5:12, 8 + k:20] *= 0.1  # flatter softmax on the obstacle
        probs = np.exp(logits) / np.exp(logits).sum(0)
        w.write(k, f"scene{k % 2}_{k:04d}", f"{k}.webp", probs.astype(np.float32), label)
    w.finalize()
    return folder


def test_scores_and_labels_follow_the_store(store, tmp_path):
    scores = smiyc_scores_stage(store, tmp_path / "scores", scorer="entropy")
    labels = smiyc_labels_stage(store, tmp_path / "labels")
    reader = StoreReader(store)
    assert len(scores) == len(labels) == len(reader)
    for img, s, lab in zip(reader.iter(scores=("entropy",)), scores, labels):
        assert s.name == f"{img.name}.hdf5"
        value = read_scores(s)
        assert value.dtype == np.float16
        np.testing.assert_array_equal(value, decode_scores(img.scores["entropy"], "entropy").astype(np.float16))
        expected = np.where(img.label == 1, 0, np.where(img.label == 2, 1, 255)).astype(np.uint8)
        np.testing.assert_array_equal(read_label(lab), expected)

    res = smiyc_eval_stage(tmp_path / "scores", tmp_path / "labels", "smiyc_obstacle", tmp_path / "e.json",
                           method="m", n_boot=5)
    items = sorted(((img.name, read_scores(s), read_label(lab)) for img, s, lab in zip(reader, scores, labels)),
                   key=lambda x: x[0])
    frames = array_frames(items)  # in fid order, as the files are read
    direct = evaluate_frames(frames, "obstacle", n_boot=5)
    for key in ("AP", "FPR95", "sIoU_gt", "PPV", "F1_mean", "best_F1_threshold"):
        assert res[key] == direct[key]
    assert res["exact"] == direct["exact"]
    assert sorted(res["scenes"]) == ["scene0", "scene1"]
    assert len(res["curve"]["tpr"]) == len(res["curve"]["fpr"]) > 1
    assert (res["segsize"], res["instsize"]) == (50, 10)  # ObstacleTrack's filters
    custom = smiyc_eval_stage(tmp_path / "scores", tmp_path / "labels", "smiyc_obstacle", tmp_path / "c.json",
                              method="m", n_boot=0, segsize=5, instsize=1000)
    assert (custom["segsize"], custom["instsize"]) == (5, 1000)
    assert np.isfinite(res["sIoU_gt"]) and np.isnan(custom["sIoU_gt"])  # no GT component has 1000 pixels

    out = {ext: tmp_path / f"t.{ext}" for ext in ("csv", "md", "tex")}
    df = table_smiyc([{"method": "m", "dataset": "smiyc_obstacle", "path": str(tmp_path / "e.json")}],
                     out_csv=out["csv"], out_md=out["md"], out_tex=out["tex"])
    data = json.loads((tmp_path / "e.json").read_text())
    row = pd.read_csv(out["csv"]).iloc[0]
    assert row["method"] == "m" and df.iloc[0]["method"] == "m" and row["dataset"] == "smiyc_obstacle"
    for key, suffix in (("AP", "ap"), ("FPR95", "fpr95"), ("sIoU_gt", "siou"), ("PPV", "ppv"), ("F1_mean", "f1_mean")):
        assert row[f"official_{suffix}"] == pytest.approx(data[key], abs=1e-15)
        assert row[f"exact_{suffix}"] == pytest.approx(data["exact"][key], abs=1e-15)
    assert f"{data['AP']:.4f}" in out["md"].read_text()


def test_meta_variant_lowers_exactly_the_rejected_segments(store, tmp_path):
    """Pixels of segments with prob_fp > meta threshold drop below t in the file; nothing else changes."""
    from meta_ood.segments import segment_metrics

    t = 0.5
    reader = StoreReader(store)
    rows, comps = [], []
    for i, img in enumerate(reader):
        _, comp = segment_metrics(img.probs, img.label, t, ood_id=LOSTANDFOUND.train_id_out, void_id=255)
        comps.append(np.abs(comp))
        for seg in np.unique(np.abs(comp[comp != 0])):
            rows.append({"image": i, "segment": int(seg), "prob_fp": 0.9 if len(rows) % 2 == 0 else 0.1})
    assert any(r["prob_fp"] > 0.5 for r in rows) and any(r["prob_fp"] < 0.5 for r in rows)
    meta = tmp_path / "meta.parquet"
    pd.DataFrame(rows).to_parquet(meta)
    plain = smiyc_scores_stage(store, tmp_path / "plain", scorer="entropy")
    lowered = smiyc_scores_stage(store, tmp_path / "meta", scorer="entropy", meta_table=meta, threshold=t,
                                 meta_threshold=0.5)
    changed = 0
    for i, (a, b) in enumerate(zip(plain, lowered)):
        before, after = read_scores(a).astype(np.float32), read_scores(b).astype(np.float32)
        rejected = [r["segment"] for r in rows if r["image"] == i and r["prob_fp"] > 0.5]
        hit = np.isin(comps[i], rejected)
        assert (after[hit] < t).all()
        np.testing.assert_array_equal(after[~hit], before[~hit])
        np.testing.assert_array_equal(after[hit], np.minimum(before[hit], np.nextafter(np.float16(t), np.float16(0))))
        changed += int((before[hit] >= t).sum())
    assert changed > 0  # the rejected segments had pixels at or above t before


def test_meta_variant_of_unlabelled_frames_uses_the_classifier_fit_on_the_labelled_segments(tmp_path):
    """Frames without ground truth (a benchmark's test frames): their segments of {entropy >= t} are scored by the
    meta classifier fit on every labelled segment; here small FP blobs are lowered and large OoD objects kept."""
    from meta_ood.meta import MetaClassifier
    from meta_ood.segments import feature_names, segment_metrics
    from meta_ood.stages import segment_features_stage

    rng = np.random.default_rng(3)
    h, w, t, c = 48, 64, 0.5, 19  # the paper's features are those of the 19 Cityscapes classes
    folder = tmp_path / "store"
    n_labelled, n_test = 6, 2
    writer = StoreWriter(folder, c, dataset="smiyc_obstacle", convention=LOSTANDFOUND, total=n_labelled + n_test)
    objects = []
    for k in range(n_labelled + n_test):
        logits = rng.normal(size=(c, h, w)).astype(np.float32) * 6
        big = (slice(8 + k % 3, 30), slice(6, 30 + k % 4))  # an OoD object: a large high-entropy region
        small = (slice(36, 40 + k % 2), slice(44, 48))       # a small high-entropy blob on the road: a false positive
        for region in (big, small):
            logits[(slice(None), *region)] *= 0.01
        label = np.ones((h, w), np.uint8)
        label[big] = 2
        labelled = k < n_labelled
        probs = np.exp(logits) / np.exp(logits).sum(0)
        writer.write(k, f"frame_{k:02d}", f"{k}.webp", probs.astype(np.float32),
                     label if labelled else np.full((h, w), 255, np.uint8), labelled=labelled)
        objects.append((big, small))
    writer.finalize()
    assert StoreReader(folder).labelled_indices == list(range(n_labelled))

    segment_features_stage(folder, tmp_path / "seg", [t], progress=False)
    table = pd.read_parquet(tmp_path / "seg" / "t0.5.parquet")
    assert set(table["iou0"]) == {0, 1} and set(table["image"]) == set(range(n_labelled))
    meta = tmp_path / "meta.parquet"
    table[["image", "segment"]].assign(prob_fp=table["iou0"].astype(float)).to_parquet(meta)
    plain = smiyc_scores_stage(folder, tmp_path / "plain", scorer="entropy")
    lowered = smiyc_scores_stage(folder, tmp_path / "meta", scorer="entropy", meta_table=meta, threshold=t,
                                 meta_threshold=0.5, segments_table=tmp_path / "seg" / "t0.5.parquet",
                                 meta_options={"features": "paper", "C": 1.0, "penalize_intercept": True})
    names = feature_names("paper")
    clf = MetaClassifier().fit(table[names].to_numpy(float), table["iou0"].to_numpy(int))
    reader = StoreReader(folder)
    for k in range(n_labelled, n_labelled + n_test):
        img = reader.read(k)
        before, after = read_scores(plain[k]), read_scores(lowered[k])
        df, comp = segment_metrics(img.probs, np.ones((h, w), np.uint8), t, ood_id=2, void_id=255)
        fp = np.flatnonzero(clf.predict_proba(df[names].to_numpy(float))[:, 1] > 0.5) + 1
        hit = np.isin(np.abs(comp), fp)
        np.testing.assert_array_equal(after != before, hit & (before >= np.float16(t)))
        big, small = objects[k]
        assert (after[small] < t).all() and (after[big] == before[big]).all()  # the blob goes, the object stays
    with pytest.raises(Exception, match="segments_table"):
        smiyc_scores_stage(folder, tmp_path / "x", scorer="entropy", meta_table=meta, threshold=t)
