"""File-level entry points of the pipeline stages: read inputs, call the library's pure functions, write outputs.

Each Snakemake rule and each ``meta-ood`` sub-command calls one entry point; every output is
written under a temporary name and renamed, so an interrupted job leaves nothing half-written.

================================  ========================================
module                            entry points
================================  ========================================
:mod:`.training`                  ``train_baseline_stage``, ``finetune_stage``
:mod:`.pixel_eval`                ``pixel_eval_stage``
:mod:`.segments`                  ``segment_features_stage``, ``merge_segment_shards``
:mod:`.meta`                      ``meta_classify_stage``
:mod:`.segment_eval`              ``segment_eval_stage``
:mod:`meta_ood.report.summary`    ``summary_stage``
================================  ========================================

The softmax dumps are written by :func:`meta_ood.inference.run_dump_stage`, the COCO selection by
:func:`meta_ood.coco_filter.filter_coco`. :mod:`.layout` names the files the stages write. The
entry points are imported on first use, so importing this package loads neither torch nor
scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRY_POINTS = {
    "train_baseline_stage": "meta_ood.stages.training",
    "finetune_stage": "meta_ood.stages.training",
    "pixel_eval_stage": "meta_ood.stages.pixel_eval",
    "segment_features_stage": "meta_ood.stages.segments",
    "merge_segment_shards": "meta_ood.stages.segments",
    "meta_classify_stage": "meta_ood.stages.meta",
    "segment_eval_stage": "meta_ood.stages.segment_eval",
    "summary_stage": "meta_ood.report.summary",
    "threshold_tag": "meta_ood.stages.layout",
}

__all__ = list(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ENTRY_POINTS])
