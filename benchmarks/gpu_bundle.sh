#!/usr/bin/env bash
# Prepare .device/ (git-ignored) for a GPU machine that has torch but no
# OpenMMLab packages and no registry access (see ../shared/ENVIRONMENT.md,
# "On a GPU machine without registry access"): pure-Python wheels for
# Python 3.12, the installed pure-Python mmcv-lite package, and the compact
# data packs. Total ~55 MB (the device tool carries at most 64 MiB).
# Usage: bash benchmarks/gpu_bundle.sh, then on the GPU machine with .device
# carried: bash benchmarks/gpu_checks.sh quick (and ... study). The wheels
# are installed into .device/site by the first of them, once.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=.device
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/data" "$OUT/site"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform any --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 -d "$OUT/wheels" \
    mmengine==0.10.7 mmpretrain==1.2.0 mmsegmentation==1.2.2 addict yapf \
    platformdirs termcolor mat4py modelindex model-index ordered-set \
    importlib-metadata lazy-importer prettytable wcwidth ftfy regex
# mmcv-lite has no wheel (its sdist imports torch): copy the installed,
# pure-Python package.
cp -r "$($PY -c 'import mmcv, os; print(os.path.dirname(mmcv.__file__))')" \
    "$OUT/site/mmcv"
cp ../shared/data/packs/imagenette64.zip ../shared/data/packs/camvid240.zip \
    "$OUT/data/"
du -sh "$OUT"
