# Demo: FOLK on the bundled Imagenette (128 px) with a tiny ViT (192-d,
# 4 layers, patch 8) on 64 px crops. Runs on 2 CPU cores in a few minutes
# and shows loss_freq and loss_distill falling. Used by `make demo`.
# Demo-scale choices (the ViT-B recipe is in configs/folk/): 1024
# prototypes, a constant teacher temperature of 0.04 (200 iterations are
# shorter than any warm-up) and lr 3e-4 (at 1e-3 the student's [CLS]
# features collapse within ~30 iterations and loss_distill climbs to
# log(1024)).
_base_ = [
    '../_base_/models/folk_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs128_folk.py',
    '../_base_/default_runtime.py',
]
data_root = '../shared/data/imagenette128/'
crop = 64
vit_tiny = dict(
    _delete_=True,
    embed_dims=192,
    num_layers=4,
    num_heads=3,
    feedforward_channels=768)
model = dict(
    backbone=dict(arch=vit_tiny, img_size=crop, patch_size=8),
    neck=dict(in_channels=192, encoder_stride=8),
    projector=dict(
        in_channels=192,
        hidden_channels=512,
        bottleneck_channels=128,
        out_channels=1024),
    distill_head=dict(
        loss=dict(out_dim=1024, teacher_temp=0.04, warmup_teacher_temp=0.04)))

train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    dict(
        type='FOLKViews',
        crop_size=crop,
        crop_scale=(0.25, 1.0),
        photometric='device',
        crop='device',
        # DINO's blur radius (0.1-2 px) is meant for 224 px crops: scaled
        blur_sigma=(0.1 * crop / 224, 2.0 * crop / 224)),
    dict(type='RandomFrequencyFilter', filters={{_base_.folk_filters}}),
    dict(
        type='PackInputs',
        meta_keys=[
            'img_path', 'freq_kind', 'freq_param', 'photometric_params',
            'crop_params'
        ])
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    pin_memory=False,
    collate_fn=dict(type='folk_views_collate'),
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='train.txt',
        data_prefix='',
        with_label=True,  # the annotation lines carry labels; unused
        pipeline=train_pipeline))

optim_wrapper = dict(
    type='SyncFreeOptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=3e-4,
        betas=(0.9, 0.95),
        weight_decay=0.05,
        fused=True),  # on CUDA; the usual AdamW on a CPU (tools/train.py)
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(
        type='CosineAnnealingLR',
        T_max=180,
        eta_min=1e-5,
        by_epoch=False,
        begin=20,
        end=200)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(
        type='SafeCheckpointHook',
        by_epoch=False,
        interval=100,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
# Monitors (docs/monitoring.md): k-NN top-1 of the teacher's and the
# student's [CLS] features (bank: 50 train images per class, queries: 50 val
# images per class, 64 px centre crops) every 100 iterations, and the check
# of the teacher's output entropy for collapse.
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=73, edge='short'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackInputs')
]
custom_hooks = [
    dict(type='NonFiniteLossHook', policy='raise'),
    dict(
        type='KNNMonitorHook',
        bank=dict(
            type='CustomDataset',
            data_root=data_root,
            ann_file='train.txt',
            data_prefix=''),
        query=dict(
            type='CustomDataset',
            data_root=data_root,
            ann_file='val.txt',
            data_prefix=''),
        pipeline=knn_pipeline,
        bank_per_class=50,
        query_per_class=50,
        interval=100,
        batch_size=100,
        num_workers=0),
    dict(type='CollapseMonitorHook', interval=10),
]
