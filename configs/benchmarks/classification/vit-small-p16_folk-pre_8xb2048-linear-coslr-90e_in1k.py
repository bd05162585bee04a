# Linear probing of a FOLK ViT-S/16 ('deit-small' arch) on ImageNet-1K: the
# ViT-B/16 MAE protocol (bicubic resizes) with 384-d features.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb2048-linear-coslr-90e_in1k.py']

model = dict(
    backbone=dict(
        arch='deit-small',
        init_cfg=dict(
            checkpoint='work_dirs/folk_pretrain/folk_vit-small-p16_mmpretrain'
            '.pth')),
    neck=dict(input_features=384),
    head=dict(in_channels=384))
