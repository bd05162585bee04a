# Linear probing of a FOLK ViT-B/16 on ImageNet-1K (README, "What the paper states"):
# frozen backbone, [CLS] token after the final norm + BatchNorm (no affine)
# + linear head, LARS lr 6.4 at batch 16384 (8 GPUs x 2048), no weight
# decay, 90 epochs (10 warm-up). The recipe is MMPretrain's MAE linear
# probe; use --auto-scale-lr with another total batch size.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
]

custom_imports = dict(
    imports=['folk', 'folk.converters'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='base',
        frozen_stages=12,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/folk_pretrain/folk_vit-base-p16_mmpretrain'
            '.pth',
            prefix='backbone.')),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(num_classes=1000, in_channels=768))

custom_hooks = [dict(type='PretrainedKeysCheckHook')]

# See the fine-tune config about collate_fn.
train_dataloader = dict(collate_fn=dict(type='default_collate'))
val_dataloader = dict(collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader

auto_scale_lr = dict(base_batch_size=16384)
