"""Pre-train one study variant with MMEngine's Runner and the folk package.

The model is the registered ``FOLK`` / ``MFM`` built from a config dict
equivalent to the shipped configs (``configs/folk``, ``configs/mfm``) at
the study's scale; the data pipeline is the configs' one
(:class:`folk.datasets.FOLKViews` -> :class:`folk.datasets.
RandomFrequencyFilter` -> ``PackInputs``) on images decoded once
(:class:`common.ArrayDataset`); the filters, photometric augmentation and
normalisation run in the model's :class:`FrequencyFilterPreprocessor`; the
schedule is MMEngine's ``LinearLR`` + ``CosineAnnealingLR``; the online
k-NN curve comes from :class:`folk.engine.KNNMonitorHook` (teacher and
student) and the losses from the logger. The exported backbone is the one
``folk.downstream.extract_backbone`` returns (the EMA teacher for FOLK,
the student for MFM).

Run alone (writes the backbone weights and a JSON record)::

    python benchmarks/study/pretrain.py --preset smoke --variant folk \\
        --out work_dirs/study/folk_smoke
"""
import argparse
import copy
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

import common
import numpy as np
import torch
from common import MEAN, STD, VARIANTS, log

from folk.datasets.transforms import BLUR_SIGMA_RANGE, check_filters
from folk.downstream import extract_backbone
from folk.frequency import mfm_radius


def variant_filters(kind: str,
                    size: int,
                    ratios=common.FOLK_RATIOS) -> List[dict]:
    """The filter list of ``RandomFrequencyFilter`` for a variant."""
    if kind == 'keep':  # keep every coefficient: the view itself
        return check_filters([dict(kind='com', ratios=(1.0, ), prob=1.0)])
    if kind == 'com':
        return check_filters([
            dict(kind='com', ratios=ratios, prob=0.5),
            dict(kind='rcom', ratios=ratios, prob=0.5)
        ])
    if kind == 'radial':
        radius = mfm_radius(size)
        return check_filters([
            dict(kind='lowpass', radius=radius, prob=0.5),
            dict(kind='highpass', radius=radius, prob=0.5)
        ])
    raise ValueError(f'unknown filter set {kind!r}')


def model_cfg(variant: str, p: dict, total_iters: int) -> dict:
    """``configs/{folk,mfm}`` model dicts at the study's scale."""
    v = VARIANTS[variant]
    freq_weight = v['freq_weight'] * (
        p['freq_loss_weight'] if v['algo'] == 'FOLK' else 1.0)
    cfg = dict(
        type=v['algo'],
        backbone=common.backbone_cfg(p),
        neck=dict(
            type='SimMIMLinearDecoder',
            in_channels=p['embed'],
            encoder_stride=p['patch']),
        head=dict(
            type='MFMHead',
            loss=dict(type='FrequencyLoss', loss_weight=freq_weight)),
        data_preprocessor=dict(
            type='FrequencyFilterPreprocessor',
            mean=MEAN,
            std=STD,
            to_rgb=True))
    if v['algo'] == 'FOLK':
        cfg.update(
            projector=dict(
                type='DINOProjector',
                in_channels=p['embed'],
                hidden_channels=p['proj_hidden'],
                bottleneck_channels=p['proj_bottleneck'],
                out_channels=p['out_dim'],
                freeze_last_layer=p['freeze_last_layer']),
            distill_head=dict(
                type='DistillHead',
                loss=dict(
                    type='DistillLoss',
                    out_dim=p['out_dim'],
                    student_temp=p['student_temp'],
                    teacher_temp=p['teacher_temp'],
                    warmup_teacher_temp=p['warmup_teacher_temp'],
                    warmup_iters=max(1,
                                     int(p['temp_warmup_frac'] * total_iters)),
                    center_momentum=0.9,
                    loss_weight=1.0)),
            teacher_momentum=p['teacher_momentum'],
            teacher_momentum_end=p['teacher_momentum_end'])
    return cfg


def views_cfg(size: int, crop_scale: Tuple[float, float], photometric: bool,
              num_views: int, blur_scale: bool) -> dict:
    """FOLK's views: :class:`folk.datasets.FOLKViews`; with ``blur_scale``
    the Gaussian blur's sigma range (0.1-2.0 px, set for 224 px crops) is
    scaled by ``size / 224``, as the MFM radius is
    (``folk.frequency.mfm_radius``): at 48 px an unscaled sigma of up to
    2 px removes most of the image.
    """
    cfg = dict(
        type='FOLKViews',
        crop_size=size,
        crop_scale=crop_scale,
        photometric=photometric,
        num_views=num_views)
    if photometric and blur_scale:
        cfg['blur_sigma'] = tuple(s * size / 224 for s in BLUR_SIGMA_RANGE)
    return cfg


def runner_cfg(variant: str, p: dict, seed: int, work_dir: str, train_key: str,
               bank_key: str, query_key: str, num_train: int, device) -> dict:
    """The whole MMEngine config of one pre-training run."""
    v = VARIANTS[variant]
    bs = min(p['batch'], num_train)
    per_epoch = num_train // bs
    total = per_epoch * p['epochs']
    warmup = max(1, int(p['warmup_frac'] * total))
    photometric = v['photometric'] and p['photometric']
    pipeline = [
        views_cfg(p['img_size'], tuple(v['crop_scale']), photometric,
                  v['views'], p['blur_scale']),
        dict(
            type='RandomFrequencyFilter',
            filters=variant_filters(v['filters'], p['img_size'], p['ratios'])),
        dict(type='PackInputs', meta_keys=['freq_kind', 'freq_param']),
    ]
    amp = device.type == 'cuda'
    optim_wrapper = dict(
        type='AmpOptimWrapper' if amp else 'OptimWrapper',
        optimizer=dict(
            type='AdamW',
            lr=p['lr'],
            betas=(0.9, 0.95),
            weight_decay=p['weight_decay']),
        clip_grad=dict(max_norm=p['clip_grad']),
        paramwise_cfg=dict(
            norm_decay_mult=0.0,
            bias_decay_mult=0.0,
            custom_keys={
                'pos_embed': dict(decay_mult=0.),
                'cls_token': dict(decay_mult=0.)
            }))
    if amp:
        optim_wrapper.update(dtype='bfloat16', loss_scale=dict(enabled=False))
    knn_interval = max(1, per_epoch * p['knn_every']) if p['knn_every'] \
        else total
    custom_hooks = [
        dict(type='NonFiniteLossHook', policy='raise'),
        dict(
            type='KNNMonitorHook',
            bank=dict(type='ArrayDataset', key=bank_key),
            query=dict(type='ArrayDataset', key=query_key),
            pipeline=common.eval_pipeline(p['img_size']),
            interval=knn_interval,
            bank_per_class=p['monitor_bank_per_class'],
            query_per_class=p['monitor_query_per_class'],
            k=p['knn_k'],
            batch_size=p['eval_batch'],
            num_workers=0),
    ]
    if v['algo'] == 'FOLK':
        custom_hooks.append(
            dict(type='CollapseMonitorHook', interval=p['log_every']))
    return dict(
        model=model_cfg(variant, p, total),
        work_dir=work_dir,
        experiment_name=f'{variant}_s{seed}_{time.time_ns()}',
        train_dataloader=dict(
            batch_size=bs,
            num_workers=p['num_workers'],
            persistent_workers=p['num_workers'] > 0,
            drop_last=True,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=seed),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='ArrayDataset', key=train_key, pipeline=pipeline)),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=p['epochs']),
        optim_wrapper=optim_wrapper,
        param_scheduler=common.lr_schedulers(total, warmup, p['min_lr']),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=p['log_every']),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=None,
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=custom_hooks,
        log_processor=dict(by_epoch=False, window_size=p['log_every']),
        randomness=dict(seed=seed),
        default_scope='mmpretrain',
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl')),
        log_level='WARNING',
        visualizer=dict(
            type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
    ), total, bs


def read_scalars(work_dir: str) -> List[dict]:
    """Records of ``vis_data/scalars.json`` (losses, lr, k-NN)."""
    found = []
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files and root.endswith('vis_data'):
            found.append(osp.join(root, 'scalars.json'))
    if not found:
        return []
    with open(max(found, key=osp.getmtime)) as f:
        return [json.loads(line) for line in f if line.strip()]


def pretrain(variant: str, p: dict, data: dict, seed: int, device,
             work_dir: str) -> Tuple[dict, Dict[str, dict]]:
    """Pre-train ``variant``; returns (record, backbones).

    ``backbones``: ``main`` (the exported backbone: EMA teacher for FOLK,
    student for MFM) and, for FOLK, ``student``.
    """
    from mmengine.runner import Runner
    v = VARIANTS[variant]
    if v['algo'] is None:
        raise ValueError(f'{variant} has no pre-training')
    train = data['train']
    train_key = common.register_arrays('pretrain_train',
                                       data['source_train']['images'])
    bank_key = common.register_arrays('bank', train['images'], train['labels'])
    query_key = common.register_arrays('query', data['val']['images'],
                                       data['val']['labels'])
    cfg, total, bs = runner_cfg(variant, p, seed, work_dir, train_key,
                                bank_key, query_key,
                                len(data['source_train']['images']), device)
    os.makedirs(work_dir, exist_ok=True)
    runner = Runner(**copy.deepcopy(cfg))
    common.quiet(runner)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    runner.train()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    knn_hook = next(
        h for h in runner.hooks if type(h).__name__ == 'KNNMonitorHook')
    knn_time = 0.
    scalars = read_scalars(work_dir)
    names = ['loss_freq'] + (['loss_distill'] if v['algo'] == 'FOLK' else [])
    curves = {k: [] for k in names}
    curves['iter'] = []
    knn_curve = []
    per_epoch = total // p['epochs']
    for rec in scalars:
        if 'loss' in rec and all(k in rec for k in names):
            curves['iter'].append(rec['step'])
            for k in names:
                curves[k].append(rec[k])
            if 'teacher_entropy' in rec:  # DistillHead's collapse signal
                curves.setdefault('teacher_entropy',
                                  []).append(rec['teacher_entropy'])
        if 'loss' not in rec and any(k.startswith('knn/') for k in rec):
            row = dict(iter=rec['step'], epoch=rec['step'] / per_epoch)
            for enc in ('teacher', 'student'):
                if f'knn/{enc}_top1' in rec:
                    row[enc] = rec[f'knn/{enc}_top1'] / 100.
            if knn_curve and knn_curve[-1]['iter'] == row['iter']:
                knn_curve[-1] = row  # the same evaluation logged twice
            else:
                knn_curve.append(row)
    if knn_hook.last:
        knn_time = sum(val for key, val in knn_hook.last.items()
                       if key.endswith('_seconds'))
    tail = max(1, len(curves['loss_freq']) // 10)

    def tail_mean(key: str) -> Optional[float]:
        """Mean of the last 10 % of a logged curve (None if absent)."""
        values = curves.get(key)
        return float(np.mean(values[-tail:])) if values else None

    model = runner.model
    sd = {k: t.detach().cpu() for k, t in model.state_dict().items()}
    weights, report = extract_backbone(sd)
    backbones = dict(main=weights)
    if v['algo'] == 'FOLK':
        backbones['student'] = extract_backbone(sd, 'student')[0]
    record = dict(
        pretrain_time_s=elapsed,
        iters=total,
        batch=bs,
        images_seen=total * bs,
        weights=report.weights,
        curves=curves,
        knn_curve=knn_curve,
        last_knn_eval_s=knn_time,
        final_loss_freq=tail_mean('loss_freq'),
        final_loss_distill=tail_mean('loss_distill'),
        final_teacher_entropy=tail_mean('teacher_entropy'))
    del runner, model
    return record, backbones


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset', default='cpu', choices=sorted(common.PRESETS))
    parser.add_argument(
        '--variant',
        default='folk',
        choices=[k for k, v in VARIANTS.items() if v['algo']])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data', default='auto')
    parser.add_argument('--device', default=None)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    common.quiet_logging()
    p = common.make_preset(args.preset, common.parse_set(args.set))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    common.set_threads(args.threads, device)
    data = load_data(p, args.data)
    record, backbones = pretrain(args.variant, p, data, args.seed, device,
                                 osp.join(args.out, 'runner'))
    torch.save(backbones, osp.join(args.out, 'backbones.pth'))
    common.write_json(
        dict(variant=args.variant, seed=args.seed, config=p, **record),
        osp.join(args.out, 'pretrain.json'))
    log(f'{args.variant}: {record["pretrain_time_s"]:.0f}s, k-NN curve '
        f'{record["knn_curve"]}')
    return record


def load_data(p: dict, data_arg: str = 'auto') -> dict:
    """Imagenette at ``img_size`` (evaluation) and ``source_size`` (the
    images the pre-training and fine-tuning crops are taken from)."""
    names = ['imagenette64.zip', 'imagenette128'] \
        if max(p['img_size'], p['source_size']) <= 64 \
        else ['imagenette128', 'imagenette64.zip']
    path = common.find_source(data_arg, names)
    data = common.load_imagenette(path, p['source_size'], p['train_limit'],
                                  p['val_limit'])
    data['source_train'] = data['train']
    return data


if __name__ == '__main__':
    main()
