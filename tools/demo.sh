#!/usr/bin/env bash
# The main job on the bundled data, end to end, on CPU or GPU:
#   1. FOLK pre-training (tiny ViT, Imagenette 128 px, 200 iterations)
#   2. conversion of the checkpoint to MMPretrain and MMSeg weights
#   3. a short Imagenette fine-tune and a short CamVid UperNet run
# Data: $SHARED/data when it has imagenette128/ and camvid/, else
# $DEMO_DATA (made by tools/dataset_converters/prepare_demo_data.py), else
# a message with the one command that makes it.
# Usage: bash tools/demo.sh [--check-data]   (env: PYTHON, WORK, SHARED,
#        DEMO_DATA); --check-data: only find the data and print its folder
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:-work_dirs/demo}
SHARED=${SHARED:-../shared}
DEMO_DATA=${DEMO_DATA:-data/demo}
if test -d "$SHARED/data/imagenette128" && test -d "$SHARED/data/camvid"; then
    DATA=$SHARED/data
elif test -f "$DEMO_DATA/imagenette128/train.txt" &&
    test -f "$DEMO_DATA/camvid/train.txt"; then
    DATA=$DEMO_DATA
else
    cat >&2 <<EOF
No demo data: neither $SHARED/data nor $DEMO_DATA holds imagenette128/ and
camvid/. Make it (downloads Imagenette 160 px and SegNet's CamVid) with:

    make demo-data DEMO_DATA=$DEMO_DATA

(the same as: python tools/dataset_converters/prepare_demo_data.py --out $DEMO_DATA
in an environment with requirements.txt installed)

then run make demo again (README.md, "Quick start").
EOF
    exit 1
fi
echo "demo data: $DATA"
if [ "${1:-}" = "--check-data" ]; then exit 0; fi
mkdir -p "$WORK"
start=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }

step "1/4 FOLK pre-training (configs/demo, 200 iterations)"
$PYTHON tools/train.py configs/demo/folk_vit-tiny-p8_1xb32-200i_imagenette128.py \
    --work-dir "$WORK/pretrain" \
    --cfg-options train_dataloader.dataset.data_root="$DATA/imagenette128/" \
    custom_hooks.1.bank.data_root="$DATA/imagenette128/" \
    custom_hooks.1.query.data_root="$DATA/imagenette128/"
CKPT=$(cat "$WORK/pretrain/last_checkpoint")

step "2/4 conversion of $CKPT"
$PYTHON tools/model_converters/folk_to_mmpretrain.py "$CKPT" \
    "$WORK/folk_vit-tiny-p8_mmpretrain.pth"
$PYTHON tools/model_converters/folk_to_mmseg.py "$CKPT" \
    "$WORK/folk_vit-tiny-p8_mmseg.pth"

step "3/4 Imagenette fine-tune (100 iterations) + validation"
$PYTHON tools/train.py \
    configs/benchmarks/classification/vit-tiny-p8_folk-pre_1xb32-100i_imagenette128.py \
    --work-dir "$WORK/finetune" \
    --cfg-options model.backbone.init_cfg.checkpoint="$WORK/folk_vit-tiny-p8_mmpretrain.pth" \
    train_dataloader.dataset.data_root="$DATA/imagenette128/" \
    val_dataloader.dataset.data_root="$DATA/imagenette128/"

step "4/4 CamVid UperNet (200 iterations) + validation"
$PYTHON tools/train.py \
    configs/benchmarks/segmentation/upernet_vit-tiny-p8_folk-pre_1xb4-200i_camvid-128x128.py \
    --work-dir "$WORK/camvid" \
    --cfg-options model.pretrained="$WORK/folk_vit-tiny-p8_mmseg.pth" \
    train_dataloader.dataset.data_root="$DATA/camvid/" \
    val_dataloader.dataset.data_root="$DATA/camvid/"

step "done: pre-training, conversion, fine-tune and segmentation in $WORK"
last() { grep -ho "$1" "$2"/*/*.log 2>/dev/null | tail -1; }
echo "pre-training (last logged): $(last 'loss_freq: [0-9.]*  loss_distill: [0-9.]*' "$WORK/pretrain")"
echo "pre-training k-NN top-1:    $(last 'k-NN top-1 (%) at iteration [0-9]*: teacher [0-9.]*, student [0-9.]*' "$WORK/pretrain")"
echo "teacher entropy (nats):     $(last 'teacher_entropy: [0-9.]*  teacher_marginal_entropy: [0-9.]*' "$WORK/pretrain")"
echo "Imagenette fine-tune:       $(last 'accuracy/top1: [0-9.]*' "$WORK/finetune")"
echo "CamVid UperNet:             $(last 'mIoU: [0-9.]*' "$WORK/camvid")"
