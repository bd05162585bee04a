# AdamW (0.9, 0.95), wd 0.05, 20 warm-up epochs then cosine, grad clip 3.0,
# bf16 mixed precision. lr = 1.5e-4 x batch / 256 (docs/method.md).
# bf16 has float32's exponent range: no loss scaling, so the GradScaler is
# disabled (no unscale / inf check / host sync per step). For fp16 use
# dtype='float16', loss_scale='dynamic'. SyncFreeAmpOptimWrapper keeps the
# grad norm on the device until the log interval and skips non-finite steps
# there (docs/reliability.md); fused AdamW on CUDA (the launchers use the
# plain one and OptimWrapper on a CPU: folk.engine.adapt_cfg_to_device).
optim_wrapper = dict(
    type='SyncFreeAmpOptimWrapper',
    dtype='bfloat16',
    loss_scale=dict(enabled=False),
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 1024 / 256,
        betas=(0.9, 0.95),
        weight_decay=0.05,
        fused=True),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=280,
        eta_min=1e-6,
        by_epoch=True,
        begin=20,
        end=300,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300)
# The lr above is for a total batch of 1024 (8 GPUs x 128). MMEngine's
# Runner scales it by (number of GPUs x batch size) / 1024 before training
# (linear scaling rule); tools/train.py logs the result. To train at the
# lr as written: --cfg-options auto_scale_lr.enable=False
auto_scale_lr = dict(enable=True, base_batch_size=1024)
