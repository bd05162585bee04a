# FOLK ViT-S/16 (MMPretrain arch 'deit-small': 384-d, 12 layers, 6 heads).
_base_ = ['./folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
model = dict(
    backbone=dict(arch='deit-small'),
    neck=dict(in_channels=384),
    projector=dict(in_channels=384))
