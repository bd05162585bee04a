# ADE20K UperNet with a FOLK ViT-S/16 (384-d, 12 layers, 6 heads) and
# iBOT's ViT-S/16 recipe (iBOT evaluation/semantic_segmentation/configs/
# upernet/vit_small_512_ade20k_160k_ms.py, lr from iBOT's
# evaluation/README.md): AdamW lr 3e-5, layer-wise lr decay 0.9, weight
# decay 0.05, drop path 0.1, a 384-channel UperNet head, batch 16, 160k
# iterations (1,500 warm-up), 512x512 crops, slide inference. The ViT-B
# recipe (lr 1e-4, decay 0.65) would give the patch embedding of a 12-layer
# ViT-S 1e-4 x 0.65 ** 13 ~ 4e-7: iBOT's decay 0.9 keeps it at ~8e-6.
#   python tools/model_converters/folk_to_mmseg.py FOLK_CKPT.pth \
#       work_dirs/folk_pretrain/folk_vit-small-p16_mmseg.pth
#   python tools/train.py THIS_CONFIG --cfg-options model.pretrained=PATH
_base_ = ['./upernet_vit-base-p16_folk-pre_8xb2-amp-160k_ade20k-512x512.py']

model = dict(
    pretrained='work_dirs/folk_pretrain/folk_vit-small-p16_mmseg.pth',
    backbone=dict(embed_dims=384, num_heads=6),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=384),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = dict(
    optimizer=dict(lr=3e-5), paramwise_cfg=dict(layer_decay_rate=0.9))
