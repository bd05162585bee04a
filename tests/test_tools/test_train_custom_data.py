"""tools/train.py on a folder of one's own images (the custom configs)."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from folk.datasets.folder import CUSTOM_CONFIG, DEMO_CUSTOM_CONFIG
from folk.engine.checkpoint import safe_torch_load

ENV = dict(os.environ, PYTHONWARNINGS='ignore')


def _train(repo_root, work_dir, data_root, *options, config=None):
    cmd = [
        sys.executable,
        osp.join(repo_root, 'tools', 'train.py'),
        osp.join(repo_root, config or DEMO_CUSTOM_CONFIG), '--work-dir',
        str(work_dir), '--no-persistent-workers', '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}', *options
    ]
    return subprocess.run(
        cmd,
        cwd=repo_root,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600)


def _mixed_folder(root):
    """Nested folder: JPEG, gray PNG, 16-bit PNG, CMYK JPEG, RGBA PNG,
    a tiny WebP, a BMP and one corrupt JPEG."""
    rng = np.random.default_rng(0)
    (root / 'trip' / 'day2').mkdir(parents=True)
    for i in range(8):
        cv2.imwrite(
            str(root / f'photo_{i}.jpg'),
            rng.integers(0, 255, (90 + i, 120, 3), dtype=np.uint8))
    cv2.imwrite(
        str(root / 'trip' / 'gray.png'),
        rng.integers(0, 255, (100, 80), dtype=np.uint8))
    cv2.imwrite(
        str(root / 'trip' / 'day2' / 'scan16.png'),
        rng.integers(0, 65535, (96, 96, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 255, (80, 80, 4), dtype=np.uint8),
                    'CMYK').save(root / 'trip' / 'cmyk.jpg')
    Image.fromarray(rng.integers(0, 255, (70, 90, 4), dtype=np.uint8),
                    'RGBA').save(root / 'trip' / 'alpha.png')
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(
        root / 'trip' / 'day2' / 'tiny.webp')
    cv2.imwrite(
        str(root / 'trip' / 'day2' / 'old.bmp'),
        rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (root / 'trip' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0' + b'x' * 64)


def test_demo_custom_config_trains_on_a_mixed_folder(repo_root, tmp_path):
    data = tmp_path / 'my_images'
    data.mkdir()
    _mixed_folder(data)
    work = tmp_path / 'work'
    proc = _train(repo_root, work, data, 'train_cfg.max_iters=4',
                  'train_dataloader.batch_size=4',
                  'train_dataloader.num_workers=0',
                  'custom_hooks.1.interval=2',
                  'default_hooks.logger.interval=1',
                  'default_hooks.checkpoint.interval=4')
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # the configured bad-image policy: reported, skipped, training goes on
    assert 'broken.jpg' in out and 'skipped (on_error="skip")' in out
    assert 'Traceback' not in out
    # 15 files listed (the corrupt one included: rejected when loaded)
    assert 'ImageFolderDataset: 15 image files under' in out
    # the label-free monitors, beside the losses
    assert 'RankMe effective rank at iteration 4: teacher' in out
    (run_dir, ) = [d for d in work.iterdir() if d.is_dir()]
    records = [
        json.loads(line) for line in (run_dir / 'vis_data' /
                                      'scalars.json').read_text().splitlines()
    ]
    ranks = [r for r in records if 'rankme/teacher' in r]
    assert [r['step'] for r in ranks] == [2, 4]
    for r in ranks:
        # bounded by the images of the subset (the corrupt one is replaced)
        assert 1.0 < r['rankme/teacher'] <= 14
        assert 1.0 < r['rankme/student'] <= 14
    losses = [r for r in records if 'loss_distill' in r]
    assert len(losses) == 4
    assert all('teacher_entropy' in r for r in losses)
    assert all(np.isfinite(r['loss']) for r in losses)

    # the checkpoint converts, and the weights load into MMPretrain's ViT
    ckpt = work / 'iter_4.pth'
    assert ckpt.exists()
    converted = tmp_path / 'vit-tiny_mmpretrain.pth'
    conv = subprocess.run([
        sys.executable,
        osp.join(repo_root, 'tools', 'model_converters',
                 'folk_to_mmpretrain.py'),
        str(ckpt),
        str(converted)
    ],
                          cwd=repo_root,
                          env=ENV,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert conv.returncode == 0, conv.stdout + conv.stderr
    state = safe_torch_load(str(converted))['state_dict']
    teacher = safe_torch_load(str(ckpt))['state_dict']
    torch.testing.assert_close(state['backbone.cls_token'],
                               teacher['teacher.module.backbone.cls_token'])


@pytest.mark.parametrize('case', ['missing', 'empty', 'unreadable'])
def test_bad_data_folder_stops_before_the_model_is_built(
        repo_root, tmp_path, case):
    data = tmp_path / 'photos'
    if case != 'missing':
        data.mkdir()
    if case == 'unreadable':
        (data / 'a.jpg').write_bytes(b'not an image')
    work = tmp_path / 'work'
    proc = _train(repo_root, work, data)
    err = proc.stderr
    assert proc.returncode == 1
    assert 'Traceback' not in err
    for part in (str(data), 'flat or nested', 'docs/custom_data.md',
                 CUSTOM_CONFIG):
        assert part in err
    # nothing was built: the Runner creates the work dir first
    assert not work.exists()


def test_imagenet_config_without_imagenet_names_the_custom_config(
        repo_root, tmp_path):
    proc = _train(
        repo_root,
        tmp_path / 'work',
        tmp_path / 'imagenet',
        config=osp.join('configs', 'folk_vit-b.py'))
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert str(tmp_path / 'imagenet') in proc.stderr
    assert CUSTOM_CONFIG in proc.stderr
