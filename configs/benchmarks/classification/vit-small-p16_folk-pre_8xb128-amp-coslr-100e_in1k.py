# ImageNet-1K fine-tuning of a FOLK ViT-S/16: the ViT-B/16 recipe with
# MMPretrain's 'deit-small' arch (384-d, 12 layers, 6 heads; MMPretrain's
# 'small' is a different, 768-d model).
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

model = dict(
    backbone=dict(
        arch='deit-small',
        init_cfg=dict(
            checkpoint='work_dirs/folk_pretrain/folk_vit-small-p16_mmpretrain'
            '.pth')),
    head=dict(in_channels=384))
