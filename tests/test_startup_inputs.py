"""Start-up checks of every configured input (ROI masks, lists, SMIYC score files, the COCO json, class counts)
and the whole-dataset check of every dataset kind, on trees in the real layouts."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_real_tree, run_snakemake
from meta_ood import cli
from meta_ood.check_data import check_data
from meta_ood.coco_filter import select_images
from meta_ood.datasets import DATASET_KINDS, open_dataset
from meta_ood.models import build
from meta_ood.models.checkpoint import compare_state_dicts
from meta_ood.preflight import preflight
from meta_ood.smiyc.scorefiles import write_scores
from test_preflight import make_config, problems_of

ROI_FIX = "give a binary mask image of the label size, 0 outside and 1 or 255 inside, or null for none"


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "data"
    make_real_tree(root)
    return root


@pytest.fixture
def tree(real_tree, tmp_path) -> Path:
    """A private copy of the tree, free to damage."""
    return Path(shutil.copytree(real_tree, tmp_path / "data"))


def _label_size(tree: Path) -> tuple[int, int]:
    """(width, height) of the LostAndFound labels of the tree."""
    first = open_dataset("lostandfound", str(tree / "lostandfound")).samples[0]
    return Image.open(first.label_ids or first.train_ids).size


# ------------------------------------------------------------------------------------ ROI masks


def _roi_config(tree: Path, roi: Path, kind: str = "lostandfound") -> tuple[dict, dict]:
    if kind == "lostandfound":
        return make_config(tree, datasets={"lostandfound": {"root": str(tree / "lostandfound"), "roi": str(roi)}})
    return make_config(tree, datasets={kind: {"root": str(tree / kind), "roi": str(roi)}},
                       evaluation={"smiyc_datasets": [kind]})


@pytest.mark.parametrize("kind", ["lostandfound", "lostandfound_noknown"])
def test_roi_missing(tree, tmp_path, kind):
    roi = tmp_path / "nope.png"
    config, raw = _roi_config(tree, roi, kind)
    assert problems_of(config, raw) == [f"datasets.{kind}.roi: {roi}: ROI mask file not found ({ROI_FIX})"]


@pytest.mark.parametrize("kind", ["lostandfound", "lostandfound_noknown"])
def test_roi_of_another_size(tree, tmp_path, kind):
    width, height = _label_size(tree)
    roi = tmp_path / "roi.png"
    Image.fromarray(np.full((height, width - 1), 255, np.uint8)).save(roi)
    config, raw = _roi_config(tree, roi, kind)
    label = open_dataset("lostandfound", str(tree / kind)).samples[0].label_ids
    assert problems_of(config, raw) == [
        f"datasets.{kind}.roi: {roi}: ROI mask size {width - 1}x{height} does not match the label size "
        f"{width}x{height} of {label} (width x height) (give a mask of the label size)"
    ]
    Image.fromarray(np.full((height, width), 255, np.uint8)).save(roi)  # the label size: fine
    assert preflight(config, raw) is None


def test_roi_not_binary_or_unreadable(tree, tmp_path):
    width, height = _label_size(tree)
    roi = tmp_path / "grey.png"
    mask = np.zeros((height, width), np.uint8)
    mask[0, :3] = 7
    Image.fromarray(mask).save(roi)
    config, raw = _roi_config(tree, roi)
    assert problems_of(config, raw) == [
        f"datasets.lostandfound.roi: {roi}: the ROI mask must hold 0 (outside) and 1 or 255 (inside), "
        f"got values [0, 7] ({ROI_FIX})"
    ]
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(rgb)
    config, raw = _roi_config(tree, rgb)
    assert problems_of(config, raw) == [
        f"datasets.lostandfound.roi: {rgb}: the ROI mask must be a single-channel binary image, got PIL mode 'RGB' "
        f"({ROI_FIX})"
    ]
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.full((height, width), 255, np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    config, raw = _roi_config(tree, truncated)
    (problem,) = problems_of(config, raw)
    assert problem.startswith(f"datasets.lostandfound.roi: {truncated}: cannot read image (") and problem.endswith(
        f"({ROI_FIX})")


@pytest.mark.slow
def test_bad_roi_stops_the_workflow_before_any_job(real_tree, tmp_path):
    """`snakemake -n` with a ROI of the wrong size: exit status 1, the one problem, no traceback, nothing written."""
    width, height = _label_size(real_tree)
    roi = tmp_path / "roi.png"
    Image.fromarray(np.full((height // 2, width), 255, np.uint8)).save(roi)
    config = {
        "run": "mine",
        "datasets": {"cityscapes": {"root": str(real_tree / "cityscapes")}, "coco": {"root": str(real_tree / "coco")},
                     "lostandfound": {"root": str(real_tree / "lostandfound"), "roi": str(roi)},
                     "fishyscapes_static": {"root": str(real_tree / "fishyscapes")}},
        "coco_filter": {"min_size": 128},
        "models": {"mynet": {"arch": "tiny"}},
    }
    work = tmp_path / "work"
    work.mkdir()
    proc = run_snakemake(work, "-n", config=config)
    label = open_dataset("lostandfound", str(real_tree / "lostandfound")).samples[0].label_ids
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("- ")]
    assert lines == [f"- datasets.lostandfound.roi: {roi}: ROI mask size {width}x{height // 2} does not match the "
                     f"label size {width}x{height} of {label} (width x height) (give a mask of the label size)"]
    assert "preflight: 1 problem(s) found:" in proc.stderr
    assert not (work / "results").exists() and not (work / "logs").exists()


# ------------------------------------------------------------------------------------ lists


@pytest.mark.parametrize(("block", "key", "values", "expected"), [
    ("evaluation", "ood_datasets", ["lostandfound", "fishyscapes_static", "lostandfound"],
     "evaluation.ood_datasets: 'lostandfound' is listed 2 times (list each value once)"),
    ("evaluation", "thresholds", [0.3, 0.5, 0.5, 0.5],
     "evaluation.thresholds: 0.5 is listed 3 times (list each value once)"),
    ("coco_filter", "exclude", ["person", "car", "person"],
     "coco_filter.exclude: 'person' is listed 2 times (list each value once)"),
    ("meta", "protocols", ["loo", "loo"], "meta.protocols: 'loo' is listed 2 times (list each value once)"),
])
def test_value_listed_twice(tree, block, key, values, expected):
    config, raw = make_config(tree, **{block: {key: values}}, report={"example_threshold": 0.5})
    assert problems_of(config, raw) == [expected]


def test_duplicates_in_a_model_block_and_tuples(tree):
    """Lists below a model name are found; fixed-length pairs such as a crop [h, w] may repeat a value."""
    model = {"arch": "tiny", "finetune": {"epochs": 2, "crop": [64, 64]}}
    config, raw = make_config(tree, models={"tiny": model}, report={"scenes": {"figure1": ["a", "b", "a"]}})
    assert problems_of(config, raw) == ["report.scenes.figure1: 'a' is listed 2 times (list each value once)"]


# ------------------------------------------------------------------------------------ SMIYC score files


@pytest.fixture
def scored(tree, tmp_path):
    """A third-party method with a float16 score map of the label size for every labelled ObstacleTrack frame."""
    frames = {s.name: s.train_ids for s in open_dataset("smiyc_obstacle", str(tree / "smiyc")).samples
              if s.train_ids is not None}
    folder = tmp_path / "method" / "ObstacleTrack-all"
    for fid, label in frames.items():
        width, height = Image.open(label).size
        write_scores(folder / f"{fid}.hdf5", np.zeros((height, width), np.float32))
    config, raw = make_config(tree, evaluation={"smiyc_datasets": ["smiyc_obstacle"]},
                              datasets={"smiyc_obstacle": {"root": str(tree / "smiyc")}},
                              smiyc={"methods": {"other": str(folder.parent)}})
    return config, raw, folder, frames


def test_good_score_files_pass(scored):
    config, raw, _, frames = scored
    assert len(frames) == 3
    assert preflight(config, raw) is None


def test_labelled_frame_without_score_file(scored):
    config, raw, folder, frames = scored
    fid = sorted(frames)[1]
    (folder / f"{fid}.hdf5").unlink()
    assert problems_of(config, raw) == [
        f"smiyc.methods.other: {folder}: no score file for 1 of the 3 labelled frames of smiyc_obstacle: {fid} "
        "(write <fid>.hdf5 for every labelled frame, <fid> being its image name without extension)"
    ]


def test_score_file_of_another_size(scored):
    config, raw, folder, frames = scored
    fids = sorted(frames)
    width, height = Image.open(frames[fids[0]]).size
    for fid in fids[:2]:
        write_scores(folder / f"{fid}.hdf5", np.zeros((height // 2, width // 2), np.float16))
    assert problems_of(config, raw) == [
        f"smiyc.methods.other: {folder / (fids[0] + '.hdf5')}: 'value' has shape ({height // 2}, {width // 2}), but "
        f"the label {frames[fids[0]]} of frame {fids[0]!r} has shape ({height}, {width}) (height, width); so do 1 "
        "more of the 3 score files of smiyc_obstacle (write score maps at the frame's full resolution)"
    ]


def test_score_file_of_another_type_or_unreadable(scored):
    config, raw, folder, frames = scored
    fids = sorted(frames)
    width, height = Image.open(frames[fids[0]]).size
    with h5py.File(folder / f"{fids[0]}.hdf5", "w") as fh:
        fh.create_dataset("value", data=np.zeros((height, width), np.int32))
    (folder / f"{fids[1]}.hdf5").write_bytes(b"not hdf5")
    with h5py.File(folder / f"{fids[2]}.hdf5", "w") as fh:
        fh.create_dataset("scores", data=np.zeros((height, width), np.float16))
    problems = problems_of(config, raw)
    assert len(problems) == 2
    first = folder / f"{fids[1]}.hdf5"
    assert problems[0].startswith(f"smiyc.methods.other: {first}: cannot read as HDF5 (")
    assert problems[0].endswith("; so do 1 more of the 3 score files of smiyc_obstacle (write each score map as the "
                                "HDF5 dataset 'value', as the benchmark's tooling does)")
    assert problems[1] == (f"smiyc.methods.other: {folder / (fids[0] + '.hdf5')}: 'value' is int32 of shape "
                           f"({height}, {width}), expected a 2-D float16 or float32 map (store each score map as a "
                           "2-D float16 or float32 array)")


# ------------------------------------------------------------------------------------ COCO annotation file


def _coco_config(tree: Path, **coco_filter):
    return make_config(tree, coco_filter={"min_size": 128, **coco_filter})


def test_coco_usable_images_are_counted(tree, capsys):
    config, raw = _coco_config(tree)
    annotations = tree / "coco/annotations/instances_train2017.json"
    assert preflight(config, raw, parse_coco=True) is None
    n_listed = len(json.loads(annotations.read_text())["images"])
    kept = select_images(annotations, tree / "coco/train2017", config["coco_filter"]["exclude"], 128)
    assert 0 < len(kept) < n_listed
    exclude = len(config["coco_filter"]["exclude"])
    assert (f"meta-ood: {annotations}: {len(kept)} of {n_listed} COCO images on disk pass coco_filter "
            f"(min_size 128, {exclude} excluded classes)") in capsys.readouterr().err


def test_coco_without_usable_image(tree):
    config, raw = _coco_config(tree, min_size=100000)
    annotations = tree / "coco/annotations/instances_train2017.json"
    n = len(json.loads(annotations.read_text())["images"])
    assert problems_of(config, raw, parse_coco=True) == [
        f"datasets.coco: {annotations}: no COCO image passes the filters (exclude classes: "
        f"{', '.join(config['coco_filter']['exclude'])}; min size 100000 px for height and width; {n} image(s) "
        f"considered, i.e. listed in the file with a file in {tree / 'coco/train2017'}, of {n} listed; lower "
        "coco_filter.min_size, exclude fewer classes or check the image folder)"
    ]
    assert preflight(config, raw) is None  # without parsing the json only the names are looked up


def test_coco_json_broken_after_its_category_list(tree):
    """A syntax error before the categories, which end the file as in official COCO: they still read from the tail,
    the full parse fails and names the line and column."""
    annotations = tree / "coco/annotations/instances_train2017.json"
    data = json.loads(annotations.read_text())
    data["categories"] = data.pop("categories")  # last, as in the official files
    text = json.dumps(data, indent=1)
    at = text.index('"annotations"')
    broken = text[:at] + "," + text[at:]
    annotations.write_text(broken)
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(broken)
    config, raw = _coco_config(tree)
    assert preflight(config, raw) is None  # the tail's category names are fine
    assert problems_of(config, raw, parse_coco=True) == [
        f"datasets.coco: {annotations}: not a valid JSON file ({err.value}; the file is damaged or truncated: "
        "unpack the COCO annotations again)"
    ]
    assert f"line {err.value.lineno} column {err.value.colno}" in str(err.value)


@pytest.mark.parametrize("parse_coco", [False, True])
def test_truncated_coco_json_names_the_file_not_the_exclude_key(tree, parse_coco):
    annotations = tree / "coco/annotations/instances_train2017.json"
    text = annotations.read_text()
    annotations.write_text(text[: len(text) // 2])
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(text[: len(text) // 2])
    config, raw = _coco_config(tree)
    assert problems_of(config, raw, parse_coco=parse_coco) == [
        f"datasets.coco: {annotations}: not a valid JSON file ({err.value}; the file is damaged or truncated: "
        "unpack the COCO annotations again)"
    ]


@pytest.mark.parametrize("parse_coco", [False, True])
def test_unreadable_coco_json_is_one_problem(tree, monkeypatch, parse_coco):
    annotations = tree / "coco/annotations/instances_train2017.json"
    real_open = builtins.open

    def denying_open(file, *args, **kwargs):
        if Path(str(file)) == annotations:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denying_open)
    config, raw = _coco_config(tree)
    assert problems_of(config, raw, parse_coco=parse_coco) == [
        f"datasets.coco: {annotations}: cannot read the COCO annotation file (Permission denied; check its permissions)"
    ]


def test_coco_exclude_name_checked_on_the_parsed_file(tree):
    config, raw = _coco_config(tree, exclude=["person", "motorbike"])
    annotations = tree / "coco/annotations/instances_train2017.json"
    (problem,) = problems_of(config, raw, parse_coco=True)
    assert problem.startswith(f"coco_filter.exclude: {annotations}: 'motorbike' (did you mean 'motorcycle'")
    assert problems_of(config, raw) == [problem]  # the same line as from the file's tail


# ------------------------------------------------------------------------------------ class counts


def test_too_few_classes_for_cityscapes(tree):
    config, raw = make_config(tree, models={"tiny": {"arch": "tiny", "num_classes": 7, "finetune": {"epochs": 2}}})
    assert problems_of(config, raw) == [
        "models.tiny.num_classes=7: the Cityscapes labels the model is fine-tuned and evaluated on have train ids "
        "0..18 (set models.tiny.num_classes to 19)"
    ]


@pytest.mark.parametrize(("classes", "ood_id", "fix"), [
    (20, 19, "set coco_filter.ood_id to one of 20..254"),
    (255, 254, "lower models.tiny.num_classes to at most 254"),
])
def test_ood_id_among_the_classes(tree, classes, ood_id, fix):
    config, raw = make_config(tree, models={"tiny": {"arch": "tiny", "num_classes": classes, "finetune": {"epochs": 2}}},
                              coco_filter={"ood_id": ood_id})
    assert problems_of(config, raw) == [
        f"coco_filter.ood_id={ood_id} is a class id of models.tiny (num_classes {classes}): the OoD pixels of the "
        f"proxies need an id that is no class ({fix})"
    ]


@pytest.mark.parametrize(("file_classes", "config_classes"), [(7, 19), (19, 21)])
def test_checkpoint_with_another_class_count(tree, tmp_path, file_classes, config_classes):
    torch.manual_seed(0)
    state = {"module." + k: v for k, v in build("tiny", file_classes).state_dict().items()}  # DataParallel's names
    path = tmp_path / "net.pt"
    torch.save(state, path)
    config, raw = make_config(tree, path, models={"tiny": {"arch": "tiny", "checkpoint": str(path),
                                                           "num_classes": config_classes, "finetune": {"epochs": 2}}})
    with torch.device("meta"):
        model = build("tiny", config_classes).state_dict()
    _, parts = compare_state_dicts(model, state)
    assert parts and all("mis-shaped keys" in p for p in parts)
    assert problems_of(config, raw) == [
        f"models.tiny.checkpoint: {path}: checkpoint does not match the model TinySegNet (arch 'tiny', "
        f"{config_classes} classes; {len(model)} keys in the model, {len(state)} in the file): {'; '.join(parts)} "
        f"(its output layer has {file_classes} classes: set models.tiny.num_classes to {file_classes}, or give a "
        f"checkpoint with {config_classes} classes)"
    ]


def test_other_mismatches_get_no_class_count_hint(tree, tmp_path):
    torch.manual_seed(0)
    state = build("tiny", 7).state_dict()
    first = next(iter(state))
    state["renamed." + first] = state.pop(first)
    path = tmp_path / "net.pt"
    torch.save(state, path)
    config, raw = make_config(tree, path)
    (problem,) = problems_of(config, raw)
    assert problem.startswith(f"models.tiny.checkpoint: {path}: checkpoint does not match")
    assert "missing keys" in problem and "output layer" not in problem


# ------------------------------------------------------------------------------------ whole-dataset check


def _specs(tree: Path) -> dict[str, dict]:
    """A spec of every dataset kind on the tree (its usual split)."""
    specs = {
        "cityscapes": {"root": tree / "cityscapes", "split": "train"},
        "cityscapes_void": {"root": tree / "cityscapes", "split": "val"},
        "lostandfound": {"root": tree / "lostandfound"},
        "fishyscapes_static": {"root": tree / "fishyscapes"},
        "fishyscapes_lostandfound": {"root": tree / "fishyscapes", "laf_root": str(tree / "lostandfound")},
        "coco": {"root": tree / "coco"},
        "smiyc_anomaly": {"root": tree / "smiyc"},
        "smiyc_obstacle": {"root": tree / "smiyc"},
        "lostandfound_noknown": {"root": tree / "lostandfound_noknown"},
        "road_anomaly": {"root": tree / "road_anomaly"},
    }
    assert set(specs) == set(DATASET_KINDS)
    return {kind: {**spec, "kind": kind, "root": str(spec["root"])} for kind, spec in specs.items()}


def _reader(spec: dict):
    return open_dataset(spec["kind"], spec["root"], spec.get("split"),
                        **{k: spec[k] for k in ("laf_root",) if k in spec})


def test_check_data_counts_every_image_of_every_kind(real_tree):
    specs = _specs(real_tree)
    expected = {}
    for kind, spec in specs.items():
        reader = _reader(spec)
        # LostAndFound-NoKnown: its frames without annotation are files of the dataset too
        expected[kind] = len(reader) + getattr(reader, "unannotated", 0)
    report = check_data(specs, progress=False)
    assert report.problems == []
    assert report.images == expected and all(n > 0 for n in expected.values())
    # LostAndFound-NoKnown leaves out the frames of its excluded sequences, as its reader does
    on_disk = len(list((real_tree / "lostandfound_noknown/leftImg8bit").rglob("*_leftImg8bit.png")))
    assert on_disk > report.images["lostandfound_noknown"]
    assert report.labels["cityscapes_void"] == report.images["cityscapes_void"]  # the label ids, one per image


def _damage(spec: dict) -> tuple[Path, str]:
    """Plant a value outside the label table in the first labelled frame (COCO: a wrong image height in the json);
    returns the file the problem must name and a part of the message."""
    reader = _reader(spec)
    if spec["kind"] == "coco":
        annotations = Path(spec["root"]) / "annotations" / "instances_train2017.json"
        data = json.loads(annotations.read_text())
        rle = {a["image_id"] for a in data["annotations"] if not isinstance(a["segmentation"], list)}
        sample = next(s for s in reader.samples if int(s.name) not in rle)  # polygons follow the listed size
        entry = next(e for e in data["images"] if e["id"] == int(sample.name))
        entry["height"] += 1
        annotations.write_text(json.dumps(data))
        return sample.image, "mask from the annotations size"
    sample = next(s for s in reader.samples if s.train_ids is not None or s.label_ids is not None)
    path = sample.train_ids or sample.label_ids
    if path == sample.train_ids:
        bad = next(v for v in range(256) if v not in set(reader.train_values.tolist()))
    else:
        bad = next(v for v in range(256) if reader.id_to_train[v] < 0)
    label = np.array(Image.open(path))
    label[0, 0] = bad
    Image.fromarray(label).save(path)
    return path, f"{bad} (1 px)"


@pytest.mark.parametrize("kind", DATASET_KINDS)
def test_check_data_finds_a_planted_bad_label(tree, kind):
    spec = _specs(tree)[kind]
    path, what = _damage(spec)
    report = check_data({kind: spec}, progress=False)
    assert [p.file for p in report.problems] == [str(path)], report.problems
    assert what in report.problems[0].problem


def test_check_data_roi_size_and_the_cli_on_cityscapes_void(tree, tmp_path, capsys):
    width, height = _label_size(tree)
    roi = tmp_path / "roi.png"
    Image.fromarray(np.full((height, width + 2), 1, np.uint8)).save(roi)
    spec = {**_specs(tree)["lostandfound"], "roi": str(roi)}
    report = check_data({"lostandfound": spec}, progress=False)
    n = report.images["lostandfound"]
    assert len(report.problems) == n > 0
    assert all(p.problem == f"label size {width}x{height} does not match the ROI mask {roi} size "
                            f"{width + 2}x{height} (width x height)" for p in report.problems)
    assert cli.main(["check-data", "--dataset", "cityscapes_void", "--root", str(tree / "cityscapes")]) == 0
    assert "0 problem(s) in 0 file(s)" in capsys.readouterr().out
