"""The sync-free optimizer wrappers: a bad step skipped on the device."""
import copy
import functools

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from folk.engine import (SyncFreeAmpOptimWrapper, SyncFreeOptimWrapper,
                         adapt_cfg_to_device)
from folk.engine.optim_wrapper import step_unless, supports_found_inf


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))


def _state(model, optimizer):
    params = [p.detach().clone() for p in model.parameters()]
    state = {
        i: {
            k: v.clone()
            for k, v in optimizer.state[p].items()
        }
        for i, p in enumerate(model.parameters()) if p in optimizer.state
    }
    return params, state


def _loss(model, nan=False):
    loss = model(torch.randn(3, 4)).pow(2).mean()
    return loss * float('nan') if nan else loss


@pytest.mark.parametrize('fused', [False, True])
def test_step_unless_is_an_exact_skip(fused):
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=fused)
    assert supports_found_inf(optimizer) == fused
    for first in (True, False):  # without and with optimizer state
        params, state = _state(model, optimizer)
        _loss(model, nan=True).backward()
        step_unless(optimizer, torch.tensor(False), optimizer.step)
        optimizer.zero_grad()
        after, after_state = _state(model, optimizer)
        for p, q in zip(params, after):
            assert torch.equal(p, q)
        if first:  # the state the skipped step created is the initial one
            assert all(
                float(v.abs().sum()) == 0 for s in after_state.values()
                for v in s.values())
            # take a real step, then skip again with state present
            _loss(model).backward()
            step_unless(optimizer, torch.tensor(True), optimizer.step)
            optimizer.zero_grad()
        else:
            for i in state:
                for k in state[i]:
                    assert torch.equal(state[i][k], after_state[i][k]), k


def test_skipped_step_leaves_the_run_as_without_it():
    """A skip, then a step: the same as that step alone."""
    ref, model = _model(), _model()
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    torch.manual_seed(1)
    x = torch.randn(3, 4)
    ref(x).sum().backward()
    opt_ref.step()
    (model(x).sum() * float('nan')).backward()
    step_unless(opt, torch.tensor(False), opt.step)
    opt.zero_grad()
    model(x).sum().backward()
    step_unless(opt, torch.tensor(True), opt.step)
    for p, q in zip(ref.parameters(), model.parameters()):
        assert torch.equal(p, q)


def _wrapper(cls=SyncFreeOptimWrapper, **kwargs):
    MessageHub.get_instance('test_optim_wrapper')
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    return model, cls(optimizer=optimizer, **kwargs)


def test_wrapper_keeps_the_grad_norm_on_the_device_and_skips():
    model, wrapper = _wrapper(clip_grad=dict(max_norm=1.0))
    wrapper.defer_logging = wrapper.skip_nonfinite = True
    hub = wrapper.message_hub
    before = len(hub.log_scalars)
    wrapper.update_params(_loss(model))
    norm = wrapper.pop_log_scalars()['grad_norm']
    assert torch.is_tensor(norm) and bool(wrapper.step_ok)
    assert len(hub.log_scalars) == before  # nothing written to the hub
    assert wrapper.pop_log_scalars() == {}  # once
    # NaN gradients behind a finite loss (D4): skipped, own norm logged
    params = [p.detach().clone() for p in model.parameters()]
    loss = _loss(model)
    s = sum(p.sum() for p in model.parameters())
    wrapper.update_params(loss + 0 * torch.sqrt(s * 0))
    assert not bool(wrapper.step_ok)
    assert not bool(torch.isfinite(wrapper.pop_log_scalars()['grad_norm']))
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters()))
    # a flagged loss with finite gradients is skipped too
    wrapper.flag_nonfinite(torch.tensor(True))
    wrapper.update_params(_loss(model))
    assert not bool(wrapper.step_ok)
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters()))


def test_wrapper_without_the_hooks_is_mmengines():
    model, wrapper = _wrapper(clip_grad=dict(max_norm=1.0))
    wrapper.update_params(_loss(model) * float('nan'))
    assert wrapper.step_ok is None  # no check
    values = wrapper.message_hub.get_scalar('train/grad_norm').data[0]
    assert values[-1] != values[-1]  # float(grad_norm) written, NaN
    assert not all(bool(torch.isfinite(p).all()) for p in model.parameters())


@pytest.fixture
def cpu_scaler(monkeypatch):
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    monkeypatch.setattr(amp_wrapper, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp_wrapper, 'GradScaler',
                        functools.partial(torch.amp.GradScaler, 'cpu'))


def test_amp_wrapper_with_a_scaler_skips_a_flagged_loss(cpu_scaler):
    model, wrapper = _wrapper(
        SyncFreeAmpOptimWrapper,
        loss_scale='dynamic',
        dtype='float16',
        clip_grad=dict(max_norm=1.0))
    wrapper.defer_logging = wrapper.skip_nonfinite = True
    wrapper.update_params(_loss(model))
    params = [p.detach().clone() for p in model.parameters()]
    wrapper.flag_nonfinite(torch.tensor(True))
    wrapper.update_params(_loss(model))  # finite gradients, flagged loss
    assert not bool(wrapper.step_ok)
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters()))


def test_amp_wrapper_without_scaler_skips_on_the_device(cpu_scaler):
    model, wrapper = _wrapper(
        SyncFreeAmpOptimWrapper,
        loss_scale=dict(enabled=False),
        dtype='bfloat16',
        clip_grad=dict(max_norm=1.0))
    wrapper.defer_logging = wrapper.skip_nonfinite = True
    params = [p.detach().clone() for p in model.parameters()]
    wrapper.update_params(_loss(model, nan=True))
    assert not bool(wrapper.step_ok)
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters()))


def test_fused_adamw_on_cuda_plain_elsewhere(monkeypatch):
    cfg = Config(
        dict(
            optim_wrapper=dict(
                type='SyncFreeAmpOptimWrapper',
                dtype='bfloat16',
                loss_scale=dict(enabled=False),
                optimizer=dict(type='AdamW', lr=1e-3, fused=True))))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert adapt_cfg_to_device(copy.deepcopy(cfg)).to_dict() == cfg.to_dict()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.warns(UserWarning, match='fused'):
        cpu = adapt_cfg_to_device(copy.deepcopy(cfg))
    assert cpu.optim_wrapper.type == 'SyncFreeOptimWrapper'
    assert 'fused' not in cpu.optim_wrapper.optimizer
    assert 'dtype' not in cpu.optim_wrapper


def test_shipped_configs_choose_fused_adamw_and_the_sync_free_wrapper(
        repo_root):
    import os.path as osp
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', 'folk',
                 'folk_vit-base-p16_8xb128-amp-coslr-300e_in1k.py'))
    assert cfg.optim_wrapper.type == 'SyncFreeAmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.fused is True
    assert cfg.default_hooks.runtime_info.type == 'DeferredRuntimeInfoHook'
