# FOLK ViT-B/16 on your own images: the ImageNet recipe (8 GPUs x 128, bf16
# AMP) on any folder of images, flat or nested, without labels
# (docs/custom_data.md, which also says how to set the epochs and the
# learning rate for N images):
#   bash tools/dist_train.sh \
#       configs/folk/folk_vit-base-p16_8xb128-amp-coslr-300e_custom.py 8 \
#       --cfg-options train_dataloader.dataset.data_root=DIR
# Monitors without labels: the teacher's entropy (logged every iteration,
# checked for collapse) and the effective rank (RankMe) of the teacher's and
# the student's embeddings of a fixed subset of 2048 of the images, every
# 2500 iterations (docs/monitoring.md). No k-NN monitor: the folder has no
# labels (give it a small labelled set with a KNNMonitorHook entry, see
# docs/monitoring.md).
_base_ = ['./folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
data_root = 'data/my_images/'
train_pipeline = [
    # unreadable / corrupt files are reported in a warning and replaced by
    # another image (docs/custom_data.md#unusual-and-broken-images)
    dict(type='LoadImageFromFileSafe', on_error='skip'),
    dict(
        type='FOLKViews',
        crop_size=224,
        crop_scale=(0.25, 1.0),
        photometric='device',
        crop='device'),
    dict(type='RandomFrequencyFilter', filters={{_base_.folk_filters}}),
    dict(
        type='PackInputs',
        meta_keys=[
            'img_path', 'freq_kind', 'freq_param', 'photometric_params',
            'crop_params'
        ])
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ImageFolderDataset',
        data_root=data_root,
        pipeline=train_pipeline))
monitor_pipeline = [
    dict(type='LoadImageFromFileSafe', on_error='skip'),
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
        type='RankMeHook',
        pipeline=monitor_pipeline,
        num_images=2048,
        interval=2500,
        batch_size=128,
        num_workers=8),
    dict(type='CollapseMonitorHook', interval=50),
]
