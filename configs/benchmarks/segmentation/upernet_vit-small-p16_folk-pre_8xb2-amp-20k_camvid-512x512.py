# CamVid with a FOLK ViT-S/16 and UperNet: the ViT-B/16 CamVid schedule
# (20k iterations, 960x720 images, 512x512 crops, test split for
# tools/test.py) with the ViT-S/16 ADE20K recipe (iBOT: AdamW lr 3e-5,
# layer decay 0.9, 384-channel UperNet head).
#   python tools/train.py THIS_CONFIG --cfg-options model.pretrained=PATH
_base_ = ['./upernet_vit-base-p16_folk-pre_8xb2-amp-20k_camvid-512x512.py']

model = dict(
    pretrained='work_dirs/folk_pretrain/folk_vit-small-p16_mmseg.pth',
    backbone=dict(embed_dims=384, num_heads=6),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=384),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = dict(
    optimizer=dict(lr=3e-5), paramwise_cfg=dict(layer_decay_rate=0.9))
