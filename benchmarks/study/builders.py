"""The study's backbone and schedule, as MMPretrain / MMEngine configs."""
from typing import Dict, List

import torch


def backbone_cfg(p: dict, **kw) -> dict:
    """MMPretrain ``VisionTransformer`` of the preset."""
    cfg = dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=p['embed'],
            num_layers=p['layers'],
            num_heads=p['heads'],
            feedforward_channels=p['ffn']),
        img_size=p['img_size'],
        patch_size=p['patch'],
        drop_path_rate=0.0,
        out_type='raw',
        final_norm=True)
    cfg.update(kw)
    return cfg


def _build(cfg: dict) -> torch.nn.Module:
    """Build with MMPretrain's registry whatever the current scope."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def random_backbone(p: dict, seed: int) -> Dict[str, torch.Tensor]:
    """Weights of a freshly initialised backbone (seeded)."""
    torch.manual_seed(seed)
    vit = _build(backbone_cfg(p))
    vit.init_weights()
    return {k: t.detach().clone() for k, t in vit.state_dict().items()}


def build_backbone(p: dict, weights: Dict[str, torch.Tensor],
                   device) -> torch.nn.Module:
    """The preset's ViT with ``weights`` loaded strictly, in eval mode."""
    vit = _build(backbone_cfg(p))
    vit.load_state_dict(weights, strict=True)
    vit.to(device)
    vit.eval()  # returns None for MMPretrain's ViT
    return vit


def lr_schedulers(total: int, warmup: int, eta_min: float) -> List[dict]:
    """Per-iteration linear warm-up then cosine to ``eta_min``."""
    warmup = max(1, min(warmup, total))
    out = [
        dict(
            type='LinearLR',
            start_factor=1e-3,
            by_epoch=False,
            begin=0,
            end=warmup)
    ]
    if total > warmup:
        out.append(
            dict(
                type='CosineAnnealingLR',
                T_max=total - warmup,
                eta_min=eta_min,
                by_epoch=False,
                begin=warmup,
                end=total))
    return out
