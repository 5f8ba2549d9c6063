"""Start-up checks (preflight) and the whole-dataset check, on demo trees in the real layouts."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from meta_ood.check_data import check_data, check_data_stage, format_report
from meta_ood.config import validate_config
from meta_ood.datasets.demo import DemoConfig, generate
from meta_ood.errors import InputError
from meta_ood.models import build, save_checkpoint
from meta_ood.preflight import (
    check_checkpoint,
    check_coco_names,
    check_dataset,
    check_device,
    coco_category_names,
    dataset_specs,
    preflight,
    raise_problems,
)

DEMO = DemoConfig(height=64, width=128, n_train=2, n_val=2, n_coco=4, n_lostandfound=3, n_fishyscapes=2)
LAF_LABEL = "lostandfound/gtCoarse/test/01_Demo_Ring_1/01_Demo_Ring_1_000000_000040_gtCoarse_labelIds.png"
LAF_IMAGE = "lostandfound/leftImg8bit/test/02_Pixel_Weg_7/02_Pixel_Weg_7_000000_000050_leftImg8bit.png"
CS_VAL_LABEL = "cityscapes/gtFine/val/quellstadt/quellstadt_000000_000019_gtFine_labelIds.png"


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    generate(root, DEMO, progress=False)
    return root


@pytest.fixture
def tree(demo_tree, tmp_path) -> Path:
    """A private copy of the demo tree, free to damage."""
    return Path(shutil.copytree(demo_tree, tmp_path / "data"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", build("tiny", 19))


def make_config(root: Path, checkpoint: Path | None = None, **blocks) -> tuple[dict, dict]:
    """(validated config, user config) of a run on the tree at ``root`` using every dataset."""
    raw = {
        "run": "test",
        "datasets": {
            "cityscapes": {"root": str(root / "cityscapes")},
            "coco": {"root": str(root / "coco")},
            "lostandfound": {"root": str(root / "lostandfound")},
            "fishyscapes_static": {"root": str(root / "fishyscapes")},
            "fishyscapes_lostandfound": {"root": str(root / "fishyscapes")},
        },
        "models": {"tiny": {"arch": "tiny", "checkpoint": None if checkpoint is None else str(checkpoint),
                            "finetune": {"epochs": 2}}},
        "evaluation": {"ood_datasets": ["lostandfound", "fishyscapes_static", "fishyscapes_lostandfound"],
                       "segment_datasets": ["lostandfound"]},
    }
    for key, value in blocks.items():
        raw[key] = {**raw.get(key, {}), **value}
    return validate_config(copy.deepcopy(raw)), raw


def problems_of(config, raw=None, **kw) -> list[str]:
    with pytest.raises(InputError) as err:
        preflight(config, raw, **kw)
    text = str(err.value)
    assert text.startswith("preflight: ")
    return [line[2:] for line in text.splitlines()[1:]]


# ------------------------------------------------------------------------------------ preflight


def test_clean_config_passes(tree, tiny_checkpoint):
    config, raw = make_config(tree, tiny_checkpoint)
    assert preflight(config, raw) is None
    config, raw = make_config(tree, None)  # tiny without checkpoint: trained here
    assert preflight(config, raw) is None


def test_dataset_specs_follow_the_config(tree):
    config, _ = make_config(tree, evaluation={"miou": False, "ood_datasets": ["fishyscapes_lostandfound"],
                                              "segment_datasets": []})
    specs = dataset_specs(config)
    assert list(specs) == ["cityscapes_train", "coco", "fishyscapes_lostandfound"]
    # a null laf_root means the LostAndFound root
    assert specs["fishyscapes_lostandfound"]["laf_root"] == str(tree / "lostandfound")
    assert specs["cityscapes_train"] == {"kind": "cityscapes", "root": str(tree / "cityscapes"), "split": "train"}


def test_missing_label_file_is_named(tree):
    label = tree / CS_VAL_LABEL
    label.unlink()
    config, raw = make_config(tree)
    (problem,) = problems_of(config, raw)
    image = tree / "cityscapes/leftImg8bit/val/quellstadt/quellstadt_000000_000019_leftImg8bit.png"
    assert problem.startswith("datasets.cityscapes (val split): ")
    assert f"{image}: no ground truth found (expected" in problem and str(label) in problem


def test_undefined_label_id_in_first_pair(tree):
    path = tree / LAF_LABEL
    label = np.array(Image.open(path))
    label[:2, :3] = 77  # LostAndFound ids are 0..43
    Image.fromarray(label).save(path)
    config, raw = make_config(tree)
    (problem,) = problems_of(config, raw)
    assert problem.startswith(f"datasets.lostandfound: {path}: ") and "[77]" in problem
    assert check_dataset("lostandfound", tree / "lostandfound", "test") == [problem[len("datasets.lostandfound: "):]]


def test_missing_root_and_split_folder(tree):
    assert check_dataset("lostandfound", tree / "nowhere") == [
        f"{tree / 'nowhere'}: LostAndFound root not found (expected a directory)"
    ]
    (problem,) = check_dataset("cityscapes", tree / "cityscapes", "test")
    assert problem.startswith(f"{tree / 'cityscapes/leftImg8bit/test'}: Cityscapes split 'test' images not found")
    assert check_dataset("fishyscapes_lostandfound", tree / "fishyscapes", laf_root=tree / "lostandfound") == []
    assert check_dataset("fishyscapes_static", tree / "fishyscapes") == []
    assert "unknown dataset kind 'kitti'" in check_dataset("kitti", tree)[0]


def test_coco_tree_checks(tree):
    assert check_dataset("coco", tree / "coco") == []
    first = min((tree / "coco/train2017").glob("*.jpg"))
    first.write_bytes(first.read_bytes()[:200])  # truncated JPEG
    (tree / "coco/annotations/instances_train2017.json").unlink()
    problems = check_dataset("coco", tree / "coco", "train2017")
    assert len(problems) == 2
    assert problems[0].startswith(f"{tree / 'coco/annotations/instances_train2017.json'}: COCO annotation file not found")
    assert problems[1].startswith(f"{first}: cannot read image")


def test_wrong_coco_exclude_name(tree):
    config, raw = make_config(tree, coco_filter={"exclude": ["person", "motorbike", "zebraa"]})
    (problem,) = problems_of(config, raw)
    annotations = tree / "coco/annotations/instances_train2017.json"
    assert problem.startswith(f"coco_filter.exclude: {annotations}: 'motorbike' (did you mean 'motorcycle'")
    assert "'zebraa' (did you mean 'zebra'" in problem and "'person'" not in problem.split("not among")[0]
    n = len(json.loads(annotations.read_text())["categories"])
    assert f"not among the {n} category names" in problem


def test_coco_category_names_tail_and_full_parse(tmp_path):
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "traffic light"}, {"id": 3, "name": "zebra"}]
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": 4, "width": 4, "note": "x" * 5000} for i in range(300)]
    # official order, categories last (read from the tail; the file is larger than the searched tail)
    last = tmp_path / "last.json"
    last.write_text(json.dumps({"info": {}, "images": images * 2, "annotations": [], "categories": cats}))
    assert last.stat().st_size > (1 << 20)
    assert coco_category_names(last) == ["person", "traffic light", "zebra"]
    # categories first and a nested 'categories' key at the end: the whole file is parsed
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"categories": cats[:2], "images": [], "annotations": [], "x": {"categories": [{"name": "no"}]}}))
    assert coco_category_names(first) == ["person", "traffic light"]
    assert check_coco_names(last, ["zebra", "person"]) == []
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    assert "not a valid JSON file" in check_coco_names(broken, ["person"])[0]


def test_checkpoint_with_wrong_keys(tmp_path):
    torch.manual_seed(0)
    sd = build("tiny", 19).state_dict()
    keys = list(sd)
    renamed, reshaped = keys[0], keys[3]
    assert sd[reshaped].ndim == 1
    bad = dict(sd)
    bad["renamed." + renamed] = bad.pop(renamed)
    bad[reshaped] = torch.zeros(sd[reshaped].numel() + 1)
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": bad}, path)
    (problem,) = check_checkpoint("tiny", 19, path)
    assert problem.startswith(f"{path}: checkpoint does not match the model TinySegNet")
    assert f"1 missing keys ({renamed})" in problem and f"1 unexpected keys (renamed.{renamed})" in problem
    n = sd[reshaped].numel()
    assert f"1 mis-shaped keys ({reshaped}: checkpoint [{n + 1}] vs model [{n}])" in problem
    # the class count is part of the architecture: the classifier's shapes differ
    good = tmp_path / "good.pt"
    torch.save({"module." + k: v for k, v in sd.items()}, good)  # DataParallel prefix, bare state dict
    assert check_checkpoint("tiny", 19, good) == []
    (other,) = check_checkpoint("tiny", 7, good)
    assert "mis-shaped keys" in other and "[7," in other and "[19," in other


def test_checkpoint_problems_in_preflight(tree, tmp_path):
    torch.manual_seed(0)
    sd = build("tiny", 19).state_dict()
    path = tmp_path / "wrong.pt"
    torch.save({"state_dict": {k.replace("decoder", "head"): v for k, v in sd.items()}}, path)
    config, raw = make_config(tree, path)
    (problem,) = problems_of(config, raw)
    assert problem.startswith(f"models.tiny.checkpoint: {path}: checkpoint does not match") and "missing keys" in problem
    missing = tmp_path / "missing.pt"
    config, raw = make_config(tree, missing)
    assert problems_of(config, raw) == [f"models.tiny.checkpoint: {missing}: checkpoint file not found"]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    config, raw = make_config(tree, junk)
    (problem,) = problems_of(config, raw)
    assert problem.startswith(f"models.tiny.checkpoint: {junk}: ") and "corrupt" in problem  # the loader's message


def test_paper_checkpoint_on_meta_device_shapes():
    # the 137M-parameter network is built on the meta device: no memory, and its shapes are complete
    with torch.device("meta"):
        model = build("deeplabv3plus_wrn38", 19)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert all(v.device.type == "meta" for v in model.state_dict().values())
    assert sum(int(np.prod(s)) for s in shapes.values()) > 100_000_000


def test_paper_arch_without_checkpoint(tree):
    config, raw = make_config(tree, models={"wrn": {"arch": "deeplabv3plus_wrn38"}, "tiny": {"arch": "tiny"}})
    (problem,) = problems_of(config, raw)
    assert problem.startswith("models.wrn.checkpoint is null for architecture 'deeplabv3plus_wrn38'")
    assert "models.wrn.baseline_training" in problem
    # without the user's config the defaults' baseline_training block is not taken as explicit
    assert problems_of(config) == [problem]
    raw["models"]["wrn"]["baseline_training"] = {"epochs": 1}
    config = validate_config(copy.deepcopy(raw))
    assert preflight(config, raw) is None
    config["models"]["wrn"]["arch"] = "no_such_net"
    (problem,) = problems_of(config, raw)
    assert problem.startswith("models.wrn.arch: unknown model 'no_such_net'")


def test_cuda_asked_without_cuda(tree, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config, raw = make_config(tree, models={"tiny": {"arch": "tiny", "finetune": {"device": "cuda:1"}}},
                              inference={"device": "cuda"})
    problems = problems_of(config, raw)
    assert len(problems) == 2
    assert problems[0].startswith("models.tiny.finetune.device: 'cuda:1' asks for a GPU, but CUDA is not available")
    assert problems[1].startswith("inference.device: 'cuda' asks for a GPU")
    assert preflight(config, raw, check_devices=False) is None
    config["inference"]["device"] = "auto"
    config["models"]["tiny"]["finetune"]["device"] = "cpu"
    assert preflight(config, raw) is None


def test_device_index_and_spelling(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") is None and check_device("CUDA") is None and check_device("auto") is None
    assert check_device("cuda:2") == "'cuda:2': only 2 CUDA device(s) visible (cuda:0 .. cuda:1)"
    assert check_device("gpu") == "'gpu' is not a device; expected auto, cpu, cuda or cuda:N"
    assert check_device("cuda:x") == "'cuda:x' is not a device; expected auto, cpu, cuda or cuda:N"


def test_cross_key_consistency(tree):
    config, raw = make_config(tree, report={"example_threshold": 0.45, "main_model": "wrn"},
                              evaluation={"thresholds": [0.3, 0.5], "ood_epoch": 3})
    problems = problems_of(config, raw)
    assert problems == [
        "evaluation.ood_epoch=3 is larger than models.tiny.finetune.epochs=2: "
        "the reported OoD epoch must be one of the fine-tuning epochs",
        "report.example_threshold=0.45 is not one of evaluation.thresholds [0.3, 0.5]: "
        "the example figure shows the segments of one of those thresholds",
        "report.main_model='wrn' is not one of the configured models ['tiny']",
    ]
    config, raw = make_config(tree, report={"example_threshold": 0.5, "main_model": "tiny"},
                              evaluation={"thresholds": [0.3, 0.5], "ood_epoch": 2})
    assert preflight(config, raw) is None


@pytest.mark.parametrize("scorer", ["max_logit", "energy"])
def test_logit_scorer_needs_no_stored_logits(tree, scorer):
    """The dump computes the logit scorers' planes on the device: no stored logits are required."""
    config, raw = make_config(tree, evaluation={"scorer": scorer})
    assert config["inference"]["store_logits"] is False
    assert preflight(config, raw) is None


def test_several_problems_in_one_error(tree, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tree / CS_VAL_LABEL).unlink()
    shutil.rmtree(tree / "fishyscapes" / "Static")
    config, raw = make_config(tree, tmp_path / "none.pt", coco_filter={"exclude": ["cars"]},
                              report={"main_model": "x"}, inference={"device": "cuda:0"})
    with pytest.raises(InputError) as err:
        preflight(config, raw)
    lines = str(err.value).splitlines()
    assert lines[0] == "preflight: 6 problem(s) found:"
    keys = [line.split(":")[0] for line in lines[1:]]
    assert keys == ["- datasets.cityscapes (val split)", "- coco_filter.exclude", "- datasets.fishyscapes_static",
                    "- models.tiny.checkpoint", "- report.main_model='x' is not one of the configured models ['tiny']",
                    "- inference.device"]


def test_demo_roots_are_skipped_and_outside_roots_refused(tmp_path):
    demo_root = tmp_path / "demo"  # nothing generated yet
    config, raw = make_config(demo_root, demo={"enabled": True, "root": str(demo_root)})
    assert preflight(config, raw) is None
    config["datasets"]["coco"]["root"] = "/x/coco"
    (problem,) = problems_of(config, raw)
    assert problem == (f"demo.enabled is true but datasets.coco.root=/x/coco is outside demo.root={demo_root}: "
                       "the demo only writes into its own folder")


def test_missing_cityscapes_root_is_listed_once(tree):
    shutil.rmtree(tree / "cityscapes")
    config, raw = make_config(tree)
    assert problems_of(config, raw) == [
        f"datasets.cityscapes: {tree / 'cityscapes'}: Cityscapes root not found (expected a directory)"
    ]


def test_unset_root_of_a_used_dataset(tree):
    config, raw = make_config(tree)
    config["datasets"]["lostandfound"]["root"] = None
    config["evaluation"]["ood_datasets"] = ["lostandfound"]
    (problem,) = problems_of(config, raw)
    assert problem == "datasets.lostandfound.root is not set, but the run uses dataset lostandfound; give the folder"


def test_raise_problems():
    assert raise_problems([]) is None
    with pytest.raises(InputError, match=r"^cli: 2 problem\(s\) found:\n- a\n- b$"):
        raise_problems(["a", "b", "a"], "cli")


# ------------------------------------------------------------------------------------ check_data


def _specs(root: Path) -> dict:
    return {
        "cityscapes_train": {"kind": "cityscapes", "root": str(root / "cityscapes"), "split": "train"},
        "cityscapes_val": {"kind": "cityscapes", "root": str(root / "cityscapes"), "split": "val"},
        "coco": {"kind": "coco", "root": str(root / "coco"), "split": "train2017"},
        "lostandfound": {"kind": "lostandfound", "root": str(root / "lostandfound"), "split": "test"},
        "fishyscapes_static": {"kind": "fishyscapes_static", "root": str(root / "fishyscapes"), "split": "Static"},
        "fishyscapes_lostandfound": {"kind": "fishyscapes_lostandfound", "root": str(root / "fishyscapes"),
                                     "split": "LostAndFound", "laf_root": str(root / "lostandfound")},
    }


def test_check_data_clean_tree_counts(demo_tree):
    report = check_data(_specs(demo_tree), progress=False)
    assert report.ok and report.problems == []
    # train has label ids and train ids, val label ids only; COCO masks come from the json
    assert report.images == {"cityscapes_train": 2, "cityscapes_val": 2, "coco": 4, "lostandfound": 3,
                             "fishyscapes_static": 2, "fishyscapes_lostandfound": 3}
    assert report.labels == {"cityscapes_train": 4, "cityscapes_val": 2, "coco": 0, "lostandfound": 3,
                             "fishyscapes_static": 2, "fishyscapes_lostandfound": 3}
    assert report.files_checked == 16 + 14
    text = format_report(report)
    assert "0 problem(s) in 0 file(s); 16 images and 14 label files read." in text
    assert "No problems found." in text


def test_check_data_smiyc_road_anomaly_and_noknown(tree):
    """The benchmark layouts go through the same whole-dataset check; a bad label value is named."""
    from meta_ood.datasets import open_dataset

    specs = {"anomaly": {"kind": "smiyc_anomaly", "root": str(tree / "smiyc")},
             "obstacle": {"kind": "smiyc_obstacle", "root": str(tree / "smiyc")},
             "noknown": {"kind": "lostandfound_noknown", "root": str(tree / "lostandfound_noknown")},
             "road": {"kind": "road_anomaly", "root": str(tree / "road_anomaly")}}
    expected = {name: len(open_dataset(spec["kind"], spec["root"])) for name, spec in specs.items()}
    report = check_data(specs, progress=False)
    assert report.ok and report.images == expected and all(n > 0 for n in expected.values())
    label = sorted((tree / "smiyc" / "dataset_AnomalyTrack" / "labels_masks").glob("*_labels_semantic.png"))[0]
    bad = np.array(Image.open(label))
    bad[0, 0] = 7
    Image.fromarray(bad).save(label)
    report = check_data(specs, progress=False)
    assert [(p.dataset, Path(p.file).name) for p in report.problems] == [("anomaly", label.name)]
    assert "7 (1 px)" in report.problems[0].problem


def test_check_data_reports_every_problem(tree):
    label_path = tree / LAF_LABEL
    label = np.array(Image.open(label_path))
    label[:3, :4] = 77  # 12 pixels
    label[-1, :5] = 200  # 5 pixels
    Image.fromarray(label).save(label_path)
    image_path = tree / LAF_IMAGE
    image_path.write_bytes(image_path.read_bytes()[: image_path.stat().st_size // 2])
    cs_label = tree / CS_VAL_LABEL
    ids = np.array(Image.open(cs_label))
    ids[0, 0] = 34  # first id outside the Cityscapes table (license plate is -1)
    Image.fromarray(ids).save(cs_label)
    (tree / "fishyscapes/Static/0001.png").unlink()
    fs = tree / "fishyscapes/Static/0000.png"
    Image.fromarray(np.array(Image.open(fs))[:, :-2]).save(fs)  # 2 columns narrower than the image

    report = check_data(_specs(tree), progress=False)
    rows = [(p.dataset, p.file, p.problem) for p in report.problems]
    assert rows[0] == ("cityscapes_val", str(cs_label), "undefined label ids 34 (1 px): not in the cityscapes label table")
    assert ("lostandfound", str(label_path),
            "undefined label ids 77 (12 px), 200 (5 px): not in the lostandfound label table") in rows
    # the truncated LostAndFound image is also an image of Fishyscapes LostAndFound
    bad_image = [r for r in rows if r[1] == str(image_path)]
    assert [r[0] for r in bad_image] == ["lostandfound", "fishyscapes_lostandfound"]
    assert all(r[2] == "cannot read image (image file is truncated)" for r in bad_image)
    assert ("fishyscapes_static", str(tree / "fishyscapes/Static/0001.jpg"),
            "label not found (expected 0001.png next to the image)") in rows
    assert ("fishyscapes_static", str(fs), "label size 126x64 does not match image 0000.jpg size 128x64 (width x height)") in rows
    assert len(rows) == 6 and report.files_with_problems == 6
    # every file was still read: the damaged ones count
    assert report.images["lostandfound"] == 3 and report.labels["lostandfound"] == 3
    assert report.images["fishyscapes_static"] == 2 and report.labels["fishyscapes_static"] == 1
    text = format_report(report)
    assert "6 problem(s) in 6 file(s)" in text
    assert f"| lostandfound | {label_path} | undefined label ids 77 (12 px), 200 (5 px)" in text


def test_check_data_listing_problems_and_train_ids(tree):
    (tree / "cityscapes/gtFine/train/ashbury/ashbury_000000_000019_gtFine_labelIds.png").unlink()
    (tree / "cityscapes/gtFine/train/ashbury/ashbury_000000_000019_gtFine_labelTrainIds.png").unlink()
    trn = tree / "cityscapes/gtFine/train/demotown/demotown_000000_000019_gtFine_labelTrainIds.png"
    arr = np.array(Image.open(trn))
    arr[5:7, 5:8] = 19  # 6 pixels outside 0..18 and 255
    Image.fromarray(arr).save(trn)
    specs = {"train": _specs(tree)["cityscapes_train"], "gone": {"kind": "lostandfound", "root": str(tree / "gone")},
             "odd": {"kind": "kitti", "root": str(tree)}}
    report = check_data(specs, progress=False)
    rows = [(p.dataset, p.file, p.problem) for p in report.problems]
    image = tree / "cityscapes/leftImg8bit/train/ashbury/ashbury_000000_000019_leftImg8bit.png"
    assert rows[0][:2] == ("train", str(image)) and rows[0][2].startswith("label not found (expected ")
    allowed = list(range(19)) + [255]
    assert rows[1] == ("train", str(trn), f"undefined train ids 19 (6 px): expected values in {allowed}")
    assert rows[2] == ("gone", str(tree / "gone"), "LostAndFound root not found (expected a directory)")
    assert rows[3][0] == "odd" and rows[3][2].startswith("unknown dataset kind 'kitti'")
    assert report.images == {"train": 2, "gone": 0, "odd": 0} and report.labels == {"train": 2, "gone": 0, "odd": 0}


def test_check_data_coco_masks(tree, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    ids = sorted(p.stem for p in (tree / "coco/train2017").glob("*.jpg"))
    size = Image.open(tree / "coco/train2017" / f"{ids[0]}.jpg").size
    Image.fromarray(np.zeros(size[::-1], np.uint8)).save(masks / f"{ids[0]}.png")
    bad = np.zeros(size[::-1], np.uint8)
    bad[0, :3] = 7
    Image.fromarray(bad).save(masks / "000000000001.png")  # no such image
    spec = {"coco": {"kind": "coco", "root": str(tree / "coco"), "split": "train2017", "masks_dir": str(masks)}}
    report = check_data(spec, progress=False)
    assert [(p.file, p.problem) for p in report.problems] == [
        (str(masks / "000000000001.png"), f"image {tree / 'coco/train2017/000000000001.jpg'} not found")
    ]
    assert report.images == {"coco": 1} and report.labels == {"coco": 1}
    Image.fromarray(bad).save(masks / f"{ids[0]}.png")
    report = check_data(spec, progress=False)
    assert report.problems[-1].problem == "undefined train ids 7 (3 px): expected values in [0, 254]"


def test_check_data_stage_writes_and_fails(tree, tmp_path, capsys):
    out = tmp_path / "out" / "check_data.md"
    specs = {"lostandfound": _specs(tree)["lostandfound"]}
    report = check_data_stage(specs, out, progress=False)
    assert report.ok and "No problems found." in out.read_text()
    image_path = tree / LAF_IMAGE
    image_path.write_bytes(image_path.read_bytes()[:100])
    with pytest.raises(InputError) as err:
        check_data_stage(specs, out, progress=False)
    assert str(err.value).startswith(f"check_data: 1 problem(s) in 1 file(s); the full report went to {out} and")
    assert f"- lostandfound: {image_path}: cannot read image" in str(err.value)
    assert f"| lostandfound | {image_path} | cannot read image" in out.read_text()
    assert "1 problem(s) in 1 file(s)" in capsys.readouterr().out


def test_custom_factory_failure_is_one_problem(tmp_path, monkeypatch):
    """A user's `module:factory` that raises is reported as a problem naming the architecture, not a traceback."""
    (tmp_path / "broken_net.py").write_text("def build(num_classes=19):\n    raise RuntimeError('no weights file here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = tmp_path / "x.pt"
    torch.save({"w": torch.zeros(1)}, ckpt)
    problems = check_checkpoint("broken_net:build", 19, ckpt)
    assert len(problems) == 1 and "broken_net:build" in problems[0] and "no weights file here" in problems[0]


def test_third_party_smiyc_methods_need_their_score_folders(tree, tmp_path):
    method = tmp_path / "other_method"
    (method / "smiyc_obstacle").mkdir(parents=True)
    config, raw = make_config(tree, evaluation={"smiyc_datasets": ["smiyc_obstacle"]},
                              datasets={"smiyc_obstacle": {"root": str(tree / "smiyc")}},
                              smiyc={"methods": {"other": str(method)}})
    assert problems_of(config, raw) == [
        f"smiyc.methods.other: {method / 'ObstacleTrack-all'}: no <fid>.hdf5 score files (expected one per frame of "
        "smiyc_obstacle, in the benchmark's folder ObstacleTrack-all/ or in smiyc_obstacle/)"
    ]
    from meta_ood.datasets import open_dataset
    from meta_ood.smiyc.scorefiles import write_scores

    track = open_dataset("smiyc_obstacle", str(tree / "smiyc"))
    for sample in track.samples:  # a score map of the frame size for every frame, labelled or not
        width, height = Image.open(sample.image).size
        write_scores(method / "smiyc_obstacle" / f"{sample.name}.hdf5", np.zeros((height, width), np.float32))
    assert preflight(config, raw) is None
    # the benchmark's own folder name (what the official inference writes) is found as well
    (method / "smiyc_obstacle").rename(method / "ObstacleTrack-all")
    assert preflight(config, raw) is None
    config, raw = make_config(tree, evaluation={"smiyc_datasets": ["smiyc_obstacle"]})
    assert problems_of(config, raw) == ["datasets.smiyc_obstacle.root is not set, but the run uses dataset "
                                        "smiyc_obstacle; give the folder"]


def test_only_the_unlabelled_smiyc_split_cannot_be_evaluated(tree):
    config, raw = make_config(tree, datasets={"smiyc_anomaly": {"root": str(tree / "smiyc"), "split": "test"}},
                              evaluation={"ood_datasets": ["lostandfound", "smiyc_anomaly"],
                                          "smiyc_datasets": ["smiyc_anomaly"]})
    assert problems_of(config, raw) == [
        "evaluation.ood_datasets has smiyc_anomaly with split 'test', which has no labels: set "
        "datasets.smiyc_anomaly.split to 'all' (every frame gets a score file, the labelled validation frames are "
        "evaluated) or 'validation'"
    ]
    for split in ("all", "validation"):  # both hold the labelled validation frames
        config, raw = make_config(tree, datasets={"smiyc_anomaly": {"root": str(tree / "smiyc"), "split": split}},
                                  evaluation={"ood_datasets": ["lostandfound", "smiyc_anomaly"],
                                              "segment_datasets": ["smiyc_anomaly"], "smiyc_datasets": ["smiyc_anomaly"]})
        assert preflight(config, raw) is None
    config, raw = make_config(tree, datasets={"smiyc_anomaly": {"root": str(tree / "smiyc"), "split": "test"}},
                              evaluation={"smiyc_datasets": ["smiyc_anomaly"]})
    assert preflight(config, raw) is None  # score files for a submission: fine
