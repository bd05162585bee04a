"""Fine-tune a backbone on Imagenette (10 % or 100 % of the labels).

MMEngine's Runner trains the shipped tiny fine-tuning config
(``configs/benchmarks/classification/vit-tiny-p8_folk-pre_1xb32-100i_
imagenette128.py``: MMPretrain's ``ImageClassifier``, mean-pooled patch
tokens with the fc-norm, label smoothing 0.1, layer-wise lr decay from
``LearningRateDecayOptimWrapperConstructor``, warm-up + cosine, top-1 from
``Accuracy``) with the study's overrides (:func:`runner_cfg`): the backbone
weights are exported with :func:`folk.downstream.to_mmpretrain` and loaded
by ``init_cfg=Pretrained`` under :class:`folk.downstream.
PretrainedKeysCheckHook`.

Run alone::

    python benchmarks/study/finetune.py --preset smoke --ratio 0.1 \\
        --weights work_dirs/study/folk_smoke/backbones.pth
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import arrays
import common
import torch
from common import log
from mmengine.config import Config
from sources import REPO, fewshot_indices, load_data

from folk.downstream import to_mmpretrain
from folk.engine import adapt_cfg_to_device

CONFIG = osp.join(REPO, 'configs', 'benchmarks', 'classification',
                  'vit-tiny-p8_folk-pre_1xb32-100i_imagenette128.py')


def runner_cfg(p: dict, checkpoint: str, train_key: str,
               indices: Sequence[int], val_key: str, epochs: int, seed: int,
               work_dir: str, device) -> Config:
    """The shipped tiny Imagenette fine-tuning config with the study's
    overrides: the study's ViT and crop size, ``epochs`` over ``indices``
    at ``ft_batch``, ``ft_lr`` and ``ft_layer_decay``, the images decoded
    once (the pipelines start after loading), and crop + flip only (no
    RandAugment, random erasing, mixup or cutmix at this scale)."""
    n = len(indices)
    bs = min(p['ft_batch'], n)
    total = max(1, n // bs) * epochs
    warmup = max(1, total // 10)
    size = p['img_size']
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'model.backbone.arch.embed_dims':
        p['embed'],
        'model.backbone.arch.num_layers':
        p['layers'],
        'model.backbone.arch.num_heads':
        p['heads'],
        'model.backbone.arch.feedforward_channels':
        p['ffn'],
        'model.backbone.img_size':
        size,
        'model.backbone.patch_size':
        p['patch'],
        'model.backbone.drop_path_rate':
        p['ft_drop_path'],
        'model.backbone.init_cfg.checkpoint':
        checkpoint,
        'model.head.in_channels':
        p['embed'],
        'optim_wrapper.optimizer.lr':
        p['ft_lr'],
        'optim_wrapper.paramwise_cfg.layer_decay_rate':
        p['ft_layer_decay'],
        'train_cfg.max_iters':
        total,
        'train_cfg.val_interval':
        total + 1,  # validated once, after
    })
    cfg.model.train_cfg = None  # no mixup / cutmix
    warm, cosine = cfg.param_scheduler
    warm.end = cosine.begin = min(warmup, total)
    cosine.end = total
    cosine.T_max = max(1, total - warmup)
    if total <= warmup:  # too short for the cosine part
        cfg.param_scheduler = [warm]
    train_pipeline = [
        dict(
            type='RandomResizedCrop',
            scale=size,
            crop_ratio_range=tuple(p['ft_crop_scale']),
            backend='pillow',
            interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    loader = cfg.train_dataloader
    loader.batch_size = bs
    loader.num_workers = p['ft_workers']
    loader.persistent_workers = False
    loader.drop_last = True
    loader.sampler = dict(type='DefaultSampler', shuffle=True, seed=seed)
    loader.dataset = dict(
        type='ArrayDataset',
        key=train_key,
        indices=list(indices),
        pipeline=train_pipeline)
    loader = cfg.val_dataloader
    loader.batch_size = p['eval_batch']
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.dataset = dict(
        type='ArrayDataset', key=val_key, pipeline=arrays.eval_pipeline(size))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.test_evaluator = cfg.val_evaluator
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.custom_hooks = [
        h for h in cfg.custom_hooks if h['type'] == 'PretrainedKeysCheckHook'
    ]
    cfg.work_dir = work_dir
    cfg.experiment_name = f'ft_{time.time_ns()}'
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'
    cfg.visualizer = dict(type='UniversalVisualizer', vis_backends=[])
    return adapt_cfg_to_device(cfg)


def finetune(weights: Dict[str, torch.Tensor], p: dict, data: dict,
             indices: Sequence[int], epochs: int, seed: int, device,
             work_dir: str) -> float:
    """Top-1 (fraction) on val after fine-tuning on ``indices``."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    os.makedirs(work_dir, exist_ok=True)
    checkpoint = osp.join(work_dir, 'backbone_mmpretrain.pth')
    torch.save(dict(state_dict=to_mmpretrain(weights)), checkpoint)
    train_key = arrays.register_arrays('ft_train', data['train']['images'],
                                       data['train']['labels'])
    val_key = arrays.register_arrays('ft_val', data['val']['images'],
                                     data['val']['labels'])
    cfg = runner_cfg(p, checkpoint, train_key, indices, val_key, epochs, seed,
                     work_dir, device)
    # the Runner makes its own scope current: restore the caller's after
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        runner = Runner.from_cfg(cfg)
        common.quiet(runner)
        runner.train()
        metrics = runner.val()
    return float(metrics['accuracy/top1']) / 100.


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = common.script_parser(__doc__, weights=True)
    parser.add_argument(
        '--ratio',
        type=float,
        default=0.1,
        help='fraction of the labels (1.0: all)')
    parser.add_argument('--work-dir', default='work_dirs/study/finetune')
    args = parser.parse_args(argv)
    p, device = common.setup(parser, args)
    data = load_data(p, args.data)
    idx = few_indices(data, args.ratio)
    epochs = p['ft10_epochs'] if args.ratio < 1 else p['ft100_epochs']
    out = {}
    for name, weights in common.load_weights(args.weights).items():
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
    return fewshot_indices(data['train']['paths'], data['train']['labels'],
                           ratio).tolist()


if __name__ == '__main__':
    main()
