# ImageNet-1K without labels, two FOLK views per image (docs/method.md).
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='FrequencyFilterPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    # the batches are pinned (pin_memory=True): copy them to the GPU
    # without blocking the host
    non_blocking=True)

# Com / RCom with probability 0.5 each, ratio drawn from the thresholds.
folk_filters = [
    dict(kind='com', ratios=(0.005, 0.01, 0.05), prob=0.5),
    dict(kind='rcom', ratios=(0.005, 0.01, 0.05), prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    # workers decode and draw the crop, flip and photometric parameters; the
    # data preprocessor cuts the views and applies them batched on the GPU
    # (docs/data_pipeline.md); crop='cpu', photometric='cpu': all in workers
    dict(
        type='FOLKViews',
        crop_size=224,
        crop_scale=(0.25, 1.0),
        photometric='device',
        crop='device'),
    dict(type='RandomFrequencyFilter', filters=folk_filters),
    dict(
        type='PackInputs',
        meta_keys=[
            'img_path', 'freq_kind', 'freq_param', 'photometric_params',
            'crop_params'
        ])
]

train_dataloader = dict(
    batch_size=128,
    # 8 workers per GPU: decoding and the parameter draws keep up with a
    # ViT-B step (docs/data_pipeline.md, measured per core)
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    # no short last batch (as MMPretrain's self-supervised configs): it
    # would recompile a compiled backbone and give SyncBN a tiny batch
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # the decoded images of a batch as one uint8 tensor, the per-sample
    # parameters as arrays, no labels (docs/data_pipeline.md)
    collate_fn=dict(type='folk_views_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
