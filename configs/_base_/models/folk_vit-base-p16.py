# FOLK with ViT-B/16 (docs/method.md): MFM student + DINO-style
# cross-view self-distillation from an EMA teacher.
_base_ = ['./mfm_vit-base-p16.py']
model = dict(
    type='FOLK',
    projector=dict(
        type='DINOProjector',
        in_channels=768,
        hidden_channels=2048,
        bottleneck_channels=256,
        out_channels=65536),
    distill_head=dict(
        type='DistillHead',
        loss=dict(
            type='DistillLoss',
            out_dim=65536,
            student_temp=0.1,
            teacher_temp=0.07,
            warmup_teacher_temp=0.04,
            warmup_epochs=30,
            center_momentum=0.9,
            loss_weight=1.0)),
    teacher_momentum=0.996,
    teacher_momentum_end=1.0)
