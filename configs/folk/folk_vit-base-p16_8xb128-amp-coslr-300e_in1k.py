# FOLK ViT-B/16, ImageNet-1K, 8 GPUs x 128, bf16 AMP, 300 epochs.
_base_ = [
    '../_base_/models/folk_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs128_folk.py',
    '../_base_/schedules/adamw_coslr_300e.py',
    '../_base_/default_runtime.py',
]
# auto resume from the latest checkpoint of the work dir after a crash
resume = True
