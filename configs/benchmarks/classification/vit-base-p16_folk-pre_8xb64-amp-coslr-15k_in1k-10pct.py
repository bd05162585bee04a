# Few-shot fine-tuning of a FOLK ViT-B/16 on 10 % of the ImageNet-1K labels
# (SimCLRv2's list: 128,116 images, ~128 per class). The schedule is set in
# optimizer steps: 15,000 steps at batch 512 (8 GPUs x 64; ~60 passes over
# 128,116 images), 1,250 warm-up steps (~5 passes, MFM's 5 warm-up epochs),
# cosine, validation + checkpoint every 1,500 steps. lr 2e-3 = MFM's 2e-3
# per 512; layer decay 0.8, drop path 0.1 and the full augmentation of the
# MFM-recipe fine-tune (RandAugment m9, Mixup 0.8, CutMix 1.0, label
# smoothing 0.1, random erasing 0.25): ~128 images per class and ~60 passes
# are enough for it to pay off. docs/downstream.md: anchors and why.
#
# Subset file (meta/train_10pct.txt, "path label" lines):
#   python tools/make_fewshot_split.py data/imagenet/meta/train.txt \
#       data/imagenet/meta/train_10pct.txt \
#       --simclr-list data/imagenet_subsets/10percent.txt
# (or --ratio 0.1 --seed 0 for a seeded class-balanced subset).
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

max_iters = 15000
warmup_iters = 1250
val_interval = 1500

train_dataloader = dict(
    batch_size=64,
    dataset=dict(ann_file='meta/train_10pct.txt', data_prefix='train'))

optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - warmup_iters,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=1e-6)
]
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=val_interval)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=512)
