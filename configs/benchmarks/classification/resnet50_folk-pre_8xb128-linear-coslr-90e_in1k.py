# Linear probing of a FOLK / MFM ResNet-50 on ImageNet-1K with MMPretrain's
# self-supervised ResNet-50 protocol
# (configs/mocov3/benchmarks/resnet50_8xb128-linear-coslr-90e_in1k.py):
# frozen backbone (BN in eval mode), global average pooling + linear head,
# SGD momentum 0.9, lr 0.4 at batch 1024 (8 GPUs x 128), no weight decay,
# 90 epochs cosine, no warm-up; random-resized crop + flip, evaluation
# resize 256 + centre crop 224 (bilinear, as the anchor).
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmpretrain::mocov3/benchmarks/resnet50_8xb128-linear-coslr-90e_in1k.py'
]

custom_imports = dict(imports=['folk'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/folk_pretrain/folk_resnet50_mmpretrain.pth',
            prefix='backbone.')))

# DownstreamProvenanceHook: logs the source checkpoint and teacher / student
# of the pre-trained file, keeps them in every saved checkpoint and writes
# them with the metrics to <log_dir>/downstream_results.json.
custom_hooks = [
    dict(type='PretrainedKeysCheckHook'),
    dict(type='DownstreamProvenanceHook')
]
