# Study variant: the DINO control. FOLK's distillation on unfiltered views
# (Com at ratio 1.0 keeps every coefficient: the filtered view is the view)
# and no frequency loss.
_base_ = ['./_base_/folk_vit-4l64d-p8_20e_imagenette32.py']
model = dict(head=dict(loss=dict(loss_weight=0.0)))
keep_all = [dict(kind='com', ratios=(1.0, ), prob=1.0)]
train_pipeline = [
    {{_base_.folk_views}},
    dict(type='RandomFrequencyFilter', filters=keep_all),
    {{_base_.folk_pack}},
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
