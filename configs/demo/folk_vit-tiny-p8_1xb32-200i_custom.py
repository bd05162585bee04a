# Demo scale on your own images: the demo's tiny ViT (192-d, 4 layers,
# patch 8, 64 px crops, 200 iterations, CPU-friendly) pre-trained on any
# folder of images, flat or nested, without labels (docs/custom_data.md):
#   python tools/train.py configs/demo/folk_vit-tiny-p8_1xb32-200i_custom.py \
#       --cfg-options train_dataloader.dataset.data_root=DIR
# Monitors without labels: the teacher's entropy (logged every iteration,
# checked for collapse) and the effective rank (RankMe) of the teacher's and
# the student's embeddings of a fixed subset of 256 of the images
# (docs/monitoring.md). No k-NN monitor: the folder has no labels.
_base_ = ['./folk_vit-tiny-p8_1xb32-200i_imagenette128.py']
data_root = 'data/my_images/'
crop = 64
train_pipeline = [
    # unreadable / corrupt files are reported in a warning and replaced by
    # another image (docs/custom_data.md#unusual-and-broken-images)
    dict(type='LoadImageFromFileSafe', on_error='skip'),
    dict(
        type='FOLKViews',
        crop_size=crop,
        crop_scale=(0.25, 1.0),
        photometric='device',
        crop='device',
        blur_sigma=(0.1 * crop / 224, 2.0 * crop / 224)),
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
    dict(type='ResizeEdge', scale=73, edge='short'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackInputs')
]
custom_hooks = [
    dict(type='NonFiniteLossHook', policy='raise'),
    dict(
        type='RankMeHook',
        pipeline=monitor_pipeline,
        num_images=256,
        interval=100,
        batch_size=64,
        num_workers=0),
    dict(type='CollapseMonitorHook', interval=10),
]
