"""RankMe: the effective rank of embeddings, and the hook's arguments."""
import math
import os
import os.path as osp
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.registry import DefaultScope

import folk  # noqa: F401  (registers FOLK; spawned workers import this)
from folk.engine import RankMeHook, effective_rank


def test_effective_rank_of_known_spectra():
    # orthonormal rows: every singular value equal -> the full rank
    assert effective_rank(torch.eye(8)) == pytest.approx(8, rel=1e-5)
    # one direction (collapse): 1
    rank1 = torch.ones(16, 1) @ torch.randn(1, 32)
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-3)
    # two singular values 3:1 -> exp(entropy of (0.75, 0.25))
    z = torch.zeros(4, 5)
    z[0, 0], z[1, 1] = 3.0, 1.0
    ent = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_rank(z) == pytest.approx(math.exp(ent), rel=1e-5)
    # bounded by min(N, D), and scale-free
    x = torch.randn(10, 64)
    assert 1 < effective_rank(x) <= 10
    assert effective_rank(5 * x) == pytest.approx(effective_rank(x))
    assert effective_rank(torch.zeros(3, 4)) == 1.0


def test_effective_rank_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r'\(N, D\)'):
        effective_rank(torch.randn(3))


@pytest.mark.parametrize('kwargs, match',
                         [(dict(interval=0), 'interval'),
                          (dict(num_images=1), 'num_images'),
                          (dict(encoders=('ema', )), 'encoders'),
                          (dict(encoders=()), 'encoders')])
def test_hook_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RankMeHook(pipeline=[], **kwargs)


PIPELINE = [
    dict(type='LoadImageFromFileSafe'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs')
]


def _folder(root, n=7):
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        cv2.imwrite(
            osp.join(root, f'{i}.png'),
            rng.integers(0, 255, (40, 36, 3), dtype=np.uint8))


def _features(root):
    from _tiny import build
    torch.manual_seed(0)
    model = build()
    model.eval()
    hook = RankMeHook(
        pipeline=PIPELINE,
        dataset=dict(type='ImageFolderDataset', data_root=root),
        num_images=5,
        batch_size=2,
        num_workers=0)
    hook._build(runner=None)
    return hook.features(model, {'student': model.backbone}, None)


def _worker(rank, world, port, root, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        feats = _features(root)
    torch.save(feats, osp.join(out, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_processes_gather_each_image_once(tmp_path):
    root = str(tmp_path / 'images')
    _folder(root)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # 5 images on 2 processes: 3 + 3 with the sampler's padding
    mp.spawn(_worker, args=(2, port, root, str(tmp_path)), nprocs=2)
    single = _features(root)['student']
    assert single.shape == (5, 32)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pt')['student']
        torch.testing.assert_close(got, single, rtol=1e-5, atol=1e-6)
    assert effective_rank(single) > 1
