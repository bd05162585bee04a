"""Tiny FOLK / MFM pre-training checkpoints for the downstream tests.

The model is built from the demo pre-training config (tiny ViT: 192-d,
4 layers, 3 heads, patch 8, 64 px), like ``tools/train.py`` would, but
saved directly instead of running the Runner, to stay fast.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope

DEMO_CFG = 'configs/demo/folk_vit-tiny-p8_1xb32-200i_imagenette128.py'
TINY_ARCH = dict(
    embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)
IMG = 64
PATCH = 8


def build_pretrain_model(repo_root: str, method: str = 'folk', seed=0):
    """Build (and initialise) the demo FOLK model, or its MFM variant."""
    from mmpretrain.registry import MODELS

    import folk  # noqa: F401  (registers FOLK modules)

    cfg = Config.fromfile(osp.join(repo_root, DEMO_CFG)).model
    if method == 'mfm':
        cfg.type = 'MFM'
        for key in ('projector', 'distill_head', 'teacher_momentum',
                    'teacher_momentum_end'):
            cfg.pop(key, None)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    if method == 'folk':
        # After training the EMA teacher differs from the student.
        with torch.no_grad():
            for param in model.teacher.module.parameters():
                param.add_(torch.randn_like(param) * 0.05)
    return model


def save_pretrain_checkpoint(model, path: str) -> str:
    """Save ``model`` the way the MMEngine Runner does (incl. message hub)."""
    buffer = HistoryBuffer()
    buffer.update(1.0)
    ckpt = dict(
        meta=dict(
            epoch=0,
            iter=2,
            seed=0,
            experiment_name='tiny',
            mmengine_version='0.10.7',
            cfg='model = dict()'),
        state_dict=model.state_dict(),
        message_hub=dict(
            log_scalars={'train/loss': buffer},
            runtime_info=dict(iter=2, eta=np.float64(1.5))),
        optimizer=dict(state={}, param_groups=[]))
    torch.save(ckpt, path)
    return path


def mmpretrain_vit(out_type='raw', **kwargs):
    """MMPretrain ViT with the tiny arch (same as the demo backbone)."""
    from mmpretrain.models import VisionTransformer
    vit = VisionTransformer(
        arch=dict(TINY_ARCH),
        img_size=IMG,
        patch_size=PATCH,
        out_type=out_type,
        **kwargs)
    vit.eval()  # its train() override returns None
    return vit


def mmseg_vit(**kwargs):
    """MMSeg ViT with the tiny arch, configured like the FOLK seg configs."""
    from mmseg.models.backbones import VisionTransformer
    cfg = dict(
        img_size=IMG,
        patch_size=PATCH,
        embed_dims=192,
        num_layers=4,
        num_heads=3,
        mlp_ratio=4,
        qkv_bias=True,
        patch_bias=True,
        norm_cfg=dict(type='LN', eps=1e-6),
        with_cls_token=True)
    cfg.update(kwargs)
    vit = VisionTransformer(**cfg)
    vit.eval()
    return vit


def convert_tiny(repo_root: str, tmp_dir: str, fmt: str, weights=None) -> str:
    """A tiny FOLK checkpoint converted to ``fmt``; returns its path."""
    from folk.downstream import convert_checkpoint
    src = osp.join(tmp_dir, 'folk_iter_2.pth')
    if not osp.exists(src):
        save_pretrain_checkpoint(build_pretrain_model(repo_root), src)
    dst = osp.join(tmp_dir, f'folk_tiny_{fmt}_{weights or "default"}.pth')
    convert_checkpoint(src, dst, fmt, weights)
    return dst


def run_config(cfg, work_dir: str):
    """Train ``cfg`` (adapted to the device) and return (runner, metrics).

    ``metrics`` is the list of validation results, one dict per validation.
    """
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from folk.engine import adapt_cfg_to_device

    class MetricRecorder(Hook):

        def __init__(self):
            self.metrics = []

        def after_val_epoch(self, runner, metrics=None):
            self.metrics.append(dict(metrics or {}))

    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.launcher = 'none'
    adapt_cfg_to_device(cfg)
    runner = Runner.from_cfg(cfg)
    recorder = MetricRecorder()
    runner.register_hook(recorder, priority='LOWEST')
    runner.train()
    return runner, recorder.metrics


def no_workers(cfg) -> None:
    """num_workers=0 (no worker start-up cost) on every data loader."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is not None:
            loader.num_workers = 0
            loader.persistent_workers = False
