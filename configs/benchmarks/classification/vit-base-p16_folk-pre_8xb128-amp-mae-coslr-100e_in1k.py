# ImageNet-1K fine-tuning of a FOLK ViT-B/16 with MAE's recipe (MMPretrain
# configs/mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py, MAE paper
# Table 9): the MFM-recipe config with AdamW lr 2e-3 at batch 1024, layer
# decay 0.65, warm-up from 1e-4 x lr and cosine to 1e-6. Everything else
# (100 epochs, augmentation, mean pooling, evaluation) is the same. Use it
# to set FOLK beside MAE-recipe numbers; FOLK-versus-MFM comparisons use
# vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

optim_wrapper = dict(
    optimizer=dict(lr=2e-3), paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=95,
        by_epoch=True,
        begin=5,
        end=100,
        eta_min=1e-6,
        convert_to_iter_based=True)
]
