"""Every downstream config parses and builds; the IN-1K ones follow s.4."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', 'benchmarks', '**', '*.py'),
        recursive=True) if '_base_' not in p)
CLS = 'configs/benchmarks/classification/'


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
    assert cfg.custom_imports.imports[:2] == ['folk', 'folk.converters']
    assert cfg.custom_imports.allow_failed_imports is False
    hooks = [h.type for h in cfg.custom_hooks]
    assert hooks == ['PretrainedKeysCheckHook']
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
        hook_registry.build(cfg.custom_hooks[0])
    assert sum(p.numel() for p in model.backbone.parameters()) > 0
    for name in ('train_dataloader', 'val_dataloader'):
        collate = cfg[name].get('collate_fn', {})
        assert '_delete_' not in collate and '_scope_' not in collate


@pytest.mark.parametrize('arch,dims', [('base', 768), ('small', 384)])
def test_in1k_finetune_protocol(arch, dims):
    cfg = Config.fromfile(
        osp.join(REPO, CLS, f'vit-{arch}-p16_folk-pre_8xb128-amp-coslr-'
                 '100e_in1k.py'))
    bb = cfg.model.backbone
    assert bb.arch == ('base' if arch == 'base' else 'deit-small')
    assert bb.patch_size == 16 and bb.img_size == 224
    assert bb.out_type == 'avg_featmap' and bb.drop_path_rate == 0.1
    assert cfg.model.head.in_channels == dims
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert [(a.type, a.alpha) for a in cfg.model.train_cfg.augments] == [
        ('Mixup', 0.8), ('CutMix', 1.0)]
    assert cfg.train_dataloader.batch_size * 8 == 1024
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 2e-3
    assert opt.constructor == 'LearningRateDecayOptimWrapperConstructor'
    assert opt.paramwise_cfg.layer_decay_rate == 0.65
    assert cfg.train_cfg.max_epochs == 100
    steps = {s.type: s for s in cfg.train_dataloader.dataset.pipeline}
    assert steps['RandAugment'].magnitude_level == 9
    assert steps['RandomErasing'].erase_prob == 0.25
    for pct in (1, 10):
        few = Config.fromfile(
            osp.join(REPO, CLS, f'vit-{arch}-p16_folk-pre_8xb128-amp-coslr-'
                     f'100e_in1k-{pct}pct.py'))
        assert few.train_dataloader.dataset.ann_file == \
            f'meta/train_{pct}pct.txt'
        assert few.optim_wrapper == cfg.optim_wrapper
        assert few.model == cfg.model


@pytest.mark.parametrize('arch', ['base', 'small'])
def test_in1k_linear_protocol(arch):
    cfg = Config.fromfile(
        osp.join(REPO, CLS, f'vit-{arch}-p16_folk-pre_8xb2048-linear-coslr-'
                 '90e_in1k.py'))
    bb = cfg.model.backbone
    assert bb.frozen_stages == 12 and bb.out_type == 'cls_token'
    assert cfg.model.neck.type == 'ClsBatchNormNeck'
    assert cfg.optim_wrapper.optimizer.type == 'LARS'
    assert cfg.train_cfg.max_epochs == 90
