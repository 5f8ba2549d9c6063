"""Paired bootstrap of two methods on the same images: against a direct computation and closed-form cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from meta_ood.errors import InputError
from meta_ood.pixel_eval import PooledHistogram
from meta_ood.pixel_eval.bootstrap import bootstrap_weights
from meta_ood.pixel_eval.encoding import quantize
from meta_ood.pixel_eval.paired import paired_bootstrap, paired_counts, paired_summary

IN, OUT = 0, 1


def _images(seed: int, n: int = 8, shift: float = 0.0):
    """(id, scores, labels) of small images with OoD pixels, scores on a coarse grid (exact at 12 bits)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        lab = (rng.random((6, 9)) < 0.25).astype(np.uint8)
        s = np.clip(rng.normal(0.3 + 0.4 * lab + shift, 0.2), 0, 1)
        out.append((f"img{k}", np.round(s * 4095) / 4095, lab))
    return out


def _hist(images, order=None) -> PooledHistogram:
    h = PooledHistogram(bits=16, image_bits=12)
    for k in (range(len(images)) if order is None else order):
        name, s, lab = images[k]
        h.update(s, lab, IN, OUT, image_id=name)
    return h


def _direct(images, weights: np.ndarray) -> dict[str, np.ndarray]:
    """AP and AUROC of each resample straight from the pixels: every image's pixels with weight = its draws."""
    ap, auroc = [], []
    coarse = [(quantize(s.ravel(), 16) >> 4, lab.ravel()) for _, s, lab in images]
    for w in weights:
        scores = np.concatenate([c for c, _ in coarse])
        labels = np.concatenate([lab for _, lab in coarse])
        sw = np.concatenate([np.full(c.size, k) for (c, _), k in zip(coarse, w)]).astype(float)
        keep = sw > 0
        ap.append(average_precision_score(labels[keep], scores[keep], sample_weight=sw[keep]))
        auroc.append(roc_auc_score(labels[keep], scores[keep], sample_weight=sw[keep]))
    return {"auprc": np.array(ap), "auroc": np.array(auroc)}


def test_paired_differences_equal_a_direct_computation():
    a, b = _images(1), _images(2, shift=-0.05)
    b = [(name, s, lab_a) for (name, s, _), (_, _, lab_a) in zip(b, a)]  # same frames, same labels
    res = paired_bootstrap(_hist(a), _hist(b), n_boot=40, seed=7)
    weights = bootstrap_weights(len(a), 40, 7)
    da, db = _direct(a, weights), _direct(b, weights)
    for key in ("auprc", "auroc"):
        diffs = da[key] - db[key]
        expected = paired_summary(diffs, res[key]["diff"])
        for field in ("lo", "hi", "p", "se"):
            assert res[key][field] == pytest.approx(expected[field], abs=1e-12), (key, field)
    assert res["auprc"]["a"] == pytest.approx(average_precision_score(
        np.concatenate([lab.ravel() for _, _, lab in a]), np.concatenate([s.ravel() for _, s, _ in a])), abs=1e-12)


def test_identical_methods_differ_by_zero_with_p_one():
    a = _images(3)
    res = paired_bootstrap(_hist(a), _hist(a, order=list(range(len(a)))[::-1]), n_boot=200, seed=1)
    for key, r in res.items():
        assert (r["diff"], r["lo"], r["hi"], r["p"], r["se"], r["resolvable"]) == (0.0, 0.0, 0.0, 1.0, 0.0, 0.0), key


def test_methods_differing_on_one_frame_include_zero():
    """Method b equals a except on one of n = 10 frames, where it scores its OoD pixels lower. A resample leaves that
    frame out with probability (1 - 1/n)^n = 0.349 and then differs by exactly 0; as 0.349 > alpha / 2 = 0.025,
    the lower bound of the interval is 0 (a differs only upwards) and the interval contains 0."""
    a = _images(4, n=10)
    b = list(a)
    name, s, lab = b[3]
    b[3] = (name, np.where(lab == 1, s * 0.5, s), lab)
    res = paired_bootstrap(_hist(a), _hist(b), n_boot=1000, seed=0)
    weights = bootstrap_weights(10, 1000, 0)
    out_share = float(np.mean(weights[:, 3] == 0))
    assert abs(out_share - 0.9 ** 10) < 0.05
    r = res["auprc"]
    assert r["diff"] > 0 and r["lo"] == 0.0 and r["hi"] > 0 and r["p"] == pytest.approx(
        min(1.0, 2 * out_share), abs=0.02)


def test_other_images_are_refused_by_name():
    a, b = _images(5, n=4), _images(6, n=5)
    with pytest.raises(InputError, match=r"only in the second \['img4'\]"):
        paired_bootstrap(_hist(a), _hist(b), n_boot=10)


def _score_folders(tmp_path, n=6):
    """Two methods' score folders on the same labelled frames (B = A with its anomaly scores lowered on frame 2)."""
    from meta_ood.smiyc import write_label, write_scores

    rng = np.random.default_rng(9)
    labels = tmp_path / "labels"
    for k in range(n):
        lab = np.zeros((24, 32), np.uint8)
        lab[5:12, 4 + k:14 + k] = 1
        lab[20:] = 255
        s = np.clip(rng.normal(0.3, 0.15, lab.shape) + 0.4 * (lab == 1), 0, 1).astype(np.float16)
        write_label(labels / f"f{k}_labels_semantic.png", lab)
        write_scores(tmp_path / "a" / f"f{k}.hdf5", s)
        write_scores(tmp_path / "b" / f"f{k}.hdf5", np.where(lab == 1, s * 0.6, s).astype(np.float16) if k == 2 else s)
    return tmp_path / "a", tmp_path / "b", labels


def test_compare_cli_prints_the_paired_table(tmp_path, capsys):
    import json

    from meta_ood.cli import main
    from meta_ood.smiyc.compare import method_histogram

    a, b, labels = _score_folders(tmp_path)
    out = tmp_path / "cmp.json"
    assert main(["compare", "--scores", str(a), str(b), "--labels", str(labels), "--n-boot", "300",
                 "--names", "mine", "theirs", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    res = json.loads(out.read_text())
    expected = paired_bootstrap(method_histogram(a, labels), method_histogram(b, labels), n_boot=300, seed=0)
    for key, r in res["metrics"].items():
        for field in ("a", "b", "diff", "lo", "hi", "p", "se"):
            assert r[field] == pytest.approx(expected[key][field], abs=1e-12), (key, field)
    assert res["n_frames"] == 6 and "| AP ↑ |" in text and "mine − theirs" in text
    assert f"{expected['auprc']['diff']:+.4f}" in text
    # a method against itself
    assert main(["compare", "--scores", str(a), str(a), "--labels", str(labels), "--n-boot", "50"]) == 0
    assert "| AP ↑ | " in capsys.readouterr().out
    same = paired_bootstrap(method_histogram(a, labels), method_histogram(a, labels), n_boot=50)
    assert all(r["p"] == 1.0 and r["lo"] == r["hi"] == 0.0 for r in same.values())


def test_compare_cli_with_a_track_pairs_the_component_metrics(tmp_path, capsys):
    """``compare --track``: per protocol, sIoU / PPV / mean F1 of each method equal its own ``smiyc-eval`` JSON,
    and their paired intervals equal ``paired_components`` of the counts ``smiyc-eval`` saves; the pixel
    metrics are those of the plain comparison; size filters without a track are refused."""
    import json

    from meta_ood.cli import main
    from meta_ood.smiyc.component_counts import paired_components

    a, b, labels = _score_folders(tmp_path)
    evals, counts = {}, {}
    for name, folder in (("a", a), ("b", b)):
        out = tmp_path / f"{name}.json"
        assert main(["smiyc-eval", "--scores", str(folder), "--labels", str(labels), "--track", "obstacle",
                     "--segsize", "5", "--instsize", "3", "--n-boot", "0", "--out", str(out)]) == 0
        evals[name] = json.loads(out.read_text())
        counts[name] = smiyc_counts(folder, labels, tmp_path / f"{name}.components.npz")
    cmp_out, plain_out = tmp_path / "cmp.json", tmp_path / "plain.json"
    args = ["compare", "--scores", str(a), str(b), "--labels", str(labels), "--n-boot", "200", "--seed", "5"]
    assert main([*args, "--track", "obstacle", "--segsize", "5", "--instsize", "3", "--out", str(cmp_out)]) == 0
    text = capsys.readouterr().out
    assert main([*args, "--out", str(plain_out)]) == 0
    res, plain = json.loads(cmp_out.read_text()), json.loads(plain_out.read_text())
    assert res["metrics"] == plain["metrics"] and res["track"] == "obstacle"
    assert evals["a"]["sIoU_gt"] != evals["b"]["sIoU_gt"]  # frame 2 of B lost part of its anomaly
    for protocol in ("official", "exact"):
        expected = paired_components(counts["a"][protocol], counts["b"][protocol], n_boot=200, seed=5)
        for key in ("sIoU_gt", "PPV", "F1_mean"):
            r = res["components"][protocol][key]
            for side in ("a", "b"):
                ev = evals[side] if protocol == "official" else evals[side]["exact"]
                assert r[side] == pytest.approx(ev[key], abs=1e-12), (protocol, key, side)
            for field in ("diff", "lo", "hi", "p", "se"):
                assert r[field] == pytest.approx(expected[key][field], abs=1e-12), (protocol, key, field)
        assert f"| sIoU ({protocol}) ↑ | {res['components'][protocol]['sIoU_gt']['a']:.4f} |" in text
    assert main([*args, "--segsize", "5"]) == 2
    assert "need --track" in capsys.readouterr().err


def smiyc_counts(folder, labels, path):
    """The per-frame component counts ``smiyc_eval`` saves (sizes 5 / 3, as in the test above)."""
    from meta_ood.smiyc import smiyc_eval
    from meta_ood.smiyc.component_counts import load_counts

    smiyc_eval(folder, labels, "obstacle", segsize=5, instsize=3, n_boot=0, components_out=path)
    return load_counts(path)


def test_table_smiyc_marks_exact_values_the_frames_do_not_separate(tmp_path):
    """smiyc_eval writes the exact histogram beside its JSON; a method equal to the best one is "≈" in table_smiyc's
    exact AP and FPR95 columns, a clearly worse one is not."""
    import shutil

    from meta_ood.report import table_smiyc
    from meta_ood.stages.smiyc import smiyc_eval_stage

    a, b, labels = _score_folders(tmp_path, n=8)
    shutil.copytree(a, tmp_path / "a_copy")
    entries = []
    for name, folder in (("a", a), ("a_copy", tmp_path / "a_copy"), ("b", b)):
        out = tmp_path / "eval" / name / "smiyc_obstacle.json"
        smiyc_eval_stage(folder, labels, "smiyc_obstacle", out, method=name, n_boot=0)
        assert out.with_suffix(".npz").is_file()
        entries.append({"method": name, "dataset": "smiyc_obstacle", "path": str(out)})
    outs = {f"out_{ext}": tmp_path / f"t.{ext}" for ext in ("csv", "md", "tex")}
    table_smiyc(entries, **outs, n_boot=200, seed=0)
    md = outs["out_md"].read_text()
    rows = {line.split(" | ")[1]: line.split(" | ") for line in md.splitlines() if line.startswith("| SMIYC")}
    exact_ap, exact_fpr = 2 + 5, 2 + 6  # index and official columns first
    marked = {name: row[exact_ap].strip("*").endswith("≈") for name, row in rows.items()}
    assert marked["a_copy"] != marked["a"]  # equal values: one is the best (bold), the other is "≈" to it
    from meta_ood.smiyc.compare import method_histogram

    p = paired_bootstrap(method_histogram(b, labels), method_histogram(a, labels), n_boot=200, seed=0)["auprc"]["p"]
    assert marked["b"] == (min(1.0, 2 * p) >= 0.05)  # Holm over the two others (the copy's p is 1): 2 p
    assert "of the exact histograms (exact AP and FPR95) and of the per-frame component counts" in md
    # component columns: against the best by the paired bootstrap of the per-frame counts; equal values not compared
    from meta_ood.report.paired import holm
    from meta_ood.smiyc.component_counts import load_counts, paired_components

    for col, protocol, key in ((4, "official", "sIoU_gt"), (5, "official", "PPV"), (2 + 5 + 4, "exact", "F1_mean")):
        res = {e["method"]: json.loads(Path(e["path"]).read_text()) for e in entries}
        value = {m: (r if protocol == "official" else r["exact"])[key] for m, r in res.items()}
        counts = {m: load_counts(Path(e["path"]).with_suffix(".components.npz"))[protocol]
                  for m, e in zip(res, entries)}
        best = max(value, key=value.get)
        others = [m for m in value if value[m] != value[best]]
        adjusted = holm([paired_components(counts[m], counts[best], n_boot=200, seed=0)[key]["p"] for m in others])
        for m in value:
            want = m in others and adjusted[others.index(m)] >= 0.05
            assert rows[m][col].strip("*").endswith("≈") == want, (key, m)


def test_paired_counts_equals_a_loop_over_resamples():
    """Totals of per-image counts (detection errors): the difference's interval and p-value equal a loop that
    draws the images of each resample (the same seeded draws for both sides, matched by image id whatever the
    order), sums both sides and takes numpy's percentiles; identical counts give 0, [0, 0] and p = 1."""
    rng = np.random.default_rng(4)
    n, n_boot = 12, 300
    ids = [f"img{k}" for k in range(n)]
    a, b = rng.integers(0, 9, n), rng.integers(0, 6, n)
    order = rng.permutation(n)
    res = paired_counts([ids[k] for k in order], a[order], ids, b, n_boot=n_boot, seed=3)
    draws = bootstrap_weights(n, n_boot, 3)
    diffs = []
    for r in range(n_boot):
        picked = np.repeat(np.arange(n), draws[r])
        diffs.append(a[picked].sum() - b[picked].sum())
    diffs = np.array(diffs, float)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    assert (res["a"], res["b"], res["diff"]) == (a.sum(), b.sum(), a.sum() - b.sum())
    assert (res["lo"], res["hi"]) == (lo, hi)
    assert res["p"] == min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    same = paired_counts(ids, a, ids, a, n_boot=n_boot, seed=3)
    assert (same["diff"], same["lo"], same["hi"], same["p"]) == (0.0, 0.0, 0.0, 1.0)


def test_segment_histogram_gives_the_detectors_auroc_and_auprc():
    """Per-segment FP scores as a ranking histogram (one image per id, images without segments included): its
    AUROC and AUPRC equal scikit-learn's on the scores, ties included; more than 65,536 distinct scores are
    merged into rank groups, which only ever ties neighbours."""
    from meta_ood.meta.evaluation import segment_histogram

    rng = np.random.default_rng(12)
    scores = np.round(rng.random(500), 2)
    fp = (rng.random(500) < 0.35).astype(int)
    images = rng.integers(0, 15, 500)
    hist = segment_histogram(scores, fp, images, range(18))
    m = hist.metrics()
    assert hist.n_images == 18 and hist.image_ids == [str(k) for k in range(18)]
    assert m["auroc"] == pytest.approx(roc_auc_score(fp, scores), abs=1e-14)
    assert m["auprc"] == pytest.approx(average_precision_score(fp, scores), abs=1e-14)
    many = rng.random(70000)
    y = (rng.random(70000) < many).astype(int)
    big = segment_histogram(many, y, np.zeros(70000, int), [0]).metrics()
    assert big["auroc"] == pytest.approx(roc_auc_score(y, many), abs=1e-4)
    with pytest.raises(InputError, match="one image id per segment"):
        segment_histogram(scores, fp, images[:-1], range(18))


def test_component_counts_give_the_component_metrics_of_resampled_frames():
    """The per-frame component counts weighted by a resample equal component_metrics on the frames drawn (each
    repeated as often as drawn); a method against itself differs by 0 with p = 1."""
    from meta_ood.pixel_eval.paired import aligned_weights
    from meta_ood.smiyc.component_counts import ComponentCounts, paired_components
    from meta_ood.smiyc.components import FrameComponents, component_metrics

    rng = np.random.default_rng(21)
    frames = []
    for k in range(7):
        n_gt, n_pred = rng.integers(0, 4), rng.integers(0, 5)
        frames.append(FrameComponents(sIoU_gt=rng.random(n_gt), size_gt=np.ones(n_gt, np.int64), PPV=rng.random(n_pred),
                                      sIoU_pred=rng.random(n_pred), size_pred=np.ones(n_pred, np.int64),
                                      kept_pred_mask=None))
    ids = [f"f{k}" for k in range(7)]
    counts = ComponentCounts.of(ids, frames)
    weights, _ = aligned_weights(ids, ids, 20, 4)
    got = counts.metrics(weights)
    for r in range(20):
        drawn = [f for f, w in zip(frames, weights[r]) for _ in range(w)]
        want = component_metrics(drawn)
        for key in ("sIoU_gt", "PPV", "F1_mean"):
            np.testing.assert_allclose(got[key][r], want[key], rtol=1e-12, atol=0, equal_nan=True, err_msg=key)
    same = paired_components(counts, counts, n_boot=50, seed=1)
    assert all(v["diff"] == 0.0 and v["p"] == 1.0 for v in same.values())
