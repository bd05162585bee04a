# ADE20K UperNet with a FOLK ViT-S/16 (384-d, 12 layers, 6 heads): the
# ViT-B/16 protocol with 384-d features and a 512-channel UperNet head.
#   python tools/model_converters/folk_to_mmseg.py FOLK_CKPT.pth \
#       work_dirs/folk_pretrain/folk_vit-small-p16_mmseg.pth
#   python tools/train.py THIS_CONFIG --cfg-options model.pretrained=PATH
_base_ = ['./upernet_vit-base-p16_folk-pre_8xb2-amp-160k_ade20k-512x512.py']

model = dict(
    pretrained='work_dirs/folk_pretrain/folk_vit-small-p16_mmseg.pth',
    backbone=dict(embed_dims=384, num_heads=6),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=512),
    auxiliary_head=dict(in_channels=384))
