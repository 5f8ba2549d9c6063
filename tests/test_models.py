"""Tests of meta_ood.models: the paper's two networks against the published schemas and the
numeric forward fixture, the demo network, the registry, normalization, devices and checkpoints."""

from __future__ import annotations

import argparse
import fractions
import json
import logging
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import MODELS_DIR
from meta_ood.errors import InputError
from meta_ood.models import (
    MEAN,
    STD,
    DeepLabV3PlusWRN38,
    DualSegResNet50,
    TinySegNet,
    autocast_context,
    available_models,
    build,
    config_hash,
    count_parameters,
    denormalize,
    load_checkpoint,
    normalize,
    read_checkpoint,
    save_checkpoint,
    select_device,
)
from meta_ood.models.checkpoint import _match_keys

# the published-model reference data kept in the repository (tests/data/models)
SCHEMAS = MODELS_DIR

# name in the registry -> (schema file stem, key prefix in the schema, fixture key, README counts)
PAPER_MODELS = {
    "deeplabv3plus_wrn38": {
        "stem": "deepv3plus_wrn38",
        "prefix": "module.",
        "fixture": "deepv3plus_wrn38",
        "params": 137_103_936,
        "keys": 268,
        "parts": {
            "mod1": 1_728, "mod2": 820_608, "mod3": 3_279_616, "mod4": 27_274_752, "mod5": 26_484_736,
            "mod6": 9_442_304, "mod7": 37_758_976, "aspp": 30_411_264, "bot_fine": 6_144,
            "bot_aspp": 327_680, "final": 1_296_128,
        },
    },
    "dualgcn_resnet50": {
        "stem": "dualgcn_res50",
        "prefix": "",
        "fixture": "dualgcn_res50",
        "params": 53_514_470,
        "keys": 432,
        "parts": {
            "conv1": 112_576, "bn1": 256, "layer1": 236_288, "layer2": 1_219_584, "layer3": 7_098_368,
            "layer4": 14_964_736, "head.conva": 9_438_208, "head.dualgcn": 1_547_008,
            "head.convb": 2_360_320, "head.bottleneck": 11_807_251, "dsn": 4_729_875,
        },
    },
}
TINY_PARAMS = 204_707


def _schema(name: str) -> list[dict]:
    path = SCHEMAS / f"{PAPER_MODELS[name]['stem']}.state_dict.json"
    if not path.is_file():
        pytest.fail(f"model schemas not found at {SCHEMAS}")
    return json.loads(path.read_text())


def _meta_model(name: str) -> nn.Module:
    """Build on the meta device: shapes and names without allocating or initializing weights."""
    with torch.device("meta"):
        return build(name)


# --------------------------------------------------------------------------- paper networks: structure


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_state_dict_matches_published_schema(name):
    spec = PAPER_MODELS[name]
    schema = _schema(name)
    assert len(schema) == spec["keys"]
    expected = [(e["key"][len(spec["prefix"]):], tuple(e["shape"]), e["dtype"]) for e in schema]
    assert all(e["key"].startswith(spec["prefix"]) for e in schema)
    got = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in _meta_model(name).state_dict().items()]
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"entry {i}: model {g} vs schema {e}"
    assert len(got) == len(expected)


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_parameter_counts_match_readme(name):
    spec = PAPER_MODELS[name]
    model = _meta_model(name)
    assert count_parameters(model) == spec["params"]
    assert count_parameters(model, trainable_only=True) == spec["params"]
    for part, count in spec["parts"].items():
        assert count_parameters(model.get_submodule(part)) == count, part


def _layer_lines(text: str) -> list[str]:
    """``name: Conv2d(...)``-style lines of the layers whose hyper-parameters matter."""
    pattern = re.compile(r"\s*\((\w+)\): ((?:Conv|BatchNorm|Dropout|MaxPool|AdaptiveAvgPool)\w*\(.*\))$")
    return [f"{m.group(1)}: {m.group(2)}" for line in text.splitlines() if (m := pattern.match(line.rstrip()))]


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_layer_hyperparameters_match_published_module_tree(name):
    """Stride, padding, dilation, groups, eps and dropout rates, which key shapes cannot show."""
    path = SCHEMAS / f"{PAPER_MODELS[name]['stem']}.modules.txt"
    if not path.is_file():
        pytest.fail(f"module trees not found at {SCHEMAS}")
    expected = _layer_lines(path.read_text())
    got = _layer_lines(repr(_meta_model(name)))
    # DualSeg assigns its maxpool twice, which moves it in the printed order: compare it apart
    assert [x for x in got if "MaxPool" not in x] == [x for x in expected if "MaxPool" not in x]
    assert sorted(x for x in got if "MaxPool" in x) == sorted(x for x in expected if "MaxPool" in x)


def test_wrn_dropout_is_channelwise_without_patching_torch():
    model = _meta_model("deeplabv3plus_wrn38")
    drop6 = model.mod6.block1.convs.dropout
    drop7 = model.mod7.block1.convs.dropout
    assert type(drop6) is nn.Dropout2d and drop6.p == 0.3
    assert type(drop7) is nn.Dropout2d and drop7.p == 0.5
    assert nn.Dropout is not nn.Dropout2d
    assert type(nn.Dropout(0.1)) is not nn.Dropout2d


# --------------------------------------------------------------------------- paper networks: forward fixture


def _fixture_weights(schema: list[dict], prefix: str) -> dict[str, torch.Tensor]:
    """The README's synthetic weights: drawn in float64 from RandomState(0) in file order.

    They are stored in the float32 tensors the schema lists (the reference run then cast the
    model to float64); using unrounded float64 weights would move the logits by ~1e-7 relative.
    """
    rng = np.random.RandomState(0)
    weights = {}
    for entry in schema:
        key, shape = entry["key"], tuple(entry["shape"])
        if key.endswith("num_batches_tracked"):
            value = torch.zeros((), dtype=torch.int64)
        else:
            if key.endswith("running_mean"):
                array = 0.1 * rng.standard_normal(shape)
            elif key.endswith("running_var"):
                array = 1 + 0.1 * rng.random_sample(shape)
            elif key.endswith("bias"):
                array = 0.1 * rng.standard_normal(shape)
            elif len(shape) == 1:
                array = 1 + 0.1 * rng.standard_normal(shape)
            else:
                array = rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[1:]))
            value = torch.from_numpy(array.astype(np.float32))
        weights[key[len(prefix):]] = value
    return weights


@pytest.fixture(scope="module", params=list(PAPER_MODELS))
def forward_run(request):
    """One float64 and one float32 forward pass per paper network on the fixture's input."""
    name = request.param
    spec = PAPER_MODELS[name]
    fixture_path = SCHEMAS / "forward_fixture.json"
    if not fixture_path.is_file():
        pytest.fail(f"forward fixture not found at {SCHEMAS}")
    reference = json.loads(fixture_path.read_text())[spec["fixture"]]
    model = _meta_model(name)
    model.load_state_dict(_fixture_weights(_schema(name), spec["prefix"]), assign=True)
    model.eval()
    image = np.random.RandomState(1).standard_normal((1, 3, 128, 256)).astype(np.float32)

    captured: dict[str, torch.Tensor] = {}
    handles = []
    for full_name in reference["intermediates_float64"]:
        module_name = full_name[len(spec["prefix"]):]
        if module_name == "dsn":  # not evaluated in forward(); applied to layer3 below
            continue
        handles.append(model.get_submodule(module_name).register_forward_hook(
            lambda _m, _i, out, key=full_name: captured.__setitem__(key, out.detach().clone())
        ))
    with torch.no_grad():
        model.double()
        out64 = model(torch.from_numpy(image).double())
        for handle in handles:
            handle.remove()
        if "dsn" in reference["intermediates_float64"]:
            captured["dsn"] = model.dsn(captured["layer3"])
        model.float()
        out32 = model(torch.from_numpy(image))
    del model
    return {"name": name, "reference": reference, "out64": out64, "out32": out32, "intermediates": captured}


def _stats(t: torch.Tensor) -> dict:
    return {
        "shape": list(t.shape),
        "mean": t.mean().item(),
        "std": t.std().item(),  # torch's default (unbiased), as in the reference
        "min": t.min().item(),
        "max": t.max().item(),
        "abs_sum": t.abs().sum().item(),
    }


def _assert_stats(got: dict, ref: dict, label: str, rel: float = 1e-9) -> None:
    assert got["shape"] == ref["shape"], label
    for key in ("mean", "std", "min", "max", "abs_sum"):
        tol = rel * abs(ref[key]) + 1e-12 * ref["std"]
        assert abs(got[key] - ref[key]) <= tol, f"{label} {key}: {got[key]!r} vs reference {ref[key]!r}"


def test_forward_fixture_output_stats(forward_run):
    _assert_stats(_stats(forward_run["out64"]), forward_run["reference"]["output_float64"], "output")


def test_forward_fixture_logit_points(forward_run):
    out, ref = forward_run["out64"], forward_run["reference"]
    scale = ref["output_float64"]["std"]
    for index, value in ref["output_points_float64"].items():
        got = out[tuple(json.loads(index))].item()
        assert abs(got - value) <= 1e-9 * abs(value) + 1e-12 * scale, f"logit {index}: {got!r} vs {value!r}"


def test_forward_fixture_argmax_histogram(forward_run):
    labels = forward_run["out64"].argmax(1).flatten().numpy()
    expected = forward_run["reference"]["argmax_histogram_float64"]
    assert np.bincount(labels, minlength=len(expected)).tolist() == expected


def test_forward_fixture_intermediate_modules(forward_run):
    for name, ref in forward_run["reference"]["intermediates_float64"].items():
        _assert_stats(_stats(forward_run["intermediates"][name]), ref, name)


def test_forward_fixture_float32_close_to_float64(forward_run):
    ref = forward_run["reference"]
    out32, out64 = forward_run["out32"], forward_run["out64"]
    assert out32.dtype == torch.float32
    diff = (out32.double() - out64).abs().max().item()
    assert diff <= 10 * ref["float32_vs_float64_max_abs_diff"]
    agreement = (out32.argmax(1) == out64.argmax(1)).double().mean().item()
    assert agreement >= 0.999


# --------------------------------------------------------------------------- paper networks: shapes


ODD_SHAPES = {
    # module -> expected (C, H, W) for a 1x3x100x150 input (README)
    "deeplabv3plus_wrn38": {"mod2": (128, 50, 75), "mod3": (256, 25, 38), "mod4": (512, 13, 19),
                            "mod7": (4096, 13, 19), "aspp": (1280, 13, 19), "final": (19, 50, 75)},
    "dualgcn_resnet50": {"maxpool": (128, 26, 38), "layer2": (512, 13, 19), "layer4": (2048, 13, 19),
                         "head.dualgcn.local": (512, 2, 3), "head": (19, 13, 19)},
}


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_odd_input_size_gives_logits_at_input_size(name):
    torch.manual_seed(0)
    model = build(name).eval()
    shapes = {}
    for module_name in ODD_SHAPES[name]:
        model.get_submodule(module_name).register_forward_hook(
            lambda _m, _i, out, key=module_name: shapes.__setitem__(key, tuple(out.shape[1:]))
        )
    with torch.no_grad():
        out = model(torch.randn(1, 3, 100, 150))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 19, 100, 150) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert shapes == ODD_SHAPES[name]


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_train_mode_returns_one_tensor(name):
    torch.manual_seed(0)
    model = build(name, num_classes=7).train()
    out = model(torch.randn(2, 3, 48, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7, 48, 64)
    if name == "deeplabv3plus_wrn38":
        # like the original: the ASPP image-pooling BatchNorm cannot train on a single image
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            model(torch.randn(1, 3, 48, 64))
    else:
        # the auxiliary head keeps its parameters but takes no part in the output
        out.mean().backward()
        assert all(p.grad is None for p in model.dsn.parameters())
        assert model.head.bottleneck[3].weight.grad is not None


# --------------------------------------------------------------------------- tiny


def test_tiny_output_shape_and_parameter_count():
    torch.manual_seed(0)
    model = build("tiny").eval()
    assert isinstance(model, TinySegNet)
    assert count_parameters(model) == TINY_PARAMS
    with torch.no_grad():
        assert model(torch.randn(2, 3, 128, 256)).shape == (2, 19, 128, 256)
        assert model(torch.randn(1, 3, 100, 150)).shape == (1, 19, 100, 150)
    assert build("tiny", num_classes=3)(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_tiny_init_is_deterministic_under_manual_seed():
    torch.manual_seed(123)
    a = build("tiny").state_dict()
    torch.manual_seed(123)
    b = build("tiny").state_dict()
    torch.manual_seed(124)
    c = build("tiny").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem.0.0.weight"], c["stem.0.0.weight"])


def _train_tiny(steps: int) -> list[float]:
    torch.manual_seed(0)
    model = build("tiny", num_classes=5).train()
    images = torch.randn(4, 3, 64, 128)
    # a learnable target: the class depends on the sign pattern of two smoothed input channels
    smooth = nn.functional.avg_pool2d(images, 9, stride=1, padding=4)
    target = (smooth[:, 0] > 0).long() + 2 * (smooth[:, 1] > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_tiny_training_steps_reduce_loss_deterministically():
    losses = _train_tiny(8)
    assert losses[0] == pytest.approx(np.log(5), rel=0.05)  # near-uniform softmax at start
    assert losses[-1] < 0.75 * losses[0]
    assert _train_tiny(8) == losses


# --------------------------------------------------------------------------- registry


def test_registry_names_and_classes():
    assert available_models() == ["deeplabv3plus_wrn38", "dualgcn_resnet50", "tiny"]
    assert isinstance(_meta_model("deeplabv3plus_wrn38"), DeepLabV3PlusWRN38)
    assert isinstance(_meta_model("dualgcn_resnet50"), DualSegResNet50)
    with torch.device("meta"):
        assert build("dualgcn_resnet50", num_classes=3).head.bottleneck[3].out_channels == 3
        assert build("deeplabv3plus_wrn38", num_classes=3).final[6].out_channels == 3


def test_unknown_model_lists_registered_names():
    with pytest.raises(InputError) as info:
        build("resnet_9000")
    message = str(info.value)
    assert "resnet_9000" in message
    for name in available_models():
        assert name in message


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes(num_classes):
    with pytest.raises(InputError, match="num_classes"):
        build("tiny", num_classes=num_classes)


USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes=19):
            super().__init__()
            self.conv = nn.Conv2d(3, num_classes, 1)

        def forward(self, x):
            return self.conv(x)

    def make(num_classes):
        return Net(num_classes)

    def make_fixed():
        return Net(4)

    class Factories:
        @staticmethod
        def create(**kwargs):
            return Net(**kwargs)

    def not_a_model(num_classes):
        return "oops"

    def broken(num_classes):
        raise RuntimeError("no weights here")
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_seg_models.py").write_text(USER_MODULE)
    (tmp_path / "my_broken_models.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_bring_your_own_factory(user_module):
    x = torch.randn(1, 3, 8, 10)
    assert build("my_seg_models:make", num_classes=6)(x).shape == (1, 6, 8, 10)
    assert build("my_seg_models:make_fixed", num_classes=6)(x).shape == (1, 4, 8, 10)  # takes no num_classes
    assert build("my_seg_models:Factories.create", num_classes=2)(x).shape == (1, 2, 8, 10)
    assert build("my_seg_models:Net", num_classes=5)(x).shape == (1, 5, 8, 10)
    path_ref = f"{user_module / 'my_seg_models.py'}:make"
    assert build(path_ref, num_classes=3)(x).shape == (1, 3, 8, 10)


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("my_broken_models:make", "my_broken_models"),
        ("no_such_module_xyz:make", "no_such_module_xyz"),
        ("my_seg_models:missing", "has no attribute 'missing'"),
        ("my_seg_models:not_a_model", "expected a torch.nn.Module"),
        ("my_seg_models:broken", "no weights here"),
        ("nowhere/model.py:make", "not found"),
        ("my_seg_models:", "expected 'package.module:factory'"),
    ],
)
def test_bring_your_own_factory_errors(user_module, reference, fragment):
    with pytest.raises(InputError) as info:
        build(reference)
    assert fragment in str(info.value)
    assert reference.split(":")[0] in str(info.value)


# --------------------------------------------------------------------------- normalization


def test_normalize_layouts_and_values():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)
    expected = (images.astype(np.float64) / 255.0 - np.array(MEAN)) / np.array(STD)
    expected = torch.from_numpy(expected.transpose(0, 3, 1, 2).astype(np.float32))
    out = normalize(images)
    assert out.shape == (2, 3, 5, 7) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # the same images as float [0, 1] channels-first, as a tensor, and one image without batch axis
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(normalize(floats), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(normalize(images[1]), expected[1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(normalize(floats.permute(0, 2, 3, 1).numpy()), expected, rtol=0, atol=1e-6)
    assert normalize(images, dtype=torch.float64).dtype == torch.float64
    # a pixel with exactly the ImageNet mean colour maps to zero
    mean_pixel = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    assert normalize(mean_pixel, dtype=torch.float64).abs().max().item() < 1e-12


def test_normalize_ambiguous_layout_follows_dtype():
    uint8 = np.zeros((1, 3, 4, 3), dtype=np.uint8)  # both axes 1 and 3 have size 3
    uint8[..., 0] = 255  # channels-last red
    assert normalize(uint8).shape == (1, 3, 3, 4)
    assert normalize(uint8)[0, 0].min().item() == pytest.approx((1 - MEAN[0]) / STD[0], rel=1e-6)
    assert normalize(np.zeros((1, 3, 4, 3), dtype=np.float32)).shape == (1, 3, 4, 3)


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        (np.full((1, 4, 4, 3), 200.0, dtype=np.float32), "[0, 1]"),
        (np.zeros((1, 4, 4, 4), dtype=np.uint8), "3 RGB channels"),
        (np.zeros((4, 4), dtype=np.uint8), "shape"),
        (np.zeros((1, 4, 4, 3), dtype=np.int32), "uint8"),
    ],
)
def test_normalize_rejects_bad_input(images, fragment):
    with pytest.raises(InputError) as info:
        normalize(images)
    assert fragment in str(info.value)


def test_denormalize_inverts_normalize():
    images = np.random.default_rng(1).integers(0, 256, size=(2, 6, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(denormalize(normalize(images)), images)


# --------------------------------------------------------------------------- devices


def test_select_device(monkeypatch, caplog):
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    assert select_device(None) == torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="meta_ood.models"):
        assert select_device("cuda") == torch.device("cpu")
    assert "CUDA is not available" in caplog.text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert select_device("auto") == torch.device("cuda")
    assert select_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(InputError, match="cuda:3"):
        select_device("cuda:3")
    with pytest.raises(InputError, match="tpu"):
        select_device("tpu")


def test_autocast_context():
    import contextlib

    assert isinstance(autocast_context("cpu", enabled=True), contextlib.nullcontext)
    assert isinstance(autocast_context(torch.device("cuda"), enabled=False), contextlib.nullcontext)
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        ctx = autocast_context(torch.device("cuda"), enabled=True, dtype="bfloat16")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    with pytest.raises(InputError, match="float8"):
        autocast_context("cuda", dtype="float8")
    # on the CPU the context is a no-op: float32 in, float32 out
    model = build("tiny").eval()
    with torch.no_grad(), autocast_context(select_device("cpu"), enabled=True):
        assert model(torch.randn(1, 3, 32, 32)).dtype == torch.float32


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture
def tiny_pair():
    """A source model with non-default weights and buffers, and a fresh target model."""
    torch.manual_seed(0)
    source = build("tiny", num_classes=5)
    source.train()
    with torch.no_grad():
        source(torch.randn(2, 3, 32, 32))  # moves BN running stats away from their init
    torch.manual_seed(1)
    target = build("tiny", num_classes=5)
    return source, target


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize(
    "layout",
    ["meta_ood", "released_meta_ood", "model_key", "bare", "bare_module_prefix", "released_module_prefix"],
)
def test_checkpoint_container_formats_round_trip(tmp_path, tiny_pair, layout):
    source, target = tiny_pair
    path = tmp_path / "ckpt.pt"
    state = source.state_dict()
    if layout == "meta_ood":
        save_checkpoint(path, source, epoch=3, config_hash="abc123", extra={"loss": 0.25})
    elif layout == "released_meta_ood":  # what ood_training.py writes
        optimizer = torch.optim.Adam(source.parameters())
        torch.save({"epoch": 3, "state_dict": state, "optimizer_state_dict": optimizer.state_dict(),
                    "loss": torch.tensor(0.25)}, path)
    elif layout == "model_key":
        torch.save({"model": state, "epoch": 3}, path)
    elif layout == "bare":  # the upstream DGCNet file
        torch.save(state, path)
    elif layout == "bare_module_prefix":
        torch.save(_prefixed(state, "module."), path)
    else:  # the WRN38 layout: DataParallel names inside {'state_dict': ...}
        torch.save({"state_dict": _prefixed(state, "module."), "epoch": 3}, path)
    assert not any(torch.equal(state[k], target.state_dict()[k]) for k in ("stem.0.0.weight", "stem.0.1.running_mean"))
    meta = load_checkpoint(target, path)
    _assert_same_state(source, target)
    if layout.startswith("bare"):
        assert meta == {}
    else:
        assert meta["epoch"] == 3
    if layout == "meta_ood":
        assert meta["config_hash"] == "abc123" and meta["extra"] == {"loss": 0.25}
        assert meta["model_class"] == "meta_ood.models.tiny.TinySegNet"
    if layout == "released_meta_ood":
        assert "optimizer_state_dict" in meta and float(meta["loss"]) == 0.25
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source.eval()(x), rtol=0, atol=0)


def test_checkpoint_into_dataparallel_model_adds_prefix(tmp_path, tiny_pair):
    source, target = tiny_pair
    path = save_checkpoint(tmp_path / "c.pt", nn.DataParallel(source), epoch=1)
    state, _ = read_checkpoint(path)
    assert not any(k.startswith("module.") for k in state)  # wrappers are not saved
    wrapped = nn.DataParallel(target)
    load_checkpoint(wrapped, path)
    _assert_same_state(source, target)


def test_wrn_checkpoint_names_map_onto_bare_model():
    """The published WRN38 names (``module.`` prefix) match the bare model one for one, and back."""
    model_state = _meta_model("deeplabv3plus_wrn38").state_dict()
    published = {e["key"]: torch.empty(e["shape"], device="meta") for e in _schema("deeplabv3plus_wrn38")}
    matched, missing, unexpected, misshaped = _match_keys(model_state, published)
    assert (missing, unexpected, misshaped) == ([], [], [])
    assert list(matched) == list(model_state)
    # a DataParallel-wrapped model receiving a bare checkpoint
    wrapped_state = {"module." + k: v for k, v in model_state.items()}
    bare = {k.removeprefix("module."): v for k, v in published.items()}
    matched, missing, unexpected, misshaped = _match_keys(wrapped_state, bare)
    assert (missing, unexpected, misshaped) == ([], [], []) and list(matched) == list(wrapped_state)


def test_checkpoint_mismatch_gives_one_error_with_names(tmp_path, tiny_pair):
    source, target = tiny_pair
    state = dict(source.state_dict())
    del state["decoder.1.weight"]
    del state["stem.1.0.weight"]
    state["extra_head.weight"] = torch.zeros(3)
    state["classifier.weight"] = torch.zeros(7, 64, 1, 1)
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(InputError) as info:
        load_checkpoint(target, path)
    message = str(info.value)
    assert str(path) in message
    assert "2 missing keys" in message and "decoder.1.weight" in message and "stem.1.0.weight" in message
    assert "1 unexpected keys (extra_head.weight)" in message
    assert "1 mis-shaped keys" in message
    assert "classifier.weight: checkpoint [7, 64, 1, 1] vs model [5, 64, 1, 1]" in message


def test_checkpoint_mismatch_lists_first_names_only(tmp_path, tiny_pair):
    source, target = tiny_pair
    path = tmp_path / "other.pt"
    torch.save({f"layer{i}.weight": torch.zeros(1) for i in range(12)}, path)
    with pytest.raises(InputError) as info:
        load_checkpoint(target, path)
    message = str(info.value)
    first = ", ".join(f"layer{i}.weight" for i in range(5))
    assert f"12 unexpected keys ({first}, ... (7 more))" in message
    expected_missing = [k for k in target.state_dict() if not k.endswith("num_batches_tracked")]
    assert f"{len(expected_missing)} missing keys" in message


def test_checkpoint_non_strict_loads_matching_entries(tmp_path, tiny_pair, caplog):
    source, target = tiny_pair
    state = dict(source.state_dict())
    state["classifier.weight"] = torch.zeros(7, 64, 1, 1)
    state["unused"] = torch.zeros(2)
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    before = target.classifier.weight.clone()
    with caplog.at_level(logging.WARNING, logger="meta_ood.models.checkpoint"):
        load_checkpoint(target, path, strict=False)
    assert "unused" in caplog.text and "classifier.weight" in caplog.text
    assert torch.equal(target.classifier.weight, before)
    assert torch.equal(target.stem[0][0].weight, source.stem[0][0].weight)


def test_checkpoint_without_num_batches_tracked_loads(tmp_path, tiny_pair):
    source, target = tiny_pair
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pt"
    torch.save({"state_dict": state}, path)
    load_checkpoint(target, path)
    assert torch.equal(target.stem[0][1].running_var, source.stem[0][1].running_var)


def test_checkpoint_with_nan_is_rejected(tmp_path, tiny_pair):
    source, target = tiny_pair
    state = dict(source.state_dict())
    state["decoder.0.weight"] = state["decoder.0.weight"].clone()
    state["decoder.0.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"non-finite.*decoder\.0\.weight"):
        load_checkpoint(target, path)


def test_checkpoint_missing_and_corrupt_files(tmp_path, tiny_pair):
    _, target = tiny_pair
    with pytest.raises(InputError, match="not found") as info:
        load_checkpoint(target, tmp_path / "nope.pt")
    assert "nope.pt" in str(info.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(truncated, target)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    for path in (garbage, truncated):
        with pytest.raises(InputError) as info:
            load_checkpoint(target, path)
        assert str(path) in str(info.value)
    no_weights = tmp_path / "no_weights.pt"
    torch.save({"epoch": 1, "notes": "nothing else"}, no_weights)
    with pytest.raises(InputError, match="no model weights found.*'epoch'"):
        load_checkpoint(target, no_weights)


def test_checkpoint_extra_python_objects(tmp_path, tiny_pair):
    source, target = tiny_pair
    harmless = tmp_path / "nvidia_style.pt"
    torch.save({"state_dict": source.state_dict(), "mean_iu": np.float64(0.8), "epoch": np.int64(175),
                "command": argparse.Namespace(arch="network.deepv3.DeepWV3Plus"), "hist": np.arange(3)}, harmless)
    meta = load_checkpoint(target, harmless)
    assert meta["mean_iu"] == 0.8 and meta["command"].arch == "network.deepv3.DeepWV3Plus"
    _assert_same_state(source, target)

    unusual = tmp_path / "unusual.pt"
    torch.save({"state_dict": source.state_dict(), "ratio": fractions.Fraction(1, 3)}, unusual)
    with pytest.raises(InputError) as info:
        load_checkpoint(target, unusual)
    hint = f"meta-ood convert-checkpoint {unusual} --out {tmp_path / 'unusual.weights.pt'}"
    assert "fractions.Fraction" in str(info.value) and hint in str(info.value)
    assert load_checkpoint(target, unusual, trusted=True)["ratio"] == fractions.Fraction(1, 3)

    whole = tmp_path / "whole_model.pt"
    torch.save(source, whole)
    with pytest.raises(InputError, match="meta-ood convert-checkpoint"):
        load_checkpoint(target, whole)
    load_checkpoint(target, whole, trusted=True)
    _assert_same_state(source, target)
    # the command the message names: afterwards the file loads safely, with the same weights
    from meta_ood.cli import main

    for path in (unusual, whole):
        converted = path.with_suffix(".weights.pt")
        assert main(["convert-checkpoint", str(path), "--out", str(converted)]) in (0, None)
        torch.nn.init.zeros_(next(target.parameters()))
        load_checkpoint(target, converted)
        _assert_same_state(source, target)


def test_checkpoint_resume_restores_optimizer(tmp_path):
    torch.manual_seed(0)
    model = build("tiny", num_classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 32, 32)).mean().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "epoch1.pt", model, optimizer=optimizer, epoch=1, config_hash="h")
    fresh = build("tiny", num_classes=3)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    meta = load_checkpoint(fresh, path, optimizer=fresh_opt)
    assert meta["epoch"] == 1
    first = next(iter(optimizer.state.values()))
    restored = next(iter(fresh_opt.state.values()))
    assert torch.equal(first["exp_avg"], restored["exp_avg"]) and float(restored["step"]) == 1.0


def test_save_checkpoint_is_atomic(tmp_path, tiny_pair, monkeypatch):
    source, _ = tiny_pair
    path = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(path, source, epoch=2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]
    original = path.read_bytes()

    def failing_save(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_checkpoint(path, source, epoch=3)
    assert path.read_bytes() == original  # the old file survives, no temp file is left
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]


def test_config_hash():
    cfg = {"seed": 0, "model": {"name": "tiny", "lr": 1e-3}, "paths": [Path("a/b")]}
    reordered = {"paths": ["a/b"], "model": {"lr": 0.001, "name": "tiny"}, "seed": 0}
    assert config_hash(cfg) == config_hash(reordered)
    assert re.fullmatch(r"[0-9a-f]{16}", config_hash(cfg))
    assert config_hash({"a": 1}) == "015abd7f5cc57a2d"  # sha256 of '{"a":1}'
    assert config_hash({"seed": 1, "model": cfg["model"], "paths": ["a/b"]}) != config_hash(cfg)
    with pytest.raises(TypeError):
        config_hash({"x": object()})
