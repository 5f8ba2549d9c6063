"""Tests of dump_softmax / run_dump on a small Fishyscapes-Static-like dataset and a tiny network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from meta_ood.errors import InputError
from meta_ood.inference import dump_softmax, predict_logits, run_dump, sliding_window_starts
from meta_ood.labels import FISHYSCAPES
from meta_ood.models import normalize
from meta_ood.store import StoreReader, max_abs_error, merge_index, sha256_file

C = 4


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class TinyNet(nn.Module):
    """A deterministic fully convolutional network (3x3 then 1x1 convolutions)."""

    def __init__(self, seed: int = 0, kernel: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, kernel, padding=kernel // 2)
        self.head = nn.Conv2d(8, C, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(x)))


def make_factory_file(path) -> str:
    path.write_text(
        "from torch import nn\n"
        "def factory(num_classes=19):\n"
        "    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, num_classes, 1))\n"
    )
    return f"{path}:factory"


def explicit_softmax(model: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(normalize(image.copy())).float(), 1)[0].numpy()


def test_dump_matches_explicit_softmax(tmp_path, fishyscapes):
    model = TinyNet().train()
    out = tmp_path / "store"
    res = dump_softmax(model, fishyscapes, out, device="cpu", model_name="tinynet", checkpoint_sha="c" * 64, progress=False)
    assert res.written == 5 and res.skipped == 0 and res.index == out / "index.json"
    r = StoreReader(out)
    assert len(r) == 5 and r.num_classes == C
    assert r.model == "tinynet" and r.checkpoint_sha256 == "c" * 64
    assert r.dataset_kind == "fishyscapes_static" and r.convention == FISHYSCAPES
    for k, item in enumerate(fishyscapes):
        got = r[k]
        expected = explicit_softmax(model, item.image)
        assert got.probs.shape == expected.shape
        assert np.abs(got.probs - expected).max() <= max_abs_error(r.dtype) + 1e-6
        assert expected.max(0).min() < 0.9 < expected.max(0).max()  # not a trivial output
        np.testing.assert_array_equal(got.label, item.label)
        assert got.name == item.name and got.path == item.path
    assert model.training  # the caller's mode is restored


def test_float16_store_within_half_precision(tmp_path, fishyscapes):
    model = TinyNet(seed=1)
    dump_softmax(model, fishyscapes, tmp_path, device="cpu", dtype="float16", store_logits=True, progress=False)
    r = StoreReader(tmp_path)
    item = fishyscapes[2]
    got = r[2]
    assert np.abs(got.probs - explicit_softmax(model, item.image)).max() <= 2.0**-12
    with torch.no_grad():
        logits = model(normalize(item.image.copy()))[0].numpy()
    np.testing.assert_allclose(got.logits, logits, rtol=2**-10, atol=1e-3)


def test_batch_size_two_equals_one(tmp_path, fishyscapes):
    model = TinyNet(seed=2)
    dump_softmax(model, fishyscapes, tmp_path / "b1", device="cpu", batch_size=1, progress=False)
    # batches of two, images decoded in a DataLoader worker process
    dump_softmax(model, fishyscapes, tmp_path / "b2", device="cpu", batch_size=2, num_workers=1, progress=False)
    r1, r2 = StoreReader(tmp_path / "b1"), StoreReader(tmp_path / "b2")
    assert r1.names == r2.names and r1.shapes == r2.shapes
    for k in range(len(r1)):
        a, b = r1.read(k, raw=True).probs.astype(np.int32), r2.read(k, raw=True).probs.astype(np.int32)
        assert np.abs(a - b).max() <= 1  # at most one rounding step of 1/65535 apart


def test_shards_then_merge_equal_single_run(tmp_path, fishyscapes):
    model = TinyNet(seed=3)
    dump_softmax(model, fishyscapes, tmp_path / "one", device="cpu", progress=False)
    for i in range(3):
        res = dump_softmax(model, fishyscapes, tmp_path / "three", device="cpu", shard=f"{i}/3", progress=False)
        assert res.index is None and res.shard_index.name == f"index.shard-{i}-of-3.json"
        assert res.images == [range(0, 2), range(2, 4), range(4, 5)][i]
    merge_index(tmp_path / "three")
    a, b = StoreReader(tmp_path / "one"), StoreReader(tmp_path / "three")
    assert a.names == b.names
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.probs, y.probs)
        np.testing.assert_array_equal(x.label, y.label)


def test_resume_skips_existing_images(tmp_path, fishyscapes):
    model = TinyNet(seed=4)
    dump_softmax(model, fishyscapes, tmp_path, device="cpu", progress=False)
    images = tmp_path / "images"
    mtimes = {p.name: p.stat().st_mtime_ns for p in images.iterdir()}
    reference = [im.probs for im in StoreReader(tmp_path)]
    (images / "000002.h5").unlink()  # as if the job had died before writing image 2
    (tmp_path / "index.json").unlink()
    res = dump_softmax(model, fishyscapes, tmp_path, device="cpu", progress=False)
    assert (res.written, res.skipped) == (1, 4)
    for p in images.iterdir():
        if p.name != "000002.h5":
            assert p.stat().st_mtime_ns == mtimes[p.name]
    for got, ref in zip(StoreReader(tmp_path), reference):
        np.testing.assert_array_equal(got.probs, ref)
    # a different checkpoint hash means different weights: everything is recomputed
    res = dump_softmax(model, fishyscapes, tmp_path, device="cpu", checkpoint_sha="d" * 64, progress=False)
    assert (res.written, res.skipped) == (5, 0)
    assert StoreReader(tmp_path).checkpoint_sha256 == "d" * 64
    # so do other settings that change the stored values (batch size, tiling): nothing stale is reused
    res = dump_softmax(model, fishyscapes, tmp_path, device="cpu", checkpoint_sha="d" * 64, batch_size=2, progress=False)
    assert (res.written, res.skipped) == (5, 0)
    res = dump_softmax(model, fishyscapes, tmp_path, device="cpu", checkpoint_sha="d" * 64, batch_size=2,
                       sliding_window=(8, 8, 4), progress=False)
    assert (res.written, res.skipped) == (5, 0)
    assert StoreReader(tmp_path).meta["settings"] == {"batch_size": 2, "amp": False, "sliding_window": [8, 8, 4]}
    res = dump_softmax(model, fishyscapes, tmp_path, device="cpu", checkpoint_sha="d" * 64, batch_size=2,
                       sliding_window=(8, 8, 4), progress=False)
    assert (res.written, res.skipped) == (0, 5)


def test_sliding_window_starts():
    assert sliding_window_starts(20, 12, 8) == [0, 8]
    assert sliding_window_starts(30, 16, 8) == [0, 8, 14]
    assert sliding_window_starts(10, 16, 8) == [0]
    assert sliding_window_starts(16, 16, 4) == [0]


def test_sliding_window_averages_tile_logits():
    model = TinyNet(seed=5).eval()
    x = torch.randn(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = predict_logits(model, x, (12, 16, 8))
        acc = torch.zeros(2, C, 20, 30)
        cnt = torch.zeros(20, 30)
        for y in (0, 8):
            for x0 in (0, 8, 14):
                acc[:, :, y : y + 12, x0 : x0 + 16] += model(x[:, :, y : y + 12, x0 : x0 + 16])
                cnt[y : y + 12, x0 : x0 + 16] += 1
        expected = acc / cnt
        full = model(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    # tiles see zero padding at their borders: interior pixels of a single tile agree with the full image
    np.testing.assert_allclose(got[:, :, 1:7, 1:7].numpy(), full[:, :, 1:7, 1:7].numpy(), rtol=1e-5, atol=1e-5)
    assert (got - full).abs().max() > 1e-3  # ... but not everywhere (the 3x3 kernel crosses tile borders)


def test_sliding_window_equals_full_image_for_pointwise_model(tmp_path, fishyscapes):
    model = TinyNet(seed=6, kernel=1)  # receptive field of one pixel: tiling changes nothing
    dump_softmax(model, fishyscapes, tmp_path / "full", device="cpu", progress=False)
    dump_softmax(model, fishyscapes, tmp_path / "tiles", device="cpu", sliding_window=(16, 16, 8), progress=False)
    for a, b in zip(StoreReader(tmp_path / "full"), StoreReader(tmp_path / "tiles")):
        assert np.abs(a.probs - b.probs).max() <= 2 / 65535


def test_sliding_window_validation():
    with pytest.raises(InputError, match="stride"):
        predict_logits(TinyNet(), torch.zeros(1, 3, 8, 8), (4, 4, 5))


def test_model_output_shape_checked(tmp_path, fishyscapes):
    class Downsampling(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], C, x.shape[2] // 2, x.shape[3] // 2)

    with pytest.raises(InputError, match="at the input resolution"):
        dump_softmax(Downsampling(), fishyscapes, tmp_path, device="cpu", num_classes=C, progress=False)


def test_nan_output_names_the_image(tmp_path, fishyscapes):
    class NaNNet(TinyNet):
        def forward(self, x):
            out = super().forward(x)
            out[:, :, 0, 0] = float("nan")
            return out

    with pytest.raises(InputError, match=r"image 0 \('img0'\).*NaN"):
        dump_softmax(NaNNet(), fishyscapes, tmp_path, device="cpu", progress=False)
    assert not (tmp_path / "index.json").exists()


def test_run_dump_builds_loads_and_records_checkpoint(tmp_path, fishyscapes):
    from meta_ood.models import build

    ref = make_factory_file(tmp_path / "net.py")
    trained = build(ref, num_classes=C)
    with torch.no_grad():
        for p in trained.parameters():
            p.copy_(torch.linspace(-2, 2, p.numel()).reshape(p.shape))
    ckpt = tmp_path / "ckpt.pt"
    torch.save(trained.state_dict(), ckpt)
    out = tmp_path / "store"
    res = run_dump(ref, ckpt, "fishyscapes_static", fishyscapes.root, None, out, num_classes=C, device="cpu", progress=False)
    assert res.written == 5
    r = StoreReader(out)
    assert r.checkpoint_sha256 == sha256_file(ckpt) and r.model == ref
    item = fishyscapes[1]
    assert np.abs(r[1].probs - explicit_softmax(trained, item.image)).max() <= max_abs_error(r.dtype) + 1e-6


def test_batched_shards_and_resume_compute_the_same_batches(tmp_path, fishyscapes, monkeypatch):
    """With batch_size 2, shards start at even images and a resumed batch is recomputed whole,
    so every image is computed in the same batch as in a plain run."""
    import meta_ood.inference as inf

    seen = []
    original = inf._forward

    def spy(model, batch, *args, **kwargs):
        seen.append(tuple(index for index, _ in batch))
        return original(model, batch, *args, **kwargs)

    monkeypatch.setattr(inf, "_forward", spy)
    model = TinyNet(seed=5)
    dump_softmax(model, fishyscapes, tmp_path / "one", device="cpu", batch_size=2, progress=False)
    plain = list(seen)
    seen.clear()
    for i in range(2):
        dump_softmax(model, fishyscapes, tmp_path / "two", device="cpu", batch_size=2, shard=f"{i}/2", progress=False)
    merge_index(tmp_path / "two")
    assert sorted(seen) == sorted(plain) and (0, 1) in plain  # images 2 and 3 differ in size
    seen.clear()
    (tmp_path / "one" / "images" / "000001.h5").unlink()
    res = dump_softmax(model, fishyscapes, tmp_path / "one", device="cpu", batch_size=2, progress=False)
    assert seen == [(0, 1)] and (res.written, res.skipped) == (2, 3)
    for x, y in zip(StoreReader(tmp_path / "one"), StoreReader(tmp_path / "two")):
        np.testing.assert_array_equal(x.probs, y.probs)
