"""CamVid semantic segmentation with a pre-trained backbone (mIoU on val).

MMSeg's ``EncoderDecoder`` with MMSeg's ``VisionTransformer`` (weights
converted with :func:`folk.downstream.to_mmseg`), ``Feature2Pyramid`` and
``UPerHead`` (the BEiT / MAE protocol of the ADE20K configs at a tiny
scale), trained in-process with ``model.train_step`` and the package's
:class:`folk.downstream.ViTLayerDecayOptimizerConstructor`; whole-image
inference, mIoU over the 11 classes from a confusion matrix.
Simplified with respect to MMSeg's CamVid pipeline: one random scale
(0.75-1.5) per batch, random crop and flip, no photometric distortion, no
auxiliary FCN head, no slide inference.

Run alone::

    python benchmarks/study/segment.py --preset smoke \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import argparse
import math
from typing import Dict, List, Optional

import common
import numpy as np
import torch
import torch.nn.functional as F
from common import IGNORE, MEAN, SEG_CLASSES, STD, log

from folk.downstream import to_mmseg


def seg_model_cfg(p: dict) -> dict:
    """UperNet on the study's ViT (MMSeg config dict)."""
    d, n = p['embed'], p['layers']
    if n < 4:
        raise ValueError('the CamVid UperNet needs a ViT with >= 4 layers')
    if p['ffn'] % d:
        raise ValueError('MMSeg ViT: ffn must be a multiple of embed')
    # four distinct blocks, the last one included (4 -> 0,1,2,3; 6 -> 1,2,3,5)
    out_indices = [
        n - 1 - 3 * (n // 4), n - 1 - 2 * (n // 4), n - 1 - (n // 4), n - 1
    ]
    bn = dict(type='BN', requires_grad=True)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=MEAN,
            std=STD,
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=IGNORE,
            size=(p['seg_crop'], p['seg_crop'])),
        backbone=dict(
            type='VisionTransformer',
            img_size=(p['img_size'], ) * 2,
            patch_size=p['patch'],
            in_channels=3,
            embed_dims=d,
            num_layers=n,
            num_heads=p['heads'],
            mlp_ratio=p['ffn'] // d,
            out_indices=tuple(out_indices),
            qkv_bias=True,
            drop_rate=0.,
            attn_drop_rate=0.,
            drop_path_rate=0.1 if n >= 6 else 0.,
            with_cls_token=True,
            output_cls_token=False,
            norm_cfg=dict(type='LN', eps=1e-6),
            act_cfg=dict(type='GELU'),
            patch_norm=False,
            patch_bias=True,
            pre_norm=False,
            final_norm=True,
            interpolate_mode='bicubic'),
        # strides patch/2, patch, 2*patch, 4*patch (4/8/16/32 for patch 8)
        neck=dict(
            type='Feature2Pyramid',
            embed_dim=d,
            rescales=[2, 1, 0.5, 0.25],
            norm_cfg=bn),
        decode_head=dict(
            type='UPerHead',
            in_channels=[d] * 4,
            in_index=[0, 1, 2, 3],
            pool_scales=(1, 2, 3, 6),
            channels=p['seg_channels'],
            dropout_ratio=0.1,
            num_classes=SEG_CLASSES,
            norm_cfg=bn,
            align_corners=False,
            ignore_index=IGNORE,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def seg_batch(imgs: np.ndarray,
              lbls: np.ndarray,
              bs: int,
              crop: int,
              rng: np.random.Generator,
              scale=(0.75, 1.5)):
    """A batch of random crops (one scale per batch) and flips.

    Returns:
        tuple[Tensor, Tensor]: (B, 3, crop, crop) uint8 BGR images and
        (B, crop, crop) uint8 labels.
    """
    n, h, w = lbls.shape
    s = rng.uniform(*scale)
    rh, rw = min(h, round(crop / s)), min(w, round(crop / s))
    sel = rng.integers(0, n, bs)
    ys = rng.integers(0, h - rh + 1, bs)
    xs = rng.integers(0, w - rw + 1, bs)
    x = torch.stack([
        torch.from_numpy(imgs[i, y:y + rh, xx:xx + rw])
        for i, y, xx in zip(sel, ys, xs)
    ]).permute(0, 3, 1, 2)
    y = torch.stack([
        torch.from_numpy(lbls[i, y:y + rh, xx:xx + rw])
        for i, y, xx in zip(sel, ys, xs)
    ])
    if (rh, rw) != (crop, crop):
        x = F.interpolate(
            x.float(), (crop, crop), mode='bilinear',
            align_corners=False).round().clamp(0, 255)
        x = x.to(torch.uint8)
        y = F.interpolate(
            y[:, None].float(), (crop, crop),
            mode='nearest')[:, 0].to(torch.uint8)
    flip = torch.from_numpy(rng.random(bs) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    return x.contiguous(), y.contiguous()


def _lr(it: int, total: int, base: float, warmup: int) -> float:
    if it < warmup:
        return base * (it + 1) / warmup
    t = (it - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * t))


def segmentation(weights: Dict[str, torch.Tensor],
                 p: dict,
                 cam: dict,
                 seed: int,
                 device,
                 tag: str = '') -> float:
    """mIoU (fraction) on CamVid val after training the UperNet."""
    import mmseg.models  # noqa: F401  (registers the modules)
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    from mmseg.structures import SegDataSample

    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = SEG_MODELS.build(seg_model_cfg(p))
    model.init_weights()
    model.backbone.load_state_dict(to_mmseg(weights), strict=True)
    model.to(device)
    ow_cfg = dict(
        type='AmpOptimWrapper' if device.type == 'cuda' else 'OptimWrapper',
        optimizer=dict(
            type='AdamW',
            lr=p['seg_lr'],
            betas=(0.9, 0.999),
            weight_decay=0.05))
    if device.type == 'cuda':
        ow_cfg.update(dtype='bfloat16', loss_scale=dict(enabled=False))
    with DefaultScope.overwrite_default_scope('mmseg'):
        ow = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='ViTLayerDecayOptimizerConstructor',
                optim_wrapper_cfg=ow_cfg,
                paramwise_cfg=dict(
                    num_layers=p['layers'],
                    layer_decay_rate=p['seg_layer_decay'])))(
                        model)
    rng = np.random.default_rng([seed, 4])
    crop, iters = p['seg_crop'], p['seg_iters']
    train = cam['train']
    warmup = max(1, iters // 10)
    model.train()
    for it in range(iters):
        lr = _lr(it, iters, p['seg_lr'], warmup)
        for group in ow.optimizer.param_groups:
            group['lr'] = lr * group.get('lr_scale', 1.0)
        x, y = seg_batch(train['images'], train['labels'], p['seg_batch'],
                         crop, rng)
        samples = []
        for lbl in y:
            s = SegDataSample(
                metainfo=dict(img_shape=(crop, crop), ori_shape=(crop, crop)))
            s.gt_sem_seg = PixelData(data=lbl[None].long())
            samples.append(s)
        log_vars = model.train_step(
            dict(inputs=list(x.unbind(0)), data_samples=samples), ow)
    log(f'{tag} camvid {iters} it, last loss {log_vars["loss"].item():.4f}')
    model.eval()
    val = cam['val']
    h, w = val['labels'].shape[-2:]
    conf = torch.zeros(
        SEG_CLASSES, SEG_CLASSES, dtype=torch.long, device=device)
    mean = torch.tensor(MEAN, device=device)[None, :, None, None]
    std = torch.tensor(STD, device=device)[None, :, None, None]
    bs = max(1, p['eval_batch'] // 16)
    with torch.no_grad():
        for i in range(0, len(val['images']), bs):
            x = torch.from_numpy(val['images'][i:i + bs]).to(device)
            x = x.permute(0, 3, 1, 2).flip(1).float()  # BGR -> RGB
            x = (x - mean) / std
            metas = [
                dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w))
            ] * x.shape[0]
            with torch.autocast(
                    device.type,
                    dtype=torch.bfloat16,
                    enabled=device.type == 'cuda'):
                logits = model.encode_decode(x, metas)
            pred = logits.float().argmax(1)
            gt = torch.from_numpy(val['labels'][i:i + bs]).to(device).long()
            ok = gt != IGNORE
            conf += torch.bincount(
                gt[ok] * SEG_CLASSES + pred[ok],
                minlength=SEG_CLASSES**2).view(SEG_CLASSES, SEG_CLASSES)
    conf = conf.double().cpu()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    iou = inter / union  # NaN for classes absent from gt and prediction
    return float(np.nanmean(iou.numpy())) if (union > 0).any() else 0.0


def load_camvid(p: dict, camvid_arg: str = 'auto') -> dict:
    path = common.find_source(camvid_arg, ['camvid240.zip', 'camvid'])
    return common.load_camvid(path, tuple(p['seg_size']), p['seg_train_limit'],
                              p['seg_val_limit'])


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset', default='cpu', choices=sorted(common.PRESETS))
    parser.add_argument('--weights', required=True)
    parser.add_argument('--camvid', default='auto')
    parser.add_argument('--device', default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    common.quiet_logging()
    p = common.make_preset(args.preset, common.parse_set(args.set))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cam = load_camvid(p, args.camvid)
    out = {}
    for name, weights in torch.load(args.weights).items():
        out[name] = segmentation(weights, p, cam, args.seed, device, name)
        log(f'CamVid mIoU of {name}: {out[name]:.4f}')
    return out


if __name__ == '__main__':
    main()
