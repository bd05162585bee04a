"""Every downstream config parses and builds; schedule and protocol checks."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', 'benchmarks', '**', '*.py'), recursive=True)
    if '_base_' not in p)
CLS = 'configs/benchmarks/classification/'
SEG = 'configs/benchmarks/segmentation/'


def _registries(scope):
    if scope == 'mmseg':
        from mmseg.registry import HOOKS, MODELS
    else:
        from mmpretrain.registry import HOOKS, MODELS
    return MODELS, HOOKS


def test_configs_found():
    assert len(CONFIGS) >= 14, CONFIGS


@pytest.mark.parametrize('path', CONFIGS)
def test_build(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    assert cfg.custom_imports.imports == ['folk']  # registers everything
    assert cfg.custom_imports.allow_failed_imports is False
    hooks = [h.type for h in cfg.custom_hooks]
    assert hooks == ['PretrainedKeysCheckHook', 'DownstreamProvenanceHook']
    scope = cfg.default_scope
    models, hook_registry = _registries(scope)
    model_cfg = cfg.model.copy()
    if scope == 'mmseg':
        assert cfg.model.pretrained.endswith('_mmseg.pth')
        model_cfg.pretrained = None  # do not read the file while building
    else:
        init = cfg.model.backbone.init_cfg
        assert init.type == 'Pretrained' and init.prefix == 'backbone.'
        assert init.checkpoint.endswith('_mmpretrain.pth')
        if 'data_preprocessor' in cfg:  # what the Runner does
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(scope):
        model = models.build(model_cfg)
        for hook in cfg.custom_hooks:
            hook_registry.build(hook)
    assert sum(p.numel() for p in model.backbone.parameters()) > 0
    for name in ('train_dataloader', 'val_dataloader'):
        collate = cfg[name].get('collate_fn', {})
        assert '_delete_' not in collate and '_scope_' not in collate


@pytest.mark.parametrize('arch,dims,epochs', [('base', 768, 100),
                                              ('small', 384, 200)])
def test_in1k_finetune_model(arch, dims, epochs):
    """What the recipe table does not state: model, pooling, optimizer."""
    cfg = Config.fromfile(
        osp.join(
            REPO, CLS, f'vit-{arch}-p16_folk-pre_8xb128-amp-coslr-'
            f'{epochs}e_in1k.py'))
    bb = cfg.model.backbone
    assert bb.arch == ('base' if arch == 'base' else 'deit-small')
    assert bb.patch_size == 16 and bb.img_size == 224
    assert bb.out_type == 'avg_featmap' and bb.drop_path_rate == 0.1
    assert cfg.model.head.in_channels == dims
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW'
    assert opt.optimizer.weight_decay == 0.05
    assert opt.constructor == 'LearningRateDecayOptimWrapperConstructor'
    # MFM: MIN_LR 2.5e-7 per 512 -> 5e-7 at 1024, warm-up from the same
    cosine = cfg.param_scheduler[1]
    assert cosine.eta_min == pytest.approx(5e-7)
    assert cosine.end == epochs and cosine.T_max == epochs - 5
    warmup = cfg.param_scheduler[0]
    assert warmup.start_factor * opt.optimizer.lr == pytest.approx(5e-7)


# Few-shot configs: (name, steps, warm-up, validation interval, batch).
FEWSHOT = [(f'vit-{arch}-p16_folk-pre_{sched}_in1k-{pct}pct.py', pct, *numbers)
           for arch in ('base', 'small')
           for sched, pct, numbers in (('8xb32-amp-coslr-5k', 1, (5000, 250,
                                                                  500, 256)),
                                       ('8xb64-amp-coslr-15k', 10,
                                        (15000, 1250, 1500, 512)))]
# SimCLRv2's imagenet_subsets lists; the seeded balanced split of
# make_fewshot_split.py --ratio gives 13 / 128 images x 1000 classes.
SUBSET_SIZES = {1: (12811, 13000), 10: (128116, 128000)}


@pytest.mark.parametrize('name,pct,steps,warmup,val_every,batch', FEWSHOT)
def test_fewshot_steps(name, pct, steps, warmup, val_every, batch):
    """The few-shot schedule is a number of optimizer steps (printed)."""
    cfg = Config.fromfile(osp.join(REPO, CLS, name))
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    total_batch = cfg.train_dataloader.batch_size * 8
    linear, cosine = cfg.param_scheduler
    got = (cfg.train_cfg.max_iters, linear.end, cfg.train_cfg.val_interval,
           total_batch)
    lines = [
        f'{name}: {got[0]} optimizer steps at batch {got[3]}, '
        f'{got[1]} warm-up, validation every {got[2]} steps'
    ]
    for source, images in zip(('SimCLRv2 list', 'balanced split'),
                              SUBSET_SIZES[pct]):
        per_epoch = images / total_batch
        lines.append(f'  {pct} % = {images} images ({source}): '
                     f'{per_epoch:.1f} steps per pass, '
                     f'{got[0] / per_epoch:.1f} passes, warm-up '
                     f'{got[1] / per_epoch:.1f} passes')
    print('\n'.join(lines))
    assert got == (steps, warmup, val_every, batch)
    assert not linear.by_epoch and not cosine.by_epoch
    assert (cosine.begin, cosine.end) == (warmup, steps)
    assert cfg.default_hooks.checkpoint.interval == val_every
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.train_dataloader.dataset.ann_file == \
        f'meta/train_{pct}pct.txt'
    # the same model as the full-data recipe of that size
    full = Config.fromfile(
        osp.join(
            REPO, CLS,
            name.split('_folk-pre_')[0] + '_folk-pre_8xb128-'
            'amp-coslr-' + ('100e' if 'base' in name else '200e') +
            '_in1k.py'))
    assert cfg.model.backbone == full.model.backbone
    assert cfg.optim_wrapper.paramwise_cfg == full.optim_wrapper.paramwise_cfg
    # the lr follows MFM's rule: 2e-3 per 512 images
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2e-3 * total_batch /
                                                           512)
    # 1 %: no batch mixing (no Mixup / CutMix) on ~13 images per class
    augments = (cfg.model.get('train_cfg') or {}).get('augments')
    assert bool(augments) == (pct == 10)


@pytest.mark.parametrize('arch', ['base', 'small'])
def test_in1k_linear_protocol(arch):
    cfg = Config.fromfile(
        osp.join(
            REPO, CLS, f'vit-{arch}-p16_folk-pre_8xb2048-linear-coslr-'
            '90e_in1k.py'))
    bb = cfg.model.backbone
    assert bb.frozen_stages == 12 and bb.out_type == 'cls_token'
    assert cfg.model.neck.type == 'ClsBatchNormNeck'
    assert cfg.optim_wrapper.optimizer.type == 'LARS'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        resize = [
            s for s in cfg[loader].dataset.pipeline
            if s.type in ('RandomResizedCrop', 'ResizeEdge')
        ]
        assert [s.interpolation for s in resize] == ['bicubic'], loader


@pytest.mark.parametrize('arch,blocks,avgpool,dims', [('small', 4, False, 384),
                                                      ('base', 1, True, 768)])
def test_dino_linear_protocol(arch, blocks, avgpool, dims):
    """DINO's feature: ViT-S last 4 [CLS]; ViT-B last [CLS] + avgpool."""
    cfg = Config.fromfile(
        osp.join(
            REPO, CLS, f'vit-{arch}-p16_folk-pre_8xb128-dino-linear-'
            'coslr-100e_in1k.py'))
    bb = cfg.model.backbone
    assert bb.type == 'MultiBlockClsViT' and bb.frozen_stages == 12
    assert (bb.num_blocks, bb.with_avgpool) == (blocks, avgpool)
    assert cfg.model.head.in_channels == dims * (blocks + avgpool)
    assert cfg.model.neck is None
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.momentum, opt.weight_decay) == ('SGD', 0.9, 0.)
    # DINO: 0.001 per 256 images
    assert opt.lr == pytest.approx(1e-3 * 8 * 128 / 256)


def test_camvid_test_split():
    """tools/test.py scores CamVid's test split on the GPU configs."""
    for arch in ('base', 'small'):
        cfg = Config.fromfile(
            osp.join(
                REPO, SEG, f'upernet_vit-{arch}-p16_folk-pre_8xb2-amp-'
                '20k_camvid-512x512.py'))
        test = cfg.test_dataloader.dataset
        assert test.ann_file == 'test.txt'
        assert test.data_prefix == dict(
            img_path='images/test', seg_map_path='annotations/test')
        assert cfg.val_dataloader.dataset.data_prefix.img_path == \
            'images/val'
