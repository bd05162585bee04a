# Runtime shared by the FOLK / MFM configs (MMPretrain's defaults + the
# import that registers FOLK's modules).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['folk'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic checkpoint files; --resume auto skips truncated/corrupt ones
    checkpoint=dict(
        type='SafeCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

# Stop at the first NaN/inf loss term, before the optimizer step (use
# policy='skip' to skip such steps instead). See the README, "Reliability".
custom_hooks = [dict(type='NonFiniteLossHook', policy='raise')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True)
