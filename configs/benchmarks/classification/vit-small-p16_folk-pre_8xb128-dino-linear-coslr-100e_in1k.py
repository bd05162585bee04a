# DINO's linear probe of a FOLK ViT-S/16 on ImageNet-1K (DINO
# eval_linear.py; iBOT run.sh uses the same feature for ViT-S): frozen
# backbone, the [CLS] tokens of the last 4 blocks, each through the final
# LayerNorm, concatenated (4 x 384 = 1536-d), linear head (weights N(0,
# 0.01), bias 0, no BatchNorm), SGD momentum 0.9, lr 0.004 at batch 1024
# (DINO's 0.001 per 256), no weight decay, 100 epochs cosine to 0, no
# warm-up. Training: RandomResizedCrop(224) + flip (torchvision's default
# bilinear, as DINO); evaluation: resize 256 bicubic + centre crop 224.
# DINO sweeps the lr per checkpoint: pass optim_wrapper.optimizer.lr=... .
# MAE's protocol ([CLS] + BatchNorm + LARS) is
# vit-small-p16_folk-pre_8xb2048-linear-coslr-90e_in1k.py.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb2048-linear-coslr-90e_in1k.py']

num_blocks = 4
with_avgpool = False
embed_dims = 384
model = dict(
    backbone=dict(
        _delete_=True,
        type='MultiBlockClsViT',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        num_blocks=num_blocks,
        with_avgpool=with_avgpool,
        frozen_stages=12,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/folk_pretrain/folk_vit-small-p16_mmpretrain'
            '.pth',
            prefix='backbone.')),
    neck=None,
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=1000,
        in_channels=embed_dims * (num_blocks + int(with_avgpool)),
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=dict(type='Normal', layer='Linear', std=0.01, bias=0.)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',  # fp32 OptimWrapper on CPU (tools/train.py)
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.004, momentum=0.9, weight_decay=0.))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=100,
        by_epoch=True,
        begin=0,
        end=100,
        eta_min=0.)
]
train_cfg = dict(by_epoch=True, max_epochs=100)
auto_scale_lr = dict(base_batch_size=1024)
