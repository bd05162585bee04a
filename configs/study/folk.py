# Study variant: FOLK (Com / RCom filtered student, frequency loss and
# cross-view distillation from the EMA teacher).
_base_ = ['./_base_/folk_vit-4l64d-p8_20e_imagenette32.py']
