# Runtime shared by the FOLK / MFM configs (MMPretrain's defaults + the
# import that registers FOLK's modules).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['folk'], allow_failed_imports=False)

default_hooks = dict(
    # logged values read from the device at the log interval only
    runtime_info=dict(type='DeferredRuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic checkpoint files; --resume auto skips truncated/corrupt ones
    checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # epoch loop: augmentation draws from (seed, epoch, rank, worker), so a
    # resumed epoch continues exactly (folk.engine.seeding)
    epoch_seed=dict(type='EpochSeedHook'),
    # records world size x batch and iterations per epoch in checkpoints; a
    # resume on another scale stops unless accepted (docs/reliability.md).
    # A default hook, so that configs replacing custom_hooks keep it
    run_scale=dict(type='RunScaleHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

# Stop at the first NaN/inf loss term, before the optimizer step (use
# policy='skip' to skip such steps instead). See docs/reliability.md.
#
# Monitors (docs/monitoring.md): k-NN top-1 (k=20, T=0.07) of the EMA
# teacher's and the student's [CLS] (ViT) / pooled (ResNet) features, bank:
# 20 train images per class, queries: 10 val images per class (ImageNet,
# 224 px centre crops), every 2500 iterations (~2 epochs at 8 x 128) and at
# the end: 0.1 % of the training time measured, at most 0.3 % by the FLOP
# count (docs/monitoring.md, benchmarks/knn_monitor_cost.py); and the check
# of the teacher's entropy for a collapsed distillation (FOLK only).
# The k-NN monitor needs labelled ImageNet: switch it off with
# `--cfg-options custom_hooks.1.enable=False` (tools/train.py drops hooks
# with enable=False), or use a config without it (configs/*/*_custom.py,
# own images).
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs')
]
custom_hooks = [
    dict(type='NonFiniteLossHook', policy='raise'),
    dict(
        type='KNNMonitorHook',
        bank=dict(type='ImageNet', data_root='data/imagenet/', split='train'),
        query=dict(type='ImageNet', data_root='data/imagenet/', split='val'),
        pipeline=knn_pipeline,
        bank_per_class=20,
        query_per_class=10,
        interval=2500,
        batch_size=128,
        num_workers=8),
    dict(type='CollapseMonitorHook', interval=50),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# DDP's gradient buckets as the gradients' storage: no second copy of all
# gradients (+0.41 GiB for ViT-B)
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', gradient_as_bucket_view=True)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True)
