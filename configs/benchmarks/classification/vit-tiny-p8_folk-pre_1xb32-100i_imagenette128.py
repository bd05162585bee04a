# Small fine-tuning benchmark on the bundled Imagenette (128 px images,
# 64 px crops) with the tiny ViT of the demo pre-training config (192-d,
# 4 layers, 3 heads, patch 8). The ImageNet-1K recipe (ViT-B config) at a
# 2-CPU-core scale: 100 iterations at batch 32, then validation on the full
# val set (3,925 images); ~1.5-2 minutes on 2 cores.
#   python tools/model_converters/folk_to_mmpretrain.py \
#       work_dirs/demo/iter_200.pth \
#       work_dirs/demo/folk_vit-tiny-p8_mmpretrain.pth
#   python tools/train.py THIS_CONFIG \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py']

data_root = '../shared/data/imagenette128/'
crop = 64
num_classes = 10

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=192,
            num_layers=4,
            num_heads=3,
            feedforward_channels=768),
        img_size=crop,
        patch_size=8,
        init_cfg=dict(
            checkpoint='work_dirs/demo/folk_vit-tiny-p8_mmpretrain.pth')),
    head=dict(num_classes=num_classes, in_channels=192))
data_preprocessor = dict(num_classes=num_classes)

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=crop,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=73,  # 64 / 0.875, like 224 / 256
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackInputs')
]
imagenette = dict(type='CustomDataset', data_root=data_root, data_prefix='')
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        ann_file='train.txt',
        pipeline=train_pipeline,
        **imagenette))
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        ann_file='val.txt',
        pipeline=test_pipeline,
        **imagenette))
test_dataloader = val_dataloader

# lr 1e-3 for the short schedule; layer decay 0.65 (4 layers: patch
# embedding at 0.65 ** 5), as when the demo numbers in the docs were run.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=1e-6,
        by_epoch=False,
        begin=10,
        end=100)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=100, val_interval=100)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=32)
