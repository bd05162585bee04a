"""Fine-tune a backbone on Imagenette (10 % or 100 % of the labels).

MMEngine's Runner trains an MMPretrain ``ImageClassifier`` (the study's
ViT with mean-pooled patch tokens, ``out_type='avg_featmap'``, a linear
head, label smoothing 0.1) as the fine-tuning configs do: the backbone
weights are exported with :func:`folk.downstream.to_mmpretrain` and loaded
by ``init_cfg=Pretrained`` under :class:`folk.downstream.
PretrainedKeysCheckHook`; layer-wise lr decay comes from MMPretrain's
``LearningRateDecayOptimWrapperConstructor``; warm-up + cosine from
MMEngine's schedulers; top-1 from ``Accuracy`` on the val images (resize +
centre crop). Random resized crop + flip only (no RandAugment / mixup /
cutmix / random erasing at this scale).

Run alone::

    python benchmarks/study/finetune.py --preset smoke --ratio 0.1 \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import argparse
import copy
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import common
import torch
from common import MEAN, NUM_CLASSES, STD, log

from folk.downstream import to_mmpretrain


def runner_cfg(p: dict, checkpoint: str, train_key: str,
               indices: Sequence[int], val_key: str, epochs: int, seed: int,
               work_dir: str, device) -> dict:
    """MMEngine config of one fine-tuning run."""
    n = len(indices)
    bs = min(p['ft_batch'], n)
    total = max(1, n // bs) * epochs
    warmup = max(1, total // 10)
    amp = device.type == 'cuda'
    optim_wrapper = dict(
        type='AmpOptimWrapper' if amp else 'OptimWrapper',
        optimizer=dict(
            type='AdamW', lr=p['ft_lr'], betas=(0.9, 0.999),
            weight_decay=0.05),
        constructor='LearningRateDecayOptimWrapperConstructor',
        paramwise_cfg=dict(
            layer_decay_rate=p['ft_layer_decay'],
            custom_keys={
                '.ln': dict(decay_mult=0.0),
                '.bias': dict(decay_mult=0.0),
                '.cls_token': dict(decay_mult=0.0),
                '.pos_embed': dict(decay_mult=0.0)
            }))
    if amp:  # bf16 needs no loss scaling
        optim_wrapper.update(dtype='bfloat16', loss_scale=dict(enabled=False))
    train_pipeline = [
        dict(
            type='RandomResizedCrop',
            scale=p['img_size'],
            crop_ratio_range=tuple(p['ft_crop_scale']),
            backend='pillow',
            interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    return dict(
        model=dict(
            type='ImageClassifier',
            backbone=common.backbone_cfg(
                p,
                out_type='avg_featmap',
                drop_path_rate=p['ft_drop_path'],
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=checkpoint,
                    prefix='backbone.')),
            neck=None,
            head=dict(
                type='LinearClsHead',
                num_classes=NUM_CLASSES,
                in_channels=p['embed'],
                loss=dict(
                    type='LabelSmoothLoss',
                    label_smooth_val=0.1,
                    mode='original'),
                init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=MEAN,
                std=STD,
                to_rgb=True,
                num_classes=NUM_CLASSES)),
        work_dir=work_dir,
        experiment_name=f'ft_{time.time_ns()}',
        train_dataloader=dict(
            batch_size=bs,
            num_workers=p['num_workers'],
            persistent_workers=False,
            drop_last=True,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=seed),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='ArrayDataset',
                key=train_key,
                indices=list(indices),
                pipeline=train_pipeline)),
        val_dataloader=dict(
            batch_size=p['eval_batch'],
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='ArrayDataset',
                key=val_key,
                pipeline=common.eval_pipeline(p['img_size']))),
        val_evaluator=dict(type='Accuracy', topk=(1, )),
        train_cfg=dict(
            type='EpochBasedTrainLoop',
            max_epochs=epochs,
            val_interval=epochs + 1),
        val_cfg=dict(),
        optim_wrapper=optim_wrapper,
        param_scheduler=common.lr_schedulers(total, warmup, 1e-6),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=50),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=None,
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[
            dict(type='PretrainedKeysCheckHook', allow_missing=['ln2.'])
        ],
        randomness=dict(seed=seed),
        default_scope='mmpretrain',
        log_level='WARNING',
        visualizer=dict(type='Visualizer', vis_backends=[]),
    )


def finetune(weights: Dict[str, torch.Tensor], p: dict, data: dict,
             indices: Sequence[int], epochs: int, seed: int, device,
             work_dir: str) -> float:
    """Top-1 (fraction) on val after fine-tuning on ``indices``."""
    from mmengine.runner import Runner
    os.makedirs(work_dir, exist_ok=True)
    checkpoint = osp.join(work_dir, 'backbone_mmpretrain.pth')
    torch.save(dict(state_dict=to_mmpretrain(weights)), checkpoint)
    train_key = common.register_arrays('ft_train', data['train']['images'],
                                       data['train']['labels'])
    val_key = common.register_arrays('ft_val', data['val']['images'],
                                     data['val']['labels'])
    cfg = runner_cfg(p, checkpoint, train_key, indices, val_key, epochs, seed,
                     work_dir, device)
    runner = Runner(**copy.deepcopy(cfg))
    common.quiet(runner)
    runner.train()
    metrics = runner.val()
    return float(metrics['accuracy/top1']) / 100.


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset', default='cpu', choices=sorted(common.PRESETS))
    parser.add_argument('--weights', required=True)
    parser.add_argument(
        '--ratio',
        type=float,
        default=0.1,
        help='fraction of the labels (1.0: all)')
    parser.add_argument('--data', default='auto')
    parser.add_argument('--device', default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default='work_dirs/study/finetune')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    common.quiet_logging()
    from pretrain import load_data
    p = common.make_preset(args.preset, common.parse_set(args.set))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    data = load_data(p, args.data)
    idx = few_indices(data, args.ratio)
    epochs = p['ft10_epochs'] if args.ratio < 1 else p['ft100_epochs']
    out = {}
    for name, weights in torch.load(args.weights).items():
        out[name] = finetune(weights, p, data, idx, epochs, args.seed, device,
                             osp.join(args.work_dir, name))
        log(f'fine-tune ({args.ratio:.0%} labels) top-1 of {name}: '
            f'{out[name]:.4f}')
    return out


def few_indices(data: dict, ratio: float) -> List[int]:
    """Indices of the ``ratio`` subset of the train images (all for 1)."""
    n = len(data['train']['labels'])
    if ratio >= 1:
        return list(range(n))
    return common.fewshot_indices(data['train']['paths'],
                                  data['train']['labels'], ratio).tolist()


if __name__ == '__main__':
    main()
