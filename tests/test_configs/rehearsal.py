"""Rehearsal of the shipped configs on a CPU: every override in one place.

A rehearsal runs a config as it trains (its pipeline, ``collate_fn``, data
preprocessor, model wrapper, optim wrapper type and AMP dtype, hooks) for 2
iterations, saves, and resumes for 2 more. Only the model size and the data
change; :func:`rehearsal_cfg` makes every change, each commented with why.
The one stand-in for code is :func:`runner_utils.cpu_amp`: MMEngine's
``AmpOptimWrapper`` asserts a GPU, so on a CPU it runs with CPU autocast
(bf16 or fp16, the dtype of the config) and ``torch.amp.GradScaler('cpu')``.

Not rehearsed here: DDP (the runs are single-process; 2 gloo processes run
in ``test_rehearsal_world_size.py`` and the distributed tests) and the
ViT-L config's ``FlexibleRunner`` with ``FSDPStrategy`` (its model, data,
optim wrapper and hooks run here under the plain Runner; the FSDP path runs
through ``tools/train.py`` on 2 gloo processes in
``tests/test_tools/test_train_fsdp.py``).
"""
import copy
import functools
import glob
import os.path as osp
import random
from typing import Dict, List, Optional

import numpy as np
import torch
from downstream_utils import IMG, PATCH, TINY_ARCH
from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS
from runner_utils import cpu_amp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Every shipped config (the bases excepted): each must have a rehearsal.
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)
#: Images per epoch = 2 batches of BATCH: 2 iterations per epoch.
BATCH = 4
ITERS = 2


@DATASETS.register_module()
class RehearsalImages(CustomDataset):
    """Stand-in for ImageNet in a rehearsal: real Imagenette (128 px) images.

    Takes a config's dataset arguments and keeps only its ``pipeline``
    (ImageNet's ``split``, ``ann_file`` and ``data_root`` point at data a CPU
    host does not have).

    Args:
        root (str): The bundled ``imagenette128`` folder.
        split (str): ``'train'`` or ``'val'``.
        num (int, optional): Number of images (the first ones of the
            split); None for all.
        pipeline (list): The config's pipeline.
    """

    def __init__(self,
                 root: str,
                 split: str,
                 pipeline,
                 num: Optional[int] = None,
                 **kwargs):
        super().__init__(
            data_root=root,
            ann_file=f'{split}.txt',
            data_prefix='',
            with_label=True,
            indices=num,
            pipeline=pipeline,
            # no gc.collect() per dataset (1 s each here), nothing to share
            # with workers
            serialize_data=False)


def kind(path: str) -> str:
    """'pretrain', 'classification' or 'segmentation'."""
    if 'segmentation' in path:
        return 'segmentation'
    if 'classification' in path:
        return 'classification'
    return 'pretrain'


def _walk(node, fn) -> None:
    """Call ``fn`` on every dict of a nested config."""
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


def _shrink_pipeline(pipeline, seg: bool = False) -> None:
    """Data size: 224-px crops of ImageNet -> 64 px of 128-px Imagenette."""
    for step in pipeline:
        name = step['type']
        if name == 'FOLKViews':
            step['crop_size'] = IMG
        elif name == 'RandomResizedCrop':
            step['scale'] = IMG
        elif name == 'ResizeEdge':
            step['scale'] = IMG * 8 // 7
        elif name == 'CenterCrop':
            step['crop_size'] = IMG
        elif seg and name in ('RandomResize', 'Resize'):
            step['scale'] = (2 * IMG, IMG)
        elif seg and name == 'RandomCrop':
            step['crop_size'] = (IMG, IMG)


def _tiny_vit(backbone) -> None:
    """Model size: the demo's tiny ViT (192-d, 4 layers, patch 8, 64 px)."""
    backbone.update(arch=dict(TINY_ARCH), img_size=IMG, patch_size=PATCH)
    if backbone.get('frozen_stages', 0) > 0:  # linear probes: all frozen
        backbone.frozen_stages = TINY_ARCH['num_layers']


def _data(loader, seg: bool = False) -> None:
    """Data: BATCH x ITERS real images (2 iterations per epoch), no worker
    processes (their start-up would dominate; the collate_fn and the
    pipeline run the same in the main process)."""
    loader.batch_size = BATCH
    loader.num_workers = 0
    loader.persistent_workers = False
    _shrink_pipeline(loader.dataset.pipeline, seg)


def _pretrain(cfg, paths: Dict[str, str]) -> None:
    model = cfg.model
    if model.backbone.type == 'VisionTransformer':
        _tiny_vit(model.backbone)
        model.neck.update(
            in_channels=TINY_ARCH['embed_dims'], encoder_stride=PATCH)
        if 'projector' in model:
            model.projector.in_channels = TINY_ARCH['embed_dims']
    if 'projector' in model:  # 65,536 prototypes: 16.8 M parameters
        model.projector.out_channels = 1024
        model.distill_head.loss.out_dim = 1024
    loader = cfg.train_dataloader
    if loader.dataset.type == 'ArrayDataset':
        # the study's configs read decoded images held in memory
        # (benchmarks/study/arrays.py): the same real images, registered
        # under the configs' keys
        _register_study_arrays(paths['imagenette'])
        loader.dataset.indices = list(range(BATCH * ITERS))
    else:
        loader.dataset = dict(
            type='RehearsalImages',
            root=paths['imagenette'],
            split='train',
            num=BATCH * ITERS,
            pipeline=loader.dataset.pipeline)
    _data(loader)
    for hook in cfg.custom_hooks:
        if hook['type'] == 'KNNMonitorHook':
            # data: 1 bank and 1 query image per class of Imagenette
            if hook['bank']['type'] != 'ArrayDataset':
                for split, name in (('train', 'bank'), ('val', 'query')):
                    hook[name] = dict(
                        type='RehearsalImages',
                        root=paths['imagenette'],
                        split=split,
                        pipeline=[])
            hook.update(bank_per_class=1, query_per_class=1, num_workers=0)
            _shrink_pipeline(hook['pipeline'])
    if cfg.default_hooks.get('checkpoint') is None:
        # the study keeps no checkpoint; the rehearsal resumes from one
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook')


def _register_study_arrays(root: str) -> None:
    """The study's in-memory data sets (``ArrayDataset`` keys of
    configs/study): 2 decoded Imagenette images per class for training,
    bank and query."""
    import mmcv
    from arrays import register_arrays
    for key, split in (('study_train', 'train'), ('study_bank', 'train'),
                       ('study_query', 'val')):
        with open(osp.join(root, f'{split}.txt')) as f:
            lines = [line.split() for line in f if line.strip()]
        picked = {}
        for name, label in lines:
            if len(picked.setdefault(int(label), [])) < 2:
                picked[int(label)].append(name)
        names = [(n, c) for c in sorted(picked) for n in picked[c]]
        images = np.stack([
            mmcv.imresize(mmcv.imread(osp.join(root, n)), (IMG, IMG))
            for n, _ in names
        ])
        register_arrays(key, images, np.array([c for _, c in names]))


def _classification(cfg, paths: Dict[str, str]) -> None:
    model = cfg.model
    if model.backbone.type != 'ResNet':  # ViTs (DINO's: MultiBlockClsViT)
        _tiny_vit(model.backbone)
        model.backbone.init_cfg.checkpoint = paths['vit_mmpretrain']
        width = TINY_ARCH['embed_dims']
        if model.get('neck') and 'input_features' in model.neck:
            model.neck.input_features = width  # BatchNorm before the head
        if model.backbone.get('num_blocks'):  # DINO's multi-block probe
            width *= (
                model.backbone.num_blocks +
                int(model.backbone.get('with_avgpool', False)))
        model.head.in_channels = width
        paramwise = cfg.optim_wrapper.get('paramwise_cfg') or {}
        if 'layer_decay_rate' in paramwise and 'num_layers' in paramwise:
            paramwise['num_layers'] = TINY_ARCH['num_layers']
    else:
        model.backbone.init_cfg.checkpoint = paths['r50_mmpretrain']
    for name, split in (('train_dataloader', 'train'), ('val_dataloader',
                                                        'val')):
        loader = cfg[name]
        loader.dataset = dict(
            type='RehearsalImages',
            root=paths['imagenette'],
            split=split,
            num=BATCH * ITERS,
            pipeline=loader.dataset.pipeline)
        _data(loader)
    cfg.test_dataloader = cfg.val_dataloader


def _segmentation(cfg, paths: Dict[str, str]) -> None:
    model = cfg.model
    model.pretrained = paths['vit_mmseg']
    model.backbone.update(
        img_size=(IMG, IMG),
        patch_size=PATCH,
        embed_dims=TINY_ARCH['embed_dims'],
        num_layers=TINY_ARCH['num_layers'],
        num_heads=TINY_ARCH['num_heads'],
        out_indices=(0, 1, 2, 3))
    width = TINY_ARCH['embed_dims']
    if model.get('neck'):
        model.neck.embed_dim = width
    model.decode_head.update(in_channels=[width] * 4, channels=32)
    model.auxiliary_head.update(in_channels=width, channels=16)
    model.data_preprocessor.size = (IMG, IMG)
    cfg.data_preprocessor = model.data_preprocessor
    if model.test_cfg.get('mode') == 'slide':
        model.test_cfg.update(crop_size=(IMG, IMG), stride=(43, 43))
    cfg.optim_wrapper.paramwise_cfg.num_layers = TINY_ARCH['num_layers']
    for name, split in (('train_dataloader', 'train'), ('val_dataloader',
                                                        'val')):
        loader = cfg[name]
        # data: real CamVid images and labels (0-10) in the config's
        # dataset class (ADE20K's 150-class metainfo is kept)
        loader.dataset.update(
            data_root=paths['camvid'],
            data_prefix=dict(
                img_path=f'images/{split}',
                seg_map_path=f'annotations/{split}'),
            img_suffix='.jpg',
            seg_map_suffix='.png',
            ann_file=f'{split}.txt',
            indices=BATCH * ITERS)
        _data(loader, seg=True)
    cfg.test_dataloader = cfg.val_dataloader


@functools.lru_cache(maxsize=1)
def _load(path: str) -> Config:
    """The config file, read once for both runs (an ``mmseg::`` base reads
    MMSeg's metafiles: seconds). ``pretty_text`` (the text MMEngine logs and
    stores in every checkpoint) without yapf's formatting: the same Python,
    one line per key, 5-10x faster to produce."""
    cfg = Config.fromfile(osp.join(REPO, path))
    # mmengine 0.10.7's fromfile drops its format_python_code argument for
    # plain (not lazy-import) configs: set the flag it would have set
    object.__setattr__(cfg, '_format_python_code', False)
    return cfg


def rehearsal_cfg(path: str,
                  work_dir: str,
                  paths: Dict[str, str],
                  name: str,
                  overrides: Optional[dict] = None,
                  launcher: str = 'none') -> Config:
    """The config of ``path`` with the rehearsal's overrides, for one run
    of 2 * ITERS iterations (the first run stops after ITERS)."""
    from folk.engine import adapt_cfg_to_device
    cfg = copy.deepcopy(_load(path))
    if overrides:
        cfg.merge_from_dict(overrides)
    {
        'pretrain': _pretrain,
        'classification': _classification,
        'segmentation': _segmentation
    }[kind(path)](cfg, paths)
    # 2 + 2 iterations: ITERS, a checkpoint, then the resume
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop' or \
            'max_iters' in cfg.train_cfg:
        cfg.train_cfg.max_iters = 2 * ITERS
        cfg.default_hooks.checkpoint.update(by_epoch=False, interval=ITERS)
    else:
        cfg.train_cfg.max_epochs = 2
        cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.checkpoint.pop('save_best', None)
    # a separate experiment name per run: mmengine's visualizer and logger
    # are global instances keyed by it
    cfg.experiment_name = name
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.launcher = launcher
    # CPU host: gloo, SyncBN -> BN, DDP without device_ids (launcher
    # 'pytorch'); the optim wrapper stays as shipped
    # (run under cpu_amp), so adapt_cfg_to_device's OptimWrapper is undone
    optim = copy.deepcopy(cfg.optim_wrapper)
    adapt_cfg_to_device(cfg)
    cfg.optim_wrapper = optim
    return cfg


class Stop(Exception):
    """Ends the first run after its checkpoint (as a crash would)."""


class RehearsalProbe(Hook):
    """Records what a rehearsal checks, and stops the first run.

    - every training iteration and the autocast state in which the data
      preprocessor ran (MMEngine calls it inside the optim wrapper's
      context);
    - whether the preprocessor's training output inside that context equals
      its output outside any autocast on the same batch (finding A1);
    - the first run raises :class:`Stop` after ITERS iterations, once the
      checkpoint is written (priority LOWEST: after the checkpoint hook).
    """

    priority = 'LOWEST'

    def __init__(self, stop_after: Optional[int] = None) -> None:
        self.stop_after = stop_after
        self.iters: List[int] = []
        self.autocast: List[Optional[torch.dtype]] = []
        self.mismatch: List[str] = []

    def before_train(self, runner) -> None:
        from mmengine.model import is_model_wrapper
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        pre = model.data_preprocessor
        forward = pre.forward
        probe = self

        def recorded(data, training=False):
            if not training:
                return forward(data, training)
            on = torch.is_autocast_enabled('cpu')
            probe.autocast.append(
                torch.get_autocast_dtype('cpu') if on else None)
            if not on:
                return forward(data, training)
            ref = copy.deepcopy(data)
            # the same random draws in both calls (Mixup / CutMix)
            state = (torch.get_rng_state(), np.random.get_state(),
                     random.getstate())
            out = forward(data, training)
            torch.set_rng_state(state[0])
            np.random.set_state(state[1])
            random.setstate(state[2])
            with torch.autocast('cpu', enabled=False):
                plain = forward(ref, training)
            probe.mismatch.extend(_differences(out, plain))
            return out

        pre.forward = recorded

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self.iters.append(runner.iter + 1)
        if not runner.train_loop.__class__.__name__.startswith('Epoch'):
            self._maybe_stop(runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        self._maybe_stop(runner.iter)

    def _maybe_stop(self, done: int) -> None:
        if self.stop_after is not None and done >= self.stop_after:
            raise Stop(f'stopped after {done} iterations')


def _differences(out, plain, key='') -> List[str]:
    """Keys of two nested outputs whose tensors differ."""
    if isinstance(out, torch.Tensor):
        same = (
            out.dtype == plain.dtype and out.shape == plain.shape
            and torch.equal(out, plain))
        return [] if same else [key or 'output']
    if isinstance(out, dict):
        return [
            d for k in out
            for d in _differences(out[k], plain[k], f'{key}.{k}')
        ]
    if isinstance(out, (list, tuple)):
        return [
            d for i, (a, b) in enumerate(zip(out, plain))
            for d in _differences(a, b, f'{key}[{i}]')
        ]
    return []


def rehearse(path: str,
             work_dir: str,
             paths: Dict[str, str],
             overrides: Optional[dict] = None):
    """Run ``path`` for ITERS iterations, then resume it for ITERS more.

    Returns:
        tuple: The probes of both runs and the resumed runner.
    """
    probes = []
    runner = None
    threads = torch.get_num_threads()
    # one thread: CI's 2 cores are shared by the runner and its jobs
    torch.set_num_threads(1)
    try:
        for run, stop in enumerate((ITERS, None)):
            probe = RehearsalProbe(stop)
            cfg = rehearsal_cfg(path, work_dir, paths,
                                f'{osp.basename(work_dir)}_{run}', overrides)
            cfg.resume = run == 1
            cfg.load_from = None
            runner = _train(cfg, probe)
            probes.append(probe)
    finally:
        torch.set_num_threads(threads)
    return probes, runner


def _train(cfg: Config, probe: RehearsalProbe):
    """Build the Runner of ``cfg`` and train until the end or ``Stop``."""
    from mmengine.runner import Runner
    with cpu_amp():
        runner = Runner.from_cfg(cfg)
        runner.register_hook(probe, priority='LOWEST')
        try:
            runner.train()
        except Stop:
            pass
    return runner
