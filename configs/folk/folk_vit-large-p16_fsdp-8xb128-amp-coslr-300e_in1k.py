# FOLK ViT-L/16 (MMPretrain arch 'l': 1024-d, 24 layers, 16 heads),
# ImageNet-1K, 8 GPUs x 128, bf16 AMP, 300 epochs, fully sharded (FSDP) with
# MMEngine's FlexibleRunner: every process holds 1/world of the student's
# and the EMA teacher's parameters, gradients and AdamW state.
#   bash tools/dist_train.sh \
#       configs/folk/folk_vit-large-p16_fsdp-8xb128-amp-coslr-300e_in1k.py 8
# folk_fsdp_wrap_policy (projects/folk/engine/fsdp.py) makes each
# transformer layer, backbone and projector an FSDP unit, so the student's
# and the teacher's shards align and the teacher's EMA update runs on the
# local shards. Checkpoints hold the full state dict (gathered on rank 0,
# state_dict_cfg='full'): the converters in tools/model_converters/ read
# them as those of the DDP configs. The k-NN monitor and the other hooks
# work unchanged (the backbones are called as FSDP units on every process).
_base_ = ['./folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py']
model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=1024),
    projector=dict(in_channels=1024))
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(
        auto_wrap_policy=dict(type='folk_fsdp_wrap_policy'),
        use_orig_params=True))
