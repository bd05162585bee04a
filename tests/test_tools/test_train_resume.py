"""Pre-training through the MMEngine Runner: one step, and exact resume."""
import os.path as osp

import pytest
import torch
from runner_utils import demo_cfg, run

from folk.engine.checkpoint import safe_torch_load


def test_demo_config_trains_one_iteration(tmp_path, imagenette_root):
    losses, runner = run(
        demo_cfg(tmp_path, imagenette_root, max_iters=1, ckpt_every=1))
    assert set(losses[1]) == {'loss', 'loss_freq', 'loss_distill'}
    ckpt = safe_torch_load(osp.join(tmp_path, 'iter_1.pth'))
    keys = ckpt['state_dict']
    assert 'distill_head.loss_module.center' in keys
    assert any(k.startswith('teacher.module.backbone.') for k in keys)
    assert int(keys['teacher.steps']) == 1


def test_resume_continues_exactly(tmp_path, imagenette_root):
    full, _ = run(demo_cfg(tmp_path / 'full', imagenette_root, max_iters=4))
    crashed, _ = run(
        demo_cfg(tmp_path / 'crash', imagenette_root, max_iters=4),
        crash_after=2)
    assert sorted(crashed) == [1, 2]
    assert osp.exists(tmp_path / 'crash' / 'iter_2.pth')
    resumed, runner = run(
        demo_cfg(
            tmp_path / 'crash', imagenette_root, max_iters=4, resume=True))
    assert sorted(resumed) == [3, 4]
    for it in (3, 4):
        for key, value in full[it].items():
            assert resumed[it][key] == pytest.approx(value, rel=1e-5), \
                (it, key)
    # the teacher, its step count and the centre come back from the file
    ckpt = safe_torch_load(osp.join(tmp_path, 'full', 'iter_4.pth'))
    state = runner.model.state_dict()
    for key in ('teacher.steps', 'distill_head.loss_module.center',
                'teacher.module.projector.mlp.0.weight'):
        torch.testing.assert_close(state[key], ckpt['state_dict'][key])
