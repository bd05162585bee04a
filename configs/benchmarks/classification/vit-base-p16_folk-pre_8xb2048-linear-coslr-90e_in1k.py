# Linear probing of a FOLK ViT-B/16 on ImageNet-1K with MAE's protocol
# (MAE main_linprobe.py; MMPretrain
# configs/mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py):
# frozen backbone, [CLS] token after the final norm + BatchNorm (no affine)
# + linear head, LARS lr 6.4 at batch 16384 (8 GPUs x 2048; MAE's 0.1 per
# 256), no weight decay, 90 epochs (10 warm-up). Resizes are bicubic as in
# MAE's main_linprobe.py (MMPretrain's config inherits a bilinear pipeline).
# DINO's multi-block [CLS] probe: ...-8xb128-dino-linear-coslr-100e_in1k.py.
# Use --auto-scale-lr with another total batch size.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
]

custom_imports = dict(imports=['folk'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='base',
        frozen_stages=12,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/folk_pretrain/folk_vit-base-p16_mmpretrain'
            '.pth',
            prefix='backbone.')),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(num_classes=1000, in_channels=768))

# DownstreamProvenanceHook: logs the source checkpoint and teacher / student
# of the pre-trained file, keeps them in every saved checkpoint and writes
# them with the metrics to <log_dir>/downstream_results.json.
custom_hooks = [
    dict(type='PretrainedKeysCheckHook'),
    dict(type='DownstreamProvenanceHook')
]

# MAE main_linprobe.py: RandomResizedCrop(224) + flip for training,
# resize 256 + centre crop 224 for evaluation, both bicubic.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# See the fine-tune config about collate_fn.
train_dataloader = dict(
    dataset=dict(pipeline=train_pipeline),
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    dataset=dict(pipeline=test_pipeline),
    collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader

auto_scale_lr = dict(base_batch_size=16384)
