# MFM with ViT-B/16: full-token encoder, linear decoder, frequency loss.
model = dict(
    type='MFM',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.0,
        out_type='raw',
        final_norm=True),
    neck=dict(type='SimMIMLinearDecoder', in_channels=768, encoder_stride=16),
    head=dict(
        type='MFMHead', loss=dict(type='FrequencyLoss', loss_weight=1.0)))
