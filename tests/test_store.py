"""Tests of the softmax store: round trips, sharding, merging, resume and validation."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from meta_ood.errors import InputError
from meta_ood.labels import FISHYSCAPES
from meta_ood.store import (
    CODECS,
    ENCODINGS,
    StoreReader,
    StoreWriter,
    max_abs_error,
    merge_index,
    shard_range,
)

C = 5


def _softmax_maps(n: int, h: int = 12, w: int = 16, seed: int = 0) -> list[dict]:
    """Random images: peaked softmax maps (like a network's), labels 0/1/255, label ids, logits."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        hh, ww = h + k % 2, w + 2 * (k % 3)  # not all the same size
        logits = rng.normal(0, 3, (C, hh, ww)).astype(np.float32)
        logits[rng.integers(0, C), : hh // 2] += 12  # a confident half
        e = np.exp(logits - logits.max(0))
        probs = (e / e.sum(0)).astype(np.float32)
        label = rng.choice(np.array([0, 1, 255], np.uint8), size=(hh, ww))
        label_ids = rng.integers(0, 34, (hh, ww)).astype(np.uint8) if k % 2 == 0 else None
        out.append(dict(name=f"img{k:02d}", path=f"/data/Static/img{k:02d}.jpg", probs=probs, label=label, label_ids=label_ids, logits=logits))
    return out


def _write(folder, maps, shard=(0, 1), **kw):
    total = len(maps)
    kw.setdefault("model", "tiny")
    kw.setdefault("dataset", "fishyscapes_static")
    kw.setdefault("convention", FISHYSCAPES)
    w = StoreWriter(folder, C, shard=shard, total=total, **kw)
    for k in shard_range(total, *shard):
        m = maps[k]
        w.write(k, m["name"], m["path"], m["probs"], m["label"], m["label_ids"], m["logits"] if w.store_logits else None)
    return w.finalize()


def _same_content(a: StoreReader, b: StoreReader) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.name, x.path, x.index) == (y.name, y.path, y.index)
        np.testing.assert_array_equal(x.probs, y.probs)
        np.testing.assert_array_equal(x.label, y.label)
        if x.label_ids is None:
            assert y.label_ids is None
        else:
            np.testing.assert_array_equal(x.label_ids, y.label_ids)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("dtype", ENCODINGS)
def test_round_trip(tmp_path, dtype, codec):
    """Probabilities, logits, labels and metadata read back within the encoding's bound, with either codec."""
    maps = _softmax_maps(5)
    _write(tmp_path, maps, dtype=dtype, store_logits=True, checkpoint_sha="ab" * 32, codec=codec)
    r = StoreReader(tmp_path)
    assert len(r) == 5
    assert r.num_classes == C and r.dtype == dtype and r.model == "tiny" and r.codec == codec
    assert r.checkpoint_sha256 == "ab" * 32
    assert r.dataset_kind == "fishyscapes_static" and r.convention == FISHYSCAPES
    assert r.has_logits
    assert r.names == [m["name"] for m in maps]
    assert r.shapes == [m["label"].shape for m in maps]
    bound = max_abs_error(dtype)
    for k, m in enumerate(maps):
        got = r[k]
        assert got.index == k and got.name == m["name"] and got.path == m["path"]
        assert got.probs.dtype == np.float32 and got.probs.shape == m["probs"].shape
        err = np.abs(got.probs - m["probs"]).max()
        assert err <= bound
        if dtype == "float32":
            np.testing.assert_array_equal(got.probs, m["probs"])  # the float32 option is exact
            np.testing.assert_array_equal(got.logits, m["logits"])
        else:
            np.testing.assert_allclose(got.logits, m["logits"], rtol=2**-10, atol=1e-4)
        np.testing.assert_array_equal(got.label, m["label"])
        assert got.label.dtype == np.uint8
        if m["label_ids"] is None:
            assert got.label_ids is None
        else:
            np.testing.assert_array_equal(got.label_ids, m["label_ids"])
    # negative indices count from the end; out of range raises IndexError
    assert r[-1].name == maps[-1]["name"]
    with pytest.raises(IndexError):
        r[5]


def test_error_bounds_are_tight(tmp_path):
    """The documented bounds hold, and fixed16 really rounds to 1/65535 steps (not coarser)."""
    maps = _softmax_maps(1, 40, 50, seed=3)
    p = maps[0]["probs"]
    for dtype, lo in (("fixed16", 0.3 / 65535), ("float16", 2.0**-14)):
        _write(tmp_path / dtype, maps, dtype=dtype)
        err = np.abs(StoreReader(tmp_path / dtype)[0].probs - p).max()
        assert lo < err <= max_abs_error(dtype)
    raw = StoreReader(tmp_path / "fixed16").read(0, raw=True).probs
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, np.rint(p * 65535).astype(np.uint16))


# Reads an image file with nothing but h5py + hdf5plugin (no meta_ood import) and saves what
# HDF5's own filter pipeline decodes, with the filter ids of every dataset.
_PLAIN_H5PY = """
import sys
import h5py, hdf5plugin, numpy as np
out = {}
with h5py.File(sys.argv[1], "r") as f:
    for key in ("probs", "logits", "scores/entropy", "argmax", "label"):
        ds = f[key]
        plist = ds.id.get_create_plist()
        out[key] = ds[()]
        out["filters:" + key] = np.array([plist.get_filter(k)[0] for k in range(plist.get_nfilters())])
    out["encoding"] = np.array(f["scores/entropy"].attrs["encoding"])
    out["prob_scale"] = np.array(f.attrs["prob_scale"])
    out["name"] = np.array(f.attrs["name"])
np.savez(sys.argv[2], **out)
"""


@pytest.mark.parametrize("codec, filters", [("lz4", [2, 32004]), ("zstd", [2, 32015]), ("zlib", [2, 1])])
def test_files_decode_with_plain_h5py(tmp_path, codec, filters):
    """The image files are standard HDF5 that h5py decodes once hdf5plugin is imported.

    Probabilities, logits, the entropy plane (with its ``encoding`` attribute), the argmax and the
    label are byte-shuffled + LZ4 (filter 32004) by default, + zstd (32015) or + deflate (gzip, filter 1) with
    ``codec="zstd"`` / ``"zlib"``; HDF5's own decoding, in a process that never imports meta_ood, gives exactly
    what StoreReader returns.
    """
    maps = _softmax_maps(2)
    _write(tmp_path / "store", maps, store_logits=True, codec=codec)
    file = tmp_path / "store" / "images" / "000001.h5"
    subprocess.run([sys.executable, "-c", _PLAIN_H5PY, str(file), str(tmp_path / "plain.npz")], check=True)
    plain = np.load(tmp_path / "plain.npz")
    for key in ("probs", "logits", "scores/entropy", "argmax", "label"):
        assert plain["filters:" + key].tolist() == filters, key
    got = StoreReader(tmp_path / "store").read(1, raw=True, scores=("entropy",), argmax=True)
    assert str(plain["name"]) == "img01" and str(plain["encoding"]) == "unit"
    for key, ours in (("probs", got.probs), ("logits", got.logits), ("scores/entropy", got.scores["entropy"]),
                      ("argmax", got.argmax), ("label", got.label)):
        assert plain[key].dtype == ours.dtype, key
        np.testing.assert_array_equal(plain[key], ours, err_msg=key)
    assert plain["probs"].dtype == np.uint16 and plain["logits"].dtype == np.float16
    np.testing.assert_allclose(plain["probs"] * float(plain["prob_scale"]), maps[1]["probs"],
                               atol=max_abs_error("fixed16"), rtol=0)
    np.testing.assert_allclose(plain["logits"], maps[1]["logits"], rtol=2**-10, atol=1e-4)
    np.testing.assert_array_equal(plain["argmax"], np.argmax(maps[1]["probs"], 0))
    np.testing.assert_array_equal(plain["label"], maps[1]["label"])


def test_fixed16_is_smaller_than_float32_hdf5(tmp_path):
    """A fixed16 image file of smooth probabilities is under 40 % of the raw float32 probabilities."""
    rng = np.random.default_rng(0)
    logits = np.repeat(np.repeat(rng.normal(0, 4, (C, 8, 8)), 8, axis=1), 8, axis=2)
    e = np.exp(logits - logits.max(0))
    probs = (e / e.sum(0)).astype(np.float32)
    w = StoreWriter(tmp_path, C, total=1)
    w.write(0, "a", "a.png", probs, np.zeros((64, 64), np.uint8))
    w.finalize()
    stored = (tmp_path / "images" / "000000.h5").stat().st_size
    assert stored < 0.4 * probs.nbytes


@pytest.mark.parametrize("codec", CODECS)
def test_three_shards_merge_like_one(tmp_path, codec):
    """Three shard writers (finishing in any order) give the store of a single writer, with either codec."""
    maps = _softmax_maps(7)
    _write(tmp_path / "one", maps, codec=codec)
    for i in (2, 0, 1):  # order of completion does not matter
        _write(tmp_path / "three", maps, shard=(i, 3), codec=codec)
    assert not (tmp_path / "three" / "index.json").exists()
    merge_index(tmp_path / "three")
    one, three = StoreReader(tmp_path / "one"), StoreReader(tmp_path / "three")
    _same_content(one, three)
    assert three.meta["shards"] == 3 and three.codec == codec
    idx = json.loads((tmp_path / "three" / "index.json").read_text())
    assert [e["index"] for e in idx["images"]] == list(range(7))


def test_merge_reports_missing_images(tmp_path):
    """merge_index names the missing images and shards and writes no index.json; the reader refuses the store."""
    maps = _softmax_maps(9)
    _write(tmp_path, maps, shard=(0, 3))
    _write(tmp_path, maps, shard=(2, 3))
    with pytest.raises(InputError, match=r"images 3-5 of 0\.\.8 are missing.*1/3"):
        merge_index(tmp_path)
    assert not (tmp_path / "index.json").exists()
    with pytest.raises(InputError, match="not a softmax store.*shard indices"):
        StoreReader(tmp_path)


def test_merge_rejects_mixed_runs(tmp_path):
    """Shards written with different checkpoints are not merged; the error names the differing key."""
    maps = _softmax_maps(4)
    _write(tmp_path, maps, shard=(0, 2))
    _write(tmp_path, maps, shard=(1, 2), checkpoint_sha="0" * 64)
    with pytest.raises(InputError, match="checkpoint_sha256"):
        merge_index(tmp_path)


def test_new_writer_marks_store_incomplete(tmp_path):
    """A new writer removes index.json and the shard indices of another shard count; stale ones are refused."""
    maps = _softmax_maps(4)
    _write(tmp_path, maps, shard=(0, 2))
    _write(tmp_path, maps, shard=(1, 2))
    merge_index(tmp_path)
    stale = (tmp_path / "index.shard-1-of-2.json").read_text()
    _write(tmp_path, maps, shard=(0, 3))  # a rerun with three shards
    assert not (tmp_path / "index.json").exists()
    assert sorted(p.name for p in tmp_path.glob("index*.json")) == ["index.shard-0-of-3.json"]
    with pytest.raises(InputError, match=r"images 2-3 of 0\.\.3 are missing; shard indices not found: 1/3, 2/3"):
        merge_index(tmp_path)
    (tmp_path / "index.shard-1-of-2.json").write_text(stale)  # left over from elsewhere
    with pytest.raises(InputError, match="different shard counts"):
        merge_index(tmp_path)


def test_finalize_refuses_incomplete_shard(tmp_path):
    """finalize names the images of its shard that were not written; indices outside the shard are refused."""
    maps = _softmax_maps(4)
    w = StoreWriter(tmp_path, C, shard=(0, 2), total=4)
    m = maps[0]
    w.write(0, m["name"], m["path"], m["probs"], m["label"])
    with pytest.raises(ValueError, match="images 1 were not written"):
        w.finalize()
    with pytest.raises(ValueError, match="outside shard 0/2"):
        w.write(2, m["name"], m["path"], m["probs"], m["label"])


def test_missing_index_is_not_a_store(tmp_path):
    """A folder without index.json (or no folder) is refused with a message saying why."""
    with pytest.raises(InputError, match=r"not a softmax store \(no index\.json\)"):
        StoreReader(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        StoreReader(tmp_path / "nope")


def test_corrupt_and_truncated_files_are_named(tmp_path):
    """Truncated files and damaged compressed chunks are InputErrors naming the file; intact files still read."""
    maps = _softmax_maps(3)
    _write(tmp_path, maps)
    f1 = tmp_path / "images" / "000001.h5"
    data = f1.read_bytes()
    f1.write_bytes(data[: len(data) // 2])  # truncated
    r = StoreReader(tmp_path)
    assert r[0].name == "img00"
    with pytest.raises(InputError, match=r"000001\.h5.*corrupt or truncated"):
        r[1]
    # a damaged compressed chunk (the file structure is intact)
    f2 = tmp_path / "images" / "000002.h5"
    with h5py.File(f2, "r") as f:
        offset = f["probs"].id.get_chunk_info(0).byte_offset
    buf = bytearray(f2.read_bytes())
    for k in range(offset + 2, offset + 40):
        buf[k] ^= 0x5A
    f2.write_bytes(bytes(buf))
    with pytest.raises(InputError, match=r"000002\.h5.*corrupt or truncated"):
        r[2]


def test_nan_and_bad_sums_rejected_on_write(tmp_path):
    """NaN, sums off 1, negative values and wrong shapes are InputErrors naming the image; nothing is written."""
    m = _softmax_maps(1)[0]
    w = StoreWriter(tmp_path, C, total=1)
    bad = m["probs"].copy()
    bad[2, 3, 4] = np.nan
    with pytest.raises(InputError, match=r"image 0 \('img00'\).*NaN/inf.*row 3, column 4"):
        w.write(0, "img00", "p", bad, m["label"])
    bad = m["probs"] * 1.1
    with pytest.raises(InputError, match="do not sum to 1"):
        w.write(0, "img00", "p", bad, m["label"])
    bad = m["probs"].copy()
    bad[:, 0, 0] = [1.5, -0.5, 0, 0, 0]  # sums to 1, but a value is negative
    with pytest.raises(InputError, match="negative"):
        w.write(0, "img00", "p", bad, m["label"])
    with pytest.raises(InputError, match="shape"):
        w.write(0, "img00", "p", m["probs"][:, :-1], m["label"])
    assert not any((tmp_path / "images").iterdir())  # nothing was written


def test_invalid_probabilities_rejected_on_read(tmp_path):
    """Non-finite stored probabilities are an InputError naming file and image, unless validate=False."""
    maps = _softmax_maps(2)
    _write(tmp_path, maps, dtype="float32")
    with h5py.File(tmp_path / "images" / "000001.h5", "r+") as f:
        f["probs"][1, 2, 3] = np.inf
    r = StoreReader(tmp_path)
    with pytest.raises(InputError, match=r"000001\.h5 \(image 1, 'img01'\).*NaN/inf"):
        r[1]
    assert r.read(1, validate=False).probs[1, 2, 3] == np.inf


@pytest.mark.parametrize("codec", CODECS)
def test_resume_adopts_matching_files_only(tmp_path, codec):
    """A resumed writer adopts complete files of the same image and settings, and rewrites all others."""
    maps = _softmax_maps(3)
    _write(tmp_path, maps, codec=codec)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    w = StoreWriter(tmp_path, C, total=3, model="tiny", dataset="fishyscapes_static", convention=FISHYSCAPES,
                    codec=codec)
    assert w.resume(0, "img00") and w.resume(1)
    assert not w.resume(2, "other-name")  # a different image at that index
    m = maps[2]
    w.write(2, m["name"], m["path"], m["probs"], m["label"], m["label_ids"])
    w.finalize()
    assert (tmp_path / "images" / "000000.h5").stat().st_mtime_ns == before["000000.h5"]
    assert StoreReader(tmp_path)[2].name == "img02"
    # another checkpoint, encoding or logits setting: nothing is reused
    assert StoreWriter(tmp_path, C, total=3, model="tiny", codec=codec).resume(0)  # the control
    assert not StoreWriter(tmp_path, C, total=3, model="tiny", checkpoint_sha="1" * 64, codec=codec).resume(0)
    assert not StoreWriter(tmp_path, C, "float16", total=3, model="tiny", codec=codec).resume(0)
    assert not StoreWriter(tmp_path, C, total=3, model="tiny", store_logits=True, codec=codec).resume(0)
    (tmp_path / "images" / "000001.h5").write_bytes(b"garbage")
    assert not StoreWriter(tmp_path, C, total=3, model="tiny", codec=codec).resume(1)


def test_logits_required_when_stored(tmp_path):
    """A store keeping logits refuses images without logits and logits beyond the float16 range."""
    m = _softmax_maps(1)[0]
    w = StoreWriter(tmp_path, C, total=1, store_logits=True)
    with pytest.raises(InputError, match="store_logits"):
        w.write(0, m["name"], m["path"], m["probs"], m["label"])
    with pytest.raises(InputError, match="float16 range"):
        w.write(0, m["name"], m["path"], m["probs"], m["label"], logits=m["logits"] * 1e5)


def test_iteration_and_gt_only_reads(tmp_path):
    """Iteration follows the image order; probs=False reads the ground truth only; index_of finds names."""
    maps = _softmax_maps(4)
    _write(tmp_path, maps)
    r = StoreReader(tmp_path)
    assert [im.name for im in r] == [m["name"] for m in maps]
    gt = r.read(3, probs=False)
    assert gt.probs is None
    np.testing.assert_array_equal(gt.label, maps[3]["label"])
    assert r.index_of("img02") == 2


def test_lz4_chunks_of_hdf5_with_several_blocks_decode(tmp_path):
    """A plane that HDF5's own LZ4 filter wrote in 1 KiB blocks (and a raw, incompressible one)
    decodes with the store's codec to the same values."""
    import hdf5plugin

    from meta_ood.store.codec import decompress_plane

    rng = np.random.default_rng(3)
    smooth = np.repeat(rng.integers(0, 65535, (16, 1)), 300, axis=1).astype(np.uint16)
    noise = rng.integers(0, 65535, (16, 300)).astype(np.uint16)
    with h5py.File(tmp_path / "lz4.h5", "w") as f:
        for key, plane in (("smooth", smooth), ("noise", noise)):
            f.create_dataset(key, data=plane, chunks=plane.shape, shuffle=True, **hdf5plugin.LZ4(nbytes=1024))
    with h5py.File(tmp_path / "lz4.h5", "r") as f:
        for key, plane in (("smooth", smooth), ("noise", noise)):
            mask, blob = f[key].id.read_direct_chunk((0, 0))
            assert mask == 0
            np.testing.assert_array_equal(decompress_plane(blob, plane.dtype, plane.shape, "lz4"), plane)
