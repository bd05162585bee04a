"""FusedCosineEMA equals MMPretrain's CosineEMA, also across a reload."""
import copy

import torch
import torch.nn as nn
from _tiny import set_schedule
from mmpretrain.models.utils import CosineEMA

from folk.models import FusedCosineEMA


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def _perturb(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g))
        net[1].running_mean.add_(torch.randn(8, generator=g))


def test_matches_cosine_ema_step_by_step():
    set_schedule(max_iters=7)
    student = _net()
    ref = CosineEMA(student, momentum=0.1, end_momentum=0.0)
    fused = FusedCosineEMA(
        student, momentum=0.1, end_momentum=0.0, copy_buffers=True)
    for step in range(6):
        _perturb(student, step)
        ref.update_parameters(student)
        fused.update_parameters(student)
        for (k, a), b in zip(ref.state_dict().items(),
                             fused.state_dict().values()):
            torch.testing.assert_close(
                a, b, rtol=1e-6, atol=1e-6, msg=f'{k} at step {step}')
    assert int(fused.steps) == 6


def test_host_step_counter_follows_a_loaded_state_dict():
    set_schedule(max_iters=10)
    student = _net()
    fused = FusedCosineEMA(student, momentum=0.5)
    for step in range(3):
        _perturb(student, step)
        fused.update_parameters(student)
    saved = copy.deepcopy(fused.state_dict())
    fresh = FusedCosineEMA(_net(), momentum=0.5)
    fresh.update_parameters(student)  # host counter now 1
    fresh.load_state_dict(saved)
    _perturb(student, 9)
    fused.update_parameters(student)
    fresh.update_parameters(student)
    for a, b in zip(fused.state_dict().values(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert int(fresh.steps) == 4


def test_buffers_are_not_copied_by_default():
    """The average keeps its own BatchNorm statistics (DINO's teacher);
    parameters still follow the EMA."""
    set_schedule(max_iters=10)
    student = _net()
    fused = FusedCosineEMA(student, momentum=0.5)
    ref = CosineEMA(student, momentum=0.5)  # copies buffers
    own = {k: b.clone() for k, b in fused.module.named_buffers()}
    for step in range(3):
        _perturb(student, step)  # also moves the student's running_mean
        fused.update_parameters(student)
        ref.update_parameters(student)
    for k, b in fused.module.named_buffers():
        torch.testing.assert_close(b, own[k], msg=k)
    assert not torch.equal(fused.module[1].running_mean,
                           student[1].running_mean)
    torch.testing.assert_close(ref.module[1].running_mean,
                               student[1].running_mean)
    for (k, a), b in zip(ref.module.named_parameters(),
                         fused.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=k)
