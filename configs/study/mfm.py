# Study variant: MFM's recipe (configs/_base_/datasets/imagenet_bs128_mfm.py)
# at the study's scale: one view, crop 0.2-1 and flip in the workers, no
# photometric augmentation, low / high-pass of radius 16 bins at 224 px
# scaled to the crop (folk.frequency.mfm_radius).
_base_ = ['./_base_/mfm_vit-4l64d-p8_20e_imagenette32.py']
crop = 32
mfm_filters = [
    dict(kind='lowpass', radius=16 * crop / 224, prob=0.5),
    dict(kind='highpass', radius=16 * crop / 224, prob=0.5),
]
train_pipeline = [
    dict(
        type='FOLKViews',
        crop_size=crop,
        crop_scale=(0.2, 1.0),
        photometric='none',
        num_views=1),
    dict(type='RandomFrequencyFilter', filters=mfm_filters),
    dict(type='PackInputs', meta_keys=['freq_kind', 'freq_param'])
]
# crops in the workers: stacked batches, as the shipped MFM config
train_dataloader = dict(
    collate_fn=dict(type='default_collate'),
    dataset=dict(pipeline=train_pipeline))
