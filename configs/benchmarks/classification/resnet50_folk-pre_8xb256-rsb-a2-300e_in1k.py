# ImageNet-1K fine-tuning of a FOLK / MFM ResNet-50 with the ResNet strikes
# back A2 recipe as MMPretrain ships it
# (configs/resnet/resnet50_8xb256-rsb-a2-300e_in1k.py): 300 epochs (5
# warm-up), LAMB lr 5e-3 at batch 2048 (8 GPUs x 256), weight decay 0.02
# (none on biases / norms), binary cross-entropy, drop path 0.05, Mixup
# 0.1, CutMix 1.0, RandAugment m7, repeated augmentation, bicubic,
# evaluation resize 236 + centre crop 224. MFM reports 80.1 % with it.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['mmpretrain::resnet/resnet50_8xb256-rsb-a2-300e_in1k.py']

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
