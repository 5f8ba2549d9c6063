"""The automatic whole-dataset check of a run's start-up, cached per dataset on its files' names, sizes and mtimes.

Before any job, every image and label file of every dataset the run reads is checked once
(:func:`meta_ood.check_data.check_listings`, in parallel over files). A dataset whose check
found nothing is recorded in ``<cache_dir>/<name>.json`` with a fingerprint of its spec and of the
name, size and modification time of each of its files; while the fingerprint is unchanged the
dataset is not read again, so the check costs one directory listing and one ``stat`` per file on
later runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meta_ood.check_data import DataReport, check_listings, list_datasets
from meta_ood.io import write_text_atomic

__all__ = ["CACHE_VERSION", "DatasetCheck", "check_data_cached", "fingerprint"]

#: Bumped when what the check verifies changes, so that earlier cache entries are checked again.
CACHE_VERSION = 1


@dataclass(frozen=True)
class DatasetCheck:
    """What the start-up check did for one dataset: files read (or found in the cache) and the seconds taken."""

    name: str
    images: int
    labels: int
    cached: bool
    seconds: float


def fingerprint(spec: Mapping[str, Any], files: list[Path]) -> str:
    """SHA-256 of a dataset spec and of the (path, size, mtime) of each of its files; a missing file counts too."""
    h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "spec": dict(spec)}, sort_keys=True,
                                  default=str).encode())
    for path in files:
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()


def _files(listing: Any) -> list[Path]:
    files = []
    for sample in listing.samples:
        files += [p for p in (sample.image, sample.train_ids, sample.label_ids) if p is not None]
    roi = getattr(listing, "roi_path", None)
    return files + ([Path(roi)] if roi else [])


def _cached(path: Path, key: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("fingerprint") == key else None


def check_data_cached(datasets: Mapping[str, Mapping[str, Any]], cache_dir: str | os.PathLike, workers: int = 1,
                      progress: bool = True) -> tuple[DataReport, list[DatasetCheck]]:
    """Check every file of ``datasets`` not already checked with the same files; record the datasets found good.

    Returns the report of the datasets read now (no problem from the cached ones, which had none)
    and per dataset what was done. Only problem-free datasets are cached: a dataset with a problem
    is read again on the next run, after the user fixed it.
    """
    cache = Path(cache_dir)
    listings = list_datasets(datasets)
    keys = {name: fingerprint(datasets[name], _files(listing)) for name, listing in listings.items()}
    done: list[DatasetCheck] = []
    todo = {}
    for name, listing in listings.items():
        entry = None if listing.problems else _cached(cache / f"{name}.json", keys[name])
        if entry is not None:
            done.append(DatasetCheck(name, int(entry["images"]), int(entry["labels"]), True, 0.0))
        else:
            todo[name] = listing
    start = time.perf_counter()
    report = check_listings(datasets, todo, progress=progress, workers=workers)
    seconds = time.perf_counter() - start
    n_files = max(1, sum(len(listing.samples) for listing in todo.values()))
    bad = {p.dataset for p in report.problems}
    for name, listing in todo.items():
        share = seconds * len(listing.samples) / n_files
        done.append(DatasetCheck(name, report.images[name], report.labels[name], False, share))
        if name not in bad:
            entry = {"fingerprint": keys[name], "spec": dict(datasets[name]), "images": report.images[name],
                     "labels": report.labels[name], "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_text_atomic(cache / f"{name}.json", json.dumps(entry, indent=1, default=str) + "\n")
    order = list(datasets)
    done.sort(key=lambda c: order.index(c.name))
    return report, done
