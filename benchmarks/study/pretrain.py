"""Pre-train one study variant with MMEngine's Runner and the folk package.

The model is the registered ``FOLK`` / ``MFM`` built from a config dict
equivalent to the shipped configs (``configs/folk``, ``configs/mfm``) at
the study's scale, on the data route of those configs: FOLK-type variants
use :class:`folk.datasets.FOLKViews` with ``crop='device'`` and
``photometric='device'`` (the workers only draw the crop, flip and
photometric parameters; ``folk_views_collate`` ships them as one array
per batch and the model's :class:`FrequencyFilterPreprocessor` cuts the
views, augments them batched, filters and normalises), MFM variants crop
and flip in the workers without photometric augmentation, as
``configs/_base_/datasets/imagenet_bs128_mfm.py`` (FOLK's batches through
``folk_views_collate``, MFM's stacked by ``default_collate``). The images
are decoded once (:class:`arrays.ArrayDataset`); the schedule is
MMEngine's ``LinearLR`` + ``CosineAnnealingLR``; the online k-NN curve
comes from :class:`folk.engine.KNNMonitorHook` (teacher and student) and the
losses from the logger. The exported backbone is the one
``folk.downstream.extract_backbone`` returns (the EMA teacher for FOLK, the
student for MFM).

Run alone (writes the backbone weights and a JSON record)::

    python benchmarks/study/pretrain.py --preset smoke --variant folk \\
        --out work_dirs/study/folk_smoke
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

import arrays
import common
import numpy as np
import torch
from common import log
from mmengine.config import Config
from presets import VARIANTS
from sources import load_data
from study_configs import variant_config

from folk.downstream import extract_backbone
from folk.engine import adapt_cfg_to_device


def runner_config(cfg: Config, variant: str, p: dict, seed: int, work_dir: str,
                  num_train: int, device) -> Tuple[Config, int]:
    """The study's run-time part of a variant config (in place): seed, work
    folder, the online k-NN every ``knn_every`` epochs, a batch no larger
    than the data, and the device (:func:`folk.engine.adapt_cfg_to_device`,
    as ``tools/train.py``).

    Returns:
        tuple[Config, int]: The config and the number of iterations.
    """
    loader = cfg.train_dataloader
    loader.batch_size = min(loader.batch_size, num_train)
    loader.sampler = dict(type='DefaultSampler', shuffle=True, seed=seed)
    per_epoch = num_train // loader.batch_size
    total = per_epoch * cfg.train_cfg.max_epochs
    for hook in cfg.custom_hooks:
        if hook['type'] == 'KNNMonitorHook':
            hook['interval'] = max(1, per_epoch * p['knn_every']) \
                if p['knn_every'] else total
            hook['k'] = p['knn_k']
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{variant}_s{seed}_{time.time_ns()}'
    cfg.randomness = dict(seed=seed)
    if device.type == 'cuda':
        loader.pin_memory = True
    return adapt_cfg_to_device(cfg), total


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


def pretrain(
        variant: str,
        p: dict,
        data: dict,
        seed: int,
        device,
        work_dir: str,
        cfg_options: Optional[dict] = None) -> Tuple[dict, Dict[str, dict]]:
    """Pre-train ``variant`` from its config; returns (record, backbones).

    ``backbones``: ``main`` (the exported backbone: EMA teacher for FOLK,
    student for MFM) and, for FOLK, ``student``.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    if VARIANTS[variant]['algo'] is None:
        raise ValueError(f'{variant} has no pre-training')
    train = data['train']
    arrays.register_arrays('study_train', data['source_train']['images'])
    arrays.register_arrays('study_bank', train['images'], train['labels'])
    arrays.register_arrays('study_query', data['val']['images'],
                           data['val']['labels'])
    cfg = variant_config(variant, p['scale'], cfg_options)
    cfg, total = runner_config(cfg, variant, p, seed, work_dir,
                               len(data['source_train']['images']), device)
    bs = cfg.train_dataloader.batch_size
    epochs = cfg.train_cfg.max_epochs
    os.makedirs(work_dir, exist_ok=True)
    # the Runner makes its own scope current: restore the caller's after
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        runner = Runner.from_cfg(cfg)
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
    folk_type = cfg.model.type == 'FOLK'
    names = ['loss_freq'] + (['loss_distill'] if folk_type else [])
    curves = {k: [] for k in names}
    curves['iter'] = []
    knn_curve = []
    per_epoch = total // epochs
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
    if folk_type:
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
    parser = common.script_parser(__doc__, cfg_options=True)
    parser.add_argument(
        '--variant',
        default='folk',
        choices=[k for k, v in VARIANTS.items() if v['algo']])
    parser.add_argument('--out', required=True, help='output folder')
    args = parser.parse_args(argv)
    p, device = common.setup(parser, args)
    data = load_data(p, args.data)
    record, backbones = pretrain(args.variant, p, data, args.seed, device,
                                 osp.join(args.out, 'runner'),
                                 args.cfg_options)
    torch.save(backbones, osp.join(args.out, 'backbones.pth'))
    common.write_json(
        dict(variant=args.variant, seed=args.seed, config=p, **record),
        osp.join(args.out, 'pretrain.json'))
    log(f'{args.variant}: {record["pretrain_time_s"]:.0f}s, k-NN curve '
        f'{record["knn_curve"]}')
    return record


if __name__ == '__main__':
    main()
