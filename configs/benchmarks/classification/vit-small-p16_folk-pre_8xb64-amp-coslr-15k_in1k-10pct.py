# Few-shot fine-tuning of a FOLK ViT-S/16 on 10 % of the ImageNet-1K labels:
# the ViT-B/16 few-shot schedule and regularisation
# (vit-base-p16_folk-pre_8xb64-amp-coslr-15k_in1k-10pct.py) with the ViT-S
# model of the MFM ViT-S recipe (layer decay 0.8, drop path 0.1).
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb64-amp-coslr-15k_in1k-10pct.py']

model = dict(
    backbone=dict(
        arch='deit-small',
        init_cfg=dict(
            checkpoint='work_dirs/folk_pretrain/folk_vit-small-p16_mmpretrain'
            '.pth')),
    head=dict(in_channels=384))
