"""The meta-ood command line: same functions as the rules, clean errors for bad input."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from meta_ood.cli import RENDER_TARGETS, TRAIN_DEFAULTS, build_parser, main, render_outputs


def _golden_coco_tree(golden_dir, tmp_path):
    gold = np.load(golden_dir / "coco_public.npz")
    images = tmp_path / "train2017"
    images.mkdir()
    for i in gold["in_image_ids_on_disk"]:
        Image.new("RGB", (8, 8)).save(images / f"{int(i):012d}.jpg")
    ann = tmp_path / "instances_train2017.json"
    shutil.copy(golden_dir / "coco_public.json", ann)
    return gold, ann, images


def test_coco_filter_cli_matches_golden(golden_dir, tmp_path, capsys):
    gold, ann, images = _golden_coco_tree(golden_dir, tmp_path)
    out = tmp_path / "out"
    rc = main(["-q", "coco-filter", "--annotations", str(ann), "--images", str(images), "--out", str(out)])
    assert rc == 0
    selected = pd.read_csv(out / "selected.csv")
    np.testing.assert_array_equal(selected["image_id"].to_numpy(), gold["pred_mask_ids"])
    for i in gold["pred_mask_ids"]:
        mask = np.asarray(Image.open(out / "masks" / f"{int(i):012d}.png"))
        np.testing.assert_array_equal(mask, gold[f"pred_mask_{int(i):012d}"])
    assert "kept" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(golden_dir, tmp_path):
    _, ann, images = _golden_coco_tree(golden_dir, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "meta_ood.cli", "coco-filter", "--annotations", str(ann), "--images", str(images),
         "--out", str(tmp_path / "o"), "--min-size", "100000"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    errors = [line for line in err if line.startswith("meta-ood: error:")]
    assert errors == [err[-1]] and "100000" in err[-1]
    assert "Traceback" not in proc.stderr


def test_cli_missing_annotation_file(tmp_path, capsys):
    rc = main(["coco-filter", "--annotations", str(tmp_path / "x.json"), "--images", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "x.json" in capsys.readouterr().err


# ------------------------------------------------------------------ help, choices and argument forms


def _sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_option_shows_its_default_or_says_required():
    parser = build_parser()
    subs = _sub_parsers(parser)
    assert {"merge-store", "merge-segments", "render", "check-data"} <= set(subs)
    for name, p in [("meta-ood", parser), *subs.items()]:
        formatter = p._get_formatter()
        for action in p._actions:
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            text = formatter._expand_help(action)
            assert "default" in text or "required" in text, f"{name} {action.option_strings}: {text!r}"
    pixel = _flat(subs["pixel-eval"].format_help())
    assert "anomaly score (default: entropy)" in pixel and "resamples (default: 1000)" in pixel
    assert "(default: 0.1 0.2 0.3 0.4 0.5 0.6 0.7)" in _flat(subs["segments"].format_help())
    from meta_ood.coco_filter import DEFAULT_MIN_SIZE

    assert f"minimum height and width (default: {DEFAULT_MIN_SIZE})" in _flat(subs["coco-filter"].format_help())
    demo = _flat(subs["demo-data"].format_help())
    assert "(at most --n-lostandfound) (default: 10)" in demo and "master seed (default: 0)" in demo


def test_train_option_defaults_in_the_help_are_the_training_defaults():
    from dataclasses import asdict

    from meta_ood.training import TrainConfig

    cfg = asdict(TrainConfig())
    assert {key: cfg[key] for key in TRAIN_DEFAULTS} == TRAIN_DEFAULTS
    text = _flat(_sub_parsers(build_parser())["finetune"].format_help())
    assert f"else {cfg['epochs']})" in text and f"else {cfg['lam']})" in text


def test_scorer_choices_are_the_registered_scorers(capsys):
    from meta_ood.scores import SCORERS

    action = next(a for a in _sub_parsers(build_parser())["pixel-eval"]._actions if a.dest == "scorer")
    assert sorted(action.choices) == sorted(SCORERS)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["pixel-eval", "--store", "s", "--out-json", "j", "--out-npz", "n", "--scorer", "entropie"])
    assert exc.value.code == 2
    assert "invalid choice: 'entropie'" in capsys.readouterr().err


def test_crop_takes_one_or_two_integers(capsys):
    base = ["train-baseline", "--cityscapes", "cs", "--out", "o.pt"]
    assert build_parser().parse_args(base).crop is None
    assert build_parser().parse_args([*base, "--crop", "64"]).crop == 64
    assert build_parser().parse_args([*base, "--crop", "64", "96"]).crop == [64, 96]
    for bad in (["1", "2", "3"], ["x"]):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([*base, "--crop", *bad])
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --crop: expected one or two integers (SIDE, or H W), got 3" in err


def test_quiet_before_and_after_the_sub_command():
    tail = ["--store", "s", "--out-json", "j", "--out-npz", "n"]
    assert build_parser().parse_args(["pixel-eval", *tail]).quiet is False
    assert build_parser().parse_args(["-q", "pixel-eval", *tail]).quiet is True
    assert build_parser().parse_args(["pixel-eval", "-q", *tail]).quiet is True
    assert build_parser().parse_args(["pixel-eval", *tail, "--quiet"]).quiet is True


# ------------------------------------------------------------------ a sharded run finished from the command line

THRESHOLDS = ["0.3", "0.6"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Demo data, a fixed random 'tiny' checkpoint and its stores: two shards and one, from the CLI."""
    import torch

    from meta_ood.models import build
    from meta_ood.models.checkpoint import save_checkpoint

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli_run")
    data = root / "data"
    assert main(["-q", "demo-data", "--out", str(data), "--height", "64", "--width", "128", "--n-train", "1",
                 "--n-val", "1", "--n-coco", "1", "--n-lostandfound", "5", "--n-fishyscapes", "1",
                 "--n-fishyscapes-lostandfound", "3"]) == 0
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", build("tiny"))
    dump = ["dump-softmax", "-q", "--arch", "tiny", "--checkpoint", str(ckpt), "--dataset", "lostandfound",
            "--root", str(data / "lostandfound"), "--device", "cpu", "--batch-size", "2"]
    for shard in ("0/2", "1/2"):
        assert main([*dump, "--out", str(root / "store2"), "--shard", shard]) == 0
    assert not (root / "store2" / "index.json").exists()
    assert main(["-q", "merge-store", "--store", str(root / "store2")]) == 0
    assert main([*dump, "--out", str(root / "store1")]) == 0
    yield root, data, ckpt
    torch.set_num_threads(before)


def test_merge_store_equals_one_shard(run):
    from meta_ood.store import StoreReader

    root, _, _ = run
    one, two = StoreReader(root / "store1"), StoreReader(root / "store2")
    assert len(one) == len(two) == 5 and two.meta["shards"] == 2
    for a, b in zip(one, two):
        assert a.name == b.name
        np.testing.assert_array_equal(a.probs, b.probs)
        np.testing.assert_array_equal(a.label, b.label)


def test_dump_without_probabilities_and_with_a_logit_scorer(run):
    """--no-probs --scorer energy --codec zlib: score planes only, energy computed during the dump; the
    pixel evaluation from them equals the one from the full store's probabilities and logits."""
    from meta_ood.store import StoreReader

    root, data, ckpt = run
    out = root / "store_noprobs"
    assert main(["dump-softmax", "-q", "--arch", "tiny", "--checkpoint", str(ckpt), "--dataset", "lostandfound",
                 "--root", str(data / "lostandfound"), "--device", "cpu", "--batch-size", "2", "--out", str(out),
                 "--no-probs", "--scorer", "energy", "--codec", "zlib"]) == 0
    small = StoreReader(out)
    assert not small.has_probs and small.scorers == ["energy", "entropy"] and small.codec == "zlib"
    full = root / "store_logits"
    assert main(["dump-softmax", "-q", "--arch", "tiny", "--checkpoint", str(ckpt), "--dataset", "lostandfound",
                 "--root", str(data / "lostandfound"), "--device", "cpu", "--batch-size", "2", "--out", str(full),
                 "--store-logits"]) == 0
    results = []
    for store in (out, full):
        js = root / f"{store.name}.json"
        assert main(["-q", "pixel-eval", "--store", str(store), "--out-json", str(js), "--out-npz",
                     str(root / f"{store.name}.npz"), "--n-boot", "0", "--scorer", "energy"]) == 0
        results.append(json.loads(js.read_text()))
    # the full store has no energy plane: it is computed from its float16 logits, which round like the codes
    for key in ("auroc", "auprc", "fpr95", "n_pos", "n_neg"):
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-3), key
    assert results[0]["n_pos"] == results[1]["n_pos"] > 0


def test_merge_segments_equals_one_shard(run):
    root, _, _ = run
    store = str(root / "store1")
    assert main(["-q", "segments", "--store", store, "--out", str(root / "seg1"), "--thresholds", *THRESHOLDS]) == 0
    for shard in ("0/2", "1/2"):
        assert main(["segments", "-q", "--store", store, "--out", str(root / "seg2"), "--thresholds", *THRESHOLDS,
                     "--shard", shard]) == 0
    assert main(["merge-segments", "-q", "--segments", str(root / "seg2")]) == 0  # shards and thresholds found
    names = [f"t{t}{suffix}" for t in THRESHOLDS for suffix in (".parquet", ".gt.parquet", ".overlaps.parquet")]
    for name in [*names, "images.parquet"]:
        one, two = pd.read_parquet(root / "seg1" / name), pd.read_parquet(root / "seg2" / name)
        pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert len(pd.read_parquet(root / "seg1" / "images.parquet")) == 5
    assert json.loads((root / "seg1/components.json").read_text()) == json.loads((root / "seg2/components.json").read_text())


def test_merge_segments_errors(tmp_path, capsys):
    assert main(["merge-segments", "--segments", str(tmp_path)]) == 2
    assert "no shard folders (shard-<i>-of-<n>) found" in capsys.readouterr().err
    (tmp_path / "shard-0-of-2").mkdir()
    (tmp_path / "shard-0-of-3").mkdir()
    assert main(["merge-segments", "--segments", str(tmp_path)]) == 2
    assert "shard folders of different shard counts (of-2, of-3)" in capsys.readouterr().err


def test_render_table_numbers_equal_the_result_json(run, tmp_path):
    root, _, _ = run
    out_json = tmp_path / "pixel.json"
    assert main(["-q", "pixel-eval", "--store", str(root / "store2"), "--out-json", str(out_json),
                 "--out-npz", str(tmp_path / "pixel.npz"), "--n-boot", "20"]) == 0
    result = json.loads(out_json.read_text())
    entries = tmp_path / "table1.yaml"
    entries.write_text(yaml.safe_dump({
        "pixel_entries": [{"model": "tiny", "label": "Plain", "dataset": "lostandfound", "path": str(out_json)}],
        "miou_entries": [],
    }))
    assert main(["render", "table1", "--entries", str(entries), "--out", str(tmp_path / "tables") + "/"]) == 0
    table = pd.read_csv(tmp_path / "tables" / "table1.csv")
    assert len(table) == 1 and table.loc[0, "label"] == "Plain"
    for metric in ("auroc", "fpr95", "auprc"):
        assert table.loc[0, f"lostandfound_{metric}"] == pytest.approx(result[metric], rel=1e-12)
        lo, hi = result["bootstrap"][metric]
        assert table.loc[0, f"lostandfound_{metric}_lo"] == pytest.approx(lo, rel=1e-12)
        assert table.loc[0, f"lostandfound_{metric}_hi"] == pytest.approx(hi, rel=1e-12)
    assert f"{result['auroc']:.4f}" in (tmp_path / "tables" / "table1.md").read_text()
    assert (tmp_path / "tables" / "table1.tex").is_file()
    # a figure, to a prefix
    fig_entries = tmp_path / "figure4.json"
    fig_entries.write_text(json.dumps({"entries": [{"model": "tiny", "label": "Plain", "dataset": "lostandfound",
                                                    "path": str(out_json)}]}))
    assert main(["-q", "render", "figure4", "--entries", str(fig_entries), "--out", str(tmp_path / "fig" / "roc")]) == 0
    assert (tmp_path / "fig" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "fig" / "roc.pdf").read_bytes()[:5] == b"%PDF-"


def test_render_reaches_every_report_function_and_checks_keys(tmp_path, capsys):
    from meta_ood import report

    assert set(RENDER_TARGETS) == set(report.__all__)
    assert render_outputs("table2", str(tmp_path / "t2")) == {
        "out_csv": tmp_path / "t2.csv", "out_md": tmp_path / "t2.md", "out_tex": tmp_path / "t2.tex"}
    assert render_outputs("examples", str(tmp_path)) == {
        "out_png": tmp_path / "examples.png", "out_pdf": tmp_path / "examples.pdf"}
    entries = tmp_path / "e.yaml"
    entries.write_text("entries: []\npixel_entrys: []\n")
    assert main(["render", "table2", "--entries", str(entries), "--out", str(tmp_path / "x")]) == 2
    assert "unknown key(s) 'pixel_entrys' for table2; expected some of entries, acceptable_from" in capsys.readouterr().err
    entries.write_text("acceptable_from: 0.3\n")
    assert main(["render", "table3", "--entries", str(entries), "--out", str(tmp_path / "x")]) == 2
    assert "table3 needs 'entries'" in capsys.readouterr().err


def test_dump_fishyscapes_lostandfound_needs_laf_root(run, capsys):
    root, data, ckpt = run
    args = ["-q", "dump-softmax", "--arch", "tiny", "--checkpoint", str(ckpt), "--dataset", "fishyscapes_lostandfound",
            "--root", str(data / "fishyscapes"), "--out", str(root / "fs_laf"), "--device", "cpu"]
    assert main(args) == 2
    assert "--dataset fishyscapes_lostandfound needs --laf-root" in capsys.readouterr().err
    assert main([*args, "--laf-root", str(data / "lostandfound")]) == 0
    from meta_ood.store import StoreReader

    reader = StoreReader(root / "fs_laf")
    assert len(reader) == 3 and reader.convention.train_id_out == 1
    assert set(np.unique(reader[0].label).tolist()) <= {0, 1, 255}


def test_dump_preflight_stops_bad_checkpoint_and_root(run, tmp_path, capsys):
    root, data, _ = run
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    rc = main(["-q", "dump-softmax", "--arch", "tiny", "--checkpoint", str(bad), "--dataset", "lostandfound",
               "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "s"), "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "dump-softmax: 2 problem(s) found" in err and "nope" in err and "bad.pt" in err
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ check-data


def test_check_data_reports_every_problem(run, tmp_path, capsys):
    _, data, _ = run
    laf = tmp_path / "laf"
    shutil.copytree(data / "lostandfound", laf)
    labels = sorted((laf / "gtCoarse").rglob("*_labelIds.png"))
    Image.fromarray(np.full((64, 128), 200, np.uint8)).save(labels[0])  # 200 is no LostAndFound label id
    images = sorted((laf / "leftImg8bit").rglob("*.png"))
    images[2].write_bytes(b"truncated")
    report = tmp_path / "report.md"
    rc = main(["-q", "check-data", "--dataset", "lostandfound", "--root", str(laf), "--dataset", "cityscapes",
               "--root", str(data / "cityscapes"), "--split", "test", "--split", "val", "--out", str(report)])
    assert rc == 2
    out = capsys.readouterr()
    assert "2 problem(s) in 2 file(s)" in out.out and "check-data found 2 problem(s)" in out.err
    text = report.read_text()
    assert labels[0].name in text and "200" in text and images[2].name in text
    assert "| lostandfound | lostandfound |" in text and "| cityscapes | cityscapes |" in text
    # a clean dataset: exit 0, report printed
    assert main(["-q", "check-data", "--dataset", "fishyscapes_lostandfound", "--root", str(data / "fishyscapes"),
                 "--laf-root", str(data / "lostandfound")]) == 0
    assert "No problems found." in capsys.readouterr().out
