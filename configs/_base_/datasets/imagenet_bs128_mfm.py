# ImageNet-1K without labels, one MFM view: crop + flip, low/high-pass.
_base_ = ['./imagenet_bs128_folk.py']

# MFM: ideal circle of radius 16 bins (224 px), low-pass with p=0.5 (ViT).
mfm_filters = [
    dict(kind='lowpass', radius=16, prob=0.5),
    dict(kind='highpass', radius=16, prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    dict(
        type='FOLKViews',
        crop_size=224,
        crop_scale=(0.2, 1.0),
        photometric=False,
        num_views=1),
    dict(type='RandomFrequencyFilter', filters=mfm_filters),
    dict(type='PackInputs', meta_keys=['img_path', 'freq_kind', 'freq_param'])
]
# the views are cut in the workers (crop='cpu'), all of one size: stack
# them (the FOLK data config's pseudo_collate keeps one tensor per image)
train_dataloader = dict(
    collate_fn=dict(type='default_collate'),
    dataset=dict(pipeline=train_pipeline))
