# Study variant: FOLK without the frequency loss (filtered student,
# distillation only).
_base_ = ['./_base_/folk_vit-4l64d-p8_20e_imagenette32.py']
model = dict(head=dict(loss=dict(loss_weight=0.0)))
