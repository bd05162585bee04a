"""ImageNet-1K recipes whose pipeline differs from the Imagenette fine-tune
run one iteration and one validation, shrunk to the bundled Imagenette.

Shrinking keeps what makes each recipe different (model, loss, batch
augmentation, train / test pipeline, optimizer, schedule type) and changes
only the size: the tiny ViT of the demo (or ResNet-50 at 64 px), 10
classes, 64 px crops, a few images.
"""
import glob
import importlib.util
import json
import os.path as osp

import pytest
import torch
from downstream_utils import (IMG, PATCH, TINY_ARCH, convert_tiny, no_workers,
                              run_config)
from mmengine.config import Config

from folk.downstream import check_weights_equal, convert_checkpoint
from folk.engine.checkpoint import safe_torch_load

CLS = 'configs/benchmarks/classification/'
NUM_CLASSES = 10


@pytest.fixture(scope='module')
def converted(repo_root, tmp_path_factory):
    return convert_tiny(repo_root, str(tmp_path_factory.mktemp('ckpt')),
                        'mmpretrain')


@pytest.fixture(scope='module')
def converted_r50(tmp_path_factory):
    """An MFM ResNet-50 'pre-training' checkpoint, converted (student)."""
    from mmpretrain.models import ResNet
    tmp = tmp_path_factory.mktemp('r50')
    torch.manual_seed(0)
    backbone = ResNet(depth=50, out_indices=(3, )).state_dict()
    state = {f'backbone.{k}': v for k, v in backbone.items()}
    state['neck.decoder.weight'] = torch.zeros(3 * 32 * 32, 2048, 1, 1)
    src = str(tmp / 'mfm_r50_epoch_1.pth')
    torch.save(dict(state_dict=state, meta=dict(epoch=1, iter=10)), src)
    dst = str(tmp / 'mfm_resnet50_mmpretrain.pth')
    convert_checkpoint(src, dst, 'mmpretrain')
    return dst


def _resize(pipeline):
    """224-px ImageNet pipeline -> 64-px crops of the 128-px Imagenette."""
    for step in pipeline:
        if step['type'] == 'RandomResizedCrop':
            step['scale'] = IMG
        elif step['type'] == 'ResizeEdge':
            step['scale'] = 73
        elif step['type'] == 'CenterCrop':
            step['crop_size'] = IMG


def _imagenette(loader, root, ann_file, n, batch):
    pipeline = loader.dataset.pipeline
    _resize(pipeline)
    loader.dataset = dict(
        type='CustomDataset',
        data_root=root,
        ann_file=ann_file,
        data_prefix='',
        pipeline=pipeline,
        indices=n)
    loader.batch_size = batch


def shrink(cfg, root, ckpt, vit=True):
    """Tiny model, 10 classes, 64 px, one step, 16 val images."""
    backbone = cfg.model.backbone
    backbone.init_cfg.checkpoint = ckpt
    if vit:
        backbone.update(arch=dict(TINY_ARCH), img_size=IMG, patch_size=PATCH)
        if backbone.get('frozen_stages') == 12:  # linear probes: all
            backbone.frozen_stages = TINY_ARCH['num_layers']
        if 'paramwise_cfg' in cfg.optim_wrapper and \
                'layer_decay_rate' in cfg.optim_wrapper.paramwise_cfg:
            cfg.optim_wrapper.paramwise_cfg.num_layers = 4
        cfg.model.head.in_channels = TINY_ARCH['embed_dims']
    cfg.model.head.num_classes = NUM_CLASSES
    cfg.data_preprocessor.num_classes = NUM_CLASSES
    _imagenette(cfg.train_dataloader, root, 'train.txt', 8, 8)
    _imagenette(cfg.val_dataloader, root, 'val.txt', 16, 16)
    cfg.test_dataloader = cfg.val_dataloader
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.update(max_iters=1, val_interval=1)
    else:  # one epoch of one batch: epoch-based schedulers stay valid
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint.interval = 1
    no_workers(cfg)
    return cfg


def _results(work_dir):
    """The records of the run's <log_dir>/downstream_results.json."""
    [path] = glob.glob(osp.join(work_dir, '*', 'downstream_results.json'))
    return json.loads(open(path).read())


def test_dino_linear_probe(repo_root, imagenette_root, converted, tmp_path):
    """DINO's multi-block [CLS] probe: frozen backbone, head trains.

    The ViT-S config (last 4 blocks); the ViT-B feature (last block +
    average pooling) differs only in two arguments of the backbone, which
    tests/test_downstream/test_linear_probe.py checks against DINO's formula.
    """
    cfg = Config.fromfile(
        osp.join(
            repo_root, CLS, 'vit-small-p16_folk-pre_8xb128-dino-'
            'linear-coslr-100e_in1k.py'))
    shrink(cfg, imagenette_root, converted)
    blocks, avgpool = 4, False
    assert (cfg.model.backbone.num_blocks,
            cfg.model.backbone.with_avgpool) == (blocks, avgpool)
    cfg.model.head.in_channels = TINY_ARCH['embed_dims'] * (blocks + avgpool)

    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert 0 <= metrics[-1]['accuracy/top1'] <= 100
    backbone = runner.model.backbone
    sd = safe_torch_load(converted)
    # every backbone weight (incl. the final norm ln1) loaded, and frozen
    assert check_weights_equal(backbone, sd, prefix='backbone.') == []
    assert all(not p.requires_grad for p in backbone.parameters())
    head = runner.model.head.fc.weight
    assert head.requires_grad and head.shape == (NUM_CLASSES,
                                                 TINY_ARCH['embed_dims'] *
                                                 (blocks + avgpool))
    # the feature is the concatenation DINO describes
    with torch.no_grad():
        x = torch.randn(2, 3, IMG, IMG)
        (feat, ) = backbone(x)
    assert feat.shape == (2, TINY_ARCH['embed_dims'] * (blocks + avgpool))


def test_fewshot_1pct_from_simclr_list(repo_root, imagenette_root, converted,
                                       tmp_path):
    """1 % config: subset file from a SimCLRv2-format list, step-based
    schedule, no Mixup / CutMix."""
    spec = importlib.util.spec_from_file_location(
        'make_fewshot_split',
        osp.join(repo_root, 'tools', 'make_fewshot_split.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    items = tool.read_annotations(osp.join(imagenette_root, 'train.txt'))
    names = [osp.basename(p) for p, label in items[::400]]  # 24 images
    (tmp_path / 'list.txt').write_text('\n'.join(names) + '\n')
    subset = str(tmp_path / 'train_1pct.txt')
    assert tool.main([
        osp.join(imagenette_root, 'train.txt'), subset, '--simclr-list',
        str(tmp_path / 'list.txt')
    ]) == 0

    cfg = Config.fromfile(
        osp.join(repo_root, CLS,
                 'vit-base-p16_folk-pre_8xb32-amp-coslr-5k_in1k-1pct.py'))
    assert cfg.train_dataloader.dataset.ann_file == 'meta/train_1pct.txt'
    shrink(cfg, imagenette_root, converted)
    cfg.train_dataloader.dataset.update(ann_file=subset, indices=None)
    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert len(runner.train_dataloader.dataset) == len(names)
    assert runner.iter == 1 and 'accuracy/top1' in metrics[-1]
    assert runner.model.data_preprocessor.batch_augments is None


@pytest.mark.parametrize('name,frozen', [
    ('resnet50_folk-pre_8xb256-rsb-a3-100e_in1k.py', False),
    ('resnet50_folk-pre_8xb128-linear-coslr-90e_in1k.py', True),
])
def test_resnet50(repo_root, imagenette_root, converted_r50, tmp_path, name,
                  frozen):
    """RSB A3 fine-tune (LAMB, BCE, Mixup / CutMix) and the linear probe
    start from a converted ResNet-50 and record where it came from."""
    cfg = Config.fromfile(osp.join(repo_root, CLS, name))
    shrink(cfg, imagenette_root, converted_r50, vit=False)
    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert 0 <= metrics[-1]['accuracy/top1'] <= 100
    backbone = runner.model.backbone
    differ = check_weights_equal(
        backbone, safe_torch_load(converted_r50), prefix='backbone.')
    if frozen:
        assert differ == []
    else:  # trained: the convolutions moved away from the converted ones
        assert any('conv' in k for k in differ)
    [record] = _results(str(tmp_path / 'wd'))
    assert record['pretrained']['method'] == 'MFM'
    assert record['pretrained']['weights'] == 'student'
    assert record['pretrained']['source'] == 'mfm_r50_epoch_1.pth'
