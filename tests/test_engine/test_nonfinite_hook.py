"""A NaN loss stops training (or skips the step) before the optimizer step."""
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner
from runner_utils import demo_cfg, run

from folk.engine import NonFiniteLossHook
from folk.engine.checkpoint import safe_torch_load
from folk.models.losses import FrequencyLoss


@pytest.fixture
def nan_at_iter_3(monkeypatch):
    """FrequencyLoss returns NaN (with a NaN gradient) at iteration 3."""
    original = FrequencyLoss.forward
    calls = []

    def forward(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        calls.append(1)
        return loss * float('nan') if len(calls) == 3 else loss

    monkeypatch.setattr(FrequencyLoss, 'forward', forward)


def _student(ckpt_path):
    sd = safe_torch_load(ckpt_path)['state_dict']
    return {k: v for k, v in sd.items() if k.startswith('backbone.')}


def _all_finite(ckpt_path):
    sd = safe_torch_load(ckpt_path)['state_dict']
    return all(
        bool(torch.isfinite(v).all()) for v in sd.values()
        if v.is_floating_point())


def test_default_config_uses_the_hook(tmp_path, imagenette_root):
    cfg = demo_cfg(tmp_path, imagenette_root)
    assert dict(type='NonFiniteLossHook', policy='raise') in cfg.custom_hooks


def test_invalid_policy_is_refused():
    with pytest.raises(ValueError, match='policy'):
        NonFiniteLossHook(policy='ignore')


def test_nan_loss_stops_before_the_step(tmp_path, imagenette_root,
                                        nan_at_iter_3):
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=4, batch_size=4, ckpt_every=1)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'iteration 3' in msg and 'loss_freq=nan' in msg, msg
    assert 'loss_distill' not in msg  # only the offending term is named
    assert 'iter_2.pth' in msg  # the intact checkpoint
    # the last good checkpoint is intact and is what auto-resume uses
    last = open(osp.join(tmp_path, 'last_checkpoint')).read()
    assert last == osp.join(tmp_path, 'iter_2.pth')
    assert _all_finite(last)
    assert not osp.exists(osp.join(tmp_path, 'iter_3.pth'))
    # no optimizer step was taken with the NaN gradients
    model = runner.model
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_nan_loss_skip_policy(tmp_path, imagenette_root, nan_at_iter_3):
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=4, batch_size=4, ckpt_every=1)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 4
    cfg.custom_hooks = [dict(type='NonFiniteLossHook', policy='skip')]
    losses, runner = run(cfg)
    assert sorted(losses) == [1, 2, 3, 4]
    assert losses[3]['loss_freq'] != losses[3]['loss_freq']  # NaN logged
    hook = [h for h in runner.hooks if isinstance(h, NonFiniteLossHook)][0]
    assert hook.skipped == [3]
    ckpt = {it: osp.join(tmp_path, f'iter_{it}.pth') for it in (2, 3, 4)}
    assert all(_all_finite(p) for p in ckpt.values())
    # iteration 3 took no step; iteration 4 did
    s2, s3, s4 = (_student(ckpt[it]) for it in (2, 3, 4))
    for key in s2:
        torch.testing.assert_close(s3[key], s2[key], rtol=0, atol=0)
    assert any(not torch.equal(s4[k], s3[k]) for k in s3)


@pytest.fixture
def nan_grads_at(monkeypatch):
    """A finite loss with NaN gradients at the given iterations.

    The campaign's fault (docs/reliability.md, D4): ``loss_freq + 0 *
    sqrt(0 * sum(params))`` keeps its value, and every gradient is NaN.
    """
    from folk.models.algorithms.folk import FOLK
    iterations = []
    calls = []
    original = FOLK.loss

    def loss(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) in iterations:
            s = sum(p.sum() for p in self.parameters() if p.requires_grad)
            losses['loss_freq'] = losses['loss_freq'] + 0 * torch.sqrt(s * 0)
        return losses

    monkeypatch.setattr(FOLK, 'loss', loss)
    return iterations


def _grad_norms(runner):
    return runner.message_hub.get_scalar('train/grad_norm').data[0].tolist()


def test_nan_gradients_behind_a_finite_loss_are_never_saved(
        tmp_path, imagenette_root, nan_grads_at):
    nan_grads_at.append(3)
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=6, batch_size=4, ckpt_every=1)
    cfg.default_hooks.logger.interval = 4  # the save reads the verdict
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'non-finite gradient at iteration 3' in msg, msg
    assert 'gradient norm=nan' in msg and 'iter_2.pth' in msg, msg
    assert not osp.exists(osp.join(tmp_path, 'iter_3.pth'))
    last = open(osp.join(tmp_path, 'last_checkpoint')).read()
    assert last == osp.join(tmp_path, 'iter_2.pth') and _all_finite(last)
    assert all(
        bool(torch.isfinite(p).all()) for p in runner.model.parameters())


def test_raise_at_the_log_interval_names_the_first_bad_iteration(
        tmp_path, imagenette_root, nan_at_iter_3):
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=8, batch_size=4, ckpt_every=2)
    cfg.default_hooks.logger.interval = 5
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    # read at the save of iteration 4 (before the file is written)
    assert 'non-finite loss at iteration 3: ' in msg, msg
    assert 'training stopped at iteration 4' in msg, msg
    assert 'iter_2.pth' in msg, msg
    assert not osp.exists(osp.join(tmp_path, 'iter_4.pth'))
    # the bad step was skipped on the device, iteration 4's taken
    assert all(
        bool(torch.isfinite(p).all()) for p in runner.model.parameters())


def test_skipped_steps_log_their_own_grad_norm(tmp_path, imagenette_root,
                                               nan_at_iter_3, nan_grads_at):
    nan_grads_at.append(5)
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=6, batch_size=4, ckpt_every=1)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 6
    cfg.default_hooks.logger.interval = 3
    cfg.custom_hooks = [dict(type='NonFiniteLossHook', policy='skip')]
    losses, runner = run(cfg)
    hook = [h for h in runner.hooks if isinstance(h, NonFiniteLossHook)][0]
    assert hook.skipped == [3, 5]
    norms = _grad_norms(runner)
    assert len(norms) == 6
    # no stale value: the skipped iterations show their own (NaN) norm
    assert [n != n for n in norms] == [False, False, True, False, True, False]
    assert all(
        _all_finite(osp.join(tmp_path, f'iter_{i}.pth')) for i in range(1, 7))
    s2, s3, s4, s5 = (
        _student(osp.join(tmp_path, f'iter_{i}.pth')) for i in (2, 3, 4, 5))
    for key in s2:
        torch.testing.assert_close(s3[key], s2[key], rtol=0, atol=0)
        torch.testing.assert_close(s5[key], s4[key], rtol=0, atol=0)


def test_too_many_skips_name_the_last_checkpoint(tmp_path, imagenette_root,
                                                 nan_grads_at):
    nan_grads_at.extend([3, 4, 5])
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=6, batch_size=4, ckpt_every=2)
    cfg.custom_hooks = [
        dict(type='NonFiniteLossHook', policy='skip', max_consecutive_skips=2)
    ]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'iteration 5' in msg and '3 consecutive' in msg, msg
    assert 'iter_4.pth' in msg, msg  # skipped steps keep the weights finite


def test_mmengine_wrapper_is_checked_on_the_host(tmp_path, imagenette_root,
                                                 nan_grads_at):
    """With MMEngine's OptimWrapper: checked at once, the step not taken."""
    nan_grads_at.append(3)
    cfg = demo_cfg(
        tmp_path, imagenette_root, max_iters=4, batch_size=4, ckpt_every=1)
    cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.default_hooks.logger.interval = 4
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'non-finite gradient at iteration 3' in msg, msg
    assert 'stopped before the optimizer step' in msg and 'iter_2.pth' in msg
    assert not osp.exists(osp.join(tmp_path, 'iter_3.pth'))
    assert all(
        bool(torch.isfinite(p).all()) for p in runner.model.parameters())
