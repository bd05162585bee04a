# MFM ResNet-50: stride-32 decoder, low-pass with probability 0.3.
_base_ = ['./mfm_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        norm_cfg=dict(type='SyncBN'),
        zero_init_residual=False),
    neck=dict(in_channels=2048, encoder_stride=32))
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    dict(
        type='FOLKViews',
        crop_size=224,
        crop_scale=(0.2, 1.0),
        photometric=False,
        num_views=1),
    dict(
        type='RandomFrequencyFilter',
        filters=[
            dict(kind='lowpass', radius=16, prob=0.3),
            dict(kind='highpass', radius=16, prob=0.7)
        ]),
    dict(type='PackInputs', meta_keys=['img_path', 'freq_kind', 'freq_param'])
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))
# fixed 224 px input: let cuDNN pick the fastest convolution algorithms
env_cfg = dict(cudnn_benchmark=True)
