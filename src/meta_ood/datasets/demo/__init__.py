"""The embedded demo: small synthetic datasets written in the exact on-disk formats of the real ones.

The real datasets (Cityscapes, COCO, LostAndFound, Fishyscapes) cannot be downloaded everywhere,
so the default run of the pipeline works on data produced here. Everything is written in the
official layouts, so the demo goes through the same readers, rules and code paths as a real run::

    <out>/cityscapes/leftImg8bit/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <out>/cityscapes/gtFine/<split>/<city>/<city>_<seq:06d>_<frame:06d>_gtFine_labelIds.png
    <out>/cityscapes/gtFine/<split>/<city>/<city>_<seq:06d>_<frame:06d>_gtFine_labelTrainIds.png
        (the train-id file only for the splits in ``DemoConfig.write_train_ids``)
    <out>/coco/annotations/instances_train2017.json
    <out>/coco/train2017/<image_id:012d>.jpg
    <out>/lostandfound/leftImg8bit/test/<scene>/<scene>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <out>/lostandfound/gtCoarse/test/<scene>/<scene>_<seq:06d>_<frame:06d>_gtCoarse_labelIds.png
    <out>/fishyscapes/Static/<name>.png   (0 in, 1 out, 255 void)  next to  <name>.jpg
    <out>/fishyscapes/LostAndFound/<index:04d>_<scene>_<seq:06d>_<frame:06d>_labels.png
        (0 in = road, 1 out = obstacle, 255 void; the images are the LostAndFound-format ones)
    <out>/smiyc/dataset_AnomalyTrack/{images/<fid>.jpg, labels_masks/<fid>_labels_semantic.png}
    <out>/smiyc/dataset_ObstacleTrack/{images/<fid>.webp, labels_masks/<fid>_labels_semantic.png}
    <out>/lostandfound_noknown/         (LostAndFound layout, with sequences LostAndFound-NoKnown excludes)
    <out>/road_anomaly/{frame_list.json, frames/<name>.jpg|webp, frames/<name>.labels/labels_semantic.png}
        (these four: :mod:`meta_ood.datasets.demo.smiyc`)
    <out>/DEMO_DATA.owner.json            (written first: the folder belongs to the generator)
    <out>/DEMO_DATA.json                  (config + counts, written last: marks a complete data set)

Content
-------
* **Cityscapes format**: perspective street scenes (road with lane markings, sidewalks with
  curbs and tiles, buildings with windows, walls, fences, poles with traffic signs and lights,
  trees, terrain, a sky gradient with clouds, pedestrians, cars, and in turn trucks, buses,
  trams, riders, bicycles and motorcycles), labelled with the official Cityscapes label ids
  including the void ones (ego vehicle, out of roi, rectification border, static, dynamic,
  ground, parking, guard rail, polegroup). Colours, textures, geometry and lighting (global
  gain/contrast/gamma/white balance, cast shadows, vignetting, blur, sensor noise) vary per
  image and the colour ranges of the classes overlap, so a small network learns the task well
  but not perfectly.
* **COCO format**: images of varied size with polygon, uncompressed-RLE (crowd) and compressed
  RLE annotations under real COCO category ids. Like real COCO, the objects are many and
  diverse: animal-, furniture- and object-like silhouettes plus generic blobs, boxes, elongated
  objects, discs and polygons, mostly small to medium and now and then large, whose surfaces
  come from broad families (fur, wood, fabric, metallic, two-tone patches, and checkers,
  stripes, spots, coloured noise and colour gradients at random scales, angles and hues). They
  stand on varied backgrounds: empty streets drawn by the street renderer below (no vehicles,
  no people: real COCO has many outdoor scenes, and only those with an excluded category are
  filtered out), with the objects standing on the ground in perspective; paved ground seen from
  above; indoor, outdoor and abstract scenes. An object always contrasts with what is behind it
  and is never a mere darker shade of it (so it cannot pass for a shadow). A fraction of the
  images is smaller than ``coco_min_size`` and a fraction contains a category that Cityscapes
  also has (person, car, ...), so the COCO filter has work to do.
* **LostAndFound format**: road-dominated scenes of the same kind with 1-3 small obstacles on
  the road (checkerboard crates, striped pylons, spotted blobs in unusual hues, occasionally a
  lying timber or post, one of the 'random non-hazard' ids); label ids 1 = free road, obstacle
  ids 2..43, 0 elsewhere; no train-id file, like the official archive.
* **Fishyscapes Static format**: Cityscapes-format scenes with pasted foreign objects (rainbow
  stars, ring targets, swirl blobs), 1 on the objects, 0 elsewhere, 255 on the Cityscapes void
  pixels (ego vehicle and friends) and on a thin image border.
* **Fishyscapes LostAndFound format**: the first ``n_fishyscapes_lostandfound`` LostAndFound-format
  frames relabelled the Fishyscapes way: 0 on the free road, 1 on the obstacles, 255 elsewhere
  (including the 'random non-hazard' objects). Like the official release, only the labels are
  written; the reader finds the images in the LostAndFound ``leftImg8bit/`` folder.

What the OoD proxies share with the test objects, and what not: neither the LostAndFound
obstacles nor the Fishyscapes objects occur in the Cityscapes-format training scenes. The
COCO-format proxies share *texture families* with the obstacles (checkers, stripes, spots,
saturated colours of any hue) and, on street backgrounds, the setting (an object on the road).
They share no object: the obstacles are 3-D bodies rendered in perspective with shaded faces
and a ground shadow (checkered crates whose pattern follows the faces, striped cones on a base
plate, spotted wobbly domes, lying timbers) with a two-colour scheme drawn from hues 0.42-1.15
and a second hue 0.3-0.6 apart; the proxies are flat silhouettes whose patterns lie in the image
plane, with independently drawn colours, and no cone, crate, dome or timber among them. The
Fishyscapes objects (rainbow stars, ring targets, swirls, faceted crystals) share no shape with
either. OoD detection on the test sets therefore has to generalize from the proxies, as with
the real datasets.

Determinism: every image is drawn with its own :class:`numpy.random.Generator` seeded from
``(seed, dataset, index)``, so the same config writes byte-identical files and changing a count
does not change the images that are generated anyway. All files are written atomically; files of
an earlier generation into the same folder that the new config no longer produces are removed.

User data is never touched: :func:`generate` writes only into a new or empty folder, or into one
that holds its own ``DEMO_DATA.owner.json`` or ``DEMO_DATA.json``; any other non-empty folder is
refused with an :class:`~meta_ood.errors.InputError` and left as it is. In a fresh folder the
ownership record ``DEMO_DATA.owner.json`` (with the config being generated) is written before
anything else, so a generation that was killed can be redone in the same folder; the files it
lists are the only ones a later generation removes. ``DEMO_DATA.json`` is written last and marks
a complete data set (the workflow deletes it before it reruns the generator, hence the separate
ownership record).
"""

from __future__ import annotations

from meta_ood.datasets.demo.coco import COCO_CATEGORIES, render_coco
from meta_ood.datasets.demo.config import DemoConfig, demo_config_from_dict
from meta_ood.datasets.demo.naming import fishyscapes_lostandfound_frames
from meta_ood.datasets.demo.scenes import render_cityscapes, render_fishyscapes, render_lostandfound
from meta_ood.datasets.demo.writers import MARKER_NAME, OWNER_NAME, generate, planned_files

__all__ = [
    "MARKER_NAME",
    "OWNER_NAME",
    "COCO_CATEGORIES",
    "DemoConfig",
    "demo_config_from_dict",
    "fishyscapes_lostandfound_frames",
    "generate",
    "planned_files",
    "render_cityscapes",
    "render_coco",
    "render_fishyscapes",
    "render_lostandfound",
]
