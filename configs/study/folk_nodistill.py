# Study variant: FOLK without distillation: MFM's frequency loss on FOLK's
# two Com / RCom filtered views (no teacher, no projector).
_base_ = ['./_base_/mfm_vit-4l64d-p8_20e_imagenette32.py']
