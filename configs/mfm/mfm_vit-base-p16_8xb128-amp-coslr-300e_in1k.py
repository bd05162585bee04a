# MFM ViT-B/16 baseline, ImageNet-1K, 8 GPUs x 128, bf16 AMP, 300 epochs.
# MFM's own recipe: lr 3e-4 x batch / 512, crop scale 0.2-1, no photometric
# augmentation, low/high-pass radius 16.
_base_ = [
    '../_base_/models/mfm_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs128_mfm.py',
    '../_base_/schedules/adamw_coslr_300e.py',
    '../_base_/default_runtime.py',
]
optim_wrapper = dict(optimizer=dict(lr=3e-4 * 1024 / 512))
resume = True
