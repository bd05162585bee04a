"""Imagenette fine-tune / few-shot configs run from a converted FOLK ckpt."""
import glob
import importlib.util
import json
import os.path as osp

import pytest
from downstream_utils import convert_tiny, no_workers, run_config
from mmengine.config import Config

from folk.downstream import check_loaded_keys, check_weights_equal
from folk.engine.checkpoint import safe_torch_load

CLS = 'configs/benchmarks/classification/'
FT = CLS + 'vit-tiny-p8_folk-pre_1xb32-100i_imagenette128.py'
FEWSHOT = CLS + 'vit-tiny-p8_folk-pre_1xb32-100i_imagenette128-10pct.py'


@pytest.fixture(scope='module')
def converted(repo_root, tmp_path_factory):
    return convert_tiny(repo_root, str(tmp_path_factory.mktemp('ckpt')),
                        'mmpretrain')


def _shrink(cfg, imagenette_root, ckpt, iters=2):
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    cfg.train_dataloader.batch_size = 8
    cfg.val_dataloader.batch_size = 16
    cfg.val_dataloader.dataset.indices = 32  # first 32 val images
    cfg.val_dataloader.dataset.data_root = imagenette_root
    cfg.test_dataloader = cfg.val_dataloader
    if cfg.train_dataloader.dataset.data_root:
        cfg.train_dataloader.dataset.data_root = imagenette_root
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    no_workers(cfg)


def test_imagenette_finetune(repo_root, imagenette_root, converted, tmp_path):
    cfg = Config.fromfile(osp.join(repo_root, FT))
    _shrink(cfg, imagenette_root, converted)
    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert 'accuracy/top1' in metrics[-1]
    backbone = runner.model.backbone
    sd = safe_torch_load(converted)
    result = check_loaded_keys(
        backbone, sd, prefix='backbone.', allow_missing=('ln2.', ))
    assert result.missing == [] and result.matched == 52
    # layer-wise lr decay: 4 layers -> patch embedding at 0.65 ** 5
    scales = {
        g['param_names'][0] if 'param_names' in g else id(g): g['lr_scale']
        for g in runner.optim_wrapper.param_groups if 'lr_scale' in g
    }
    assert min(scales.values()) == pytest.approx(0.65**5)
    assert max(scales.values()) == pytest.approx(1.0)
    # weights really changed by training (it trained from the converted ones)
    assert check_weights_equal(backbone, sd, prefix='backbone.')
    # provenance: in the results file and the saved checkpoint (the log
    # line is checked by the tools/test.py test: run_config logs warnings)
    wd = tmp_path / 'wd'
    [results] = glob.glob(str(wd / '*' / 'downstream_results.json'))
    [record] = json.loads(open(results).read())
    assert record['mode'] == 'val' and record['evaluated']['iter'] == 2
    assert record['metrics']['accuracy/top1'] == metrics[-1]['accuracy/top1']
    assert record['pretrained']['weights'] == 'teacher'
    saved = safe_torch_load(str(wd / 'iter_2.pth'))
    assert saved['meta']['folk_provenance'] == record['pretrained']


def test_imagenette_fewshot_split(repo_root, imagenette_root, converted,
                                  tmp_path):
    spec = importlib.util.spec_from_file_location(
        'make_fewshot_split', osp.join(repo_root,
                                       'tools/make_fewshot_split.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    split = str(tmp_path / 'train_10pct.txt')
    assert tool.main([
        osp.join(imagenette_root, 'train.txt'), split, '--ratio', '0.1',
        '--seed', '0'
    ]) == 0

    cfg = Config.fromfile(osp.join(repo_root, FEWSHOT))
    assert cfg.train_dataloader.dataset.ann_file == \
        'data/fewshot/imagenette128_train_10pct.txt'
    cfg.train_dataloader.dataset.ann_file = split
    cfg.train_dataloader.dataset.data_prefix = imagenette_root
    _shrink(cfg, imagenette_root, converted, iters=1)
    runner, metrics = run_config(cfg, str(tmp_path / 'wd'))
    assert len(runner.train_dataloader.dataset) == 950  # 95 x 10 classes
    assert 'accuracy/top1' in metrics[-1]


def test_wrong_checkpoint_fails_early(repo_root, imagenette_root, tmp_path):
    """MMSeg key names under ``backbone.`` load silently (non-strict
    PretrainedInit) and leave attention layers random; the hook refuses."""
    import torch
    seg = safe_torch_load(convert_tiny(repo_root, str(tmp_path), 'mmseg'))
    wrong = str(tmp_path / 'wrong.pth')
    torch.save(
        dict(state_dict={
            'backbone.' + k: v
            for k, v in seg['state_dict'].items()
        }), wrong)
    cfg = Config.fromfile(osp.join(repo_root, FT))
    _shrink(cfg, imagenette_root, wrong)
    with pytest.raises(KeyError, match='layers.0.attn.qkv.weight'):
        run_config(cfg, str(tmp_path / 'wd'))


def test_tools_test_evaluates_a_finetuned_checkpoint(repo_root,
                                                     imagenette_root,
                                                     converted, tmp_path):
    """tools/test.py CONFIG CKPT --out: the MMPretrain test entry point."""
    import subprocess
    import sys
    cfg = Config.fromfile(osp.join(repo_root, FT))
    _shrink(cfg, imagenette_root, converted, iters=1)
    runner, _ = run_config(cfg, str(tmp_path / 'wd'))
    ckpt = str(tmp_path / 'wd' / 'iter_1.pth')
    assert osp.isfile(ckpt)
    out = tmp_path / 'metrics.json'
    proc = subprocess.run([
        sys.executable, 'tools/test.py', FT, ckpt, '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(out), '--cfg-options',
        f'test_dataloader.dataset.data_root={imagenette_root}',
        'test_dataloader.dataset.indices=16', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ],
                          cwd=repo_root,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    # the log and the results file name the evaluated checkpoint and the
    # pre-trained weights it was fine-tuned from (kept in its meta)
    [log] = glob.glob(str(tmp_path / 'test' / '*' / '*.log'))
    log = open(log).read()
    assert f'Loaded checkpoint: {ckpt} (epoch 0, iter 1)' in log
    assert f'test metrics of {ckpt}; pre-trained weights: FOLK' in log
    assert 'FOLK teacher weights of folk_iter_2.pth' in log
    [results
     ] = glob.glob(str(tmp_path / 'test' / '*' / 'downstream_results.json'))
    [record] = json.loads(open(results).read())
    assert record['mode'] == 'test'
    assert record['evaluated'] == dict(checkpoint=ckpt, epoch=0, iter=1)
    assert record['metrics'] == metrics
    assert record['pretrained']['source'] == 'folk_iter_2.pth'
    assert record['pretrained']['weights'] == 'teacher'
