"""Every value of every enumerated evaluation option of the config schema, through the smallest stage
function that uses it, checked against a number computed independently here.

* ``evaluation.scorer``: pixel_eval_stage on a small store; AUROC = scikit-learn's on the same
  scorer values (rounded as the histogram encodes them).
* ``meta.features`` / ``protocols`` / ``standardize`` / ``penalize_intercept``: meta_classify_stage
  on a synthetic segment table; held-out probabilities = explicit scikit-learn refits per fold.
* ``meta.reference_fp_after``: segment_eval_stage on hand-made tables; FP after = the defined count.
* ``inference.dtype``: the store round trip stays within the encoding's error bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import softmax
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from meta_ood import stages as pl
from meta_ood.labels import LOSTANDFOUND
from meta_ood.pixel_eval import quantize
from meta_ood.scores import LOGIT_SCORERS, SCORERS, UNIT_INTERVAL_SCORERS
from meta_ood.segments import feature_names
from meta_ood.store import StoreReader, StoreWriter, decode_scores

SCHEMA = Path(__file__).resolve().parents[1] / "src" / "meta_ood" / "config.schema.yaml"
C = 19
EPS = 1e-10  # the standardization's constant, as in the released code

SCORER_VALUES = ["entropy", "variation_ratio", "margin", "msp", "max_logit", "energy"]
FEATURE_VALUES = {"paper": 46, "released": 75}
PROTOCOL_VALUES = ["loo", "logo"]
STANDARDIZE_VALUES = ["global", "fold"]
DTYPE_VALUES = {"fixed16": 0.5 / 65535, "float16": 2.0 ** -12, "float32": 0.0}  # max |stored - p|


def _enum(*keys: str) -> list:
    node = yaml.safe_load(SCHEMA.read_text())
    for k in keys:
        node = node["properties"][k]
    return list(node["items"]["enum"] if "items" in node else node["enum"])


def _all_enums(node: dict, path: str = "") -> dict[str, list]:
    """Every enumerated option of the schema: dotted path -> values."""
    found = {}
    if "enum" in node:
        found[path] = list(node["enum"])
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found.update(_all_enums(node[key], path + ("[]" if key == "items" else ".<name>")))
    for name, sub in (node.get("properties") or {}).items():
        found.update(_all_enums(sub, f"{path}.{name}" if path else name))
    return found


#: Where each enumerated option is run value by value and checked against a number.
ENUM_TESTS = {
    "evaluation.scorer": "test_scorer_auroc_equals_sklearn",
    "evaluation.ood_datasets[]": "test_ood_dataset_values_flow_from_reader_to_segments",
    "evaluation.segment_datasets[]": "test_ood_dataset_values_flow_from_reader_to_segments",
    "meta.features": "test_meta_features",
    "meta.protocols[]": "test_meta_protocols",
    "meta.standardize": "test_meta_standardize",
    "inference.dtype": "test_store_dtype_round_trip",
    "inference.codec": "tests/test_store.py (both codecs decode to the same planes, HDF5 filters) and "
                       "tests/test_user_config.py::test_user_run_touches_nothing_in_the_dataset_tree (re-dumps)",
    "models.<name>.finetune.proxy": "tests/test_training.py::test_void_proxy_trains_on_void_pixels_only and "
                                    "tests/test_workflow.py::test_paper_config_plans_full_dag_on_real_layouts",
    "inference.probabilities": "tests/test_user_config.py::test_user_run_touches_nothing_in_the_dataset_tree "
                               "(which stores keep probabilities, re-dumps) and tests/test_store_planes.py",
    "evaluation.smiyc_datasets[]": "test_smiyc_dataset_values_evaluate_at_their_track",
    "datasets.smiyc_anomaly.split": "test_smiyc_split_values",
    "datasets.smiyc_obstacle.split": "test_smiyc_split_values",
    "models.<name>.finetune.coco_background": "tests/test_training.py::test_coco_background_modes",
    "models.<name>.finetune.loss_reduction": "tests/test_losses.py (reference and mean against the golden values)",
    "evaluation.definitions[]": "tests/test_definitions.py (each definition against scikit-learn / numpy on the pixels, "
                                "the selection of columns) and tests/test_store_planes.py::"
                                "test_pixel_eval_smiyc_binned_equals_the_smiyc_protocol_on_the_stored_scores",
}


def test_every_enumerated_option_has_its_test():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(_all_enums(schema)) == set(ENUM_TESTS)
    for where in ENUM_TESTS.values():
        if "::" not in where and " " not in where:
            assert where in globals(), where


def test_parametrizations_cover_the_schema():
    assert _enum("evaluation", "scorer") == SCORER_VALUES
    assert _enum("meta", "features") == list(FEATURE_VALUES)
    assert _enum("meta", "protocols") == PROTOCOL_VALUES
    assert _enum("meta", "standardize") == STANDARDIZE_VALUES
    assert _enum("inference", "dtype") == list(DTYPE_VALUES)


# ---------------------------------------------------------------------------- evaluation.scorer


@pytest.fixture(scope="module")
def logit_store(tmp_path_factory) -> Path:
    """Four 20 x 30 LostAndFound-like images with logits; OoD pixels get flatter logits (ties: rounded)."""
    folder = tmp_path_factory.mktemp("store") / "lostandfound"
    rng = np.random.default_rng(0)
    writer = StoreWriter(folder, C, model="m", dataset="lostandfound", convention=LOSTANDFOUND, store_logits=True)
    for i in range(4):
        label = rng.choice(np.array([1, 2, 255], np.uint8), size=(20, 30), p=[0.75, 0.15, 0.1])
        logits = rng.normal(size=(C, 20, 30)) * np.where(label == 2, 1.2, 3.5)
        logits = (np.round(logits * 4) / 4).astype(np.float32)
        writer.write(i, f"img{i}", f"img{i}.png", softmax(logits.astype(np.float64), axis=0).astype(np.float32), label,
                     logits=logits)
    writer.finalize()
    return folder


@pytest.mark.parametrize("scorer", SCORER_VALUES)
def test_scorer_auroc_equals_sklearn(logit_store, tmp_path, scorer):
    res = pl.pixel_eval_stage(logit_store, tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, scorer=scorer,
                              progress=False)
    # the scores the evaluation reads: the stored plane (entropy) or the score of the stored
    # probabilities / logits (the others), in the histogram's 16-bit encoding
    scores, ood = [], []
    for img in StoreReader(logit_store).iter(scores=(scorer,)):
        keep = (img.label == 1) | (img.label == 2)
        s = SCORERS[scorer](img.logits if scorer in LOGIT_SCORERS else img.probs)
        if scorer != "entropy":  # computed on read; the entropy plane was stored from float32 probabilities
            np.testing.assert_array_equal(img.scores[scorer], quantize(s, 16, res["encoding"]))
        scores.append(decode_scores(img.scores[scorer], scorer)[keep])
        ood.append(img.label[keep] == 2)
    q, y = np.concatenate(scores), np.concatenate(ood)
    assert res["encoding"] == ("unit" if scorer in UNIT_INTERVAL_SCORERS else "float16")
    assert res["scorer"] == scorer and res["n_pos"] == y.sum() and res["n_neg"] == (~y).sum()
    assert res["auroc"] == pytest.approx(roc_auc_score(y, q), abs=1e-9)
    assert res["auroc"] > 0.75  # every scorer is oriented "higher = more OoD"
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["auroc"] == res["auroc"] and saved["encoding"] == res["encoding"]
    edges = saved["violin"]["edges"]
    assert (edges[0], edges[-1]) == ((0.0, 1.0) if scorer in UNIT_INTERVAL_SCORERS else (q.min(), q.max()))


# ----------------------------------------------------------------------------- meta.* options


def _segment_table(n: int = 36, n_images: int = 6, seed: int = 1) -> pd.DataFrame:
    """Synthetic segment metrics (all 75 released columns) on different scales; labels from a
    logistic model of a few of them; ``n_images`` images with both classes in each."""
    rng = np.random.default_rng(seed)
    names = feature_names("released")
    latent = rng.standard_normal((n, 4))
    X = latent @ rng.standard_normal((4, len(names))) + 0.5 * rng.standard_normal((n, len(names)))
    X = X * rng.uniform(0.1, 10.0, len(names)) + rng.uniform(-3.0, 3.0, len(names))
    frame = pd.DataFrame(X, columns=names)
    frame["iou0"] = (latent[:, 0] + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    frame["iou"] = np.where(frame["iou0"] == 1, 0.0, 0.4)
    frame["image"] = np.arange(n) % n_images
    frame["segment"] = np.arange(n) // n_images + 1
    frame["n_gt_in"] = 0
    assert frame.groupby("image")["iou0"].nunique().min() == 2
    return frame


def _run_meta(tmp_path: Path, frame: pd.DataFrame, **options) -> tuple[pd.DataFrame, dict]:
    frame.to_parquet(tmp_path / "t0.5.parquet")
    summary = pl.meta_classify_stage(tmp_path / "t0.5.parquet", tmp_path / "m.parquet", tmp_path / "m.json", **options)
    assert json.loads((tmp_path / "m.json").read_text())["n_features"] == summary["n_features"]
    return pd.read_parquet(tmp_path / "m.parquet"), summary


def _refits(frame: pd.DataFrame, names: list[str], folds, model, standardize: str = "global") -> np.ndarray:
    """Held-out probability of FP of every row, refitting ``model`` on each fold's training rows."""
    X, y = frame[names].to_numpy(), frame["iou0"].to_numpy()
    out = np.empty(len(y))
    for test in folds:
        train = np.ones(len(y), bool)
        train[test] = False
        stats = X[train] if standardize == "fold" else X
        mu, sd = stats.mean(axis=0), stats.std(axis=0)
        fit = clone(model).fit((X[train] - mu) / (sd + EPS), y[train])
        out[test] = fit.predict_proba((X[test] - mu) / (sd + EPS))[:, 1]
    return out


LIBLINEAR = LogisticRegression(solver="liblinear", C=1.0, tol=1e-12, max_iter=100000)
UNPENALIZED_INTERCEPT = LogisticRegression(solver="newton-cholesky", C=1.0, tol=1e-12, max_iter=1000)


@pytest.mark.parametrize("features", list(FEATURE_VALUES))
def test_meta_features(tmp_path, features):
    frame = _segment_table()
    table, summary = _run_meta(tmp_path, frame, features=features, protocols=("loo",))
    names = feature_names(features)
    assert summary["n_features"] == len(names) == FEATURE_VALUES[features]
    assert list(summary["coefficients"]) == names
    rows = [np.array([k]) for k in (0, 17, 35)]  # a few leave-one-out folds
    ref = _refits(frame, names, rows, LIBLINEAR)
    idx = np.concatenate(rows)
    assert np.abs(table["prob_fp"].to_numpy()[idx] - ref[idx]).max() < 1e-6


@pytest.mark.parametrize("protocol", PROTOCOL_VALUES)
def test_meta_protocols(tmp_path, protocol):
    frame = _segment_table(n=30, n_images=5, seed=2)
    table, summary = _run_meta(tmp_path, frame, protocols=(protocol,))
    names = feature_names("paper")
    if protocol == "loo":
        folds = [np.array([k]) for k in range(len(frame))]
    else:
        folds = [np.flatnonzero(frame["image"].to_numpy() == g) for g in range(5)]
    ref = _refits(frame, names, folds, LIBLINEAR)
    assert np.abs(table["prob_fp"].to_numpy() - ref).max() < 1e-6
    m = summary["protocols"][protocol]
    assert m["auroc"] == pytest.approx(roc_auc_score(frame["iou0"], ref), abs=1e-9)
    assert m["fallback"] is None and m["n_single_class_folds"] == 0


def test_meta_logo_with_one_image_does_not_stop_the_stage(tmp_path):
    frame = _segment_table(n=12, n_images=1, seed=3)
    with pytest.warns(UserWarning, match="two groups"):
        table, summary = _run_meta(tmp_path, frame, protocols=("loo", "logo"))
    assert summary["protocols"]["logo"]["fallback"] == "single_group" and summary["protocols"]["logo"]["auroc"] is None
    assert np.isnan(table["prob_fp_logo"]).all() and np.isfinite(table["prob_fp"]).all()
    ref = _refits(frame, feature_names("paper"), [np.array([k]) for k in range(12)], LIBLINEAR)
    assert np.abs(table["prob_fp"].to_numpy() - ref).max() < 1e-6


@pytest.mark.parametrize("standardize", STANDARDIZE_VALUES)
def test_meta_standardize(tmp_path, standardize):
    frame = _segment_table(n=24, n_images=4, seed=4)
    names = feature_names("paper")
    table, _ = _run_meta(tmp_path, frame, protocols=("logo",), standardize=standardize)
    folds = [np.flatnonzero(frame["image"].to_numpy() == g) for g in range(4)]
    ref = _refits(frame, names, folds, LIBLINEAR, standardize=standardize)
    other = _refits(frame, names, folds, LIBLINEAR, standardize="fold" if standardize == "global" else "global")
    assert np.abs(table["prob_fp"].to_numpy() - ref).max() < 1e-6
    assert np.abs(ref - other).max() > 1e-3  # the two options give different numbers


@pytest.mark.parametrize("penalize_intercept", [True, False])
def test_meta_penalize_intercept(tmp_path, penalize_intercept):
    frame = _segment_table(n=30, n_images=5, seed=5)
    names = feature_names("paper")
    table, summary = _run_meta(tmp_path, frame, protocols=("logo",), penalize_intercept=penalize_intercept)
    folds = [np.flatnonzero(frame["image"].to_numpy() == g) for g in range(5)]
    ref = _refits(frame, names, folds, LIBLINEAR if penalize_intercept else UNPENALIZED_INTERCEPT)
    assert np.abs(table["prob_fp"].to_numpy() - ref).max() < 1e-6
    X = frame[names].to_numpy()
    full = clone(LIBLINEAR if penalize_intercept else UNPENALIZED_INTERCEPT).fit(
        (X - X.mean(axis=0)) / (X.std(axis=0) + EPS), frame["iou0"])
    assert summary["intercept"] == pytest.approx(float(full.intercept_[0]), abs=1e-6)


# ------------------------------------------------------------------------ meta.reference_fp_after


@pytest.mark.parametrize("reference_fp_after", [False, True])
def test_reference_fp_after(tmp_path, reference_fp_after):
    seg, meta = tmp_path / "segments", tmp_path / "meta"
    seg.mkdir()
    meta.mkdir()
    # six predicted segments of one image: FP flags and meta probabilities
    iou0 = np.array([1, 1, 1, 0, 0, 0])
    prob = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.3])  # removed (> 0.5): rows 0, 1, 3
    pd.DataFrame({"image": [0], "n_gt_in": [100]}).to_parquet(seg / "images.parquet")
    pd.DataFrame({"image": 0, "segment": np.arange(1, 7), "iou0": iou0, "n_gt_in": np.arange(6)}).to_parquet(
        seg / "t0.5.parquet")
    pd.DataFrame({"image": [0, 0], "segment": [1, 2], "iou0": [0, 0]}).to_parquet(seg / "t0.5.gt.parquet")
    pd.DataFrame({"image": [0, 0, 0], "pred_segment": [4, 5, 6], "gt_segment": [1, 2, 2], "n_pixels": [3, 4, 5]}).to_parquet(
        seg / "t0.5.overlaps.parquet")
    pd.DataFrame({"image": 0, "segment": np.arange(1, 7), "prob_fp": prob}).to_parquet(meta / "t0.5.parquet")
    r = pl.segment_eval_stage(seg, meta, [0.5], tmp_path / "e.json", reference_fp_after=reference_fp_after)
    e = r["thresholds"]["t0.5"]
    removed = prob > 0.5
    if reference_fp_after:
        assert e["fp_after"] == int((removed & (iou0 == 0)).sum()) == 1  # the removed TP, row 3
    else:
        assert e["fp_after"] == int((~removed & (iou0 == 1)).sum()) == 1  # the kept FP, row 2
    assert e["fn_after"] == 1  # gt 1 was only overlapped by the removed segment 4
    assert e["total_after"] == e["fp_after"] + 1 and e["fp_before"] == 3


# ---------------------------------------------------------------------------------- inference.dtype


@pytest.mark.parametrize("dtype", list(DTYPE_VALUES))
def test_store_dtype_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(6)
    logits = rng.normal(scale=4.0, size=(C, 24, 32))
    probs = softmax(logits, axis=0).astype(np.float32)
    label = rng.integers(0, 3, size=(24, 32)).astype(np.uint8)
    writer = StoreWriter(tmp_path / "s", C, dtype=dtype, dataset="lostandfound", convention=LOSTANDFOUND,
                         store_logits=True)
    writer.write(0, "a", "a.png", probs, label, logits=logits.astype(np.float32))
    writer.finalize()
    reader = StoreReader(tmp_path / "s")
    img = reader[0]
    assert reader.dtype == dtype and np.array_equal(img.label, label)
    err = np.abs(img.probs.astype(np.float64) - probs.astype(np.float64))
    bound = DTYPE_VALUES[dtype]
    if dtype == "float32":
        assert err.max() == 0.0 and np.array_equal(img.logits, logits.astype(np.float32))
    else:
        # fixed16: round(p * 65535) / 65535 (plus the float32 rounding of the quotient); float16: half an ulp at 1
        assert 0.5 * bound < err.max() <= bound + 1e-7
        assert np.array_equal(img.logits, logits.astype(np.float32).astype(np.float16).astype(np.float32))
    if dtype == "float16":  # relative precision 2^-11 for normal numbers
        normal = probs >= 2.0 ** -14
        assert (err[normal] / probs[normal]).max() <= 2.0 ** -11
    # the entropy of the stored probabilities moves by far less than the distance between thresholds
    assert np.abs(SCORERS["entropy"](img.probs) - SCORERS["entropy"](probs)).max() < (1e-3 if bound else 1e-7)


# ------------------------------------------------------- evaluation.ood_datasets / segment_datasets


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    from conftest import make_real_tree

    # 4 Cityscapes val images: the fourth has a void object (static / dynamic), the OoD of cityscapes_void
    return make_real_tree(tmp_path_factory.mktemp("tree") / "data", n_lostandfound=3, n_fishyscapes=2,
                          n_fishyscapes_lostandfound=3, n_val=4)


OOD_DATASET_VALUES = ["lostandfound", "fishyscapes_static", "fishyscapes_lostandfound", "lostandfound_noknown",
                      "smiyc_anomaly", "smiyc_obstacle", "road_anomaly", "cityscapes_void"]


@pytest.mark.parametrize("dataset", OOD_DATASET_VALUES)
def test_ood_dataset_values_flow_from_reader_to_segments(real_tree, tmp_path, torch_one_thread, dataset):
    """Each OoD test set of the schema: dump (real-layout reader) -> pixel evaluation -> segments.

    The pooled pixel counts equal the in/out pixels of the dataset's own labels, and the segment table
    has exactly one row per 8-connected component of {entropy >= t} minus void, counted here with scipy.
    """
    import scipy.ndimage as ndi

    from meta_ood.datasets import open_dataset
    from meta_ood.inference import run_dump_stage
    from meta_ood.scores import normalized_entropy

    assert _enum("evaluation", "ood_datasets") == _enum("evaluation", "segment_datasets") == OOD_DATASET_VALUES
    roots = {"lostandfound": (real_tree["lostandfound"], "test", {}),
             "fishyscapes_static": (real_tree["fishyscapes"], "Static", {}),
             "fishyscapes_lostandfound": (real_tree["fishyscapes"], "LostAndFound",
                                          {"laf_root": str(real_tree["lostandfound"])}),
             "lostandfound_noknown": (real_tree["lostandfound"].parent / "lostandfound_noknown", "test", {}),
             "smiyc_anomaly": (real_tree["lostandfound"].parent / "smiyc", "validation", {}),
             "smiyc_obstacle": (real_tree["lostandfound"].parent / "smiyc", "validation", {}),
             "road_anomaly": (real_tree["lostandfound"].parent / "road_anomaly", "all", {}),
             "cityscapes_void": (real_tree["cityscapes"], "val", {})}
    root, split, extra = roots[dataset]
    spec = {"kind": dataset, "root": str(root), "split": split, **extra}
    store = tmp_path / "store"
    run_dump_stage("tiny", 19, None, spec, store, {"batch_size": 2, "workers": 0, "device": "cpu"}, progress=False)
    reader_ds = open_dataset(dataset, str(root), split, **extra)
    conv = StoreReader(store).convention
    n_in = sum(int((item.label == conv.train_id_in).sum()) for item in reader_ds)
    n_out = sum(int((item.label == conv.train_id_out).sum()) for item in reader_ds)
    assert n_out > 0
    result = pl.pixel_eval_stage(store, tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, progress=False)
    assert (result["n_pos"], result["n_neg"]) == (n_out, n_in)
    t = 0.5
    pl.segment_features_stage(store, tmp_path / "seg", [t], progress=False)
    table = pd.read_parquet(tmp_path / "seg" / "t0.5.parquet")
    expected = 0
    for img in StoreReader(store):
        mask = (normalized_entropy(img.probs) >= t) & (img.label != 255)
        expected += ndi.label(mask, structure=np.ones((3, 3)))[1]
    assert len(table) == expected


SMIYC_TRACKS = {"smiyc_anomaly": (500, 100), "smiyc_obstacle": (50, 10), "lostandfound_noknown": (50, 10),
                "road_anomaly": (500, 100)}


@pytest.mark.parametrize("dataset", list(SMIYC_TRACKS))
def test_smiyc_dataset_values_evaluate_at_their_track(real_tree, tmp_path, torch_one_thread, dataset):
    """Each SMIYC dataset value: dump -> score files -> evaluation with its track's size filters.

    The exact pooled AP equals scikit-learn's on the float16 score files' non-void pixels.
    """
    from sklearn.metrics import average_precision_score

    from meta_ood.inference import run_dump_stage
    from meta_ood.smiyc import read_label, read_scores
    from meta_ood.stages.smiyc import smiyc_eval_stage, smiyc_labels_stage, smiyc_scores_stage

    assert set(_enum("evaluation", "smiyc_datasets")) == set(SMIYC_TRACKS)
    base = real_tree["lostandfound"].parent
    root, split = {"smiyc_anomaly": (base / "smiyc", "validation"), "smiyc_obstacle": (base / "smiyc", "validation"),
                   "lostandfound_noknown": (base / "lostandfound_noknown", "test"),
                   "road_anomaly": (base / "road_anomaly", "all")}[dataset]
    store = tmp_path / "store"
    run_dump_stage("tiny", 19, None, {"kind": dataset, "root": str(root), "split": split}, store,
                   {"batch_size": 1, "workers": 0, "device": "cpu"}, progress=False)
    scores = smiyc_scores_stage(store, tmp_path / "scores", scorer="entropy")
    labels = smiyc_labels_stage(store, tmp_path / "labels")
    res = smiyc_eval_stage(tmp_path / "scores", tmp_path / "labels", dataset, tmp_path / "e.json", method="m", n_boot=0)
    assert (res["segsize"], res["instsize"]) == SMIYC_TRACKS[dataset]
    y, s = [], []
    for sf, lf in zip(scores, labels):
        lab, val = read_label(lf), read_scores(sf)
        keep = lab != 255
        y.append(lab[keep] == 1)
        s.append(val[keep].astype(np.float64))
    assert res["exact"]["AP"] == pytest.approx(average_precision_score(np.concatenate(y), np.concatenate(s)), abs=1e-9)


def test_smiyc_split_without_labels_dumps_and_writes_score_files(real_tree, tmp_path, torch_one_thread):
    """The test split: every frame gets a score file equal to the scorer's map, ready for the submission zip."""
    import zipfile

    from meta_ood.datasets import open_dataset
    from meta_ood.inference import run_dump_stage
    from meta_ood.smiyc import read_scores, write_submission_zip
    from meta_ood.stages.smiyc import smiyc_scores_stage

    root = real_tree["lostandfound"].parent / "smiyc"
    frames = open_dataset("smiyc_anomaly", str(root), "test")
    assert not frames.has_labels and len(frames) > 0
    store = tmp_path / "store"
    run_dump_stage("tiny", 19, None, {"kind": "smiyc_anomaly", "root": str(root), "split": "test"}, store,
                   {"batch_size": 1, "workers": 0, "device": "cpu"}, progress=False)
    out = tmp_path / "sub" / "anomaly_p" / "m" / "AnomalyTrack-test"
    files = smiyc_scores_stage(store, out, scorer="entropy")
    assert sorted(f.name for f in files) == sorted(f"{s.name}.hdf5" for s in frames.samples)
    for f, img in zip(files, StoreReader(store).iter(scores=("entropy",))):
        assert (img.label == 255).all()
        want = decode_scores(img.scores["entropy"], "entropy").astype(np.float16)
        np.testing.assert_array_equal(read_scores(f), want)
    names = zipfile.ZipFile(write_submission_zip(tmp_path / "sub", tmp_path / "sub.zip")).namelist()
    assert sorted(names) == sorted(f"anomaly_p/m/AnomalyTrack-test/{f.name}" for f in files)


@pytest.mark.parametrize("dataset", ["smiyc_anomaly", "smiyc_obstacle"])
def test_smiyc_split_all_evaluates_the_labelled_frames_and_scores_every_frame(real_tree, tmp_path, torch_one_thread,
                                                                              dataset):
    """The default split 'all': one dump; the evaluations read only the labelled frames (the pooled counts of
    their label masks), every frame gets a score file, and the meta variant lowers the test frames' segments
    with the classifier fit on all labelled segments (here the untrained net's one-class case; both classes:
    test_smiyc_workflow.py)."""
    from meta_ood.datasets import open_dataset
    from meta_ood.inference import run_dump_stage
    from meta_ood.meta import MetaClassifier
    from meta_ood.scores import normalized_entropy
    from meta_ood.segments import feature_names, segment_metrics
    from meta_ood.smiyc import read_label, read_scores
    from meta_ood.stages.smiyc import smiyc_eval_stage, smiyc_labels_stage, smiyc_scores_stage

    root = real_tree["lostandfound"].parent / "smiyc"
    ds = open_dataset(dataset, str(root))
    assert ds.split == "all" and 0 < len(ds.labelled_names) < len(ds)
    store = tmp_path / "store"
    run_dump_stage("tiny", 19, None, {"kind": dataset, "root": str(root)}, store,
                   {"batch_size": 2, "workers": 0, "device": "cpu"}, progress=False)
    reader = StoreReader(store)
    assert reader.labelled == [s.train_ids is not None for s in ds.samples]
    validation = open_dataset(dataset, str(root), "validation")
    n_in = sum(int((item.label == 0).sum()) for item in validation)
    n_out = sum(int((item.label == 1).sum()) for item in validation)
    res = pl.pixel_eval_stage(store, tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, progress=False)
    assert (res["n_pos"], res["n_neg"]) == (n_out, n_in) and res["frames"] == ds.labelled_names
    assert res["n_unlabelled_skipped"] == len(ds) - len(ds.labelled_names)
    pl.segment_features_stage(store, tmp_path / "seg", [0.5], progress=False)
    table = pd.read_parquet(tmp_path / "seg" / "t0.5.parquet")
    assert set(table["image"]) <= set(reader.labelled_indices) and len(table) > 0
    assert pd.read_parquet(tmp_path / "seg" / "images.parquet")["name"].tolist() == ds.labelled_names

    # a meta table that rejects every labelled segment, and score files of every frame
    meta = table[["image", "segment"]].assign(prob_fp=1.0)
    meta.to_parquet(tmp_path / "meta.parquet")
    plain = smiyc_scores_stage(store, tmp_path / "plain", scorer="entropy")
    lowered = smiyc_scores_stage(store, tmp_path / "meta", scorer="entropy", meta_table=tmp_path / "meta.parquet",
                                 threshold=0.5, meta_threshold=0.5, segments_table=tmp_path / "seg" / "t0.5.parquet")
    assert [p.name for p in plain] == [p.name for p in lowered] == [f"{n}.hdf5" for n in reader.names]
    labels = smiyc_labels_stage(store, tmp_path / "labels")
    assert [p.name for p in labels] == [f"{n}_labels_semantic.png" for n in ds.labelled_names]
    for p, lab in zip(labels, validation):
        np.testing.assert_array_equal(read_label(p), lab.label)

    # the unlabelled frames: segments of {entropy >= 0.5} over the whole image, lowered where the classifier fit on
    # the labelled segments gives P(FP) > 0.5 (or, with one class only, where the class frequency does)
    y = table["iou0"].to_numpy(dtype=int)
    names = feature_names("paper")
    clf = MetaClassifier().fit(table[names].to_numpy(float), y) if np.unique(y).size == 2 else None
    for img, p_plain, p_meta in zip(reader.iter(probs=True, scores=("entropy",)), plain, lowered):
        s_plain, s_meta = read_scores(p_plain), read_scores(p_meta)
        assert (s_meta <= s_plain).all()
        if img.labelled:
            continue
        no_void = np.zeros(img.label.shape, np.uint8)
        df, comp = segment_metrics(img.probs, no_void, 0.5, ood_id=1, void_id=255)
        prob = clf.predict_proba(df[names].to_numpy(float))[:, 1] if clf is not None else np.full(len(df), y.mean())
        hit = np.isin(np.abs(comp), np.flatnonzero(prob > 0.5) + 1)
        np.testing.assert_array_equal(s_meta != s_plain, hit & (s_plain >= np.float16(0.5)))
        assert (normalized_entropy(img.probs)[hit] >= 0.5).all()

    res = smiyc_eval_stage(tmp_path / "plain", tmp_path / "labels", dataset, tmp_path / "e.json", method="m", n_boot=0)
    assert res["frames"] == ds.labelled_names
    assert res["skipped_unlabelled"] == sorted(set(reader.names) - set(ds.labelled_names))


@pytest.mark.parametrize("dataset", ["smiyc_anomaly", "smiyc_obstacle"])
@pytest.mark.parametrize("split", ["all", "validation", "test"])
def test_smiyc_split_values(real_tree, dataset, split):
    """Each split value: the frames it lists and which of them are evaluated, counted from the files on disk
    (the dump, evaluation and score files of 'all' / 'test': the two tests above)."""
    from meta_ood.datasets import open_dataset
    from meta_ood.datasets.smiyc import OBSTACLE_TEST_SCENES

    assert _enum("datasets", dataset, "split") == ["all", "validation", "test"]
    track = real_tree["lostandfound"].parent / "smiyc" / {"smiyc_anomaly": "dataset_AnomalyTrack",
                                                          "smiyc_obstacle": "dataset_ObstacleTrack"}[dataset]
    images = sorted(p.stem for p in (track / "images").iterdir())
    labelled = sorted(p.name[: -len("_labels_semantic.png")] for p in (track / "labels_masks").glob("*_semantic.png"))
    unlabelled = sorted(set(images) - set(labelled))
    if dataset == "smiyc_obstacle":
        unlabelled = [f for f in unlabelled if f.split("_")[0] in OBSTACLE_TEST_SCENES]
    expected = {"all": (images, labelled), "validation": (labelled, labelled), "test": (unlabelled, [])}[split]
    ds = open_dataset(dataset, str(track), split)
    assert ([s.name for s in ds.samples], ds.labelled_names) == expected and len(expected[0]) > 0
