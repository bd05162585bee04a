# ImageNet-1K fine-tuning of a FOLK ViT-S/16 with MFM's ViT-S recipe (MFM
# repository, configs/vit_small/finetune__vit_small__img224__200ep.yaml):
# 200 epochs (5 warm-up), AdamW lr 4e-3 at batch 1024 (2e-3 per 512), layer
# decay 0.8, drop path 0.1; augmentation and evaluation as the ViT-B
# config. iBOT's ViT-S recipe (200 epochs, layer decay 0.75) is close.
# MMPretrain's 'deit-small' arch (384-d, 12 layers, 6 heads; MMPretrain's
# 'small' is a different, 768-d model).
#   python tools/model_converters/folk_to_mmpretrain.py FOLK_VIT_S_CKPT \
#       work_dirs/folk_pretrain/folk_vit-small-p16_mmpretrain.pth
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

model = dict(
    backbone=dict(
        arch='deit-small',
        init_cfg=dict(
            checkpoint='work_dirs/folk_pretrain/folk_vit-small-p16_mmpretrain'
            '.pth')),
    head=dict(in_channels=384))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.25e-4,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=195,
        by_epoch=True,
        begin=5,
        end=200,
        eta_min=5e-7,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=200)
