"""OoD fine-tuning loop: epoch composition, augmentation, exact resume, checkpoints and loss log."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from meta_ood.datasets.base import Item
from meta_ood.errors import InputError
from meta_ood.models import build, load_checkpoint
from meta_ood.training import MixedEpoch, TrainConfig, completed_epochs, epoch_plan, random_crop_flip, train


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _items(n, h, w, kind, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if kind == "cs":
            lab = rng.integers(0, 19, (h, w)).astype(np.uint8)
            lab[:2] = 255
        else:
            lab = np.zeros((h, w), np.uint8)
            lab[h // 4 : h // 2, w // 4 : w // 2] = 254
        out.append(Item(image=img, label=lab, label_ids=None, path=f"{kind}{i}", name=f"{kind}{i}"))
    return out


def test_epoch_plan_draws_fresh_proxies_each_epoch():
    p1 = epoch_plan(30, 100, 0.1, seed=0, epoch=1)
    p2 = epoch_plan(30, 100, 0.1, seed=0, epoch=2)
    assert p1 == epoch_plan(30, 100, 0.1, seed=0, epoch=1)
    for p in (p1, p2):
        assert sorted(i for s, i in p if s == "in") == list(range(30))
        ood = [i for s, i in p if s == "ood"]
        assert len(ood) == 3 and len(set(ood)) == 3
    assert [i for s, i in p1 if s == "ood"] != [i for s, i in p2 if s == "ood"] or p1 != p2
    assert len(epoch_plan(2975, 1489, 0.1, 0, 1)) == 2975 + 298  # paper: ~1:10 (297 with its rounding)
    assert len(epoch_plan(10, 2, 0.5, 0, 1)) == 12  # capped by what exists


def test_crop_pads_with_void_and_flip_is_mirror():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    lab = np.arange(24, dtype=np.uint8).reshape(4, 6)
    rng = np.random.default_rng(0)
    ci, cl = random_crop_flip(img, lab, 8, False, rng)
    assert ci.shape == (8, 8, 3) and cl.shape == (8, 8)
    assert (cl[4:] == 255).all() and (cl[:, 6:] == 255).all() and (ci[4:] == 0).all()
    np.testing.assert_array_equal(cl[:4, :6], lab)
    # flips happen with probability 1/2 and mirror image and label together
    flipped = 0
    for s in range(20):
        ci, cl = random_crop_flip(img, lab, 4, True, np.random.default_rng(s))
        x0 = int(np.where(lab == cl[0, 0])[1][0]) if not (cl[0, 0] < cl[0, -1]) else None
        if cl[0, 0] > cl[0, -1]:
            flipped += 1
            np.testing.assert_array_equal(ci[:, ::-1], img[:, x0 - 3 : x0 + 1])
    assert 3 <= flipped <= 17


def test_coco_background_modes():
    cs, coco = _items(2, 16, 16, "cs", 0), _items(2, 16, 16, "coco", 1)
    for mode, bg in (("ignore", 255), ("road", 0)):
        cfg = TrainConfig(crop=16, ood_ratio=1.0, coco_background=mode, flip=False)
        ep = MixedEpoch(cs, coco, cfg, 1)
        pos = next(k for k, (s, _) in enumerate(ep.plan) if s == "ood")
        _, target = ep[pos]
        assert set(torch.unique(target).tolist()) == {bg, 254}
    with pytest.raises(InputError, match="coco_background"):
        TrainConfig(coco_background="sky")


def _cfg(**kw):
    base = dict(model="tiny", epochs=2, lam=0.5, lr=1e-3, batch_size=2, crop=32, ood_ratio=0.5, seed=7, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_resume_gives_identical_weights(tmp_path):
    cs, coco = _items(4, 40, 48, "cs", 0), _items(3, 40, 48, "coco", 1)
    cfg = _cfg()
    full = train(cfg, cs, coco, tmp_path / "full", progress=False)
    assert [p.name for p in full] == ["epoch1.pt", "epoch2.pt"]
    # simulate an interruption after epoch 1: the second checkpoint never got written
    part = tmp_path / "part"
    part.mkdir()
    (part / "epoch1.pt").write_bytes((tmp_path / "full" / "epoch1.pt").read_bytes())
    (part / "losses.csv").write_text((tmp_path / "full" / "losses.csv").read_text())
    assert completed_epochs(part) == [1]
    train(cfg, cs, coco, part, progress=False)
    a, b = build("tiny"), build("tiny")
    load_checkpoint(a, tmp_path / "full" / "epoch2.pt")
    meta = load_checkpoint(b, part / "epoch2.pt")
    assert meta["epoch"] == 2
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    rows_full = list(csv.DictReader(open(tmp_path / "full" / "losses.csv")))
    rows_part = list(csv.DictReader(open(part / "losses.csv")))
    assert rows_full == rows_part and {r["epoch"] for r in rows_full} == {"1", "2"}
    # training moved the weights away from the start
    c = build("tiny")
    load_checkpoint(c, tmp_path / "full" / "epoch1.pt")
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_resume_refuses_other_config(tmp_path):
    cs, coco = _items(2, 32, 32, "cs", 0), _items(2, 32, 32, "coco", 1)
    train(_cfg(epochs=1, max_steps_per_epoch=1), cs, coco, tmp_path, progress=False)
    with pytest.raises(InputError, match=r"trained with other options \(lr: 0\.001 → 0\.0005\)"):
        train(_cfg(epochs=2, lr=5e-4, max_steps_per_epoch=1), cs, coco, tmp_path, progress=False)
    assert completed_epochs(tmp_path) == [1]


def test_finetune_from_checkpoint_and_loss_decreases(tmp_path):
    cs, coco = _items(4, 32, 32, "cs", 0), _items(4, 32, 32, "coco", 1)
    base = train(_cfg(epochs=1, lam=0.0, ood_ratio=0.0), cs, None, tmp_path / "base", progress=False)[-1]
    out = train(_cfg(epochs=3, lam=0.9, ood_ratio=1.0, lr=3e-3), cs, coco, tmp_path / "ood", init_checkpoint=base,
                progress=False)
    assert len(out) == 3 and all(p.is_file() for p in out)
    rows = list(csv.DictReader(open(tmp_path / "ood" / "losses.csv")))
    first = np.mean([float(r["loss"]) for r in rows if r["epoch"] == "1"])
    last = np.mean([float(r["loss"]) for r in rows if r["epoch"] == "3"])
    assert last < first


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="needs COCO proxy images"):
        train(_cfg(), _items(2, 32, 32, "cs", 0), [], tmp_path, progress=False)
    with pytest.raises(InputError, match="unknown training option"):
        TrainConfig.from_dict({"epochs": 1, "lamda": 0.9})
    with pytest.raises(InputError, match="lambda"):
        TrainConfig(lam=1.5)


def test_a_job_never_resumes_from_a_later_stale_epoch(tmp_path):
    cs, coco = _items(2, 32, 32, "cs", 0), _items(2, 32, 32, "coco", 1)
    cfg = _cfg(epochs=2, max_steps_per_epoch=1)
    train(cfg, cs, coco, tmp_path / "ref", progress=False, stop_after=1)
    # epoch 1 is missing but a later epoch exists: the job for epoch 1 trains it from the start
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "epoch2.pt").write_bytes((tmp_path / "ref" / "epoch1.pt").read_bytes())
    train(cfg, cs, coco, tmp_path / "run", progress=False, stop_after=1)
    a, b = build("tiny"), build("tiny")
    load_checkpoint(a, tmp_path / "run" / "epoch1.pt")
    load_checkpoint(b, tmp_path / "ref" / "epoch1.pt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert (tmp_path / "run" / "epoch2.pt").read_bytes() == (tmp_path / "ref" / "epoch1.pt").read_bytes()


def test_workflow_rerun_of_a_finished_baseline_trains_anew(tmp_path):
    """The rule reruns only when its inputs changed: a finished training is set aside, not copied again."""
    from conftest import make_real_tree
    from meta_ood.stages.training import train_baseline_stage

    roots = make_real_tree(tmp_path / "data", n_train=2, n_val=1, n_coco=1, n_lostandfound=1, n_fishyscapes=1,
                           n_fishyscapes_lostandfound=1)
    opts = {"model": "tiny", "epochs": 1, "batch_size": 2, "crop": [64, 128], "workers": 0, "seed": 0}
    out = tmp_path / "models" / "baseline.pt"
    train_baseline_stage(str(roots["cityscapes"]), "train", out, opts, progress=False)
    work = out.with_name("baseline_epochs")
    first = (work / "epoch1.pt").stat().st_mtime_ns
    # the CLI (default) reuses the finished training ...
    train_baseline_stage(str(roots["cityscapes"]), "train", out, opts, progress=False)
    assert (work / "epoch1.pt").stat().st_mtime_ns == first
    # ... the workflow's rerun trains anew and keeps the finished one aside
    train_baseline_stage(str(roots["cityscapes"]), "train", out, opts, progress=False, retrain_finished=True)
    previous = out.with_name("baseline_epochs.previous")
    assert (previous / "epoch1.pt").stat().st_mtime_ns == first
    assert (work / "epoch1.pt").stat().st_mtime_ns != first
    a = torch.load(previous / "epoch1.pt", weights_only=False)
    b = torch.load(work / "epoch1.pt", weights_only=False)
    key = next(k for k in a["state_dict"] if k.endswith("weight"))
    assert torch.equal(a["state_dict"][key], b["state_dict"][key])  # same data and seed: the same network again


def _void_items(n, h, w, seed):
    """Cityscapes-like items with label ids: train-class ids, the void OoD ids (0, 4, 5, 6) and the excluded
    void ids (1 ego vehicle, 2 rectification border, 3 out of roi) in random places."""
    from meta_ood import labels as L

    rng = np.random.default_rng(seed)
    ids = np.array([7, 8, 11, 21, 26, 0, 4, 5, 6, 1, 2, 3])
    out = []
    for i in range(n):
        label_ids = ids[rng.integers(0, len(ids), (h, w))].astype(np.uint8)
        label = L.label_ids_to_train_ids(label_ids, L.CITYSCAPES_ID_TO_TRAIN)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append(Item(image=img, label=label, label_ids=label_ids, path=f"cs{i}", name=f"cs{i}"))
    return out


def test_void_proxy_trains_on_void_pixels_only(tmp_path):
    """finetune.proxy cityscapes_void: no COCO images; the target marks exactly the pixels of label ids
    0/4/5/6 as OoD and keeps ego vehicle, rectification border and out of roi ignored; the weights move;
    the option enters the weight hash only when it is not the default (earlier COCO checkpoints stay valid)."""
    from meta_ood.models.checkpoint import config_hash
    from meta_ood.training import void_target

    cs = _void_items(3, 32, 32, 0)
    cfg = _cfg(proxy="cityscapes_void", ood_ratio=0.5, flip=False, epochs=1, max_steps_per_epoch=2)
    ep = MixedEpoch(cs, None, cfg, 1)
    assert [s for s, _ in ep.plan] == ["in"] * 3
    for pos, (_, index) in enumerate(ep.plan):
        _, target = ep[pos]
        ids = cs[index].label_ids
        void = np.isin(ids, [0, 4, 5, 6])
        np.testing.assert_array_equal(target.numpy() == cfg.ood_id, void)
        np.testing.assert_array_equal(target.numpy()[~void], cs[index].label[~void])
        assert (target.numpy()[np.isin(ids, [1, 2, 3])] == 255).all()
    with pytest.raises(InputError, match="labelIds"):
        void_target(cs[0].label, None, 254, "cs0")
    out = train(cfg, cs, None, tmp_path / "void", init_checkpoint=None, progress=False)
    assert [p.name for p in out] == ["epoch1.pt"]
    coco_cfg = _cfg()
    assert "proxy" not in coco_cfg.weight_options() and cfg.weight_options()["proxy"] == "cityscapes_void"
    assert config_hash(cfg.weight_options()) != config_hash(_cfg(ood_ratio=0.5, flip=False, epochs=1,
                                                                  max_steps_per_epoch=2).weight_options())
    with pytest.raises(InputError, match="proxy"):
        TrainConfig(proxy="voids")


def test_cityscapes_void_reader_marks_void_classes_as_ood(tmp_path):
    """cityscapes_void: 0 for train-class pixels, 1 for void ids 0/4/5/6, 255 otherwise, from the labelIds
    files (train-id files are ignored); a tree without labelIds files is refused with the reason."""
    from meta_ood import labels as L
    from meta_ood.datasets import open_dataset
    from meta_ood.io import write_png

    root = tmp_path / "cs"
    items = _void_items(2, 16, 24, 3)
    for k, item in enumerate(items):
        base = f"city_{k:06d}_000019"
        write_png(root / "leftImg8bit" / "val" / "city" / f"{base}_leftImg8bit.png", item.image)
        write_png(root / "gtFine" / "val" / "city" / f"{base}_gtFine_labelIds.png", item.label_ids)
        write_png(root / "gtFine" / "val" / "city" / f"{base}_gtFine_labelTrainIds.png", item.label)
    ds = open_dataset("cityscapes_void", str(root), "val")
    assert ds.convention == L.FISHYSCAPES and len(ds) == 2
    for got, item in zip(ds, items):
        ids = item.label_ids
        want = np.full(ids.shape, 255, np.uint8)
        want[(item.label < 19)] = 0
        want[np.isin(ids, [0, 4, 5, 6])] = 1
        np.testing.assert_array_equal(got.label, want)
    for p in (root / "gtFine").rglob("*_labelIds.png"):
        p.unlink()
    with pytest.raises(InputError, match="needs the label ids"):
        open_dataset("cityscapes_void", str(root), "val")
