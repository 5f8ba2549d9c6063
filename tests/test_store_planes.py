"""Tests of the score planes of the softmax store (format 2): what the writer stores, stores without
probabilities, the reader's fallback for unstored planes and format-1 files, finished planes, resume,
``PooledHistogram.update_codes`` and the pixel evaluation on score planes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import confusion_matrix, roc_auc_score

from meta_ood.errors import InputError
from meta_ood.labels import FISHYSCAPES, LOSTANDFOUND
from meta_ood.pixel_eval import PooledHistogram, dequantize, quantize
from meta_ood.scores import LOGIT_SCORERS, SCORERS, energy, normalized_entropy, probability_margin
from meta_ood.stages.pixel_eval import pixel_eval_stage
from meta_ood.store import FORMAT, ImagePlanes, StoreReader, StoreWriter
from meta_ood.store import codec as store_codec
from meta_ood.store.planes import planes_from_probs

C = 5
H, W = 24, 32
SCALE = np.float32(1.0 / 65535)


def _logits(rng: np.random.Generator, c: int = C, h: int = H, w: int = W) -> np.ndarray:
    """Random float32 logits (C, H, W) with a confident upper half, like a network's."""
    lg = rng.normal(0.0, 3.0, (c, h, w)).astype(np.float32)
    lg[rng.integers(0, c), : h // 2] += 8.0
    return lg


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis in float64, rounded once to float32."""
    return softmax(logits.astype(np.float64), axis=0).astype(np.float32)


def _maps(n: int, convention, seed: int = 0, c: int = C) -> list[dict]:
    """``n`` images of float32 probabilities, logits and labels (in/out/void, or train ids 0..c-1 and void)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        h, w = H + 2 * (k % 2), W
        lg = _logits(rng, c, h, w)
        if convention is None:
            label = rng.integers(0, c, (h, w)).astype(np.uint8)
            label[np.argmax(lg, 0) == label[0, 0]] = label[0, 0]  # some agreement with the prediction
        else:
            label = rng.choice(np.array([convention.train_id_in, convention.train_id_out, 255], np.uint8),
                               size=(h, w), p=[0.7, 0.2, 0.1])
            lg[:, label == convention.train_id_out] *= 0.3  # OoD pixels: flatter softmax
        label[0, :3] = 255
        out.append(dict(name=f"img{k}", path=f"/data/img{k}.png", logits=lg, probs=_softmax(lg), label=label))
    return out


def _write(folder: Path, maps: list[dict], convention, dataset: str, *, probs_key: str = "probs", **kw) -> StoreReader:
    """Write ``maps`` into a new store at ``folder`` and open it."""
    c = maps[0][probs_key].shape[0]
    w = StoreWriter(folder, c, total=len(maps), model="m", dataset=dataset, convention=convention, **kw)
    for k, m in enumerate(maps):
        lg = m["logits"] if (w.store_logits or set(w.scorers) & LOGIT_SCORERS) else None
        w.write(k, m["name"], m["path"], m[probs_key], m["label"], logits=lg)
    w.finalize()
    return StoreReader(folder)


def _dequantized(raw: np.ndarray) -> np.ndarray:
    """fixed16 codes as the float32 probabilities they stand for (``q * float32(1 / 65535)``)."""
    return raw.astype(np.float32) * SCALE


def _comparable(result: dict) -> dict:
    """A stage result without the store path (the only field that differs between two stores)."""
    return {k: v for k, v in result.items() if k != "store"}


# ------------------------------------------------------------------------------ writer


def _closed_form(scorer: str, probs: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """float64 scores of ``scorer`` from their definitions (scipy / numpy), independent of meta_ood.scores."""
    p = probs.astype(np.float64)
    top = np.sort(p, axis=0)
    if scorer == "entropy":
        return scipy_entropy(p, axis=0) / math.log(p.shape[0])
    if scorer in ("variation_ratio", "msp"):
        return 1.0 - top[-1]
    if scorer == "margin":
        return 1.0 - top[-1] + top[-2]
    if scorer == "max_logit":
        return -logits.astype(np.float64).max(0)
    assert scorer == "energy"
    return -logsumexp(logits.astype(np.float64), axis=0)


@pytest.mark.parametrize("scorer", sorted(SCORERS))
def test_writer_stores_the_codes_of_the_cpu_scores(tmp_path, scorer):
    """Fed float probabilities (and logits), the writer stores ``scores/<scorer>`` = quantize(SCORERS[scorer])
    with its ``encoding`` attribute, ``scores/entropy`` = quantize(normalized_entropy, 16, "unit") and
    ``argmax`` = np.argmax; the decoded codes lie within half a grid step (unit) or one float16
    rounding (logit scorers) of the scores' closed forms."""
    m = _maps(1, FISHYSCAPES, seed=1)[0]
    p, lg = m["probs"], m["logits"]
    _write(tmp_path, [m], FISHYSCAPES, "fishyscapes_static", scorers=(scorer,))
    with h5py.File(tmp_path / "images" / "000000.h5", "r") as f:
        assert sorted(f["scores"]) == sorted({"entropy", scorer})
        codes = {k: f["scores"][k][()] for k in f["scores"]}
        encodings = {k: f["scores"][k].attrs["encoding"] for k in f["scores"]}
        amax = f["argmax"][()]
        assert "logits" not in f  # needed by the scorer, not kept
    enc = "float16" if scorer in LOGIT_SCORERS else "unit"
    assert encodings == {"entropy": "unit", scorer: enc}
    assert all(c.dtype == np.uint16 and c.shape == p.shape[1:] for c in codes.values())
    np.testing.assert_array_equal(codes["entropy"], quantize(normalized_entropy(p), 16, "unit"))
    src = lg if scorer in LOGIT_SCORERS else p
    np.testing.assert_array_equal(codes[scorer], quantize(SCORERS[scorer](src), 16, enc))
    assert amax.dtype == np.uint8
    np.testing.assert_array_equal(amax, np.argmax(p, 0))
    ref = _closed_form(scorer, p, lg)
    got = dequantize(codes[scorer], 16, enc)
    if enc == "unit":
        assert np.abs(got - ref).max() <= 0.5 / 65535 + 1e-6
    elif scorer == "max_logit":  # the max of float32 logits is exact: its float16 rounding is the code
        np.testing.assert_array_equal(got, ref.astype(np.float16).astype(np.float64))
    else:
        assert np.all(np.abs(got - ref) <= 2.0**-11 * np.abs(ref) + 1e-5)


def test_logit_scorer_without_logits_is_refused(tmp_path):
    """A writer with a logit scorer refuses probabilities without logits, naming the image and scorer."""
    m = _maps(1, FISHYSCAPES)[0]
    w = StoreWriter(tmp_path, C, total=1, scorers=("energy",))
    with pytest.raises(InputError, match=r"image 0 \('img0'\): scorers \['energy'\] are computed from logits"):
        w.write(0, m["name"], m["path"], m["probs"], m["label"])
    assert not any((tmp_path / "images").iterdir())


def test_store_without_probabilities(tmp_path):
    """store_probs=False: no ``probs`` dataset, has_probs False, read() returns probs None and
    read(probs=True) explains where probabilities are kept; the entropy plane and the argmax read
    back as with probabilities, and a 19-class file is under a quarter of the size (measured 0.16)."""
    rng = np.random.default_rng(7)
    lg = _logits(rng, 19, 64, 96)
    label = rng.integers(0, 3, (64, 96)).astype(np.uint8)
    m = dict(name="city", path="/c.png", logits=lg, probs=_softmax(lg), label=label)
    full = _write(tmp_path / "full", [m], FISHYSCAPES, "fs")
    lean = _write(tmp_path / "lean", [m], FISHYSCAPES, "fs", store_probs=False)
    with h5py.File(tmp_path / "lean" / "images" / "000000.h5", "r") as f:
        assert sorted(f) == ["argmax", "label", "scores"] and list(f["scores"]) == ["entropy"]
    assert full.has_probs and not lean.has_probs
    assert lean.read(0).probs is None and lean[0].probs is None
    with pytest.raises(InputError, match=r"keeps no probabilities.*segment_datasets"):
        lean.read(0, probs=True)
    got = lean.read(0, scores=("entropy",), argmax=True)
    ref = full.read(0, scores=("entropy",), argmax=True)
    np.testing.assert_array_equal(got.scores["entropy"], quantize(normalized_entropy(m["probs"]), 16, "unit"))
    np.testing.assert_array_equal(got.scores["entropy"], ref.scores["entropy"])
    np.testing.assert_array_equal(got.argmax, np.argmax(m["probs"], 0))
    np.testing.assert_array_equal(got.label, m["label"])
    assert lean.can_score("entropy") and not lean.can_score("margin") and full.can_score("margin")
    size = {k: (tmp_path / k / "images" / "000000.h5").stat().st_size for k in ("full", "lean")}
    assert size["lean"] < 0.25 * size["full"]


# ------------------------------------------------------------------------------ reader fallback


def test_reader_computes_unstored_scores_from_probabilities(tmp_path):
    """A scorer without a stored plane is computed from the dequantized probabilities (margin) or the
    stored float16 logits (energy); a store without probabilities refuses it, naming the scorer."""
    maps = _maps(2, FISHYSCAPES, seed=3)
    r = _write(tmp_path / "probs", maps, FISHYSCAPES, "fs")
    assert r.scorers == ["entropy"] and r.can_score("margin") and not r.can_score("energy")
    for k in range(2):
        deq = _dequantized(r.read(k, raw=True).probs)
        np.testing.assert_array_equal(r.read(k).probs, deq)
        got = r.read(k, scores=("margin",), argmax=True)
        assert list(got.scores) == ["margin"]
        np.testing.assert_array_equal(got.scores["margin"], quantize(probability_margin(deq), 16, "unit"))
        np.testing.assert_array_equal(got.argmax, np.argmax(maps[k]["probs"], 0))  # the stored argmax
        # the stored entropy plane is the one of the float probabilities the writer was given
        np.testing.assert_array_equal(r.read(k, scores=("entropy",)).scores["entropy"],
                                      quantize(normalized_entropy(maps[k]["probs"]), 16, "unit"))
    with pytest.raises(InputError, match=r"no 'energy' score plane.*no logits"):
        r.read(0, scores=("energy",))

    rl = _write(tmp_path / "logits", maps, FISHYSCAPES, "fs", store_logits=True)
    assert rl.can_score("energy")
    stored_logits = rl.read(1).logits
    assert stored_logits.dtype == np.float32
    np.testing.assert_array_equal(stored_logits, maps[1]["logits"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(rl.read(1, scores=("energy",)).scores["energy"],
                                  quantize(energy(stored_logits), 16, "float16"))

    lean = _write(tmp_path / "lean", maps, FISHYSCAPES, "fs", store_probs=False)
    assert not lean.can_score("margin")
    with pytest.raises(InputError, match=r"no 'margin' score plane.*no probabilities"):
        lean.read(0, scores=("margin",))
    with pytest.raises(InputError, match=r"no 'margin' score plane"):
        pixel_eval_stage(tmp_path / "lean", tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, scorer="margin",
                         progress=False)


def test_reading_a_computed_scorer_keeps_the_stored_entropy_plane(tmp_path):
    """read(scores=("entropy", "margin")) on a store with only the entropy plane returns the stored
    entropy codes (those of the writer's float probabilities), as read(scores=("entropy",)) does."""
    maps = _maps(1, FISHYSCAPES, seed=3)
    r = _write(tmp_path, maps, FISHYSCAPES, "fs")
    stored = r.read(0, scores=("entropy",)).scores["entropy"]
    np.testing.assert_array_equal(stored, quantize(normalized_entropy(maps[0]["probs"]), 16, "unit"))
    both = r.read(0, scores=("entropy", "margin"))
    np.testing.assert_array_equal(both.scores["entropy"], stored)


# ------------------------------------------------------------------------------ format 1


def _write_format1(folder: Path, maps: list[dict], convention, dataset: str) -> list[np.ndarray]:
    """A version-1 store as the earlier writer left it: probabilities only (fixed16, byte shuffle +
    deflate, one chunk per class plane), label, file attributes and an index without has_probs,
    codec or scores. Returns the stored fixed16 probabilities."""
    (folder / "images").mkdir(parents=True)
    stored, entries = [], []
    for k, m in enumerate(maps):
        c, h, w = m["probs"].shape
        q = np.rint(m["probs"].astype(np.float64) * 65535).astype(np.uint16)
        stored.append(q)
        file = f"images/{k:06d}.h5"
        with h5py.File(folder / file, "w") as f:
            for key, value in {"format": FORMAT, "version": 1, "index": k, "name": m["name"], "path": m["path"],
                               "num_classes": c, "dtype": "fixed16", "prob_scale": 1.0 / 65535, "model": "m",
                               "checkpoint_sha256": "", "has_logits": False, "settings": "{}"}.items():
                f.attrs[key] = value
            f.create_dataset("probs", data=q, chunks=(1, h, w), shuffle=True, compression="gzip", compression_opts=1)
            f.create_dataset("label", data=m["label"], chunks=(h, w), compression="gzip", compression_opts=1)
        entries.append({"index": k, "name": m["name"], "path": m["path"], "file": file, "height": h, "width": w,
                        "has_label_ids": False})
    conv = None if convention is None else dataclasses.asdict(convention)
    index = {"format": FORMAT, "version": 1, "writer": "meta_ood 0.1", "num_classes": maps[0]["probs"].shape[0],
             "dtype": "fixed16", "prob_scale": 1.0 / 65535, "max_abs_error": 0.5 / 65535, "model": "m",
             "checkpoint_sha256": None, "dataset": {"kind": dataset, "convention": conv}, "has_logits": False,
             "logits_dtype": None, "compression_level": 1, "settings": {}, "total": len(maps), "shards": 1,
             "images": entries}
    (folder / "index.json").write_text(json.dumps(index, indent=1))
    return stored


def _check_against_sklearn(result: dict, probs: list[np.ndarray], labels: list[np.ndarray], convention) -> None:
    """AUROC (OoD) or the plain mIoU and per-class IoU (Cityscapes) of a stage result, recomputed
    with scikit-learn from float probabilities."""
    if convention is None:
        c = probs[0].shape[0]
        valid = [lab != 255 for lab in labels]
        gt = np.concatenate([lab[v] for lab, v in zip(labels, valid)])
        pred = np.concatenate([np.argmax(p, 0)[v] for p, v in zip(probs, valid)])
        cm = confusion_matrix(gt, pred, labels=np.arange(c)).astype(np.float64)
        tp = np.diag(cm)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (cm.sum(0) + cm.sum(1) - tp)
        assert result["kind"] == "miou"
        np.testing.assert_allclose(result["iou"]["inf"], iou, rtol=1e-12)
        assert result["miou"]["inf"] == pytest.approx(np.nanmean(iou), rel=1e-12)
        return
    keep = [(lab == convention.train_id_in) | (lab == convention.train_id_out) for lab in labels]
    y = np.concatenate([lab[k] == convention.train_id_out for lab, k in zip(labels, keep)])
    s = np.concatenate([dequantize(quantize(scipy_entropy(p.astype(np.float64), axis=0) / math.log(p.shape[0])))[k]
                        for p, k in zip(probs, keep)])
    assert result["kind"] == "ood" and (result["n_pos"], result["n_neg"]) == (y.sum(), (~y).sum())
    # the float32 entropy is one code off the float64 one at a few pixels; measured AUROC difference: 0
    assert result["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert 0.8 < result["auroc"] < 0.95  # measured 0.887 / 0.896: a non-trivial ranking


@pytest.mark.parametrize("convention", [LOSTANDFOUND, None], ids=["ood", "cityscapes"])
def test_format1_store_is_read_and_evaluated_like_format2(tmp_path, convention):
    """A format-1 store (probabilities only) reads with scores and argmax computed from its dequantized
    probabilities, and pixel_eval_stage on it equals the stage on a format-2 store written from the
    same dequantized probabilities (AUROC and mIoU also against scikit-learn)."""
    maps = _maps(3, convention, seed=5)
    stored = _write_format1(tmp_path / "v1", maps, convention, "ds")
    v1 = StoreReader(tmp_path / "v1")
    assert v1.meta["version"] == 1 and v1.has_probs and v1.codec == "zlib" and v1.scorers == []
    assert v1.can_score("margin") and not v1.can_score("energy")
    for k, q in enumerate(stored):
        deq = _dequantized(q)
        maps[k]["deq"] = deq
        np.testing.assert_array_equal(v1.read(k, raw=True).probs, q)
        got = v1.read(k, scores=("entropy", "margin"), argmax=True)
        np.testing.assert_array_equal(got.probs, deq)
        np.testing.assert_array_equal(got.scores["entropy"], quantize(normalized_entropy(deq), 16, "unit"))
        np.testing.assert_array_equal(got.scores["margin"], quantize(probability_margin(deq), 16, "unit"))
        np.testing.assert_array_equal(got.argmax, np.argmax(deq, 0))
        assert got.argmax.dtype == np.uint8
    v2 = _write(tmp_path / "v2", maps, convention, "ds", probs_key="deq")
    np.testing.assert_array_equal(v2.read(0, raw=True).probs, stored[0])  # same stored probabilities
    res1 = pixel_eval_stage(tmp_path / "v1", tmp_path / "v1.json", tmp_path / "v1.npz", n_boot=10, progress=False)
    res2 = pixel_eval_stage(tmp_path / "v2", tmp_path / "v2.json", tmp_path / "v2.npz", n_boot=10, progress=False)
    np.testing.assert_equal(_comparable(res1), _comparable(res2))
    _check_against_sklearn(res1, [m["deq"] for m in maps], [m["label"] for m in maps], convention)


# ------------------------------------------------------------------------------ finished planes


def _finished_planes(m: dict, scorers=("entropy", "margin")) -> ImagePlanes:
    """Valid planes of image ``m`` in the stored representation (fixed16 probabilities)."""
    planes = planes_from_probs(m["probs"], scorers)
    planes.probs = store_codec.quantize(m["probs"], "fixed16")
    return planes


def test_writer_refuses_malformed_planes(tmp_path):
    """Finished planes with a wrong dtype or shape, a missing scorer, missing probabilities (the store
    keeps them) or missing logits, or given together with probabilities, are InputErrors naming the
    image; nothing is written. Valid planes are stored as given."""
    m = _maps(1, FISHYSCAPES)[0]
    ok = _finished_planes(m)
    w = StoreWriter(tmp_path / "s", C, total=1, scorers=("margin",))
    where = r"image 0 \('img0'\)"
    ent, mar = ok.scores["entropy"], ok.scores["margin"]
    bad = {
        r"scores/entropy float32": dataclasses.replace(ok, scores={**ok.scores, "entropy": ent.astype(np.float32)}),
        r"scores/margin uint16\(23, 32\)": dataclasses.replace(ok, scores={**ok.scores, "margin": mar[:-1]}),
        r"score planes \['margin'\] are missing": dataclasses.replace(ok, scores={"entropy": ok.scores["entropy"]}),
        r"argmax int64": dataclasses.replace(ok, argmax=ok.argmax.astype(np.int64)),
        r"probabilities none; expected uint16\(5, 24, 32\)": dataclasses.replace(ok, probs=None),
        r"probabilities float32\(5, 24, 32\)": dataclasses.replace(ok, probs=m["probs"]),
        r"probabilities uint16\(4, 24, 32\)": dataclasses.replace(ok, probs=ok.probs[:-1]),
    }
    for message, planes in bad.items():
        with pytest.raises(InputError, match=f"{where}: .*{message}"):
            w.write(0, m["name"], m["path"], label=m["label"], planes=planes)
    with pytest.raises(InputError, match=f"{where}: pass either probs/logits or finished planes"):
        w.write(0, m["name"], m["path"], m["probs"], m["label"], planes=ok)
    with pytest.raises(InputError, match=f"{where}: pass either probs/logits or finished planes"):
        w.write(0, m["name"], m["path"], label=m["label"], logits=m["logits"], planes=ok)
    wl = StoreWriter(tmp_path / "l", C, total=1, store_logits=True, scorers=("margin",))
    with pytest.raises(InputError, match=f"{where}: the store keeps logits"):
        wl.write(0, m["name"], m["path"], label=m["label"], planes=ok)
    assert not any((tmp_path / "s" / "images").iterdir()) and not any((tmp_path / "l" / "images").iterdir())

    w.write(0, m["name"], m["path"], label=m["label"], planes=ok)
    w.finalize()
    got = StoreReader(tmp_path / "s").read(0, raw=True, scores=("entropy", "margin"), argmax=True)
    np.testing.assert_array_equal(got.probs, ok.probs)
    np.testing.assert_array_equal(got.argmax, ok.argmax)
    for k in ("entropy", "margin"):
        np.testing.assert_array_equal(got.scores[k], ok.scores[k])


def test_resume_requires_same_scorers_codec_and_probabilities(tmp_path):
    """A file written with other scorers, another codec or another store_probs setting is not reused;
    one written with the same ones (scorers in any order, entropy implied) is."""
    m = _maps(1, FISHYSCAPES)[0]
    _write(tmp_path, [m], FISHYSCAPES, "fs", scorers=("entropy", "margin"))

    def resumes(**kw) -> bool:
        return StoreWriter(tmp_path, C, total=1, model="m", **kw).resume(0, "img0")

    assert resumes(scorers=("margin",))  # entropy is always stored: the same set
    assert resumes(scorers=("margin", "entropy"), codec="lz4", store_probs=True)
    assert not resumes(scorers=("entropy",))
    assert not resumes(scorers=("entropy", "margin", "msp"))
    assert not resumes(scorers=("margin",), codec="zlib")
    assert not resumes(scorers=("margin",), store_probs=False)
    _write(tmp_path, [m], FISHYSCAPES, "fs", store_probs=False, codec="zlib")
    assert resumes(store_probs=False, codec="zlib")
    assert not resumes(store_probs=True, codec="zlib")
    assert not resumes(store_probs=False, codec="zstd")


# ------------------------------------------------------------------------------ histogram codes


def _scores(rng: np.random.Generator, encoding: str, shape) -> np.ndarray:
    """Scores with ties, exact grid values and (unit) values outside [0, 1]; (float16) both signed zeros."""
    if encoding == "unit":
        s = rng.uniform(-0.05, 1.05, shape)
        s.flat[:40] = np.arange(40) / 65535  # exact grid points
        s.flat[40:60] = (np.arange(20) + 0.5) / 65535  # grid midpoints (round half up)
        return s
    s = rng.normal(0.0, 20.0, shape).astype(np.float32)
    s.flat[:10] = -0.0
    s.flat[10:20] = 0.0
    s.flat[20:30] = 3.0  # ties
    return s


@pytest.mark.parametrize("encoding", ["unit", "float16"])
def test_update_codes_equals_update(encoding):
    """update_codes(quantize(s)) gives the counts, per-image codes and metrics of update(s), and
    the AUROC equals scikit-learn's on the quantized scores."""
    rng = np.random.default_rng(11)
    a, b = PooledHistogram(encoding=encoding), PooledHistogram(encoding=encoding)
    ys, qs = [], []
    for k in range(4):
        s = _scores(rng, encoding, (30, 40))
        lab = rng.choice(np.array([0, 1, 255], np.uint8), size=s.shape, p=[0.6, 0.3, 0.1])
        a.update(s, lab, 0, 1, image_id=f"im{k}")
        b.update_codes(quantize(s, 16, encoding), lab, 0, 1, image_id=f"im{k}")
        keep = lab != 255
        ys.append(lab[keep] == 1)
        qs.append(dequantize(quantize(s, 16, encoding), 16, encoding)[keep])
    np.testing.assert_array_equal(a.pos, b.pos)
    np.testing.assert_array_equal(a.neg, b.neg)
    assert a.image_ids == b.image_ids == [f"im{k}" for k in range(4)]
    assert (a.image_matrix() != b.image_matrix()).nnz == 0
    np.testing.assert_equal(a.metrics(), b.metrics())
    y = np.concatenate(ys)
    assert (b.n_pos, b.n_neg) == (y.sum(), (~y).sum())
    assert b.metrics()["auroc"] == pytest.approx(roc_auc_score(y, np.concatenate(qs)), abs=1e-12)


def test_update_codes_refuses_non_uint16_codes():
    """Codes of another dtype, or a histogram of fewer than 16 bits, are InputErrors; nothing is added."""
    lab = np.zeros((4, 5), np.uint8)
    lab[0] = 1
    h = PooledHistogram()
    for codes in (np.zeros((4, 5), np.int32), np.zeros((4, 5), np.uint32), np.zeros((4, 5), np.float32)):
        with pytest.raises(InputError, match=rf"codes of dtype {codes.dtype}.*expected uint16"):
            h.update_codes(codes, lab, 0, 1)
    with pytest.raises(InputError, match=r"12-bit histogram"):
        PooledHistogram(bits=12, image_bits=12).update_codes(np.zeros((4, 5), np.uint16), lab, 0, 1)
    assert h.n_images == 0 and h.pos.sum() == h.neg.sum() == 0


# ------------------------------------------------------------------------------ pixel_eval_stage


@pytest.mark.parametrize("convention", [FISHYSCAPES, None], ids=["ood", "cityscapes"])
def test_pixel_eval_without_probabilities_equals_with(tmp_path, convention):
    """pixel_eval_stage on a store without probabilities equals the stage on the same data stored with
    them (every result key, and the histogram file), for an OoD set and for Cityscapes (mIoU); the
    AUROC / mIoU also match scikit-learn on the float probabilities."""
    maps = _maps(3, convention, seed=9)
    _write(tmp_path / "full", maps, convention, "ds")
    _write(tmp_path / "lean", maps, convention, "ds", store_probs=False)
    res = {k: pixel_eval_stage(tmp_path / k, tmp_path / f"{k}.json", tmp_path / f"{k}.npz", n_boot=10,
                               progress=False) for k in ("full", "lean")}
    np.testing.assert_equal(_comparable(res["lean"]), _comparable(res["full"]))
    assert json.loads((tmp_path / "lean.json").read_text())["n_images"] == 3
    if convention is not None:
        hist = {k: PooledHistogram.load(tmp_path / f"{k}.npz") for k in ("full", "lean")}
        np.testing.assert_array_equal(hist["lean"].pos, hist["full"].pos)
        np.testing.assert_array_equal(hist["lean"].neg, hist["full"].neg)
    _check_against_sklearn(res["lean"], [m["probs"] for m in maps], [m["label"] for m in maps], convention)


@pytest.mark.parametrize("scorer", ["entropy", "max_logit"])
def test_pixel_eval_smiyc_binned_equals_the_smiyc_protocol_on_the_stored_scores(tmp_path, scorer):
    """The pixel evaluation's ``smiyc_binned`` metrics (table_definitions) equal the SegmentMeIfYouCan protocol
    (per-frame percentile bins, merged curve) run on the stored scores as score maps: float32 for the [0, 1]
    entropy, float16 for the unbounded max-logit; in / out / other labels as 0 / 1 / void."""
    from meta_ood.pixel_eval import score_encoding
    from meta_ood.smiyc import array_frames, evaluate_frames

    maps = _maps(4, FISHYSCAPES, seed=11)
    store = _write(tmp_path / "s", maps, FISHYSCAPES, "ds", scorers=(scorer,))
    res = pixel_eval_stage(tmp_path / "s", tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, scorer=scorer,
                           progress=False)
    encoding = score_encoding(scorer)
    frames = []
    for k in range(len(maps)):
        img = store.read(k, scores=(scorer,))
        values = dequantize(img.scores[scorer], 16, encoding).astype(np.float16 if encoding == "float16" else np.float32)
        lab = np.full(img.label.shape, 255, np.uint8)
        lab[img.label == FISHYSCAPES.train_id_in] = 0
        lab[img.label == FISHYSCAPES.train_id_out] = 1
        frames.append((img.name, values, lab))
    want = evaluate_frames(array_frames(frames), "anomaly", n_boot=0, jobs=1)
    got = json.loads((tmp_path / "p.json").read_text())["smiyc_binned"]
    assert got == res["smiyc_binned"]
    assert (got["auprc"], got["auroc"], got["fpr95"]) == (want["AP"], want["AUROC"], want["FPR95"])
    assert got["auprc"] != res["auprc"]  # a different definition: not the pooled exact AP
