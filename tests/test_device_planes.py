"""Tests of :func:`meta_ood.device_planes.device_planes` (the planes a dump computes where the logits
are) against the CPU path of the store (:func:`meta_ood.store.planes.planes_from_probs`), and of a
dump that keeps only score planes.

The CPU tensors stand in for the device here. Measured differences on these batches (and the worst
over 200 random batches of the same kind): entropy codes at most 1 apart at 0.09 % (C = 19) and
0.13 % (C = 3) of the pixels (worst 0.29 %), always where the exact entropy lies within float32
rounding of a grid midpoint; variation ratio / msp / margin codes, fixed16 probabilities, argmax and
max-logit codes identical; energy codes identical here (worst: one pixel in 4480 one code apart).
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import roc_auc_score

from meta_ood.device_planes import device_planes
from meta_ood.errors import InputError
from meta_ood.inference import dump_softmax
from meta_ood.models import normalize
from meta_ood.pixel_eval import dequantize, quantize
from meta_ood.scores import SCORERS, energy, max_logit
from meta_ood.stages.pixel_eval import pixel_eval_stage
from meta_ood.store import StoreReader, decode_scores
from meta_ood.store import codec as store_codec
from meta_ood.store.planes import planes_from_probs

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ALL = tuple(sorted(SCORERS))
UNIT = ("entropy", "margin", "msp", "variation_ratio")
N, H, W = 2, 40, 56


def _batch(c: int, seed: int = 0) -> np.ndarray:
    """Random float32 logits (N, C, H, W) with a confident upper half."""
    rng = np.random.default_rng(seed)
    lg = rng.normal(0.0, 3.0, (N, c, H, W)).astype(np.float32)
    lg[:, rng.integers(0, c), : H // 2] += 8.0
    return lg


def _unit_midpoint_distance(exact: np.ndarray) -> np.ndarray:
    """Distance, in codes, of ``exact * 65535`` from the nearest rounding midpoint k + 1/2."""
    x = exact * 65535.0
    return np.abs(x - np.floor(x) - 0.5)


def _exact_scores(probs64: np.ndarray, logits: np.ndarray) -> dict[str, np.ndarray]:
    """float64 scores of one image from their definitions (scipy / numpy)."""
    top = np.sort(probs64, axis=0)
    return {
        "entropy": scipy_entropy(probs64, axis=0) / math.log(probs64.shape[0]),
        "variation_ratio": 1.0 - top[-1],
        "msp": 1.0 - top[-1],
        "margin": 1.0 - top[-1] + top[-2],
        "energy": -logsumexp(logits.astype(np.float64), axis=0),
    }


@pytest.mark.parametrize("c", [19, 3])
def test_device_planes_equal_cpu_planes(c):
    """Argmax, score codes and fixed16 probabilities of device_planes equal the CPU path's on the same
    float32 softmax, up to float rounding: entropy codes at most 1 apart at <= 0.3 % of the pixels and
    only near a grid midpoint, energy codes at most 1 apart at <= 0.1 %; max-logit codes are exactly
    quantize(max_logit(logits), 16, "float16"); every unit code is within one code of the float64 score's."""
    lg = _batch(c)
    planes = device_planes(torch.from_numpy(lg), ALL, "fixed16")
    sm = torch.softmax(torch.from_numpy(lg), 1).numpy()  # the float32 softmax, as the CPU path gets it
    p64 = softmax(lg.astype(np.float64), axis=1)
    assert len(planes) == N
    n_pix = N * H * W
    diff = {k: 0 for k in ALL}
    for b, got in enumerate(planes):
        cpu = planes_from_probs(sm[b], ALL, lg[b])
        exact = _exact_scores(p64[b], lg[b])
        assert sorted(got.scores) == list(ALL) and got.logits is None
        assert got.argmax.dtype == np.uint8
        np.testing.assert_array_equal(got.argmax, cpu.argmax)
        np.testing.assert_array_equal(got.argmax, np.argmax(p64[b], 0))
        for k in ALL:
            a, r = got.scores[k].astype(np.int64), cpu.scores[k].astype(np.int64)
            assert got.scores[k].dtype == np.uint16 and got.scores[k].shape == (H, W)
            assert np.abs(a - r).max() <= 1, k
            diff[k] += int((a != r).sum())
        for k in UNIT:  # within one code of the exact score's code; off-by-ones only near a midpoint
            ref = quantize(exact[k], 16, "unit").astype(np.int64)
            off = got.scores[k].astype(np.int64) != ref
            assert np.abs(got.scores[k].astype(np.int64) - ref).max() <= 1, k
            assert _unit_midpoint_distance(exact[k][off]).max(initial=0.0) < 65535 * 5e-7, k
        off = got.scores["entropy"] != cpu.scores["entropy"]
        assert _unit_midpoint_distance(exact["entropy"][off]).max(initial=0.0) < 65535 * 5e-7
        np.testing.assert_array_equal(got.scores["max_logit"], quantize(max_logit(lg[b]), 16, "float16"))
        np.testing.assert_array_equal(got.scores["max_logit"], quantize(-lg[b].max(0), 16, "float16"))
        np.testing.assert_array_equal(got.scores["max_logit"], cpu.scores["max_logit"])
        np.testing.assert_array_equal(cpu.scores["energy"], quantize(energy(lg[b]), 16, "float16"))
        np.testing.assert_allclose(dequantize(got.scores["energy"], 16, "float16"), exact["energy"], rtol=2.0**-11)
        # fixed16 probabilities: rint(p * 65535) of the float32 softmax e / sum(e); torch.softmax may sum
        # in another order (1 ulp), which moves a code by one only next to a rounding midpoint
        assert got.probs.dtype == np.uint16 and got.probs.shape == (c, H, W)
        ref16 = store_codec.quantize(sm[b], "fixed16").astype(np.int64)
        assert np.abs(got.probs.astype(np.int64) - ref16).max() <= 1
        assert (got.probs != ref16).mean() <= 1e-3
        assert np.abs(got.probs.astype(np.int64) - np.rint(p64[b] * 65535)).max() <= 1
    # both paths round float32 differently (one exp per logit here, the softmax's quotient on the CPU):
    # codes differ only next to a grid midpoint (checked above against the float64 scores), rarely
    assert max(diff[k] for k in UNIT) <= 0.005 * n_pix  # measured <= 14 of 4480
    assert diff["energy"] <= 0.001 * n_pix  # measured 0
    assert diff["max_logit"] == 0


@pytest.mark.parametrize("dtype, np_dtype", [("float16", np.float16), ("float32", np.float32)])
def test_device_planes_float_encodings(dtype, np_dtype):
    """With dtype float16 / float32 the kept probabilities are the float32 softmax cast to that dtype
    (numpy's round to nearest even), and kept logits are float16 / float32; the score codes do not
    depend on the probability encoding."""
    lg = _batch(5, seed=1)
    t = torch.from_numpy(lg)
    sm = torch.softmax(t, 1).numpy()
    planes = device_planes(t, ("entropy", "energy"), dtype, keep_logits=True)
    ref = device_planes(t, ("entropy", "energy"), "fixed16")
    for b, got in enumerate(planes):
        assert got.probs.dtype == np_dtype and got.logits.dtype == np_dtype
        # the float32 softmax within one float32 ulp (summation order), then cast
        np.testing.assert_allclose(got.probs.astype(np.float64), sm[b].astype(np_dtype).astype(np.float64),
                                   rtol=2.0**-10 if dtype == "float16" else 2.0**-21, atol=0)
        np.testing.assert_array_equal(got.logits, lg[b].astype(np_dtype))
        for k in ("entropy", "energy"):
            np.testing.assert_array_equal(got.scores[k], ref[b].scores[k])
    assert np.abs(planes[0].probs.astype(np.float64) - softmax(lg[0].astype(np.float64), 0)).max() <= (
        2.0**-12 if dtype == "float16" else 1e-6)


def test_device_planes_keep_options_and_many_classes():
    """keep_probs=False gives no probabilities, keep_logits float16 logits (fixed16 store); only the
    scorers asked for (and entropy) are computed; beyond 256 classes the argmax is uint16."""
    lg = _batch(4, seed=2)
    planes = device_planes(torch.from_numpy(lg), ("energy",), "fixed16", keep_probs=False, keep_logits=True)
    for b, got in enumerate(planes):
        assert got.probs is None and sorted(got.scores) == ["energy", "entropy"]
        assert got.logits.dtype == np.float16
        np.testing.assert_array_equal(got.logits, lg[b].astype(np.float16))
    assert all(p.logits is None for p in device_planes(torch.from_numpy(lg), (), "fixed16"))
    rng = np.random.default_rng(3)
    big = rng.normal(0.0, 2.0, (1, 300, 4, 5)).astype(np.float32)
    got = device_planes(torch.from_numpy(big), (), "fixed16", keep_probs=False)[0]
    assert got.argmax.dtype == np.uint16
    np.testing.assert_array_equal(got.argmax, np.argmax(big[0], 0))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_device_planes_refuse_non_finite_logits(bad):
    """NaN or inf logits are an InputError whose message contains the ``where`` text."""
    lg = _batch(3)
    lg[1, 2, 5, 6] = bad
    with pytest.raises(InputError, match=r"image 7 \('x'\), image 8 \('y'\): the model returned NaN or inf"):
        device_planes(torch.from_numpy(lg), ("entropy",), "fixed16", where="image 7 ('x'), image 8 ('y')")


# ------------------------------------------------------------------------------ dump


from test_inference import TinyNet  # noqa: E402


def test_dump_without_probabilities_stores_device_planes(tmp_path, fishyscapes):
    """dump_softmax with store_probs=False and scorers (entropy, energy) stores exactly the planes
    device_planes computes on the model's logits, and no probabilities or logits; pixel_eval_stage
    with the energy scorer then works from the stored codes (AUROC = scikit-learn's on them)."""
    model = TinyNet()
    out = tmp_path / "store"
    dump_softmax(model, fishyscapes, out, device="cpu", store_probs=False, scorers=("entropy", "energy"),
                 progress=False)
    r = StoreReader(out)
    assert not r.has_probs and not r.has_logits and r.scorers == ["energy", "entropy"]
    ys, scores = [], []
    for k, item in enumerate(fishyscapes):
        with torch.no_grad():
            logits = model(normalize(item.image.copy()))
        ref = device_planes(logits, ("entropy", "energy"), "fixed16", keep_probs=False)[0]
        got = r.read(k, scores=("entropy", "energy"), argmax=True)
        assert got.probs is None and got.logits is None
        for s in ("entropy", "energy"):
            np.testing.assert_array_equal(got.scores[s], ref.scores[s])
        np.testing.assert_array_equal(got.argmax, ref.argmax)
        np.testing.assert_array_equal(got.argmax, np.argmax(logits[0].numpy(), 0))
        np.testing.assert_array_equal(got.label, item.label)
        np.testing.assert_allclose(decode_scores(got.scores["energy"], "energy"),
                                   -logsumexp(logits[0].double().numpy(), axis=0), rtol=2.0**-11)
        keep = item.label != 255
        ys.append(item.label[keep] == 1)
        scores.append(decode_scores(got.scores["energy"], "energy")[keep])
        with h5py.File(r.file_of(k), "r") as f:
            assert "probs" not in f and "logits" not in f
    res = pixel_eval_stage(out, tmp_path / "p.json", tmp_path / "p.npz", n_boot=0, scorer="energy", progress=False)
    y, s = np.concatenate(ys), np.concatenate(scores)
    assert res["encoding"] == "float16" and (res["n_pos"], res["n_neg"]) == (y.sum(), (~y).sum())
    assert res["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert len(np.unique(s)) > 50  # a real ranking, not a handful of tied values


@pytest.mark.parametrize("dtype", ["fixed16", "float16", "float32"])
def test_shuffled_probabilities_are_the_hdf5_shuffle_and_store_the_same(tmp_path, dtype):
    """shuffle=True returns, per image, the HDF5 shuffle of the stored probabilities (byte k of every
    value together); a writer stores them exactly like the unshuffled planes."""
    from meta_ood.store import StoreReader, StoreWriter
    from meta_ood.store.codec import _shuffle

    lg = torch.from_numpy(_batch(5, seed=2))
    plain = device_planes(lg, ("entropy",), dtype)
    shuffled = device_planes(lg, ("entropy",), dtype, shuffle=True)
    label = np.zeros((H, W), np.uint8)
    for name, planes in (("plain", plain), ("shuffled", shuffled)):
        w = StoreWriter(tmp_path / name, 5, dtype, total=len(planes))
        for b, p in enumerate(planes):
            w.write(b, f"i{b}", "x.png", label=label, planes=p)
        w.finalize()
    for b, (p, s) in enumerate(zip(plain, shuffled)):
        assert s.shuffled and not p.shuffled and s.probs.dtype == np.uint8
        assert s.probs.shape == (5, p.probs.dtype.itemsize, H, W)
        for c in range(5):
            np.testing.assert_array_equal(s.probs[c].reshape(-1), _shuffle(p.probs[c]).reshape(-1))
        a = StoreReader(tmp_path / "plain").read(b, raw=True)
        z = StoreReader(tmp_path / "shuffled").read(b, raw=True)
        np.testing.assert_array_equal(a.probs, p.probs)
        np.testing.assert_array_equal(z.probs, p.probs)
