"""The one-pass SMIYC evaluation: frame summaries, threshold dtypes, tie order, threads, chunk reader."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from meta_ood.errors import InputError
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.smiyc import array_frames, evaluate_frames, frame_components, read_scores, write_label, write_scores
from meta_ood.smiyc.protocol import merge_frames, percentile_bins, tie_range
from meta_ood.smiyc.summary import comparison_threshold, official_quantiles, summarize
from meta_ood.smiyc.tieorder import introsort_argsort
from meta_ood.smiyc.evaluate import smiyc_eval


def _frame(rng: np.random.Generator, h: int, w: int, dtype=np.float16, levels: int | None = 64):
    s = rng.random((h, w))
    if levels:
        s = np.round(s * levels) / levels  # many ties
    lab = (rng.random((h, w)) < 0.2).astype(np.uint8)
    lab[: h // 5] = 255
    s[lab == 1] = np.minimum(1.0, s[lab == 1] + 0.3)
    return s.astype(dtype), lab


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_summary_counts_every_roi_value(dtype):
    rng = np.random.default_rng(0)
    s, lab = _frame(rng, 37, 53, dtype)
    s[0, 0], s[-1, -1], s[-1, -2] = -0.0, 0.0, np.inf
    lab[-1, -3:] = 0
    summ = summarize(s, lab)
    for cls, counts in ((1, summ.pos), (0, summ.neg)):
        v, n = np.unique(s[lab == cls].astype(np.float64), return_counts=True)
        full = dict(zip(summ.values.tolist(), counts.tolist()))
        assert {k: c for k, c in full.items() if c} == dict(zip(v.tolist(), n.tolist()))
    assert np.all(np.diff(summ.values) > 0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_histogram_equals_numpy(dtype):
    rng = np.random.default_rng(1)
    s, lab = _frame(rng, 40, 60, dtype)
    summ = summarize(s, lab)
    edges = np.unique(np.r_[rng.random(30), s[lab == 1][:5].astype(np.float64), -0.5, 1.5])
    tp, fp = summ.histogram(edges)
    np.testing.assert_array_equal(tp, np.histogram(s[lab == 1], bins=edges)[0])
    np.testing.assert_array_equal(fp, np.histogram(s[lab == 0], bins=edges)[0])


def test_official_quantiles_float64_equal_numpy():
    """In float64 the difference of the order statistics is not rounded: numpy's own quantile."""
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=1001), 2)
    v, n = np.unique(x, return_counts=True)
    q = np.linspace(0, 1, 384)
    np.testing.assert_array_equal(official_quantiles(v, n, q, np.dtype(np.float64)), np.quantile(x, q))


def test_official_quantiles_round_the_difference_in_the_map_dtype():
    """numpy 1.23: ``a + (b - a) g`` with ``b - a`` in the array's dtype (float16 here)."""
    v = np.array([0.1, 0.7], dtype=np.float16).astype(np.float64)
    n = np.array([1, 1])
    q = np.array([0.3, 0.8])
    diff = np.float64(np.float16(0.7) - np.float16(0.1))  # float16 subtraction, rounded
    expected = [v[0] + diff * 0.3, v[1] - diff * (1 - 0.8)]
    np.testing.assert_array_equal(official_quantiles(v, n, q, np.dtype(np.float16)), expected)
    assert diff != v[1] - v[0]


def test_comparison_threshold_follows_value_based_casting():
    assert comparison_threshold(0.4, np.float16).dtype == np.float16
    assert comparison_threshold(0.4, np.float32).dtype == np.float32
    assert comparison_threshold(1e6, np.float16).dtype == np.float32  # beyond float16's range
    assert comparison_threshold(np.inf, np.float16).dtype == np.float16
    assert comparison_threshold(1e300, np.float32).dtype == np.float64


def test_components_compare_in_the_map_dtype():
    """A constant float32 map at 0.4 holds float32(0.4) > 0.4 in float64, but not in float32."""
    lab = np.zeros((30, 30), np.uint8)
    lab[10:20, 10:20] = 1
    s = np.full((30, 30), 0.4, np.float32)
    assert float(s[0, 0]) > 0.4
    assert frame_components(s, lab, 0.4, 0, 0).PPV.size == 0
    assert frame_components(s, lab, np.nextafter(np.float32(0.4), np.float32(0)), 0, 0).PPV.size == 1
    # float16: values float16(0.3) < 0.3 + 1e-5, but float16(0.3 + 1e-5) == float16(0.3): not greater
    s16 = np.full((30, 30), 0.3, np.float16)
    assert frame_components(s16, lab, float(np.float16(0.3)) - 1e-5, 0, 0).PPV.size == 0


def test_nan_is_an_error_even_in_void():
    s, lab = _frame(np.random.default_rng(3), 10, 10, np.float16)
    s[0, 0] = np.nan
    assert lab[0, 0] == 255
    with pytest.raises(InputError, match="1 NaN"):
        summarize(s, lab, "frame 'x'")
    with pytest.raises(InputError, match=r"labels contain \[7\]"):
        summarize(np.zeros((3, 3), np.float16), np.full((3, 3), 7, np.uint8))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_nan_outside_the_roi_box_is_counted(dtype):
    """The counts cover the ROI's bounding box; NaN in the void around it (each of the four sides, and
    in void inside the box) is still found and counted; so are invalid labels anywhere."""
    s, lab = _frame(np.random.default_rng(5), 30, 40, dtype)
    lab[:] = 255
    lab[10:20, 12:25] = 0
    lab[15, 15], lab[10, 24] = 1, 255
    for k, (r, c) in enumerate([(2, 30), (25, 3), (12, 2), (18, 35), (10, 24)]):
        s[r, c] = np.nan
        with pytest.raises(InputError, match=f" {k + 1} NaN"):
            summarize(s, lab)
    lab[29, 39] = 9
    with pytest.raises(InputError, match=r"labels contain \[9\]"):
        summarize(np.zeros(s.shape, dtype), lab)
    bad = np.zeros(s.shape, np.int32)
    bad[3, 4], bad[5, 6] = -1, 256
    with pytest.raises(InputError, match=r"labels contain \[-1, 256\]"):
        summarize(np.zeros(s.shape, dtype), bad)


def test_greater_on_bit_patterns_equals_the_float_comparison():
    """``greater`` compares positive thresholds of the map's dtype on the bit patterns: the same answer
    as the float comparison for every float16 value (NaN aside) and many float32 ones."""
    from meta_ood.smiyc.summary import greater

    f16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    f16 = f16[~np.isnan(f16)].reshape(-1, 1)
    rng = np.random.default_rng(2)
    f32 = np.concatenate([rng.random(5000), -rng.random(500), rng.normal(0, 1e-39, 200), [0.0, -0.0, np.inf, -np.inf,
                          1e-45, np.finfo(np.float32).max]]).astype(np.float32).reshape(-1, 2)
    for values in (f16, f32):
        t = values.dtype.type
        for threshold in (t(0.4), t(1e-7), t(0.0), t(-0.0), t(-0.25), t(np.inf), t(-np.inf), t(65504.0),
                          np.float64(0.4), np.float32(0.3), values.reshape(-1)[values.size // 3]):
            np.testing.assert_array_equal(greater(values, threshold), values > threshold, err_msg=str(threshold))


def test_ground_truth_and_labelling_of_pixel_lists():
    """Components labelled from pixel lists (only the rows they span) carry the labels scipy gives the
    whole image, and the ground truth of any pixels equals the dense definition: its component, 0
    outside the anomaly, -1 in a component under ``instsize`` pixels."""
    from scipy import ndimage

    from meta_ood.smiyc.components import _label_pixels, ground_truth

    rng = np.random.default_rng(9)
    for density in (0.0, 0.02, 0.3, 0.7):
        anomaly = ndimage.binary_dilation(rng.random((41, 57)) < density / 4) if density else np.zeros((41, 57), bool)
        anomaly[:3] = False
        roi = rng.random(anomaly.shape) < 0.9
        full, n = ndimage.label(anomaly, structure=np.ones((3, 3), bool))
        idx = np.flatnonzero(anomaly)
        got, n_got = _label_pixels(idx, anomaly.shape[1])
        assert n_got == n
        np.testing.assert_array_equal(got, full.reshape(-1)[idx])
        sizes = np.bincount(full.reshape(-1), minlength=n + 1)
        truth = ground_truth(anomaly, roi, instsize=4)
        want = np.where(sizes[full] < 4, -1, full).reshape(-1)
        want[~anomaly.reshape(-1)] = 0
        pixels = np.flatnonzero(roi)
        np.testing.assert_array_equal(truth.at(pixels), want[pixels])
        kept = sizes >= 4
        kept[0] = False
        np.testing.assert_array_equal(truth.size_gt[1:], np.where(kept, sizes, 0)[1:])
        assert truth.size_gt[0] == np.count_nonzero(roi & ~np.isin(full, np.flatnonzero(~kept)[1:])) - sizes[kept].sum()


def _tied_frames():
    rng = np.random.default_rng(4)
    frames = []
    for k in range(3):
        s, lab = _frame(rng, 24, 32, np.float16)
        s[5 + k, : 3 + 4 * k] = 1.0  # every frame holds 1.0, a different number of times
        lab[5 + k, : 3 + 4 * k] = k % 2
        frames.append((f"f{k}", s, lab))
    return frames


def test_tied_top_threshold_order_and_range():
    frames = _tied_frames()
    res = evaluate_frames(array_frames(frames), "anomaly", n_boot=0, jobs=1)
    lo, hi = res["AP_tie_range"]
    assert lo < hi and lo <= res["AP"] <= hi
    bins = [percentile_bins(s, lab) for _, s, lab in frames]
    curve = merge_frames(bins)
    assert curve.top_ties.shape == (3, 2)
    assert tie_range(curve) == (lo, hi)
    # the first point holds the counts of the tied entry numpy 1.23's argsort puts last (it is then reversed)
    thr = np.concatenate([b.thresholds for b in bins])
    first = introsort_argsort(thr)[-1]
    assert thr[first] == thr.max()
    tp_rel, fp_rel = np.concatenate([b.tp_rel for b in bins]), np.concatenate([b.fp_rel for b in bins])
    assert (curve.tp[1], curve.fp[1]) == (tp_rel[first], fp_rel[first])  # point 0 is the (0, 0) one in front
    # every frame order gives an AP within the range; the same input gives the same curve, run after run
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        r = evaluate_frames(array_frames([frames[i] for i in order]), "anomaly", n_boot=0, jobs=1)
        assert lo - 1e-15 <= r["AP"] <= hi + 1e-15
        assert r["AP_tie_range"] == pytest.approx([lo, hi], abs=1e-15)
    again = merge_frames([percentile_bins(s, lab) for _, s, lab in frames])
    np.testing.assert_array_equal(again.tp, curve.tp)
    np.testing.assert_array_equal(again.fp, curve.fp)


def test_introsort_argsort_equals_numpy_1_23(repo_root):
    """The order of ties numpy 1.23 gives (its argsort's output on tie-rich arrays, recorded under 1.23.3)."""
    z = np.load(repo_root / "tests" / "data" / "numpy123" / "argsort_ties.npz")
    assert str(z["numpy_version"]).startswith("1.23.")
    keys = sorted(int(k.split("_")[1]) for k in z.files if k.startswith("values_"))
    assert len(keys) >= 20
    differs = 0
    for k in keys:
        v = z[f"values_{k}"]
        np.testing.assert_array_equal(introsort_argsort(v), z[f"order_{k}"], err_msg=f"case {k}")
        np.testing.assert_array_equal(introsort_argsort(v.astype(np.float32)), z[f"order32_{k}"], err_msg=f"case {k}")
        differs += not np.array_equal(np.argsort(v, kind="stable"), z[f"order_{k}"])
    assert differs > len(keys) // 2  # the recorded orders are not a stable sort's: the cases test the ties


@pytest.mark.parametrize("n", [0, 1, 2, 16, 17, 500, 5000])
def test_introsort_argsort_sorts(n):
    rng = np.random.default_rng(n)
    for v in (rng.random(n), np.round(rng.random(n) * 5), np.ones(n), np.arange(n, dtype=float)[::-1]):
        order = introsort_argsort(v)
        assert sorted(order.tolist()) == list(range(n))
        np.testing.assert_array_equal(v[order], np.sort(v))


def test_threads_give_identical_results():
    rng = np.random.default_rng(5)
    frames = [(f"{k:02d}", *_frame(rng, 48, 64, np.float16 if k % 2 else np.float32)) for k in range(7)]
    one, many = {}, {}
    r1 = evaluate_frames(array_frames(frames), "obstacle", n_boot=20, jobs=1, pixel_thresholds=(0.5,), details=one)
    r3 = evaluate_frames(array_frames(frames), "obstacle", n_boot=20, jobs=3, pixel_thresholds=(0.5,), details=many)
    assert json.dumps(r1) == json.dumps(r3)
    assert one.keys() == many.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], many[key], err_msg=key)


def test_kept_pixels_give_the_results_of_reading_again(monkeypatch):
    """The second pass builds predictions from the pixels kept in the first where it can; any budget (none, one
    that covers only some frames' thresholds, all) gives the same numbers, and the score maps are read again
    exactly for the frames whose kept pixels do not reach down to a threshold."""
    rng = np.random.default_rng(8)
    frames = [(f"{k:02d}", *_frame(rng, 48, 64, np.float16 if k % 2 else np.float32, levels=None)) for k in range(6)]
    frames = [(fid, (s * 0.5).astype(s.dtype) if k % 3 == 0 else s, lab) for k, (fid, s, lab) in enumerate(frames)]
    reads = []

    def counted(items):
        out = []
        for f in array_frames(items):
            load = f.load
            out.append(dataclasses.replace(f, load=lambda load=load, fid=f.fid: (reads.append(fid), load())[1]))
        return out

    results, n_reads = [], []
    for keep_mib in (0.0, 0.05, 64.0):
        reads.clear()
        details: dict = {}
        results.append((evaluate_frames(counted(frames), "obstacle", n_boot=0, jobs=1, pixel_thresholds=(0.45, 0.9),
                                        keep_mib=keep_mib, details=details), details))
        n_reads.append(len(reads))
    assert n_reads[0] == 12 and n_reads[-1] == 6  # no budget: every frame twice; a large one: once
    assert 6 < n_reads[1] < 12  # a small one: some frames again (threshold 0.45 lies below what they kept)
    for res, det in results[1:]:
        assert json.dumps(res) == json.dumps(results[0][0])
        for key in det:
            np.testing.assert_array_equal(det[key], results[0][1][key], err_msg=key)


@pytest.mark.parametrize("encoding", ["unit", "float16"])
def test_update_counts_equals_update(encoding):
    rng = np.random.default_rng(6)
    a, b = PooledHistogram(16, 12, encoding), PooledHistogram(16, 12, encoding)
    for k in range(3):
        s, lab = _frame(rng, 20, 30, np.float16)
        a.update(s, lab, in_id=0, out_id=1, image_id=k)
        summ = summarize(s, lab)
        b.update_counts(*summ.codes(16, encoding), image_id=k)
    np.testing.assert_array_equal(a.pos, b.pos)
    np.testing.assert_array_equal(a.neg, b.neg)
    assert (a.image_matrix() != b.image_matrix()).nnz == 0


def _h5(path, data, **kwargs):
    with h5py.File(path, "w") as fh:
        fh.create_dataset("value", data=data, **kwargs)
    return path


@pytest.mark.parametrize("kwargs", [
    {"compression": "gzip", "chunks": (7, 11)},
    {"compression": "gzip", "compression_opts": 9},
    {},
    {"compression": "gzip", "shuffle": True},
])
@pytest.mark.parametrize("dtype", ["<f2", ">f2", "<f4"])
def test_read_scores_any_layout(tmp_path, kwargs, dtype):
    data = np.random.default_rng(7).random((45, 67)).astype(dtype)
    got = read_scores(_h5(tmp_path / "x.hdf5", data, **kwargs))
    assert got.dtype.isnative and got.dtype.name == np.dtype(dtype).name
    np.testing.assert_array_equal(got, data)


def test_read_scores_unwritten_chunks_hold_the_fill_value(tmp_path):
    data = np.random.default_rng(3).random((20, 30)).astype(np.float16)
    with h5py.File(tmp_path / "x.hdf5", "w") as fh:
        ds = fh.create_dataset("value", shape=(20, 30), dtype="<f2", chunks=(8, 8), compression="gzip",
                               fillvalue=0.25)
        ds[0:8, 8:24] = data[0:8, 8:24]
        ds[16:20, 24:30] = data[16:20, 24:30]
    want = np.full((20, 30), 0.25, np.float16)
    want[0:8, 8:24] = data[0:8, 8:24]
    want[16:20, 24:30] = data[16:20, 24:30]
    np.testing.assert_array_equal(read_scores(tmp_path / "x.hdf5"), want)


def test_chunk_offsets_without_chunk_iter(tmp_path):
    """HDF5 releases without ``chunk_iter`` list the chunks one lookup at a time; same offsets."""
    from meta_ood.smiyc.scorefiles import _chunk_offsets

    path = _h5(tmp_path / "x.hdf5", np.zeros((45, 67), np.float16), compression="gzip", chunks=(7, 11))
    with h5py.File(path, "r") as fh:
        dsid = fh["value"].id

        class Old:
            get_num_chunks = dsid.get_num_chunks
            get_chunk_info = dsid.get_chunk_info

        old = _chunk_offsets(Old())
        assert old == _chunk_offsets(dsid)
    assert len(old) == 7 * 7 and old[1] == (0, 11)


def test_read_scores_corrupt_chunk(tmp_path):
    path = _h5(tmp_path / "x.hdf5", np.zeros((64, 64), np.float16) + 0.5, compression="gzip", chunks=(64, 64))
    raw = bytearray(path.read_bytes())
    with h5py.File(path, "r") as fh:
        info = fh["value"].id.get_chunk_info(0)
    raw[info.byte_offset + 2: info.byte_offset + 12] = b"\xff" * 10
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="x.hdf5"):
        read_scores(path)


def test_files_equal_arrays(tmp_path):
    rng = np.random.default_rng(8)
    frames = [(f"{k:02d}", *_frame(rng, 40, 50, np.float16)) for k in range(4)]
    for fid, s, lab in frames:
        write_scores(tmp_path / "s" / f"{fid}.hdf5", s)
        write_label(tmp_path / "l" / f"{fid}_labels_semantic.png", lab)
    a = smiyc_eval(tmp_path / "s", tmp_path / "l", "anomaly", n_boot=0, jobs=2, segsize=5, instsize=2)
    b = evaluate_frames(array_frames(frames), "anomaly", n_boot=0, jobs=1, segsize=5, instsize=2)
    for key in ("AP", "FPR95", "AUROC", "best_F1_threshold", "F1_mean", "sIoU_gt", "AP_tie_range", "curve"):
        assert a[key] == b[key], key
    assert a["exact"] == b["exact"]
