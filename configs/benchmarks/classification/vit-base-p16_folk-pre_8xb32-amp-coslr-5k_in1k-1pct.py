# Few-shot fine-tuning of a FOLK ViT-B/16 on 1 % of the ImageNet-1K labels
# (SimCLRv2's list: 12,811 images, ~13 per class). The schedule is set in
# optimizer steps, not in epochs of a tiny subset: 5,000 steps at batch 256
# (8 GPUs x 32; ~100 passes over 12,811 images), 250 warm-up steps, cosine,
# validation + checkpoint every 500 steps. lr 1e-3 = MFM's 2e-3 per 512
# scaled to batch 256; layer decay 0.8 and the rest of the model are the
# MFM-recipe fine-tune config. Regularisation fitted to ~13 images per
# class: bicubic random-resized crop + flip, label smoothing 0.1 and drop
# path 0.1 only (no RandAugment / Mixup / CutMix / random erasing: with 50
# steps an epoch they mostly add noise, and SimCLRv2 / PAWS-style 1 %
# fine-tunes use crop + flip). docs/downstream.md: anchors and why.
#
# Subset file (meta/train_1pct.txt, "path label" lines):
#   python tools/make_fewshot_split.py data/imagenet/meta/train.txt \
#       data/imagenet/meta/train_1pct.txt \
#       --simclr-list data/imagenet_subsets/1percent.txt
# (SimCLRv2's imagenet_subsets/1percent.txt; or --ratio 0.01 --seed 0 for a
# seeded class-balanced subset). Validation uses the full val set.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

max_iters = 5000
warmup_iters = 250
val_interval = 500

model = dict(train_cfg=dict(_delete_=True))  # no Mixup / CutMix

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        ann_file='meta/train_1pct.txt',
        data_prefix='train',
        pipeline=train_pipeline))

optim_wrapper = dict(optimizer=dict(lr=1e-3))
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
auto_scale_lr = dict(base_batch_size=256)
