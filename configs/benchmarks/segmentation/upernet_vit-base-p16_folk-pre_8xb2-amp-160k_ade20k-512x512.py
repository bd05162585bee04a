# ADE20K semantic segmentation with a FOLK ViT-B/16 and MAE's protocol as
# MMSeg ships it (configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py;
# MAE paper: 48.1 mIoU): UperNet, 512x512 crops, 160k iterations (1,500
# warm-up), batch 16 (8 GPUs x 2), AdamW lr 1e-4, weight decay 0.05,
# layer-wise lr decay 0.65, drop path 0.1, slide inference (stride 341);
# mIoU. MFM publishes no segmentation config; iBOT's ViT-B run (lr 8e-5,
# decay 0.65) is close to this one. BEiT's recommendation for
# self-supervised IN-1K models (lr 7e-4) targets BEiT's backbone (relative
# position bias, layer scale), which FOLK's ViT does not have.
#
# Backbone: MMSeg's own VisionTransformer, features of blocks 4, 6, 8, 12
# turned into a stride 4/8/16/32 pyramid (Feature2Pyramid, as MMSeg's MAE
# config). patch_bias=True and LN eps 1e-6 match MMPretrain's ViT, so the
# converted weights compute the same features. MMSeg's ViT loads
# `pretrained` non-strictly: PretrainedKeysCheckHook fails the run before
# training if a key is missing or the weights did not arrive.
#
#   python tools/model_converters/folk_to_mmseg.py FOLK_CKPT.pth \
#       work_dirs/folk_pretrain/folk_vit-base-p16_mmseg.pth
#   python tools/train.py THIS_CONFIG --cfg-options model.pretrained=PATH
_base_ = [
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

custom_imports = dict(imports=['folk'], allow_failed_imports=False)

crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN on CPU (train.py)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained='work_dirs/folk_pretrain/folk_vit-base-p16_mmseg.pth',
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        img_size=crop_size,
        patch_size=16,
        in_channels=3,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        out_indices=(3, 5, 7, 11),
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        with_cls_token=True,
        output_cls_token=False,
        norm_cfg=dict(type='LN', eps=1e-6),
        act_cfg=dict(type='GELU'),
        patch_norm=False,
        patch_bias=True,
        pre_norm=False,
        final_norm=False,
        interpolate_mode='bicubic',
        norm_eval=False),
    neck=dict(
        type='Feature2Pyramid',
        embed_dim=768,
        rescales=[4, 2, 1, 0.5],
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[768, 768, 768, 768],
        channels=768,
        num_classes=150,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=768, num_classes=150, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',  # fp32 OptimWrapper on CPU (tools/train.py)
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # MMSeg's LayerDecayOptimizerConstructor only accepts BEiT / MAE /
    # ConvNeXt backbones; this one applies the same layer ids to its ViT.
    constructor='ViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]

# DownstreamProvenanceHook: logs the source checkpoint and teacher / student
# of the pre-trained file, keeps them in every saved checkpoint and writes
# them with the metrics to <log_dir>/downstream_results.json.
custom_hooks = [
    dict(type='PretrainedKeysCheckHook'),
    dict(type='DownstreamProvenanceHook')
]

# 8 GPUs x 2 images = batch 16
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
