"""A tiny FOLK / MFM model and batch for fast unit tests."""
import copy

import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

TINY_VIT = dict(
    type='VisionTransformer',
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    img_size=32,
    patch_size=8,
    out_type='raw')

TINY_FOLK = dict(
    type='FOLK',
    backbone=TINY_VIT,
    neck=dict(type='SimMIMLinearDecoder', in_channels=32, encoder_stride=8),
    head=dict(type='MFMHead', loss=dict(type='FrequencyLoss')),
    projector=dict(
        type='DINOProjector',
        in_channels=32,
        hidden_channels=48,
        bottleneck_channels=16,
        out_channels=64),
    distill_head=dict(
        type='DistillHead', loss=dict(type='DistillLoss', out_dim=64)),
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]))


def build(cfg=TINY_FOLK, **overrides):
    cfg = copy.deepcopy(cfg)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def set_schedule(max_iters=100, cur_iter=0, max_epochs=None):
    """What the Runner writes to the MessageHub (``max_iters=None``: as
    outside a runner; ``max_epochs=None``: an iteration-based loop)."""
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', max_iters)
    hub.update_info('max_epochs', max_epochs)
    hub.update_info('iter', cur_iter)


def make_batch(batch=4, size=32, views=2, seed=0):
    """A collated batch as the data loader yields it (uint8 views)."""
    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(
            0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
        for _ in range(views)
    ]
    kinds = ['com', 'rcom']
    samples = []
    for i in range(batch):
        s = DataSample()
        s.set_metainfo(
            dict(
                freq_kind=[kinds[(i + v) % 2] for v in range(views)],
                freq_param=[0.05] * views))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)
