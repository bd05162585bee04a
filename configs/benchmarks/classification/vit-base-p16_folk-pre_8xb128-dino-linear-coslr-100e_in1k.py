# DINO's linear probe of a FOLK ViT-B/16 on ImageNet-1K (DINO
# eval_linear.py: ViT-B/16 uses the [CLS] token of the last block plus the
# mean of its patch tokens, both after the final LayerNorm; 2 x 768 =
# 1536-d): the ViT-S/16 DINO probe config with DINO's ViT-B feature.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-small-p16_folk-pre_8xb128-dino-linear-coslr-100e_in1k.py']

num_blocks = 1
with_avgpool = True
embed_dims = 768
model = dict(
    backbone=dict(
        arch='base',
        num_blocks=num_blocks,
        with_avgpool=with_avgpool,
        init_cfg=dict(
            checkpoint='work_dirs/folk_pretrain/folk_vit-base-p16_mmpretrain'
            '.pth')),
    head=dict(in_channels=embed_dims * (num_blocks + int(with_avgpool))))
