# FOLK ResNet-50: pooled features for distillation, stride-32 decoder.
_base_ = ['./folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        norm_cfg=dict(type='SyncBN'),
        zero_init_residual=False),
    neck=dict(in_channels=2048, encoder_stride=32),
    projector=dict(in_channels=2048))
# MFM's ResNet-50 recipe (low-pass p=0.3) is in the mfm_ config; FOLK keeps
# Com / RCom with p=0.5. CNNs use no pos_embed / cls_token keys.
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))
# fixed 224 px input: let cuDNN pick the fastest convolution algorithms
env_cfg = dict(cudnn_benchmark=True)
