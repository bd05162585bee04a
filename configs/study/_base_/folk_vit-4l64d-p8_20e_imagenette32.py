# FOLK at the study's scale (./mfm_vit-4l64d-p8_20e_imagenette32.py): the
# projector and distillation head of configs/_base_/models/
# folk_vit-base-p16.py at 256 prototypes, a sharper teacher (0.02, constant;
# docs/study.md, recipe search) and the collapse monitor.
_base_ = ['./mfm_vit-4l64d-p8_20e_imagenette32.py']
model = dict(
    type='FOLK',
    projector=dict(
        type='DINOProjector',
        in_channels={{_base_.embed}},
        hidden_channels=256,
        bottleneck_channels=64,
        out_channels=256),
    distill_head=dict(
        type='DistillHead',
        loss=dict(
            type='DistillLoss',
            out_dim=256,
            student_temp=0.1,
            teacher_temp=0.02,
            warmup_teacher_temp=0.02,
            warmup_epochs={{_base_.warmup_epochs}},
            center_momentum=0.9,
            loss_weight=1.0)),
    teacher_momentum=0.996,
    teacher_momentum_end=1.0)
custom_hooks = [
    dict(type='NonFiniteLossHook', policy='raise'),
    {{_base_.knn_monitor}},
    dict(type='CollapseMonitorHook', interval=20),
]
