# CamVid with the tiny FOLK ViT of the demo pre-training config (192-d,
# 4 layers, 3 heads, patch 8): the CamVid / ADE20K protocol at a 2-CPU-core
# scale for tests and the demo. Images at 240x180 (random scale 0.75-1.5),
# 128x128 crops, batch 4, 200 iterations, slide inference (128 / 85),
# pyramid strides 4/8/16/32 from the stride-8 tokens, 64-channel UperNet.
#   python tools/model_converters/folk_to_mmseg.py \
#       work_dirs/demo/iter_200.pth work_dirs/demo/folk_vit-tiny-p8_mmseg.pth
#   python tools/train.py THIS_CONFIG --cfg-options model.pretrained=PATH
_base_ = ['./upernet_vit-base-p16_folk-pre_8xb2-amp-20k_camvid-512x512.py']

crop_size = (128, 128)
scale = (240, 180)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained='work_dirs/demo/folk_vit-tiny-p8_mmseg.pth',
    backbone=dict(
        img_size=crop_size,
        patch_size=8,
        embed_dims=192,
        num_layers=4,
        num_heads=3,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(embed_dim=192, rescales=[2, 1, 0.5, 0.25]),
    decode_head=dict(
        in_channels=[192, 192, 192, 192], channels=64, pool_scales=(1, 2, 3)),
    auxiliary_head=dict(in_channels=192, channels=32),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=scale,
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
# The bundled data (and camvid240.zip) have no test split: tools/test.py
# evaluates val here (the GPU config evaluates test.txt).
test_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        ann_file='val.txt',
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'),
        pipeline=test_pipeline))

optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=20,
        end=200,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=1))
