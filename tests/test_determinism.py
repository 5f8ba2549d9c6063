"""Which options determine the weights, the resume check, the COCO OoD id, strict devices and GPU-state resume."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

from meta_ood import training as T
from meta_ood.coco_filter import filter_coco
from meta_ood.datasets import Cityscapes, CocoImages
from meta_ood.datasets.demo import DemoConfig, generate
from meta_ood.errors import InputError
from meta_ood.inference import dump_softmax, run_dump_stage
from meta_ood.losses import entropy_max_loss
from meta_ood.models import build, load_checkpoint
from meta_ood.models.checkpoint import config_hash, read_checkpoint, read_checkpoint_metadata, save_checkpoint
from meta_ood.training import (
    RUNTIME_OPTIONS,
    MixedEpoch,
    TrainConfig,
    baseline_config,
    check_resume,
    completed_epochs,
    deterministic_algorithms,
    option_changes,
    require_device,
    train,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

DEMO = dict(seed=5, height=64, width=128, n_train=6, n_val=1, n_coco=8, n_lostandfound=1, n_fishyscapes=1,
            n_fishyscapes_lostandfound=1, coco_min_size=64)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Tiny demo data plus the COCO selection's masks written with OoD id 254 and with 200."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, DemoConfig(**DEMO), progress=False)
    coco = root / "coco"
    for ood_id in (254, 200):
        filter_coco(coco / "annotations" / "instances_train2017.json", coco / "train2017", root / f"sel{ood_id}",
                    min_size=64, ood_id=ood_id, progress=False)
    return root


def _cfg(**kw) -> TrainConfig:
    base = dict(model="tiny", epochs=1, lam=0.9, lr=1e-3, batch_size=2, crop=[64, 128], ood_ratio=0.5, seed=11,
                device="cpu", workers=0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def _assert_same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert list(wa) == list(wb)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _losses(path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# -- which options determine the weights ----------------------------------------------------------


def test_weight_options_leave_out_runtime_options():
    cfg = _cfg()
    options = cfg.weight_options()
    # proxy is recorded only when it is not the default "coco", so that checkpoints older than the option match
    assert set(options) == {f for f in TrainConfig.__dataclass_fields__} - set(RUNTIME_OPTIONS) - {"proxy"}
    assert _cfg(proxy="cityscapes_void").weight_options()["proxy"] == "cityscapes_void"
    assert option_changes(options, _cfg(proxy="cityscapes_void").weight_options()) == [
        "proxy: 'coco' → 'cityscapes_void'"]
    assert {"amp", "deterministic", "ood_id", "max_steps_per_epoch", "seed", "model"} <= set(options)
    assert options["crop"] == [64, 128]  # plain JSON values
    same = _cfg(workers=3, device="auto", epochs=9).weight_options()
    assert same == options and config_hash(same) == config_hash(options)
    assert config_hash(_cfg(amp=False).weight_options()) != config_hash(options)
    assert option_changes(options, _cfg(lr=5e-4, crop=64).weight_options()) == [
        "crop: [64, 128] → 64", "lr: 0.001 → 0.0005",
    ]
    base = baseline_config({"epochs": 2, "lr": 0.01, "batch_size": 4, "crop": 64, "workers": 0})
    assert base.lam == 0.0 and base.ood_ratio == 0.0 and base.lr == 0.01


def test_workers_give_bit_identical_weights(demo, tmp_path):
    cs = Cityscapes(demo / "cityscapes", "train")
    coco = CocoImages(demo / "coco", "train2017", masks_dir=demo / "sel254" / "masks")
    one = train(_cfg(workers=0), cs, coco, tmp_path / "w0", progress=False)[-1]
    two = train(_cfg(workers=2), cs, coco, tmp_path / "w2", progress=False)[-1]
    _assert_same_weights(one, two)
    assert _losses(tmp_path / "w0" / "losses.csv") == _losses(tmp_path / "w2" / "losses.csv")
    assert len(_losses(tmp_path / "w0" / "losses.csv")) == 4  # 6 Cityscapes + 3 COCO images, batches of 2
    # same options apart from the runtime ones: the checkpoints of one folder satisfy the other's check
    check_resume(tmp_path / "w0", _cfg(workers=2, epochs=5, device="auto"))


# -- the resume check -----------------------------------------------------------------------------


def _tiny_items(n, kind, seed, ood_id=254):
    from meta_ood.datasets.base import Item

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        if kind == "cs":
            lab = rng.integers(0, 19, (32, 32)).astype(np.uint8)
        else:
            lab = np.zeros((32, 32), np.uint8)
            lab[8:16, 8:20] = ood_id
        out.append(Item(image=img, label=lab, label_ids=None, path=f"{kind}{i}", name=f"{kind}{i}"))
    return out


def _small(**kw) -> TrainConfig:
    return _cfg(**{"crop": 32, "epochs": 2, "max_steps_per_epoch": 1, **kw})


def test_changed_options_stop_and_nothing_is_deleted(tmp_path):
    cs, coco = _tiny_items(2, "cs", 0), _tiny_items(2, "coco", 1)
    train(_small(), cs, coco, tmp_path, progress=False)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(files) == {"epoch1.pt", "epoch2.pt", "losses.csv"}
    meta = read_checkpoint_metadata(tmp_path / "epoch2.pt")
    assert "optimizer_state_dict" not in meta and meta["epoch"] == 2
    assert meta["extra"]["train_options"] == _small().weight_options()
    assert meta["config_hash"] == config_hash(_small().weight_options())
    for changed, expected in (
        (_small(lr=5e-4, batch_size=1), r"batch_size: 2 → 1; lr: 0\.001 → 0\.0005"),
        (_small(amp=False), "amp: True → False"),
        (_small(ood_id=200), "ood_id: 254 → 200"),
        (_small(deterministic=True), "deterministic: False → True"),
    ):
        with pytest.raises(InputError, match=expected) as info:
            check_resume(tmp_path, changed)
        assert str(tmp_path / "epoch1.pt") in str(info.value) and f"delete {tmp_path}" in str(info.value)
        assert "`run:`" in str(info.value)
        with pytest.raises(InputError, match=expected):
            train(changed, cs, coco, tmp_path, progress=False, stop_after=1)
        with pytest.raises(InputError, match=expected):
            train(changed, cs, coco, tmp_path, progress=False, resume=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    # runtime options and a longer run continue from the last checkpoint
    check_resume(tmp_path, _small(workers=1, device="auto", epochs=3))
    train(_small(epochs=3, workers=1), cs, coco, tmp_path, progress=False)
    assert completed_epochs(tmp_path) == [1, 2, 3]
    assert (tmp_path / "epoch1.pt").read_bytes() == files["epoch1.pt"]
    fresh = train(_small(epochs=3), cs, coco, tmp_path / "fresh", progress=False)[-1]
    _assert_same_weights(tmp_path / "epoch3.pt", fresh)
    check_resume(tmp_path / "missing", _small())  # nothing there: nothing to check


def test_checkpoints_of_older_versions_resume(tmp_path):
    """Files that hashed the whole config (runtime options included) and lack the option record still resume."""
    cs, coco = _tiny_items(2, "cs", 0), _tiny_items(2, "coco", 1)
    cfg = _small()
    train(cfg, cs, coco, tmp_path / "new", progress=False, stop_after=1)
    model = build("tiny")
    meta = load_checkpoint(model, tmp_path / "new" / "epoch1.pt")
    old = {k: v for k, v in meta["extra"]["train_config"].items() if k not in ("ood_id", "deterministic")}
    extra = {k: v for k, v in meta["extra"].items() if k not in ("train_options", "cuda_rng_states", "grad_scaler")}
    extra["train_config"] = old
    (tmp_path / "old").mkdir()
    save_checkpoint(tmp_path / "old" / "epoch1.pt", model, epoch=1, config_hash=config_hash(old), extra=extra)
    check_resume(tmp_path / "old", _small(workers=2))
    with pytest.raises(InputError, match=r"lr: 0\.001 → 0\.002"):
        check_resume(tmp_path / "old", _small(lr=2e-3))
    save_checkpoint(tmp_path / "bare" / "epoch1.pt", model, epoch=1, config_hash="0123456789abcdef")
    with pytest.raises(InputError, match="configuration hash 0123456789abcdef"):
        check_resume(tmp_path / "bare", cfg)


# -- coco_filter.ood_id ---------------------------------------------------------------------------


def test_ood_id_flows_from_masks_to_the_loss(demo, tmp_path):
    cs = Cityscapes(demo / "cityscapes", "train")
    c254 = CocoImages(demo / "coco", "train2017", masks_dir=demo / "sel254" / "masks")
    c200 = CocoImages(demo / "coco", "train2017", masks_dir=demo / "sel200" / "masks", ood_id=200)
    assert len(c200) == len(c254) > 0
    for a, b in zip(c254, c200):
        assert (a.label == 254).any()
        np.testing.assert_array_equal(b.label, np.where(a.label == 254, 200, a.label))
    # masks written with another id than configured are refused
    with pytest.raises(InputError, match="254"):
        CocoImages(demo / "coco", "train2017", masks_dir=demo / "sel254" / "masks", ood_id=200)[0]
    # masks rasterized from the json use the id too
    raw = CocoImages(demo / "coco", "train2017", ood_id=200)
    first = next(item for item in raw if item.name == c200[0].name)
    np.testing.assert_array_equal(first.label, c200[0].label)

    # one training step: the loss the loop logs is the loss function's on the same targets and id
    cfg = _cfg(ood_id=200, max_steps_per_epoch=1, ood_ratio=1.0)
    epoch = MixedEpoch(cs, c200, cfg, 1)
    images, targets = (torch.stack(t) for t in zip(*(epoch[i] for i in range(cfg.batch_size))))
    assert (targets == 200).any() and not (targets == 254).any()
    torch.manual_seed(cfg.seed)
    model = build("tiny")
    model.train()
    expected = entropy_max_loss(model(images), targets, cfg.lam, ood_id=200).item()
    train(cfg, cs, c200, tmp_path / "200", progress=False)
    assert float(_losses(tmp_path / "200" / "losses.csv")[0]["loss"]) == pytest.approx(expected, rel=1e-6)
    # relabelling the OoD pixels changes nothing else: the same weights as with 254
    train(_cfg(ood_id=254, max_steps_per_epoch=1, ood_ratio=1.0), cs, c254, tmp_path / "254", progress=False)
    _assert_same_weights(tmp_path / "200" / "epoch1.pt", tmp_path / "254" / "epoch1.pt")
    assert _losses(tmp_path / "200" / "losses.csv") == _losses(tmp_path / "254" / "losses.csv")


def test_ood_id_must_not_be_a_train_id():
    for bad in (18, 255, 0, True, 200.0):
        with pytest.raises(InputError, match="ood_id"):
            _cfg(ood_id=bad)
    with pytest.raises(InputError, match="ood_id"):
        _cfg(num_classes=40, ood_id=30)
    assert _cfg(ood_id=19).ood_id == 19


# -- devices --------------------------------------------------------------------------------------


def test_named_gpu_without_cuda_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert require_device("auto") == torch.device("cpu")
    assert require_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        expected = rf"models\.m\.finetune\.device: '{name}'.*is_available\(\) is False.*device_count\(\) = 0"
        with pytest.raises(InputError, match=expected):
            require_device(name, "models.m.finetune.device")
    with pytest.raises(InputError, match="not a device"):
        require_device("cuda:x")
    cs, coco = _tiny_items(2, "cs", 0), _tiny_items(2, "coco", 1)
    with pytest.raises(InputError, match=r"models\.m\.finetune\.device: 'cuda'"):
        train(_small(device="cuda"), cs, coco, tmp_path / "t", progress=False, device_key="models.m.finetune.device")
    assert not (tmp_path / "t").exists()
    with pytest.raises(InputError, match=r"^device: 'cuda'"):
        dump_softmax(torch.nn.Conv2d(3, 2, 1), cs, tmp_path / "d", device="cuda", progress=False)
    with pytest.raises(InputError, match=r"inference\.device: 'cuda:0'"):
        run_dump_stage("tiny", 19, None, {"kind": "cityscapes", "root": str(tmp_path), "split": "val"}, tmp_path / "s",
                       {"device": "cuda:0"})


def test_gpu_index_beyond_the_visible_ones(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert require_device("auto") == torch.device("cuda")
    assert require_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(InputError, match=r"inference\.device: 'cuda:2'.*device_count\(\) = 2"):
        require_device("cuda:2", "inference.device")


# -- GPU state on resume, mocked on the CPU -------------------------------------------------------


class SpyScaler(torch.amp.GradScaler):
    """A disabled scaler (CPU) that reports a state and records what it is given back."""

    loaded: list = []
    STATE = {"scale": 512.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 7}

    def state_dict(self):
        return dict(self.STATE)

    def load_state_dict(self, state):
        SpyScaler.loaded.append(dict(state))


def test_cuda_generator_and_scaler_states_are_saved_and_restored(tmp_path, monkeypatch):
    cs, coco = _tiny_items(4, "cs", 0), _tiny_items(3, "coco", 1)
    cfg = _small(crop=[24, 32], max_steps_per_epoch=None)
    reference = train(cfg, cs, coco, tmp_path / "plain", progress=False)[-1]

    states = [torch.arange(16, dtype=torch.uint8), torch.arange(100, 116, dtype=torch.uint8)]
    restored: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: None)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda new: restored.append([s.clone() for s in new]))
    monkeypatch.setattr(torch.amp, "GradScaler", SpyScaler)
    SpyScaler.loaded = []

    train(cfg, cs, coco, tmp_path / "full", progress=False)
    assert restored == [] and SpyScaler.loaded == []
    extra = read_checkpoint_metadata(tmp_path / "full" / "epoch1.pt")["extra"]
    assert [s.tolist() for s in extra["cuda_rng_states"]] == [s.tolist() for s in states]
    assert extra["grad_scaler"] == SpyScaler.STATE
    assert extra["torch_rng_state"].dtype == torch.uint8

    part = tmp_path / "part"
    part.mkdir()
    for name in ("epoch1.pt", "losses.csv"):
        (part / name).write_bytes((tmp_path / "full" / name).read_bytes())
    train(cfg, cs, coco, part, progress=False)
    assert [[s.tolist() for s in r] for r in restored] == [[s.tolist() for s in states]]
    assert SpyScaler.loaded == [SpyScaler.STATE]
    # the CPU states are restored too: the resumed run ends bit-identical, also to a run without mocks
    _assert_same_weights(part / "epoch2.pt", tmp_path / "full" / "epoch2.pt")
    _assert_same_weights(part / "epoch2.pt", reference)


def test_gpu_states_are_skipped_on_a_cpu_resume(tmp_path, caplog):
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    before = torch.get_rng_state()
    T._restore_generator_states(
        {"torch_rng_state": before, "cuda_rng_states": [torch.zeros(16, dtype=torch.uint8)],
         "grad_scaler": SpyScaler.STATE},
        scaler, tmp_path / "epoch1.pt",
    )
    assert "CUDA generator states are not used" in caplog.text
    assert scaler.state_dict() == {}  # a disabled scaler ignores the state
    assert torch.equal(torch.get_rng_state(), before)


def test_deterministic_mode_sets_and_restores_the_flags(monkeypatch, tmp_path):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    with deterministic_algorithms(True):
        assert cudnn.deterministic and not cudnn.benchmark and torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled()) == before
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with deterministic_algorithms(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    with deterministic_algorithms(False):
        assert torch.are_deterministic_algorithms_enabled() == before[2]
    # training under it: flags on during the steps, the same weights on the CPU, flags restored after
    seen = []
    real = T.entropy_max_loss

    def spy(*args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark))
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "entropy_max_loss", spy)
    cs, coco = _tiny_items(2, "cs", 0), _tiny_items(2, "coco", 1)
    det = train(_small(deterministic=True), cs, coco, tmp_path / "det", progress=False)[-1]
    plain = train(_small(), cs, coco, tmp_path / "plain", progress=False)[-1]
    assert seen[:2] == [(True, True, False)] * 2 and seen[2][0] == before[2]
    _assert_same_weights(det, plain)
    assert torch.are_deterministic_algorithms_enabled() == before[2]
