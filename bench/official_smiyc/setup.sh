#!/usr/bin/env bash
# Install the official SegmentMeIfYouCan evaluation code (road-anomaly-benchmark) into its own virtualenv,
# bench/official_smiyc/.venv, for `bench/bench_smiyc.py --official` and the parity-case generator.
#
#   bash bench/official_smiyc/setup.sh                # clones the repository at the pinned commit
#   bash bench/official_smiyc/setup.sh --src DIR      # uses an existing checkout (DIR/road_anomaly_benchmark/)
#
# The pins follow the official requirements.txt (numpy 1.23.3, easydict 1.10, ...) for the packages its metric
# code imports. Python 3.11 has no wheels of its scipy 1.9.1 and h5py 3.7.0: the nearest releases that have one
# are used (scipy 1.9.3, h5py 3.8.0, matplotlib 3.6.3, pandas 1.5.3, contourpy 1.0.7); torch and the other
# packages of its requirements serve its inference scripts, not its metrics, and are left out.
# PYTHON=python3.11 (default python3) chooses the interpreter.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMMIT=1c7804e0749686452eb02bbcfb81234e38795f8a
REPO_URL=https://github.com/SegmentMeIfYouCan/road-anomaly-benchmark
PYTHON="${PYTHON:-python3}"
SRC=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --src) SRC="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $1 (expected --src DIR)" >&2; exit 2 ;;
  esac
done

if [[ -z "$SRC" ]]; then
  SRC="$HERE/src"
  if [[ ! -d "$SRC/.git" ]]; then
    echo "cloning $REPO_URL into $SRC"
    git clone --quiet "$REPO_URL" "$SRC"
  fi
  git -C "$SRC" checkout --quiet "$COMMIT"
  echo "official code: $SRC at $(git -C "$SRC" rev-parse --short HEAD)"
fi
if [[ ! -f "$SRC/road_anomaly_benchmark/metrics/pixel_classification.py" ]]; then
  echo "setup.sh: $SRC does not hold road_anomaly_benchmark/metrics/ (give the repository's root)" >&2
  exit 2
fi

VENV="$HERE/.venv"
echo "virtualenv: $VENV ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
PINS=(numpy==1.23.3 scipy==1.9.3 h5py==3.8.0 easydict==1.10 matplotlib==3.6.3 pandas==1.5.3 contourpy==1.0.7
      Pillow==9.2.0 imageio==2.22.0 ipython==8.5.0 tqdm==4.64.1 opencv-python-headless==4.6.0.66)
echo "installing: ${PINS[*]}"
"$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
# a dependency may have pulled a newer numpy: the official pin last
echo "reinstalling numpy==1.23.3 (no dependencies)"
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps numpy==1.23.3
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$SRC" > "$SITE/road_anomaly_benchmark_src.pth"
echo "official source on the path: $SITE/road_anomaly_benchmark_src.pth -> $SRC"
"$VENV/bin/python" -c "
import numpy, scipy, h5py
from road_anomaly_benchmark.metrics.pixel_classification import MetricPixelClassification
from road_anomaly_benchmark.metrics.instance_segmentation import MetricSegment
print('official SMIYC code ready: numpy', numpy.__version__, 'scipy', scipy.__version__, 'h5py', h5py.__version__)
"
