# Study variant: no pre-training. run_study.py evaluates the backbone of
# this config with seeded random weights (MMPretrain's init_weights).
_base_ = ['./_base_/mfm_vit-4l64d-p8_20e_imagenette32.py']
