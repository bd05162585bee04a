"""A run on 2 processes resumed on 1 (gloo, CPU): the run scale check.

The FOLK ViT-S config (rehearsal sizes, ``tests/test_configs/rehearsal.py``)
trains its first epoch on 2 processes of 4 images each (1 iteration per
epoch, 8 images per step), then resumes on 1 process (2 iterations per
epoch, 4 images per step). The resume stops naming both scales; accepted
with ``resume_allow_changes``, the checkpoint is converted: the schedules
end at the new ``max_iters``, the teacher's ``steps / max_iters`` reaches 1
at the end and the lr follows the halved effective batch.
"""
import os
import os.path as osp
import socket

import pytest
import torch
import torch.multiprocessing as mp
from rehearsal import RehearsalProbe, _train, rehearsal_cfg

import folk  # noqa: F401  (spawned workers import this module)

CONFIG = 'configs/folk/folk_vit-small-p16_8xb128-amp-coslr-300e_in1k.py'
EPOCHS = 300  # the config's cosine ends at epoch 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, work_dir, paths):
    import torch.distributed as dist
    from mmengine.registry import DefaultScope
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = rehearsal_cfg(
        CONFIG, work_dir, paths, f'ws2_{rank}', launcher='pytorch')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        _train(cfg, RehearsalProbe(stop_after=1))
    dist.destroy_process_group()


def _resume(work_dir, paths, name, **hook):
    cfg = rehearsal_cfg(CONFIG, work_dir, paths, name)
    cfg.resume = True
    cfg.default_hooks.checkpoint.update(hook)
    probe = RehearsalProbe()
    return _train(cfg, probe), probe


@pytest.fixture(scope='module')
def two_process_run(imagenette_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('ws2'))
    paths = dict(imagenette=imagenette_root)
    mp.spawn(
        _worker, args=(2, _free_port(), work_dir, paths), nprocs=2, join=True)
    return work_dir, paths


def test_checkpoint_records_the_run_scale(two_process_run):
    from folk.engine.checkpoint import safe_torch_load
    work_dir, _ = two_process_run
    meta = safe_torch_load(osp.join(work_dir, 'epoch_1.pth'))['meta']
    assert meta['run_scale'] == dict(
        world_size=2, batch_size=4, effective_batch=8, iters_per_epoch=1)
    assert (meta['epoch'], meta['iter']) == (1, 1)


def test_resume_on_one_process(two_process_run, tmp_path):
    import shutil
    src, paths = two_process_run
    # each resume in a copy: a refused resume leaves the checkpoint as is
    refused = str(tmp_path / 'refused')
    shutil.copytree(src, refused)
    with pytest.raises(RuntimeError) as err:
        _resume(refused, paths, 'ws1_refused')
    message = str(err.value)
    assert 'checkpoint: 2 x 4 = 8 images per step, 1 iterations per ' \
        'epoch; now: 1 x 4 = 4, 2' in message
    assert 'run_scale.effective_batch: 8 -> 4' in message
    assert 'run_scale.iters_per_epoch: 1 -> 2' in message
    for name in ('epoch_1.pth', 'last_checkpoint'):  # nothing written
        with open(osp.join(src, name), 'rb') as a, \
                open(osp.join(refused, name), 'rb') as b:
            assert a.read() == b.read()
    assert not osp.exists(osp.join(refused, 'epoch_2.pth'))

    accepted = str(tmp_path / 'accepted')
    shutil.copytree(src, accepted)
    runner, probe = _resume(
        accepted, paths, 'ws1_accepted', resume_allow_changes=['run_scale'])
    # epoch 2 at 2 iterations per epoch: iterations 3 and 4 of 4
    assert probe.iters == [3, 4]
    assert runner.max_iters == 2 * 2 and runner.iter == runner.max_iters
    # the teacher's momentum schedule ends where the run ends
    assert int(runner.model.teacher.steps) == runner.max_iters
    warmup, cosine = runner.param_schedulers
    assert (warmup.begin, warmup.end) == (0, 20 * 2)
    assert (cosine.begin, cosine.end, cosine.T_max) == (40, EPOCHS * 2,
                                                        (EPOCHS - 20) * 2)
    # lr: scaled for 4 images per step (auto_scale_lr, base 1024), as a
    # fresh 1-process run would be
    base = 1.5e-4 * 1024 / 256
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert warmup.base_values[0] == pytest.approx(base * 4 / 1024)
    assert lr < warmup.base_values[0]  # still warming up at iteration 4
