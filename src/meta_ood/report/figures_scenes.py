"""The paper's scene figures 1, 2, 10 and 13: segmentations and entropy heatmaps of chosen images.

Every figure reads a few images of the softmax stores -- only their entropy planes (the stored
16-bit codes, entropy = code / 65535, the values the pixel evaluation reads), the predicted
class and the ground truth, never the probabilities -- and the input images (``StoredImage.path``).
The figures with the meta classifier's segments (6, 15, 16) are in
:mod:`meta_ood.report.figures_scenes_meta`; the scene choice and the drawing helpers here serve both.

Pixel classes follow the store's convention, as in the pixel evaluation: OoD = ``train_id_out``
(outlined in yellow), in-distribution = ``train_id_in``, void = ``void_id``; other labels
(LostAndFound's non-hazards) count as neither. "Evaluated" pixels are OoD or in-distribution.

Scene choice: ``images`` (a list of image names) pins the scenes, drawn in that order; without it
the rule is "largest OoD object": the images sorted by their number of ground-truth OoD pixels,
descending, ties by name, and the first ``n_images`` of them (:func:`choose_largest_ood`).

Every function writes ``out_png`` and ``out_pdf`` and returns the numbers it plots (documented
per function); means over an empty set of pixels are NaN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from meta_ood.errors import InputError
from meta_ood.io import read_rgb
from meta_ood.labels import CITYSCAPES_LABELS, NUM_CLASSES
from meta_ood.report.figures_segments import _fit_image, _overlay, _paint
from meta_ood.report.figures_style import RED, join_title, new_figure, save_figure, style_rc, unique
from meta_ood.report.results import check_entries, dataset_title

if TYPE_CHECKING:
    from meta_ood.labels import EvalConvention
    from meta_ood.store import StoreReader

__all__ = ["CITYSCAPES_COLORS", "choose_largest_ood", "figure1", "figure2", "figure10", "figure13", "ood_pixel_counts"]

#: RGB colours of the 19 Cityscapes train ids (cityscapesScripts ``labels.py``), row = train id.
CITYSCAPES_COLORS: np.ndarray = np.array(
    [lab.color for lab in sorted((lab for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < NUM_CLASSES),
                                 key=lambda lab: lab.train_id)], dtype=np.uint8)
CITYSCAPES_COLORS.setflags(write=False)
_NAME_SHOWN = 5  # available image names listed when a pinned name is unknown


# ------------------------------------------------------------------------------ arguments


def _count_arg(value: Any, name: str, where: str) -> int:
    """An integer argument >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{where}: {name}={value!r}: expected an integer >= 1")
    return int(value)


def _unit_arg(value: Any, name: str, where: str, open_low: bool) -> float:
    """A threshold in (0, 1] (``open_low``) or a probability in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not ((0.0 < v <= 1.0) if open_low else (0.0 <= v <= 1.0)):
        raise InputError(f"{where}: {name}={value!r}: expected a value in {'(0, 1]' if open_low else '[0, 1]'}")
    return v


def _before_after(entries: Any, n_images: Any, where: str) -> tuple[int, Any, Any, Any]:
    """The checked ``n_images``, the readers of ``{baseline_store, ood_store}`` and their convention
    (the common start of the before/after figures 1, 2 and 13)."""
    n_images = _count_arg(n_images, "n_images", where)
    base, ood = _pair(_one_entry(entries, ("baseline_store", "ood_store"), where), where)
    return n_images, base, ood, ood.convention


def _one_entry(entries: Any, keys: Sequence[str], where: str) -> dict[str, Any]:
    """The single entry of a one-model-pair figure (a mapping, or a list of one)."""
    got = check_entries(entries, keys, f"{where} entry")
    if len(got) != 1:
        raise InputError(f"{where}: {len(got)} entries given: expected exactly one (a mapping with keys {list(keys)})")
    return got[0]


def _names_arg(images: Any, where: str) -> list[str] | None:
    """``images`` as a list of names (a single string is one name); None stays None."""
    if images is None:
        return None
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if not isinstance(images, Sequence) or not images or not all(isinstance(n, (str, os.PathLike)) for n in images):
        raise InputError(f"{where}: images={images!r}: expected a non-empty list of image names")
    return [os.fspath(n) for n in images]


# ------------------------------------------------------------------------------- stores


def _store(path: Any, where: str) -> StoreReader:
    """An OoD store (one with an in/out convention) holding at least one image."""
    from meta_ood.store import StoreReader

    reader = StoreReader(path)
    if reader.convention is None:
        raise InputError(f"{where}: {path}: the store has no in/out convention; expected an OoD dataset "
                         "(or Cityscapes val with void as OoD) whose ground truth marks the OoD pixels")
    if len(reader) == 0:
        raise InputError(f"{where}: {path}: the store holds no images")
    return reader


def _pair(entry: Mapping[str, Any], where: str) -> tuple[StoreReader, StoreReader]:
    """The baseline and the OoD-trained store of one dataset: same images, same convention."""
    base, ood = _store(entry["baseline_store"], where), _store(entry["ood_store"], where)
    if base.names != ood.names:
        raise InputError(f"{where}: {entry['baseline_store']} and {entry['ood_store']}: the stores hold different images")
    if base.convention != ood.convention:
        raise InputError(f"{where}: {entry['baseline_store']} and {entry['ood_store']}: different label conventions "
                         f"({base.convention} vs {ood.convention})")
    return base, ood


def ood_pixel_counts(reader: StoreReader) -> np.ndarray:
    """Number of ground-truth OoD pixels (``train_id_out``) of every image of ``reader``."""
    out_id = reader.convention.train_id_out
    return np.array([int((img.label == out_id).sum()) for img in reader.iter(probs=False, logits=False)], np.int64)


def choose_largest_ood(reader: StoreReader, n: int) -> list[int]:
    """Rule "largest OoD object": the ``n`` images with the most OoD pixels (ties: by name)."""
    counts, names = ood_pixel_counts(reader), reader.names
    return sorted(range(len(reader)), key=lambda i: (-counts[i], names[i]))[:n]


def _pinned(reader: StoreReader, names: Sequence[str], where: str) -> list[int]:
    """Store positions of the image ``names``, in their order; InputError naming an unknown one."""
    out = []
    for name in names:
        try:
            out.append(reader.index_of(name))
        except KeyError:
            avail = reader.names
            shown = ", ".join(repr(n) for n in avail[:_NAME_SHOWN]) + (", ..." if len(avail) > _NAME_SHOWN else "")
            raise InputError(f"{where}: images: no image named {name!r} in {reader.folder}; "
                             f"available ({len(avail)}): {shown}") from None
    return out


def _scenes(reader: StoreReader, images: Any, n_images: int, where: str) -> list[int]:
    """The pinned ``images`` or, without them, :func:`choose_largest_ood`."""
    names = _names_arg(images, where)
    return _pinned(reader, names, where) if names is not None else choose_largest_ood(reader, n_images)


@dataclass
class _Scene:
    """The planes of one image of one store: entropy values (float64) and predicted class."""

    name: str
    index: int
    path: str
    label: np.ndarray
    entropy: np.ndarray
    argmax: np.ndarray


def _read_scene(reader: StoreReader, index: int) -> _Scene:
    """Entropy plane, argmax and ground truth of image ``index`` (no probabilities are read)."""
    from meta_ood.store import decode_scores

    img = reader.read(index, probs=False, logits=False, scores=("entropy",), argmax=True)
    return _Scene(img.name, index, img.path, img.label, decode_scores(img.scores["entropy"], "entropy"), img.argmax)


def _read_pair(base: StoreReader, ood: StoreReader, index: int, where: str) -> tuple[_Scene, _Scene]:
    """One image of both stores; InputError when their ground truths differ."""
    b, o = _read_scene(base, index), _read_scene(ood, index)
    if not np.array_equal(b.label, o.label):
        raise InputError(f"{where}: {base.folder} and {ood.folder}: image {o.name!r} has different ground truths")
    return b, o


def _rgb(scene: _Scene) -> np.ndarray:
    """The input image, at the size of the label."""
    return _fit_image(read_rgb(scene.path), scene.label.shape)


def _masks(label: np.ndarray, conv: EvalConvention) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OoD, in-distribution and void pixels."""
    return label == conv.train_id_out, label == conv.train_id_in, label == conv.void_id


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` over ``mask`` (NaN when empty)."""
    return float(values[mask].mean(dtype=np.float64)) if mask.any() else float("nan")


def _entropy_stats(before: _Scene, after: _Scene, conv: EvalConvention) -> dict[str, Any]:
    """Name, pixel counts and mean entropies inside / outside the OoD ground truth of one scene."""
    out, inn, _ = _masks(after.label, conv)
    return {"name": after.name, "index": after.index, "ood_pixels": int(out.sum()), "in_pixels": int(inn.sum()),
            "entropy_ood_before": _mean(before.entropy, out), "entropy_ood_after": _mean(after.entropy, out),
            "entropy_in_before": _mean(before.entropy, inn), "entropy_in_after": _mean(after.entropy, inn)}


def _titles(readers: Sequence[StoreReader]) -> tuple[str, str]:
    """Dataset and model names of the stores, for the titles."""
    datasets = ", ".join(dataset_title(d) for d in unique(r.dataset_kind for r in readers if r.dataset_kind))
    models = ", ".join(unique(r.model for r in readers if r.model))
    return datasets, models


# ------------------------------------------------------------------------------- drawing


def _segmentation(argmax: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """The predicted classes in the Cityscapes colours (ids beyond 18 black), over a trace of the image."""
    lut = np.zeros((256, 3))
    lut[:NUM_CLASSES] = CITYSCAPES_COLORS / 255.0
    return 0.8 * lut[np.minimum(argmax, 255)] + 0.2 * rgb.astype(float) / 255.0


def _heat(ax: Axes, entropy: np.ndarray) -> Any:
    """Entropy heatmap, coolwarm from 0 (blue) to 1 (red)."""
    return ax.imshow(entropy, cmap="coolwarm", vmin=0.0, vmax=1.0)


def _outline(ax: Axes, mask: np.ndarray, width: float = 1.1) -> None:
    """Yellow outline of the ground-truth OoD pixels."""
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="yellow", linewidths=width)


def _ood_mask(rgb: np.ndarray, pred: np.ndarray, void: np.ndarray) -> np.ndarray:
    """Faded image with the predicted OoD pixels red (void darker, never predicted)."""
    img = _overlay(rgb, void)
    _paint(img, pred & ~void, RED)
    return img


def _grid(nrows: int, ncols: int, shape: tuple[int, int], col_w: float, extra_h: float) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows`` x ``ncols`` image panels of ``shape`` (H, W), axes without ticks."""
    h, w = shape
    fig = new_figure(col_w * ncols + 0.4, col_w * h / w * nrows + extra_h)
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    return fig, axes


def _tag(ax: Axes, name: str) -> None:
    """The image name under a panel (not over the image)."""
    short = name if len(name) <= 42 else name[:19] + "…" + name[-22:]
    ax.set_xlabel(short, fontsize=6.5, labelpad=2, color="0.25")


def _colorbar(fig: Figure, heat: Any, axes: Sequence[Axes]) -> None:
    cbar = fig.colorbar(heat, ax=list(axes), location="bottom", shrink=0.8, aspect=30, pad=0.02)
    cbar.set_label("normalized entropy $\\bar{E}$ (high = red)")


def _finish(fig: Figure, handles: Sequence[Any], out_png: Any, out_pdf: Any, about: Sequence[str] = ()) -> None:
    """One title line naming what is shown (``about``: threshold, dataset, models; what the panels are is in
    their row and column labels and the report's caption), legend below the panels, save."""
    if any(about):
        fig.suptitle(join_title(*about), fontsize=10, fontweight="bold")
    if handles:
        ncols = max(1, min(len(handles), int(fig.get_figwidth() // 3.2)))
        fig.legend(handles=list(handles), loc="outside lower center", ncols=ncols, fontsize=8, frameon=False)
    save_figure(fig, out_png, out_pdf)


def _gt_handle() -> Line2D:
    return Line2D([], [], color="yellow", linewidth=2, label="ground-truth OoD object")


# ------------------------------------------------------------------------------- figures


def figure1(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
            out_pdf: str | os.PathLike, n_images: int = 1, images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 1: segmentation and entropy heatmap before (top) and after (bottom) OoD training.

    Parameters
    ----------
    entries : mapping
        ``{baseline_store, ood_store}``: the softmax stores of the plain and the OoD-trained model
        on the same OoD dataset (or a list of one such mapping).
    out_png, out_pdf : path
        The figure files.
    n_images : int
        Scenes to draw with the rule "largest OoD object" (module docstring).
    images : list of str, optional
        Image names pinning the scenes, in order (``n_images`` is then ignored).

    Per scene two rows (before, after OoD training) and two columns: the segmentation (predicted
    class in the Cityscapes colours) and the entropy heatmap (coolwarm, 0..1, high = red), the
    ground-truth OoD pixels outlined in yellow in both.

    Returns
    -------
    dict
        ``scenes``: one dict per scene with ``name``, ``index`` (in the stores), ``ood_pixels``,
        ``in_pixels``, the mean entropies ``entropy_ood_before``, ``entropy_ood_after`` (inside
        the OoD ground truth), ``entropy_in_before``, ``entropy_in_after`` (in-distribution
        pixels) and ``changed_fraction``: the fraction of evaluated pixels whose predicted class
        differs between the two models.
    """
    where = "figure1"
    n_images, base, ood, conv = _before_after(entries, n_images, where)
    drawn, scenes = [], []
    for i in _scenes(ood, images, n_images, where):
        b, o = _read_pair(base, ood, i, where)
        out, inn, _ = _masks(o.label, conv)
        ev = out | inn
        stats = _entropy_stats(b, o, conv)
        stats["changed_fraction"] = float((b.argmax != o.argmax)[ev].mean()) if ev.any() else float("nan")
        scenes.append(stats)
        drawn.append((b, o, _rgb(o), out))
    with mpl.rc_context(style_rc()):
        fig, axes = _grid(2 * len(drawn), 2, drawn[0][1].label.shape, 3.4, 1.6)
        heat = None
        for k, (b, o, rgb, out) in enumerate(drawn):
            for r, (scene, when) in enumerate(((b, "before"), (o, "after"))):
                row = axes[2 * k + r]
                row[0].imshow(_segmentation(scene.argmax, rgb))
                heat = _heat(row[1], scene.entropy)
                for ax in row:
                    _outline(ax, out)
                row[0].set_ylabel(f"{when} OoD training", fontsize=9)
            _tag(axes[2 * k, 0], o.name)
        axes[0, 0].set_title("segmentation (Cityscapes colours)", fontsize=9)
        axes[0, 1].set_title("softmax entropy heatmap", fontsize=9)
        _colorbar(fig, heat, axes[:, 1])
        ds, models = _titles([ood])
        _finish(fig, [_gt_handle()], out_png, out_pdf, (ds, models))
    return {"scenes": scenes}


def figure2(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
            out_pdf: str | os.PathLike, threshold: float = 0.7, n_images: int = 1,
            images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 2: entropy heatmap and OoD prediction mask with (top) and without (bottom) OoD training.

    Parameters
    ----------
    entries : mapping
        ``{baseline_store, ood_store}`` as in :func:`figure1`.
    out_png, out_pdf : path
        The figure files.
    threshold : float
        The entropy threshold t in (0, 1]: pixels with entropy >= t are predicted OoD.
    n_images : int
        Scenes to draw with the rule "largest OoD object".
    images : list of str, optional
        Image names pinning the scenes, in order.

    Per scene two rows (the OoD-trained model on top, the plain model below), columns: entropy
    heatmap with the ground truth outlined in yellow, and the OoD prediction mask (entropy >= t
    in red; void pixels are never predicted and are shaded darker).

    Returns
    -------
    dict
        ``threshold`` and ``scenes``: per scene ``name``, ``index``, ``ood_pixels`` (ground truth)
        and for each row, ``ood`` (after OoD training) and ``baseline``: ``predicted_pixels``
        (non-void pixels with entropy >= t) and ``inside_gt_pixels`` (those of them in the OoD
        ground truth).
    """
    where = "figure2"
    threshold = _unit_arg(threshold, "threshold", where, open_low=True)
    n_images, base, ood, conv = _before_after(entries, n_images, where)
    drawn, scenes = [], []
    for i in _scenes(ood, images, n_images, where):
        b, o = _read_pair(base, ood, i, where)
        out, _, void = _masks(o.label, conv)
        stats: dict[str, Any] = {"name": o.name, "index": i, "ood_pixels": int(out.sum())}
        for key, scene in (("ood", o), ("baseline", b)):
            pred = (scene.entropy >= threshold) & ~void
            stats[key] = {"predicted_pixels": int(pred.sum()), "inside_gt_pixels": int((pred & out).sum())}
        scenes.append(stats)
        drawn.append((o, b, _rgb(o), out, void))
    with mpl.rc_context(style_rc()):
        fig, axes = _grid(2 * len(drawn), 2, drawn[0][0].label.shape, 3.4, 1.6)
        heat = None
        for k, (o, b, rgb, out, void) in enumerate(drawn):
            for r, (scene, when) in enumerate(((o, "with OoD training"), (b, "without OoD training"))):
                row = axes[2 * k + r]
                heat = _heat(row[0], scene.entropy)
                _outline(row[0], out)
                row[1].imshow(_ood_mask(rgb, scene.entropy >= threshold, void))
                row[0].set_ylabel(when, fontsize=9)
            _tag(axes[2 * k, 0], o.name)
        axes[0, 0].set_title("softmax entropy heatmap", fontsize=9)
        axes[0, 1].set_title(f"OoD prediction ($\\bar{{E}} \\geq {threshold:g}$)", fontsize=9)
        _colorbar(fig, heat, axes[:, 0])
        ds, models = _titles([ood])
        handles = [_gt_handle(), Patch(facecolor=RED, label=f"predicted OoD ($\\bar{{E}} \\geq {threshold:g}$)"),
                   Patch(facecolor="0.45", label="void (ignored)")]
        _finish(fig, handles, out_png, out_pdf, (f"t = {threshold:g}", ds, models))
    return {"threshold": threshold, "scenes": scenes}


def figure10(entries: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
             images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 10: the plain model against the one after entropy maximization on Cityscapes void.

    Parameters
    ----------
    entries : list of mappings
        ``{dataset, baseline_store, ood_store}`` per scene (the paper: one Cityscapes val scene,
        from a store whose convention marks void as OoD, and one LostAndFound scene):
        ``dataset`` titles the columns, ``ood_store`` is the void-OoD-trained model's store.
    out_png, out_pdf : path
        The figure files.
    images : list of str, optional
        One image name per entry (in the entry's stores); default: per entry the image with the
        largest OoD object (rule "largest OoD object").

    Two rows (plain model, void-OoD-trained model); per entry two columns: segmentation
    (Cityscapes colours) and entropy heatmap, the OoD ground truth outlined in yellow.

    Returns
    -------
    dict
        ``entries``: per entry ``dataset``, ``name``, ``index``, ``ood_pixels``, ``in_pixels`` and
        per row, ``baseline`` and ``ood`` (void OoD training): ``entropy_ood`` and ``entropy_in``,
        the mean entropy of the OoD and of the in-distribution pixels.
    """
    where = "figure10"
    entries = check_entries(entries, ("dataset", "baseline_store", "ood_store"), f"{where} entry")
    names = _names_arg(images, where)
    if names is not None and len(names) != len(entries):
        raise InputError(f"{where}: images={names!r}: expected one image name per entry ({len(entries)})")
    drawn, plotted, readers = [], [], []
    for k, e in enumerate(entries):
        base, ood = _pair(e, where)
        readers.append(ood)
        i = _pinned(ood, [names[k]], where)[0] if names is not None else choose_largest_ood(ood, 1)[0]
        b, o = _read_pair(base, ood, i, where)
        stats = _entropy_stats(b, o, ood.convention)
        plotted.append({"dataset": str(e["dataset"]), "name": o.name, "index": i, "ood_pixels": stats["ood_pixels"],
                        "in_pixels": stats["in_pixels"],
                        "baseline": {"entropy_ood": stats["entropy_ood_before"], "entropy_in": stats["entropy_in_before"]},
                        "ood": {"entropy_ood": stats["entropy_ood_after"], "entropy_in": stats["entropy_in_after"]}})
        drawn.append((b, o, _rgb(o), o.label == ood.convention.train_id_out, str(e["dataset"])))
    with mpl.rc_context(style_rc()):
        shape = max((d[1].label.shape for d in drawn), key=lambda s: s[0] / s[1])
        fig, axes = _grid(2, 2 * len(drawn), shape, 2.9, 1.7)
        heat = None
        for k, (b, o, rgb, out, ds) in enumerate(drawn):
            for r, scene in enumerate((b, o)):
                axes[r, 2 * k].imshow(_segmentation(scene.argmax, rgb))
                heat = _heat(axes[r, 2 * k + 1], scene.entropy)
                _outline(axes[r, 2 * k + 1], out)
            axes[0, 2 * k].set_title(f"{dataset_title(ds)}\nsegmentation", fontsize=9)
            axes[0, 2 * k + 1].set_title(f"{dataset_title(ds)}\nentropy", fontsize=9)
            _tag(axes[1, 2 * k], o.name)
        axes[0, 0].set_ylabel("baseline model", fontsize=9)
        axes[1, 0].set_ylabel("void OoD training", fontsize=9)
        _colorbar(fig, heat, axes[:, 1::2].ravel())
        _, models = _titles(readers)
        _finish(fig, [_gt_handle()], out_png, out_pdf, (models,))
    return {"entries": plotted}


def figure13(entries: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_png: str | os.PathLike,
             out_pdf: str | os.PathLike, n_images: int = 3, images: Sequence[str] | None = None) -> dict[str, Any]:
    """Paper figure 13: entropy heatmaps before (left) and after (right) OoD training, scenes as rows.

    Parameters
    ----------
    entries : mapping
        ``{baseline_store, ood_store}`` as in :func:`figure1`.
    out_png, out_pdf : path
        The figure files.
    n_images : int
        Scenes to draw with the rule "largest OoD object".
    images : list of str, optional
        Image names pinning the scenes, in order.

    Returns
    -------
    dict
        ``scenes``: per scene ``name``, ``index``, ``ood_pixels``, ``in_pixels`` and the mean
        entropies ``entropy_ood_before``, ``entropy_ood_after``, ``entropy_in_before``,
        ``entropy_in_after`` (as in :func:`figure1`).
    """
    where = "figure13"
    n_images, base, ood, conv = _before_after(entries, n_images, where)
    drawn, scenes = [], []
    for i in _scenes(ood, images, n_images, where):
        b, o = _read_pair(base, ood, i, where)
        scenes.append(_entropy_stats(b, o, conv))
        drawn.append((b, o, o.label == conv.train_id_out))
    with mpl.rc_context(style_rc()):
        fig, axes = _grid(len(drawn), 2, drawn[0][1].label.shape, 3.4, 1.5)
        heat = None
        for r, (b, o, out) in enumerate(drawn):
            for c, scene in enumerate((b, o)):
                heat = _heat(axes[r, c], scene.entropy)
                _outline(axes[r, c], out)
            _tag(axes[r, 0], o.name)
        axes[0, 0].set_title("before OoD training", fontsize=9)
        axes[0, 1].set_title("after OoD training", fontsize=9)
        _colorbar(fig, heat, axes.ravel())
        ds, models = _titles([ood])
        _finish(fig, [_gt_handle()], out_png, out_pdf, (ds, models))
    return {"scenes": scenes}
