"""ADE20K / CamVid UperNet configs: train + validate from a converted ckpt."""
import os.path as osp

import numpy as np
import pytest
from downstream_utils import convert_tiny, no_workers, run_config
from mmengine.config import Config
from PIL import Image

from folk.downstream import check_loaded_keys
from folk.engine.checkpoint import safe_torch_load

SEG = 'configs/benchmarks/segmentation/'
ADE = SEG + 'upernet_vit-base-p16_folk-pre_8xb2-amp-160k_ade20k-512x512.py'
CAMVID = SEG + 'upernet_vit-tiny-p8_folk-pre_1xb4-200i_camvid-128x128.py'
CAMVID_GPU = SEG + ('upernet_vit-base-p16_folk-pre_8xb2-amp-20k_camvid-'
                    '512x512.py')
TINY_VIT = dict(
    img_size=(64, 64),
    patch_size=8,
    embed_dims=192,
    num_layers=4,
    num_heads=3,
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.0)


@pytest.fixture(scope='module')
def converted(repo_root, tmp_path_factory):
    return convert_tiny(repo_root, str(tmp_path_factory.mktemp('ckpt')),
                        'mmseg')


@pytest.fixture(scope='module')
def ade20k_root(tmp_path_factory):
    """ADEChallengeData2016 layout: 2 train / 2 val images, 150 classes
    (label 0 = 'other', ignored through reduce_zero_label)."""
    root = tmp_path_factory.mktemp('ade')
    rng = np.random.default_rng(0)
    for split, n in (('training', 2), ('validation', 2)):
        for i in range(n):
            name = f'ADE_{split[:3]}_{i:08d}'
            label = np.zeros((96, 128), np.uint8)
            for c in rng.choice(np.arange(1, 151), 6, replace=False):
                y, x = rng.integers(0, 64), rng.integers(0, 96)
                label[y:y + 32, x:x + 32] = c
            img = (label[..., None] * np.array([1, 3, 7]) % 255).astype(
                np.uint8) + rng.integers(0, 30, (96, 128, 3), np.uint8)
            for sub, arr, ext in (('images', img, 'jpg'), ('annotations',
                                                           label, 'png')):
                path = root / sub / split
                path.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(path / f'{name}.{ext}')
    return str(root)


def _replace(pipeline, **changes):
    for step in pipeline:
        for key, value in changes.items():
            if key in step:
                step[key] = value


def _check_backbone(runner, converted):
    result = check_loaded_keys(runner.model.backbone,
                               safe_torch_load(converted))
    assert result.ok and result.missing == []
    assert result.unexpected == ['ln1.weight', 'ln1.bias']  # final_norm off


def test_ade20k_shrunk(repo_root, ade20k_root, converted, tmp_path):
    cfg = Config.fromfile(osp.join(repo_root, ADE))
    # the real protocol
    assert cfg.model.backbone.type == 'VisionTransformer'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.model.test_cfg.mode == 'slide'
    # shrunk: tiny backbone, 64 px crops, 1 iteration, 150 classes kept
    cfg.model.pretrained = converted
    cfg.model.backbone.update(TINY_VIT)
    cfg.model.neck.embed_dim = 192
    cfg.model.decode_head.update(in_channels=[192] * 4, channels=32)
    cfg.model.auxiliary_head.update(in_channels=192, channels=16)
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.model.test_cfg.update(crop_size=(64, 64), stride=(43, 43))
    cfg.optim_wrapper.paramwise_cfg.num_layers = 4
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = ade20k_root
        _replace(loader.dataset.pipeline, scale=(128, 64), crop_size=(64, 64))
    cfg.train_dataloader.batch_size = 2
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=1, val_interval=1)
    no_workers(cfg)

    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert 'mIoU' in metrics[-1]
    assert runner.model.decode_head.num_classes == 150
    _check_backbone(runner, converted)
    # layer decay: patch embedding 0.65 ** 5, decode head 1
    groups = runner.optim_wrapper.optimizer.param_groups
    scale = {g['group_name']: g['lr_scale'] for g in groups}
    assert scale['layer_0_decay'] == pytest.approx(0.65**5)
    assert scale['layer_4_decay'] == pytest.approx(0.65)
    assert scale['layer_5_decay'] == pytest.approx(1.0)
    assert scale['layer_0_no_decay'] == pytest.approx(0.65**5)
    no_decay = [g for g in groups if g['group_name'].endswith('no_decay')]
    assert all(g['weight_decay'] == 0 for g in no_decay)
    pos = runner.model.backbone.pos_embed
    assert any(p is pos for g in no_decay for p in g['params'])


def test_camvid_tiny(repo_root, camvid_root, converted, tmp_path):
    """Train + validate the CPU CamVid config, then test the checkpoint on
    a test split as the GPU config does."""
    cfg = Config.fromfile(osp.join(repo_root, CAMVID))
    assert cfg.model.decode_head.num_classes == 11
    assert cfg.train_dataloader.dataset.ignore_index == 255
    cfg.model.pretrained = converted
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = camvid_root
        loader.dataset.indices = 2
    cfg.train_dataloader.batch_size = 2
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    no_workers(cfg)

    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert 0 <= metrics[-1]['mIoU'] <= 100
    _check_backbone(runner, converted)
    assert runner.val_dataloader.dataset.metainfo['classes'][0] == 'Sky'
    _test_split_and_evaluated_checkpoint(repo_root, camvid_root, cfg,
                                         str(tmp_path / 'wd' / 'iter_2.pth'),
                                         tmp_path)


def _camvid_with_test_split(camvid_root, root, names):
    """CamVid layout with a test split (3 val images copied as 'test')."""
    import shutil
    for sub, ext in (('images', '.jpg'), ('annotations', '.png')):
        (root / sub / 'test').mkdir(parents=True)
        for name in names:
            shutil.copy(
                osp.join(camvid_root, sub, 'val', name + ext),
                root / sub / 'test' / (name + ext))
    (root / 'test.txt').write_text('\n'.join(names) + '\n')
    return str(root)


def _test_split_and_evaluated_checkpoint(repo_root, camvid_root, cfg, ckpt,
                                         tmp_path):
    """What tools/test.py does with the GPU CamVid config: test on
    test.txt; the log and the results file name the evaluated checkpoint
    and the pre-trained weights."""
    import glob
    import json

    from mmengine.runner import Runner

    from folk.engine import adapt_cfg_to_device
    gpu = Config.fromfile(osp.join(repo_root, CAMVID_GPU))
    names = open(osp.join(camvid_root, 'val.txt')).read().split()[:3]
    test_root = _camvid_with_test_split(camvid_root, tmp_path / 'camvid',
                                        names)
    # what tools/test.py does, with the GPU config's test split
    test = gpu.test_dataloader
    test.dataset.update(
        data_root=test_root, pipeline=cfg.test_dataloader.dataset.pipeline)
    cfg.test_dataloader = test
    no_workers(cfg)
    cfg.update(
        work_dir=str(tmp_path / 'test'),
        load_from=ckpt,
        launcher='none',
        log_level='INFO')
    runner = Runner.from_cfg(adapt_cfg_to_device(cfg))
    metrics = runner.test()
    assert len(runner.test_dataloader.dataset) == 3
    assert 0 <= metrics['mIoU'] <= 100
    [log] = glob.glob(str(tmp_path / 'test' / '*' / '*.log'))
    log = open(log).read()
    assert f'Load checkpoint from {ckpt}' in log
    assert f'Loaded checkpoint: {ckpt} (epoch 0, iter 2)' in log
    assert f'test metrics of {ckpt}; pre-trained weights: FOLK' in log
    assert 'FOLK teacher weights of folk_iter_2.pth' in log
    pattern = tmp_path / 'test' / '*' / 'downstream_results.json'
    [results] = glob.glob(str(pattern))
    [record] = json.loads(open(results).read())
    assert record['evaluated']['checkpoint'] == ckpt
    assert record['pretrained']['format'] == 'mmseg'
    assert record['metrics']['mIoU'] == metrics['mIoU']


def test_camvid_refuses_mmpretrain_format(repo_root, camvid_root, tmp_path):
    """MMSeg's ViT loads an MMPretrain-format file silently (all keys
    'unexpected'); the hook stops the run before training."""
    wrong = convert_tiny(repo_root, str(tmp_path), 'mmpretrain')
    cfg = Config.fromfile(osp.join(repo_root, CAMVID))
    cfg.model.pretrained = wrong
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = camvid_root
        loader.dataset.indices = 1
    no_workers(cfg)
    with pytest.raises(KeyError, match='missing'):
        run_config(cfg, str(tmp_path / 'wd'))
