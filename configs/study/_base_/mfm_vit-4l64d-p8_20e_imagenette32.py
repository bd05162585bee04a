# The Imagenette study (benchmarks/study/run_study.py, docs/study.md) at its
# 2-core CPU scale: a ViT of 4 layers, 64-d (2 heads), patch 8, on 32 px
# crops of Imagenette decoded once to 64 px and held in memory
# (`ArrayDataset` of benchmarks/study/arrays.py; run_study.py registers the
# arrays under the keys below), 20 epochs. The views are FOLK's on the
# device route of the ImageNet configs (workers draw, the data preprocessor
# cuts and augments); MFM's own views are in ../mfm.py. The study's
# variants (folk.py, dino.py, ...) override this file or ./folk_*.py.
_base_ = [
    '../../_base_/models/mfm_vit-base-p16.py',
    '../../_base_/datasets/imagenet_bs128_folk.py',
    '../../_base_/default_runtime.py',
]
crop = 32
embed = 64
vit_4l64d = dict(
    _delete_=True,
    embed_dims=embed,
    num_layers=4,
    num_heads=2,
    feedforward_channels=4 * embed)
model = dict(
    backbone=dict(arch=vit_4l64d, img_size=crop, patch_size=8),
    neck=dict(in_channels=embed, encoder_stride=8))

folk_views = dict(
    type='FOLKViews',
    crop_size=crop,
    crop_scale=(0.25, 1.0),
    photometric='device',
    crop='device',
    # DINO's blur radius (0.1-2 px) is meant for 224 px crops: scaled
    blur_sigma=(0.1 * crop / 224, 2.0 * crop / 224))
folk_pack = dict(
    type='PackInputs',
    meta_keys=['freq_kind', 'freq_param', 'photometric_params', 'crop_params'])
train_pipeline = [
    folk_views,
    dict(type='RandomFrequencyFilter', filters={{_base_.folk_filters}}),
    folk_pack,
]
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        _delete_=True,
        type='ArrayDataset',
        key='study_train',
        pipeline=train_pipeline))

# AdamW as the shipped recipe; lr 1.5e-4 at batch 64 (docs/study.md,
# recipe search); 2 warm-up epochs, cosine to 1e-5. bf16 on a GPU; on a CPU
# host the launchers train in float32 (folk.engine.adapt_cfg_to_device).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    loss_scale=dict(enabled=False),
    optimizer=dict(
        type='AdamW', lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
        }))
epochs = 20
warmup_epochs = 2
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=epochs - warmup_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20), checkpoint=None)
log_processor = dict(by_epoch=False, window_size=20)
# Online k-NN of the [CLS] token (teacher and student for FOLK) on 300 train
# images per class and the held-out val images, 32 px centre crops; the
# study sets the interval to one epoch.
knn_pipeline = [
    dict(
        type='ResizeEdge',
        scale=round(crop / 0.875),
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackInputs')
]
knn_monitor = dict(
    type='KNNMonitorHook',
    bank=dict(type='ArrayDataset', key='study_bank'),
    query=dict(type='ArrayDataset', key='study_query'),
    pipeline=knn_pipeline,
    bank_per_class=300,
    query_per_class=None,
    interval=100,
    batch_size=256,
    num_workers=0)
custom_hooks = [dict(type='NonFiniteLossHook', policy='raise'), knn_monitor]
log_level = 'WARNING'
