_base_ = ['./mfm_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
model = dict(backbone=dict(arch='deit-small'), neck=dict(in_channels=384))
